"""Managed fields and server-side apply, as kube-apiserver does them for a custom resource.

Written for the fake API server (fake_kube.py) from the Kubernetes documentation of server-side
apply and structured-merge-diff's rules, separately from the code under test so the two can
disagree. The object is typed by the CRD's OpenAPI schema (crd.py), as the API server types it:

- an object with ``properties`` or ``additionalProperties`` is granular (each field is owned on
  its own) unless it says ``x-kubernetes-map-type: atomic``; ``metadata.labels`` and
  ``metadata.annotations`` are granular maps (ObjectMeta's own schema);
- a list is atomic unless it says ``x-kubernetes-list-type: map|set``: one owner for the whole
  list, as for every CRD list with no list type. Associative lists (map/set) are not modelled: an
  apply that reaches one outside an atomic parent raises ``NotModelled`` (the fake answers 500),
  so a test can never pass on behaviour the fake does not have;
- everything else is a leaf.

A field set is a set of paths (tuples of keys) to leaves; ``to_fields_v1`` / ``from_fields_v1``
convert to the ``f:name`` form the API puts in ``metadata.managedFields``.

Simplification, said here so nobody relies on it: when removing a manager's last field empties
its parent object, the fake drops the empty parent (structured-merge-diff versions differ in
whether an empty ``{}`` stays behind).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from tests.rollout import crd

Path = tuple[str, ...]
# Owner of fields: (manager, operation), as managedFields entries are keyed.
Manager = tuple[str, str]
APPLY, UPDATE = "Apply", "Update"
TRACKED_METADATA = ("labels", "annotations")  # identity and server-set metadata is never owned
_MISSING = object()


class NotModelled(Exception):
    """The request needs a part of server-side apply the fake does not implement."""


def _child_schema(node: dict, key: str) -> dict:
    if key in node.get("properties", {}):
        return node["properties"][key]
    extra = node.get("additionalProperties")
    return extra if isinstance(extra, dict) else {}


def _is_granular(node: dict, value) -> bool:
    if not isinstance(value, dict) or node.get("x-kubernetes-map-type") == "atomic":
        return False
    return "properties" in node or isinstance(node.get("additionalProperties"), dict)


def leaves(obj: dict) -> dict[Path, object]:
    """The owned-field paths of an object (labels, annotations, spec) with their values."""
    found: dict[Path, object] = {}
    metadata_schema = {"type": "object", "additionalProperties": {"type": "string"}}
    for key in TRACKED_METADATA:
        if key in obj.get("metadata", {}):
            _walk(obj["metadata"][key], metadata_schema, ("metadata", key), found)
    if "spec" in obj:
        _walk(obj["spec"], crd.schema()["properties"]["spec"], ("spec",), found)
    return found


def _walk(value, node: dict, path: Path, found: dict) -> None:
    if node.get("type") == "array" and node.get("x-kubernetes-list-type", "atomic") != "atomic":
        raise NotModelled(
            f"{_dotted(path)} is a list of type {node['x-kubernetes-list-type']}; the fake models atomic lists only"
        )
    if _is_granular(node, value) and value:
        for key, child in value.items():
            _walk(child, _child_schema(node, key), path + (key,), found)
    else:
        found[path] = copy.deepcopy(value)


def _dotted(path: Path) -> str:
    return "." + ".".join(path)


def get(obj: dict, path: Path):
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return _MISSING
        obj = obj[key]
    return obj


def put(obj: dict, path: Path, value) -> None:
    for key in path[:-1]:
        obj = obj.setdefault(key, {})
    obj[path[-1]] = copy.deepcopy(value)


def remove(obj: dict, path: Path) -> None:
    """Delete the field, then any parent object this left empty (never ``metadata``/``spec``)."""
    parents = [obj]
    for key in path[:-1]:
        parents.append(parents[-1].get(key, {}))
    parents[-1].pop(path[-1], None)
    for depth in range(len(path) - 1, 1, -1):
        if parents[depth] == {}:
            parents[depth - 1].pop(path[depth - 1], None)


def to_fields_v1(paths) -> dict:
    tree: dict = {}
    nodes = {}
    for path in sorted(paths):
        node = tree
        for key in path:
            node = node.setdefault(f"f:{key}", {})
        nodes[path] = node
    for node in nodes.values():
        if node:  # a field owned itself and through children: "." marks the field itself
            node["."] = {}
    return tree


def from_fields_v1(tree: dict, prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    for key, sub in tree.items():
        if key == ".":
            paths.add(prefix)
            continue
        if not key.startswith("f:"):
            raise NotModelled(f"managed field key {key!r} under {_dotted(prefix)} (only f: keys are modelled)")
        path = prefix + (key[2:],)
        paths |= from_fields_v1(sub, path) if sub else {path}
    return paths


@dataclass
class Conflict:
    manager: Manager
    path: Path


@dataclass
class Ownership:
    """Who owns which fields of one object: its ``metadata.managedFields``."""

    owners: dict[Manager, set[Path]] = field(default_factory=dict)

    @classmethod
    def of(cls, obj: dict) -> Ownership:
        entries = obj.get("metadata", {}).get("managedFields") or []
        return cls({(e["manager"], e["operation"]): from_fields_v1(e.get("fieldsV1", {})) for e in entries})

    def entries(self, api_version: str, time: str) -> list[dict]:
        return [
            {
                "manager": manager,
                "operation": operation,
                "apiVersion": api_version,
                "time": time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(paths),
            }
            for (manager, operation), paths in self.owners.items()
            if paths
        ]

    def conflicts(self, applier: Manager, applied: dict[Path, object], live: dict) -> list[Conflict]:
        """Fields another manager owns that the apply would change."""
        return [
            Conflict(manager, path)
            for manager, paths in self.owners.items()
            if manager != applier
            for path in sorted(paths & applied.keys())
            if get(live, path) != applied[path]
        ]

    def record_update(self, manager: Manager, before: dict, after: dict) -> None:
        """A non-apply write: the writer takes every field it changed; removed fields lose all owners."""
        old, new = leaves(before), leaves(after)
        changed = {p for p, v in new.items() if old.get(p, _MISSING) != v}
        removed = old.keys() - new.keys()
        for paths in self.owners.values():
            paths -= changed | removed
        if changed:
            self.owners.setdefault(manager, set()).update(changed)
        self._drop_empty()

    def _drop_empty(self) -> None:
        self.owners = {manager: paths for manager, paths in self.owners.items() if paths}


def server_side_apply(live: dict, applied_obj: dict, manager: str, force: bool) -> tuple[dict, Ownership]:
    """The object after ``manager`` applies ``applied_obj`` to ``live`` (``{}`` when creating).

    Raises:
        ApplyConflict: another manager owns a field the apply changes, and ``force`` is false.
    """
    applier = (manager, APPLY)
    ownership = Ownership.of(live)
    applied = leaves(applied_obj)
    conflicts = ownership.conflicts(applier, applied, live)
    if conflicts and not force:
        raise ApplyConflict(conflicts)
    for conflict in conflicts:  # force: the others lose what the applier takes
        ownership.owners[conflict.manager].discard(conflict.path)
    result = copy.deepcopy(live)
    for path, value in applied.items():
        put(result, path, value)
    others = set().union(*(p for m, p in ownership.owners.items() if m != applier))
    for path in ownership.owners.get(applier, set()) - applied.keys() - others:
        remove(result, path)  # applied before, omitted now, owned by nobody else
    ownership.owners[applier] = set(applied)
    ownership._drop_empty()
    return result, ownership


class ApplyConflict(Exception):
    def __init__(self, conflicts: list[Conflict]):
        self.conflicts = conflicts
        super().__init__(self.message())

    def message(self) -> str:
        """kube-apiserver's wording (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/fieldmanager)."""
        if len(self.conflicts) == 1:
            [c] = self.conflicts
            return f"Apply failed with 1 conflict: conflict with {_printed(c.manager)}: {_dotted(c.path)}"
        lines = []
        for manager in sorted({c.manager for c in self.conflicts}):
            lines.append(f"conflicts with {_printed(manager)}")
            lines.extend(f"- {_dotted(c.path)}" for c in self.conflicts if c.manager == manager)
        return f"Apply failed with {len(self.conflicts)} conflicts: " + "\n".join(lines)

    def causes(self) -> list[dict]:
        return [
            {
                "reason": "FieldManagerConflict",
                "message": f"conflict with {_printed(c.manager)}",
                "field": _dotted(c.path),
            }
            for c in self.conflicts
        ]


def _printed(manager: Manager) -> str:
    name, operation = manager
    return f'"{name}" using {crd.API_VERSION}' if operation == UPDATE else f'"{name}"'
