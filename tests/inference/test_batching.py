"""The one length-grouped batching: every text once, within the budget, and least padding plus passes."""

from __future__ import annotations

import random

import pytest

from textclf.inference.batching import Batching, pad, plan_passes


def padded_tokens(lengths, passes):
    return sum((end - start) * lengths[end - 1] for start, end in passes)


def greedy_passes(lengths, budget):
    """The grouping used before: fill each pass until the next text would break the budget."""
    passes, start = [], 0
    while start < len(lengths):
        end = start + 1
        while end < len(lengths) and (end - start + 1) * lengths[end] <= budget:
            end += 1
        passes.append((start, end))
        start = end
    return passes


def test_passes_cover_every_text_once_within_the_budget():
    rng = random.Random(0)
    for _ in range(200):
        lengths = sorted(rng.choice([rng.randint(8, 256), 256]) for _ in range(rng.randint(1, 40)))
        passes = plan_passes(lengths, 2048, 32)
        assert [index for start, end in passes for index in range(start, end)] == list(range(len(lengths)))
        assert all((end - start) * lengths[end - 1] <= 2048 for start, end in passes)
        # Never dearer than the greedy grouping, in the cost it minimises.
        greedy = greedy_passes(lengths, 2048)
        assert padded_tokens(lengths, passes) + 32 * len(passes) <= padded_tokens(lengths, greedy) + 32 * len(greedy)


def test_short_texts_are_not_padded_to_long_ones():
    lengths = [12, 12, 14, 15, 250, 256, 256, 256]
    assert plan_passes(lengths, 2048, 32) == [(0, 4), (4, 8)]
    # Equal lengths fill passes up to the budget; a text over the budget runs alone.
    assert sorted(end - start for start, end in plan_passes([100] * 10, 400, 32)) == [2, 4, 4]
    assert plan_passes([10, 600], 400, 32) == [(0, 1), (1, 2)]
    # Without a cost per pass, no padding at all: one pass per distinct length.
    assert plan_passes([5, 5, 6, 7, 7], 2048, 0) == [(0, 2), (2, 3), (3, 5)]
    # A text limit cuts too.
    assert plan_passes([5] * 7, 2048, 32, max_texts=3) == [(0, 1), (1, 4), (4, 7)]


def test_passes_are_indices_in_ascending_length_and_every_text_once():
    lengths = [5, 300, 10, 400, 3000, 7, 8, 300]
    passes = Batching(max_tokens=600, pass_cost_tokens=32, max_texts=3).passes(lengths)
    assert sorted(i for batch in passes for i in batch) == list(range(len(lengths)))
    for batch in passes:
        longest = max(lengths[i] for i in batch)
        assert len(batch) <= 3 and (len(batch) * longest <= 600 or len(batch) == 1)
        assert [lengths[i] for i in batch] == sorted(lengths[i] for i in batch)
    assert passes == [[0, 5], [6, 2], [1, 7], [3], [4]]  # ties 5+7+8,10 (4 padded tokens, 2 passes)


def test_gpus_take_passes_of_the_batch_size_without_a_token_budget():
    lengths = [5, 300, 10, 400, 3000, 7, 8, 300]
    assert Batching.for_device("cuda", 3).passes(lengths) == [[0, 5, 6], [2, 1, 7], [3, 4]]
    assert Batching.for_device("cpu", 3) == Batching(max_texts=3)


@pytest.mark.parametrize("bad", [{"max_tokens": -1}, {"max_tokens": 0, "max_texts": 0}, {"pass_cost_tokens": -5}])
def test_bad_batching_is_named(bad):
    with pytest.raises(ValueError):
        Batching(**bad)


def test_pad_right_pads_ids_and_masks():
    ids, mask = pad([[1, 2, 3], [4]], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert ids.dtype == mask.dtype == "int64"
