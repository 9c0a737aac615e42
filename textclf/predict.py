"""A classifier's outputs on token ids, batched by length: used by training, evaluation and the profile."""

from __future__ import annotations

from collections.abc import Sequence


def predict_logits(model, input_ids: Sequence[Sequence[int]], batch_size: int, pad_id: int, device, precision: str):
    """Logits for each sequence of ``input_ids`` in their order; batches sorted by length (on CPUs also
    capped in padded tokens: ``textclf.train.data.CPU_BATCH_TOKENS``)."""
    import torch

    from textclf.train.batches import collate
    from textclf.train.data import scoring_token_cap, sorted_batches
    from textclf.train.precision import autocast

    out = [None] * len(input_ids)
    model.eval()
    with torch.inference_mode(), autocast(device.type, precision):
        for idx in sorted_batches([len(ids) for ids in input_ids], batch_size, scoring_token_cap(device)):
            batch = collate([{"input_ids": input_ids[i]} for i in idx], pad_id)
            logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)).logits
            for i, row in zip(idx, logits.float().cpu()):
                out[i] = row
    return torch.stack(out) if out else torch.empty(0)


def predict_proba(model, encoder, batch_size: int = 64, device=None, precision: str = "fp32"):
    """``texts -> probabilities`` (a NumPy array [N, K]) through the one text encoding."""
    import torch

    device = device or next(model.parameters()).device

    def probabilities(texts: Sequence[str]):
        logits = predict_logits(model, encoder.encode(list(texts)), batch_size, encoder.pad_id, device, precision)
        return torch.softmax(logits, dim=-1).numpy()

    return probabilities
