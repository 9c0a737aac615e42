"""The tokenized splits as PyTorch data: rows read on demand from the memory-mapped Arrow files.

Nothing holds a split's token ids in Python lists: a ``DataLoader`` fetches each batch's rows
from the Arrow table that ``datasets.load_from_disk`` memory-maps (in worker processes when
``dataloader_workers`` > 0) and pads them. What stays in memory per text is its length and its
index, for length-grouped batching.

Batches and ranks: each optimizer micro-step takes one *global* batch of
``batch_size x world_size`` texts from :func:`length_grouped_batches` (seeded by seed + epoch) and
cuts it into ``world_size`` slices, one per rank. With one process the global batch is the
batch of the single-process loop, so world size 1 trains on exactly the same batches as before;
with N processes the ranks together see what one process with an N times larger batch would.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import cast

from textclf.train.batches import collate, length_grouped_batches

COLUMNS = ("input_ids", "label")


def token_lengths(split) -> list[int]:
    """Tokens per row of a ``datasets.Dataset`` split, read from its Arrow column (no row is decoded)."""
    import pyarrow.compute as pc

    return pc.list_value_length(split.with_format("arrow")[:]["input_ids"]).to_pylist()


def rank_slices(batch: list[int], world_size: int) -> list[list[int]]:
    """``batch`` cut into ``world_size`` slices as even as possible (sizes differ by at most one)."""
    size, extra = divmod(len(batch), world_size)
    bounds = [r * size + min(r, extra) for r in range(world_size + 1)]
    return [batch[bounds[r] : bounds[r + 1]] for r in range(world_size)]


def global_batches(lengths: list[int], batch_size: int, world_size: int, seed: int, group: bool) -> list[list[int]]:
    """One epoch's global batches (``batch_size`` per rank). With several ranks a last batch too
    small to give every rank a text joins the one before it, so that no rank ever sits idle at
    a gradient synchronisation."""
    batches = length_grouped_batches(lengths, batch_size * world_size, seed, group)
    if world_size > 1 and len(batches) > 1 and len(batches[-1]) < world_size:
        batches[-2] = batches[-2] + batches.pop()
    return batches


@dataclass(frozen=True)
class RankBatch:
    """This rank's slice of one global batch, and the slice's share of the global batch's loss."""

    indices: list[int]
    loss_weight: float  # len(slice) * world_size / len(global batch): 1.0 with equal slices


class RankBatches:
    """Batch sampler: this rank's slices of an epoch's global batches, from batch ``start`` on
    (a resumed run starts where the checkpoint stopped)."""

    def __init__(self, batches: list[list[int]], rank: int, world_size: int, start: int = 0):
        self.batches, self.rank, self.world_size, self.start = batches, rank, world_size, start

    def slice(self, position: int) -> RankBatch:
        batch = self.batches[position]
        indices = rank_slices(batch, self.world_size)[self.rank]
        return RankBatch(indices, len(indices) * self.world_size / len(batch))

    def __len__(self) -> int:
        return len(self.batches) - self.start

    def __iter__(self):
        for position in range(self.start, len(self.batches)):
            yield self.slice(position).indices


class TokenRows:
    """Map-style dataset over a split's ``input_ids`` and ``label`` (when present) columns.

    ``__getitems__`` reads a whole batch of rows in one Arrow ``take``; the DataLoader uses it.
    """

    def __init__(self, split):
        self.split = split.select_columns([c for c in COLUMNS if c in split.column_names])

    def __len__(self) -> int:
        return self.split.num_rows

    def __getitem__(self, index: int) -> dict:
        return self.split[int(index)]

    def __getitems__(self, indices: list[int]) -> list[dict]:
        return self.split.__getitems__([int(i) for i in indices])


def loader(rows: TokenRows, batch_sampler, pad_id: int, workers: int, pin_memory: bool, seed: int):
    """A DataLoader of padded batches (dicts of tensors) in the sampler's order.

    Collation is deterministic (padding only). The loader gets its own generator: without one,
    each new iterator draws its workers' base seed from the global torch RNG, which would shift
    the dropout stream and break both "world size 1 = the single-process loop" and exact resumes.
    """
    import torch

    generator = torch.Generator()
    generator.manual_seed(seed)
    # A map-style dataset is any object with __getitem__ and __len__ to torch; its type hints ask for the class.
    dataset = cast("torch.utils.data.Dataset[dict]", rows)
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        collate_fn=partial(collate, pad_id=pad_id),
        num_workers=workers,
        pin_memory=pin_memory,
        generator=generator,
        prefetch_factor=4 if workers else None,
    )
