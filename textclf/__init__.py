"""textclf: the logic of the text-classification system, with neither kfp nor kserve.

Data (``ingest``, ``sample_data``, ``datacard``, ``storage``, ``source_version``), the one text
encoding (``encoding``, used by ``tokenize``, evaluation, the profile and the server), training
(``train``), evaluation and behavioural suites (``evaluate``, ``behaviour``, ``predict``), the
gate (``gate``), drift statistics (``profile``, ``drift``), tracking (``tracking``) and the
InferenceService and its rollout on a cluster (``inferenceservice``, ``kube``). The pipeline
steps (``components/``) and the model server (``serving/``) are thin layers over these modules.
"""
