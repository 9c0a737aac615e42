"""Source-version step: a digest of the data behind ``source``, run on every pipeline run, so that
ingest and tokenize are cache hits exactly when the data is unchanged (``textclf.source_version``)."""

from components.step import step
from textclf.source_version import SourceSettings


@step(SourceSettings)
def source_version_op(source: str) -> str:
    """Digest of the data behind the source (object names, sizes and checksums)."""
    from textclf.source_version import source_version

    return source_version(source)
