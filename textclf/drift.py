"""Distances between a reference distribution and a live one.

All functions take counts (or shares: they are normalised first) and return None when either
side is empty, so an empty window reads as "no data yet", never as "no drift".
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

# Shares are floored at this value in PSI so an empty bin on one side gives a large but finite
# value (ln(share / 0) is infinite); it only matters for bins that one side never fills.
PSI_EPSILON = 1e-4


def shares(counts: Sequence[float]) -> list[float] | None:
    """Counts normalised to sum to 1; None when they sum to 0."""
    total = float(sum(counts))
    if total <= 0:
        return None
    return [c / total for c in counts]


def _pair(reference: Sequence[float], current: Sequence[float]) -> tuple[list[float], list[float]] | None:
    if len(reference) != len(current):
        raise ValueError(f"distributions have {len(reference)} and {len(current)} bins")
    p, q = shares(reference), shares(current)
    return None if p is None or q is None else (p, q)


def psi(reference: Sequence[float], current: Sequence[float], epsilon: float = PSI_EPSILON) -> float | None:
    """Population stability index: sum over bins of (q - p) * ln(q / p).

    Rule of thumb: < 0.1 stable, 0.1-0.2 moderate shift, > 0.2 significant shift.
    """
    pair = _pair(reference, current)
    if pair is None:
        return None
    return sum((max(q, epsilon) - max(p, epsilon)) * math.log(max(q, epsilon) / max(p, epsilon)) for p, q in zip(*pair))


def js_divergence(reference: Sequence[float], current: Sequence[float]) -> float | None:
    """Jensen-Shannon divergence in bits: 0 for identical distributions, 1 for disjoint ones.

    scipy returns the Jensen-Shannon *distance*, the square root of the divergence.
    """
    from scipy.spatial.distance import jensenshannon

    pair = _pair(reference, current)
    if pair is None:
        return None
    return max(0.0, float(jensenshannon(*pair, base=2)) ** 2)


def total_variation(reference: Sequence[float], current: Sequence[float]) -> float | None:
    """Half the L1 distance between shares: the largest change in any group of labels' share."""
    pair = _pair(reference, current)
    if pair is None:
        return None
    return sum(abs(a - b) for a, b in zip(*pair)) / 2


def align(reference: Mapping[str, float], current: Mapping[str, float]) -> tuple[list[float], list[float]]:
    """Two categorical distributions as aligned lists over the union of their categories."""
    keys = sorted(set(reference) | set(current))
    return [reference.get(k, 0.0) for k in keys], [current.get(k, 0.0) for k in keys]
