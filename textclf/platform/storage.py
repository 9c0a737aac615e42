"""The one storage layer: every file or folder the pipeline reads or writes goes through here, on fsspec.

A location is a local path or a URI: ``gs://bucket/x`` (gcsfs), ``s3://bucket/x`` (s3fs),
``abfs://container/x`` (adlfs, when installed) or any other fsspec protocol. Every function takes
both, so a step written against this module runs unchanged on a laptop and in the cloud, and no
other module looks at a URI's scheme: callers ask :func:`is_remote` when they must know whether a
location outlives the machine (checkpoints, artifacts a TrainJob's pods read).

Credentials are each store's own chain: for ``gs://`` Application Default Credentials (Workload
Identity on GKE, the VM's service account on Vertex, ``gcloud auth application-default login`` on
a laptop); with ``STORAGE_EMULATOR_HOST`` set (the tests' ``gcp-storage-emulator``) requests go
there with anonymous credentials, as ``google-cloud-storage`` does. For ``s3://`` the AWS chain
(environment, profile, IRSA); ``AWS_ENDPOINT_URL_S3`` (or ``AWS_ENDPOINT_URL``) points it at an
S3-compatible store such as MinIO or the tests' moto server. Transient HTTP errors are retried by
the stores' clients (gcsfs: 6 tries with backoff; s3fs: botocore's retries).

Listings are never cached (another process may have written since), a folder's zero-byte
``folder/`` placeholders are not files, and what a folder holds beyond data (Spark's ``_SUCCESS``,
``_temporary/``) is the reader's to skip (``textclf.data.shards.is_marker``). Writes are atomic:
a reader sees the previous file or the whole new one, never half of one. Transfers log their
progress with rates every :data:`PROGRESS_EVERY_S` seconds and a summary at the end.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

logger = logging.getLogger(__name__)

GCS_PROTOCOLS = ("gs", "gcs")
S3_PROTOCOLS = ("s3", "s3a")
LOCAL_PROTOCOLS = ("file", "local")
PROGRESS_EVERY_S = 10.0
READ_BLOCK_BYTES = 8 << 20  # what a remote read fetches at a time: memory per open file stays about this
GLOB_CHARS = "*?["
# Checksums the stores keep in an object's metadata, so a version costs a listing, not a read.
CHECKSUM_KEYS = ("crc32c", "md5Hash", "ETag", "etag", "content_md5")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)(?:://|::)")


class UnsupportedURIError(ValueError):
    """No installed fsspec implementation reads this URI's protocol."""


# ---------------------------------------------------------------- locations


def protocol(uri: str) -> str:
    """The URI's protocol (``gs``, ``s3``...), or ``file`` for a local path. A one-letter scheme is a
    Windows drive, and ``://`` after a slash (``/tmp/gs://x``) is part of a local name."""
    match = _SCHEME.match(str(uri))
    return match.group(1).lower() if match and len(match.group(1)) > 1 else "file"


def is_remote(uri: str) -> bool:
    """True when ``uri`` names an object store or other remote location, not a path on this machine."""
    return protocol(uri) not in LOCAL_PROTOCOLS


def is_shared(uri: str) -> bool:
    """True when ``uri`` is remote and an installed store reads it: what other pods (a TrainJob's, Katib's
    trials) can read where this one wrote. KFP's ``minio://`` artifact URIs are remote but not read here."""
    if not is_remote(uri):
        return False
    try:
        _filesystem_class(uri)
    except UnsupportedURIError:
        return False
    return True


def is_gcs(uri: str) -> bool:
    """True for Cloud Storage: only for the platform rules that need it (Vertex pipeline roots are on
    GCS); everything else asks :func:`is_remote` or just reads and writes."""
    return protocol(uri) in GCS_PROTOCOLS


def join(uri: str, *names: str) -> str:
    """``uri`` with ``names`` appended as path components, with ``/`` (local paths too: POSIX)."""
    parts = [str(uri).rstrip("/")] if str(uri) else []
    return "/".join(parts + [name.strip("/") for name in names if name.strip("/")])


def name_of(uri: str) -> str:
    """The last component of ``uri`` (a file or folder name), ignoring a trailing ``/``."""
    return PurePosixPath(str(uri).rstrip("/")).name


def has_glob(path: str) -> bool:
    """True when ``path`` holds a wildcard (``*``, ``?`` or ``[``)."""
    return any(char in str(path) for char in GLOB_CHARS)


def glob_root(pattern: str) -> str:
    """The folder a glob searches below: its leading components without wildcards (``data`` for
    ``data/*/part-*.csv``, ``gs://b/export`` for ``gs://b/export/*.parquet``, ``""`` for ``*.csv``)."""
    fixed = []
    for part in str(pattern).split("/")[:-1]:
        if has_glob(part):
            break
        fixed.append(part)
    return "/".join(fixed)


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
        elif pattern[i] == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            parts.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(parts) + r"\Z")


# ---------------------------------------------------------------- file systems


def _options(kind: str) -> dict:
    """What each file system is built with: listings never cached; the GCS emulator when one is set."""
    if kind in LOCAL_PROTOCOLS:
        return {}
    options: dict = {"use_listings_cache": False}
    emulator = os.environ.get("STORAGE_EMULATOR_HOST", "")
    if kind in GCS_PROTOCOLS and emulator not in ("", "default"):
        # Named explicitly (gcsfs would read the variable too) so the instance cache keys on the host,
        # and anonymous, as google-cloud-storage is against an emulator: no credential lookup.
        options.update(token="anon", endpoint_url=emulator if "://" in emulator else f"http://{emulator}")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if kind in S3_PROTOCOLS and endpoint:  # botocore reads these too; named so the instance cache keys on them
        options["endpoint_url"] = endpoint
    return options


def _filesystem_class(uri: str):
    """The fsspec class for ``uri``'s protocol (imported, not built: no connection, no credentials yet).

    Raises:
        UnsupportedURIError: no fsspec implementation for its protocol, or its package is not installed.
    """
    import fsspec

    kind = protocol(uri)
    try:
        if kind in GCS_PROTOCOLS:
            # gcsfs's core class, not the "experimental" one its package exports by default: that one asks
            # the gRPC Storage Control API for each bucket's layout (zonal / hierarchical buckets, which
            # this project does not use) and stalls 60 s wherever that API is not reachable (emulators).
            from gcsfs.core import GCSFileSystem

            return GCSFileSystem
        return fsspec.get_filesystem_class(kind)
    except (ValueError, ImportError) as error:
        raise UnsupportedURIError(f"cannot read or write {uri}: {error}") from error


def filesystem(uri: str):
    """(the fsspec file system, the path within it) for ``uri``; instances are cached by fsspec.

    Raises:
        UnsupportedURIError: see :func:`_filesystem_class`.
    """
    fs = _filesystem_class(uri)(**_options(protocol(uri)))
    return fs, fs._strip_protocol(str(uri))


@dataclass(frozen=True)
class Entry:
    """One file a location names: its URI (in the form the caller wrote), path below the location and size."""

    uri: str
    relative: str
    size: int
    info: dict


def _is_file(info: dict) -> bool:
    # A folder placeholder ("folder/", made by consoles) is an object, but not a file.
    return info.get("type") != "directory" and not str(info.get("name", "")).endswith("/")


def _entries_below(fs, root_uri: str, root_path: str, maxdepth: int | None = None) -> list[Entry]:
    """The files below a folder, at most ``maxdepth`` levels down (None: all)."""
    root_path = (root_path or fs._strip_protocol(".")).rstrip("/")
    found = fs.find(root_path, maxdepth=maxdepth, detail=True)
    prefix = root_path + "/"
    entries = []
    for path, info in sorted(found.items()):
        if _is_file(info) and path.startswith(prefix):
            relative = path[len(prefix) :]
            entries.append(Entry(join(root_uri, relative), relative, int(info.get("size") or 0), info))
    return entries


def entries(uri: str) -> list[Entry]:
    """The files ``uri`` names, sorted: the file itself, every file below a folder (``relative`` is the
    path below it), or a glob's matches (``data/part-*.csv.gz``; ``**`` crosses folders; ``relative``
    below the glob's fixed part).

    Raises:
        FileNotFoundError: nothing matches (the message names ``uri``).
        UnsupportedURIError: see :func:`filesystem`.
    """
    fs, path = filesystem(uri)
    if has_glob(path):
        root_uri = glob_root(uri)
        pattern = str(uri)[len(root_uri) + 1 if root_uri else 0 :]
        # Without "**" a glob reaches as deep as its slashes: no need to walk (or list) further down.
        depth = None if "**" in pattern else pattern.count("/") + 1
        root_path, matcher = fs._strip_protocol(root_uri) if root_uri else "", glob_regex(pattern)
        found = [e for e in _entries_below(fs, root_uri, root_path, depth) if matcher.match(e.relative)]
        if not found:
            raise FileNotFoundError(f"no file matches {uri}")
        return found
    if not str(uri).endswith("/") and fs.isfile(path):
        info = fs.info(path)
        return [Entry(str(uri), name_of(uri), int(info.get("size") or 0), info)]
    found = _entries_below(fs, str(uri).rstrip("/"), path) if fs.isdir(path) else []
    if not found:
        raise FileNotFoundError(f"nothing at {uri}: no file, and no files below it")
    return found


def list_files(uri: str) -> list[str]:
    """The URIs of the files ``uri`` names (see :func:`entries`), sorted."""
    return [entry.uri for entry in entries(uri)]


def exists(uri: str) -> bool:
    """True when ``uri`` is a file, or a folder (prefix) with something in it."""
    fs, path = filesystem(uri)
    return fs.exists(path)


def is_dir(uri: str) -> bool:
    """True when ``uri`` is a folder (a prefix with objects below it, on an object store)."""
    fs, path = filesystem(uri)
    return fs.isdir(path)


def size(uri: str) -> int:
    """Bytes of the file, or of every file below the folder or matching the glob, at ``uri``.

    Raises:
        FileNotFoundError: nothing at ``uri``.
    """
    return sum(entry.size for entry in entries(uri))


# ---------------------------------------------------------------- reading


@contextlib.contextmanager
def open(uri: str, mode: str = "rb", **text_options) -> Iterator:  # noqa: A001 - the module's verb
    """A file object reading ``uri`` (``rb``, or ``r`` with ``encoding`` etc.): seekable, read in blocks
    (a remote file is fetched a few MB at a time, so memory does not grow with its size). Writes go
    through :func:`atomic_write`, which never leaves half a file.

    Raises:
        FileNotFoundError: no such file (the message names ``uri``).
        ValueError: a write mode.
    """
    if any(flag in mode for flag in "wax+"):
        raise ValueError(f"storage.open reads only (mode {mode!r}): write {uri} with atomic_write")
    fs, path = filesystem(uri)
    try:
        # Plain read-ahead of one block: gcsfs's default prefetches up to 256 MB in the background.
        handle = fs.open(path, mode, block_size=READ_BLOCK_BYTES, cache_type="readahead", **text_options)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"no such file: {uri}") from error
    with handle:
        yield handle


def read_bytes(uri: str) -> bytes:
    """The whole file at ``uri`` (small files: metadata, reports, configuration)."""
    with open(uri, "rb") as handle:
        return handle.read()


def read_text(uri: str, encoding: str = "utf-8") -> str:
    """The whole text file at ``uri``.

    Raises:
        FileNotFoundError: no such file (the message names ``uri``).
    """
    return read_bytes(uri).decode(encoding)


# ---------------------------------------------------------------- writing


@contextlib.contextmanager
def atomic_write(uri: str, mode: str = "wb", encoding: str | None = None) -> Iterator:
    """A file handle whose content appears at ``uri`` whole when the block ends, and not at all when it
    raises: a local file is written under a temporary name beside it and renamed; for an object store
    it is written to local disk and uploaded in one object, which the store shows only once complete.
    Local parent folders are created."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write writes new files (mode 'wb' or 'w'), not {mode!r}")
    remote = is_remote(uri)
    folder = None if remote else Path(uri).parent
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{name_of(uri)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(descriptor, mode, encoding=encoding if mode == "w" else None) as handle:
            yield handle
        if remote:
            _put(temporary, uri)
        else:
            os.replace(temporary, uri)
    finally:
        Path(temporary).unlink(missing_ok=True)


def write_bytes(uri: str, data: bytes) -> None:
    """Write ``data`` to ``uri`` atomically (see :func:`atomic_write`)."""
    with atomic_write(uri, "wb") as handle:
        handle.write(data)


def write_text(uri: str, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``uri`` atomically (see :func:`atomic_write`).

    Raises:
        ValueError: ``uri`` names a folder or a bucket, not a file.
    """
    if str(uri).endswith("/") or (is_remote(uri) and "/" not in filesystem(uri)[1].strip("/")):
        raise ValueError(f"cannot write text to a bucket or folder: {uri}")
    write_bytes(uri, text.encode(encoding))


# ---------------------------------------------------------------- transfers


class _Transfer:
    """Bytes moved so far by one download or upload of one or more files, logged with rates."""

    def __init__(self, verb: str, what: str, files: int, total: int):
        self.verb, self.what, self.files, self.total = verb, what, files, total
        self.done = 0
        self.started = self.logged = time.monotonic()

    def advance(self, size: int) -> None:
        self.done += size
        now = time.monotonic()
        if now - self.logged >= PROGRESS_EVERY_S:
            self.logged = now
            seconds = now - self.started
            logger.info(
                "%s %s: %.1f of %.1f MB (%.0f%%), %.1f MB/s",
                self.verb,
                self.what,
                self.done / 1e6,
                self.total / 1e6,
                100 * self.done / max(self.total, 1),
                self.done / 1e6 / seconds,
            )

    def finish(self) -> None:
        seconds = max(time.monotonic() - self.started, 1e-6)
        logger.info(
            "%s %s: %d files, %.1f MB in %.1f s (%.1f MB/s)",
            self.verb,
            self.what,
            self.files,
            self.done / 1e6,
            seconds,
            self.done / 1e6 / seconds,
        )


def _callback(transfer: _Transfer | None):
    """An fsspec callback that adds one file's progress to ``transfer`` (stores report it in pieces)."""
    from fsspec.callbacks import Callback

    class FileProgress(Callback):
        reported = 0

        def call(self, *args, **kwargs):
            if transfer is not None and self.value > self.reported:
                transfer.advance(self.value - self.reported)
                self.reported = self.value

    return FileProgress()


def _get(entry: Entry, local: Path, transfer: _Transfer | None = None) -> None:
    """Download one file to ``local`` under a temporary name first: a failed download leaves nothing."""
    fs, path = filesystem(entry.uri)
    local.parent.mkdir(parents=True, exist_ok=True)
    temporary = local.with_name(f".{local.name}.part")
    try:
        callback = _callback(transfer)
        fs.get_file(path, str(temporary), callback=callback)
        if transfer is not None and entry.size > callback.reported:  # stores that report no progress
            transfer.advance(entry.size - callback.reported)
        os.replace(temporary, local)
    finally:
        temporary.unlink(missing_ok=True)


def _put(local: str | Path, uri: str, transfer: _Transfer | None = None) -> None:
    """Upload one local file to ``uri`` (an object store shows it once complete; a local target is
    copied under a temporary name and renamed)."""
    if not is_remote(uri):
        with builtins.open(local, "rb") as source, atomic_write(uri) as target:
            shutil.copyfileobj(source, target, 1 << 20)
        if transfer is not None:
            transfer.advance(Path(local).stat().st_size)
        return
    fs, path = filesystem(uri)
    callback = _callback(transfer)
    fs.put_file(str(local), path, callback=callback)
    if transfer is not None and Path(local).stat().st_size > callback.reported:
        transfer.advance(Path(local).stat().st_size - callback.reported)


def download(uri: str, local_path: str) -> str:
    """Download the file ``uri`` to ``local_path`` (parent folders are created); returns ``local_path``.

    Raises:
        FileNotFoundError: no such file (the message names ``uri``); nothing is left at ``local_path``.
    """
    fs, path = filesystem(uri)
    try:
        info = fs.info(path)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"no such file: {uri}") from error
    if not _is_file(info):
        raise FileNotFoundError(f"not a file, but a folder: {uri}")
    transfer = _Transfer("downloaded", uri, 1, int(info.get("size") or 0))
    _get(Entry(uri, name_of(uri), transfer.total, info), Path(local_path), transfer)
    transfer.finish()
    return str(local_path)


def localize(uri: str, dest_dir: str, skip_suffixes: tuple[str, ...] = ()) -> str:
    """Make ``uri`` available on local disk and return its local path.

    A remote file is downloaded to ``dest_dir/<its file name>``; a remote folder (such as a saved
    model) to ``dest_dir/<its last component>/``, keeping the layout below it. A local path is
    returned unchanged.

    Args:
        uri: A local path, or a remote file or folder (``gs://bucket/model``, ``s3://bucket/data.csv``).
        dest_dir: Folder to download into; created when missing.
        skip_suffixes: Files of a folder whose names end so are left behind (a model's weights, where
            only its config and tokenizer are read).

    Raises:
        FileNotFoundError: nothing at ``uri``.
        ValueError: an object's name would place it outside the target folder (``a/../../x``).
    """
    if not is_remote(uri):
        return uri
    found = entries(uri)
    if len(found) == 1 and found[0].uri == str(uri):
        return download(uri, str(Path(dest_dir) / name_of(uri)))
    found = [entry for entry in found if not entry.relative.endswith(skip_suffixes)]
    target = (Path(dest_dir) / (name_of(uri) or "root")).resolve()
    transfer = _Transfer("downloaded", uri, len(found), sum(entry.size for entry in found))
    for entry in found:
        local = (target / entry.relative).resolve()
        # An object named "a/../../x" must not write outside the target folder.
        if not local.is_relative_to(target):
            raise ValueError(f"object {entry.uri} would land outside {target}")
        _get(entry, local, transfer)
    transfer.finish()
    return str(target)


def upload(local_path: str, uri: str) -> None:
    """Upload a local file to the file ``uri``, or every file below a local folder to the folder ``uri``
    (keeping the layout). Each file appears whole or not at all.

    Raises:
        FileNotFoundError: nothing at ``local_path``.
        ValueError: ``local_path`` is a folder with no file in it.
    """
    root = Path(local_path)
    if root.is_file():
        files, targets = [root], [str(uri)]
    elif root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file())
        targets = [join(uri, p.relative_to(root).as_posix()) for p in files]
        if not files:
            raise ValueError(f"no file to upload in {local_path}")
    else:
        raise FileNotFoundError(f"nothing to upload at {local_path}")
    transfer = _Transfer("uploaded", f"{local_path} to {uri}", len(files), sum(p.stat().st_size for p in files))
    for path, target in zip(files, targets):
        _put(path, target, transfer)
    transfer.finish()


def delete(uri: str) -> int:
    """Delete the file or everything below the folder at ``uri``; returns how many files went.

    Raises:
        ValueError: ``uri`` is a whole bucket (or a top-level local folder).
    """
    fs, path = filesystem(uri)
    if len(PurePosixPath(path.strip("/")).parts) < 2:
        raise ValueError(f"refusing to delete a whole bucket or top-level folder: {uri}")
    try:
        count = len(entries(uri))
    except FileNotFoundError:
        return 0
    fs.rm(path.rstrip("/"), recursive=True)
    return count


# ---------------------------------------------------------------- versions


def _file_digest(uri: str) -> str:
    with open(uri, "rb") as handle:  # read in blocks by hashlib: a shard may be gigabytes
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _checksum(entry: Entry) -> str:
    """The store's own checksum of the file when it keeps one (GCS's CRC32C, S3's ETag), else its content's."""
    stored = next((str(entry.info[key]) for key in CHECKSUM_KEYS if entry.info.get(key)), None)
    return stored or _file_digest(entry.uri)


def content_version(uri: str) -> str:
    """A short digest that changes whenever the data at ``uri`` (a file, folder or glob) changes.

    On an object store it comes from object metadata (names, sizes, checksums), so it costs one
    listing however large the data; local files are hashed. A step that outputs it, with caching off,
    lets the steps after it be cache hits exactly when the source is unchanged.

    Raises:
        FileNotFoundError: nothing at ``uri``.
    """
    digest = hashlib.sha256()
    for entry in entries(uri):
        digest.update("\0".join((entry.relative, str(entry.size), _checksum(entry))).encode() + b"\n")
    return digest.hexdigest()[:16]
