"""JSON merge patches (RFC 7386): applying one, and computing the one that an apply should send.

``apply`` keeps kubectl's three-way semantics without kubectl: the fields the manifest sets are
made equal to the manifest; fields an earlier apply set and this manifest no longer has are
removed; fields that someone else set (KServe's defaulting webhook, an operator) are left alone.
"""

from __future__ import annotations

import copy
from typing import Any

_MISSING = object()


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """Return ``target`` with ``patch`` applied as RFC 7386 says (``None`` deletes; lists replace)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def three_way_patch(last_applied: dict, live: dict, desired: dict) -> dict:
    """The merge patch that makes ``live`` agree with ``desired`` on the fields we own.

    Args:
        last_applied: what the previous apply set (``{}`` when nothing did); its keys that
            ``desired`` dropped are deleted from ``live``.
        live: the object as the API server has it now.
        desired: what this apply wants. ``None`` values mean "absent".

    Returns:
        ``{}`` when ``live`` already agrees, which is what makes a second apply a no-op.
    """
    patch: dict = {}
    for key in last_applied:
        if key not in desired and key in live:
            patch[key] = None
    for key, want in desired.items():
        have = live.get(key, _MISSING)
        if want is None:
            if have is not _MISSING:
                patch[key] = None
        elif isinstance(want, dict) and isinstance(have, dict):
            before = last_applied.get(key)
            sub = three_way_patch(before if isinstance(before, dict) else {}, have, want)
            if sub:
                patch[key] = sub
        elif have != want:
            patch[key] = copy.deepcopy(want)
    return patch
