"""Read back what an offline W&B run wrote: the records of its ``run-<id>.wandb`` file.

The file is a 7-byte ``:W&B`` header followed by a LevelDB-style log (32 KiB blocks; each
chunk has a 7-byte header: CRC32C, little-endian length, type) whose payloads are
``wandb_internal_pb2.Record`` messages. wandb ships no reader for it, hence these few lines.
"""

from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _payloads(data: bytes):
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER:  # block trailer: zero padding
            pos += left_in_block
            continue
        length = int.from_bytes(data[pos + 4 : pos + 6], "little")
        kind = data[pos + 6]
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:  # preallocated zeros at the end
            break
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk


def read_records(run_dir: str) -> list:
    """All records of the run in ``run_dir`` (a ``wandb/offline-run-...`` folder)."""
    from wandb.proto import wandb_internal_pb2

    (path,) = Path(run_dir).glob("run-*.wandb")
    records = []
    for payload in _payloads(path.read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        records.append(record)
    return records


def history(records) -> list[dict]:
    """The rows logged with ``run.log``: ``{key: json_value_string, "_step": ...}``."""
    return [
        {item.key or "/".join(item.nested_key): item.value_json for item in r.history.item}
        for r in records
        if r.WhichOneof("record_type") == "history"
    ]


def config(records) -> dict:
    """The run's config as ``{key: json_value_string}`` (later updates win)."""
    merged = {}
    for r in records:
        kind = r.WhichOneof("record_type")
        updates = r.run.config.update if kind == "run" else r.config.update if kind == "config" else []
        merged.update({item.key: item.value_json for item in updates})
    return merged


def artifacts(records) -> list:
    """The artifacts the run logged (``ArtifactRecord``: name, type, aliases, metadata, manifest)."""
    return [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
