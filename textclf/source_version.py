"""Source-version step: a digest of the data behind ``source``, so caching follows the data.

kfp caches a step on its inputs. ``ingest`` reads ``source`` by name, so a nightly retrain on the
same ``gs://`` URI would be a cache hit even after the files changed. This step runs every time
(caching off), costs one object listing, and its output is an input of ``ingest``: ingest and
tokenize are cache hits exactly when the data is unchanged.
"""

from dataclasses import dataclass

from textclf.settings import source_setting

GENERATED_PREFIXES = ("sample:", "hf://")


@dataclass
class SourceSettings:
    source: str = source_setting()


def source_version(source: str) -> str:
    """A short digest of the data at ``source``.

    Generated samples are a function of their name and seed, and hub datasets are versioned by the
    hub, so for those the source string itself is the version.
    """
    if source.startswith(GENERATED_PREFIXES):
        return source
    from textclf.platform.storage import content_version

    return content_version(source)
