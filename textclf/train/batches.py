"""Batches of similar length, padded per batch: on long-tailed text lengths most of the speed."""

from __future__ import annotations

import random


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int, group: bool = True) -> list[list[int]]:
    """Batches of indices: shuffled, and (with ``group``) of similar lengths.

    Indices are shuffled, cut into mega-batches of 50 batches, sorted by length inside each
    mega-batch, cut into batches, and the batches shuffled again. Randomness stays (each
    mega-batch is a random sample) while a batch's texts are close in length.
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if group:
        mega = batch_size * 50
        order = [i for s in range(0, len(order), mega) for i in sorted(order[s : s + mega], key=lambda i: -lengths[i])]
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(rows: list[dict], pad_id: int):
    """Pad a batch to its own longest sequence (``labels`` too when the rows have them)."""
    import torch

    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n] = torch.as_tensor(r["input_ids"])
        mask[i, :n] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if "label" in rows[0]:
        batch["labels"] = torch.as_tensor([r["label"] for r in rows])
    return batch
