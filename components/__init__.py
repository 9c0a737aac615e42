"""Pipeline steps: per step a thin kfp interface (signature, UI text, a call into ``textclf``)."""
