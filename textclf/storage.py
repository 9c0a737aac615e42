"""A small ``gs://`` helper on ``google-cloud-storage``: the pipeline's steps read and write GCS with it.

Every function also accepts a local path, so a step written against it runs unchanged locally
and in the cloud. ``STORAGE_EMULATOR_HOST`` is honoured by the client itself (anonymous
credentials, no project needed), which is how the tests run against ``gcp-storage-emulator``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from pathlib import Path

logger = logging.getLogger(__name__)

GCS_SCHEME = "gs://"


def is_gcs(uri: str) -> bool:
    """True when ``uri`` names a Cloud Storage object or prefix (``gs://bucket/...``)."""
    return str(uri).startswith(GCS_SCHEME)


def split_gcs(uri: str) -> tuple[str, str]:
    """Split ``gs://bucket/path/to/x`` into ``("bucket", "path/to/x")``.

    Raises:
        ValueError: ``uri`` is not a ``gs://`` URI or names no bucket.
    """
    if not is_gcs(uri):
        raise ValueError(f"not a gs:// URI: {uri!r}")
    bucket, _, name = uri[len(GCS_SCHEME) :].partition("/")
    if not bucket:
        raise ValueError(f"gs:// URI without a bucket: {uri!r}")
    return bucket, name


def _client():
    # Imported here so local-only steps never pay for (or need) the GCS client.
    from google.cloud import storage

    return storage.Client()


def _listing_prefix(name: str) -> str:
    """The prefix under which ``name`` is a folder (``""`` for a whole bucket)."""
    return name.rstrip("/") + "/" if name.strip("/") else ""


def _objects_under(client, bucket: str, prefix: str) -> list:
    # Zero-byte "folder/" placeholders (made by the console) are not files.
    return [b for b in client.list_blobs(bucket, prefix=prefix) if not b.name.endswith("/")]


def _log_transfer(verb: str, what: str, files: int, size: int, started: float) -> None:
    seconds = max(time.monotonic() - started, 1e-6)
    logger.info(
        "%s %s: %d files, %.1f MB in %.1f s (%.1f MB/s)",
        verb, what, files, size / 1e6, seconds, size / 1e6 / seconds,
    )


GLOB_CHARS = "*?["


def has_glob(path: str) -> bool:
    """True when ``path`` holds a wildcard (``*``, ``?`` or ``[``)."""
    return any(char in path for char in GLOB_CHARS)


def glob_regex(pattern: str) -> re.Pattern:
    """A regular expression with the shell's rules for paths: ``*`` and ``?`` stay inside one folder,
    ``**/`` matches any number of folders (``glob.glob(recursive=True)`` semantics)."""
    parts, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            parts.append("(?:[^/]*/)*")
            i += 3
        elif pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif pattern[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            parts.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2:]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1:end]
            parts.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(parts) + r"\Z")


def _matching_blobs(client, bucket_name: str, name: str) -> list:
    """The blobs ``gs://bucket_name/name`` names: one object, a prefix's objects, or a glob's matches."""
    if has_glob(name):
        literal = re.split(r"[*?\[]", name, maxsplit=1)[0]
        matcher = glob_regex(name)
        return [b for b in _objects_under(client, bucket_name, literal) if matcher.match(b.name)]
    blob = client.bucket(bucket_name).get_blob(name) if name and not name.endswith("/") else None
    return [blob] if blob is not None else _objects_under(client, bucket_name, _listing_prefix(name))


def list_objects(uri: str) -> list[str]:
    """The ``gs://`` objects ``uri`` names, sorted: one object, every object under a prefix
    (a "folder"), or the objects matching a glob (``gs://bucket/export/part-*.csv.gz``; ``**``
    crosses folders). Zero-byte ``folder/`` placeholders are left out.

    Raises:
        FileNotFoundError: Nothing matches.
    """
    bucket_name, name = split_gcs(uri)
    blobs = _matching_blobs(_client(), bucket_name, name)
    if not blobs:
        raise FileNotFoundError(f"no object matches {uri}")
    return sorted(f"{GCS_SCHEME}{bucket_name}/{b.name}" for b in blobs)


def _fetch(blob, path: Path) -> int:
    """Download ``blob`` to ``path`` (parent folders are created); its size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    blob.download_to_filename(str(path))
    return path.stat().st_size


def download(uri: str, target: str, client=None) -> str:
    """Download the ``gs://`` object ``uri`` to the local file ``target`` (parent folders are created)."""
    bucket_name, name = split_gcs(uri)
    started = time.monotonic()
    size = _fetch((client or _client()).bucket(bucket_name).blob(name), Path(target))
    _log_transfer("downloaded", uri, 1, size, started)
    return str(target)


def localize(uri: str, dest_dir: str) -> str:
    """Make ``uri`` available on local disk and return its local path.

    A ``gs://`` object is downloaded to ``dest_dir/<its file name>``; a ``gs://`` prefix
    (a "folder", such as a saved model) is downloaded to ``dest_dir/<its last component>/``
    keeping the layout below it. Anything else is a local path and is returned unchanged.

    Args:
        uri: ``gs://bucket/object``, ``gs://bucket/prefix[/]`` or a local path.
        dest_dir: Folder to download into; created when missing.

    Raises:
        FileNotFoundError: Nothing exists at ``uri`` (neither an object nor objects under it).
    """
    if not is_gcs(uri):
        return uri
    bucket_name, name = split_gcs(uri)
    client = _client()
    dest = Path(dest_dir)
    started = time.monotonic()
    if name and not name.endswith("/"):
        if client.bucket(bucket_name).blob(name).exists():
            return download(uri, str(dest / Path(name).name), client)
    prefix = _listing_prefix(name)
    blobs = _objects_under(client, bucket_name, prefix)
    if not blobs:
        raise FileNotFoundError(f"no object and no objects under {uri}")
    target = (dest / (Path(name.rstrip("/")).name or bucket_name)).resolve()
    size = 0
    for blob in blobs:
        path = (target / blob.name[len(prefix) :]).resolve()
        # An object named "a/../../x" must not write outside the target folder.
        if not path.is_relative_to(target):
            raise ValueError(f"object gs://{bucket_name}/{blob.name} would land outside {target}")
        size += _fetch(blob, path)
    _log_transfer("downloaded", uri, len(blobs), size, started)
    return str(target)


def upload_dir(local_dir: str, uri: str) -> None:
    """Upload every file under ``local_dir`` to the ``gs://`` prefix ``uri``, keeping the layout.

    Raises:
        NotADirectoryError: ``local_dir`` is not a folder.
        ValueError: ``local_dir`` holds no file, or ``uri`` is not a ``gs://`` URI.
    """
    root = Path(local_dir)
    if not root.is_dir():
        raise NotADirectoryError(f"not a folder, cannot upload: {local_dir}")
    bucket_name, name = split_gcs(uri)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    if not files:
        raise ValueError(f"no file to upload in {local_dir}")
    bucket = _client().bucket(bucket_name)
    prefix = _listing_prefix(name)
    started = time.monotonic()
    for path in files:
        bucket.blob(prefix + path.relative_to(root).as_posix()).upload_from_filename(str(path))
    _log_transfer("uploaded", f"{local_dir} to {uri}", len(files), sum(p.stat().st_size for p in files), started)


def read_text(uri: str) -> str:
    """Read a UTF-8 text file from ``gs://`` or local disk.

    Raises:
        FileNotFoundError: No such object or file (the message names ``uri``).
    """
    if not is_gcs(uri):
        return Path(uri).read_text(encoding="utf-8")
    from google.api_core.exceptions import NotFound

    bucket_name, name = split_gcs(uri)
    try:
        return _client().bucket(bucket_name).blob(name).download_as_bytes().decode("utf-8")
    except NotFound as error:
        raise FileNotFoundError(f"no such object: {uri}") from error


def write_text(uri: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``gs://`` or a local file, creating local parent folders."""
    if not is_gcs(uri):
        path = Path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    bucket_name, name = split_gcs(uri)
    if not name or name.endswith("/"):
        raise ValueError(f"cannot write text to a bucket or folder: {uri}")
    _client().bucket(bucket_name).blob(name).upload_from_string(text.encode("utf-8"), content_type="text/plain; charset=utf-8")


def _file_digest(path: Path) -> str:
    with open(path, "rb") as handle:  # read in blocks by hashlib: a shard may be gigabytes
        return hashlib.file_digest(handle, "sha256").hexdigest()


def content_version(uri: str) -> str:
    """A short digest that changes whenever the data at ``uri`` changes.

    ``uri`` is a file, a folder or a glob, local or ``gs://``. For ``gs://`` it is computed from
    object metadata only (names, sizes, CRC32C), so it costs one listing however large the data.
    A step that outputs it, with caching off, lets the steps after it be cache hits exactly when
    the source is unchanged.

    Raises:
        FileNotFoundError: Nothing exists at ``uri``.
    """
    digest = hashlib.sha256()
    if is_gcs(uri):
        bucket_name, name = split_gcs(uri)
        entries = [(b.name, str(b.size), b.crc32c or "") for b in _matching_blobs(_client(), bucket_name, name)]
    else:
        root = Path(uri)
        if has_glob(uri):
            import glob

            paths = sorted(Path(p) for p in glob.glob(uri, recursive=True) if Path(p).is_file())
            names = [p.as_posix() for p in paths]
        else:
            paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
            names = [p.relative_to(root).as_posix() if p != root else p.name for p in paths]
        entries = [(name, str(p.stat().st_size), _file_digest(p)) for name, p in zip(names, paths)]
    if not entries:
        raise FileNotFoundError(f"no data at {uri}")
    for entry in sorted(entries):
        digest.update("\0".join(entry).encode() + b"\n")
    return digest.hexdigest()[:16]


def upload_file(local_path: str, uri: str) -> None:
    """Upload one file to the ``gs://`` object ``uri``. The object appears whole or not at all
    (GCS makes an upload visible only once it is complete), so a reader never sees half a file."""
    bucket_name, name = split_gcs(uri)
    started = time.monotonic()
    _client().bucket(bucket_name).blob(name).upload_from_filename(str(local_path))
    _log_transfer("uploaded", f"{local_path} to {uri}", 1, Path(local_path).stat().st_size, started)


def download_file(uri: str, local_path: str) -> bool:
    """Download the ``gs://`` object ``uri`` to ``local_path``; False when there is no such object."""
    from google.api_core.exceptions import NotFound

    try:
        download(uri, local_path)
    except NotFound:
        Path(local_path).unlink(missing_ok=True)  # the client leaves an empty file behind
        return False
    return True


def delete_prefix(uri: str) -> int:
    """Delete every object under the ``gs://`` prefix ``uri`` (a "folder"); returns how many."""
    bucket_name, name = split_gcs(uri)
    if not name.strip("/"):
        raise ValueError(f"refusing to delete a whole bucket: {uri}")
    client = _client()
    blobs = list(client.list_blobs(bucket_name, prefix=_listing_prefix(name)))
    for blob in blobs:
        blob.delete()
    return len(blobs)
