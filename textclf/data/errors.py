"""The named errors of ingest: each message says which file, row or column, and what to do."""


class IngestError(ValueError):
    """The source cannot become a dataset; the message names the problem."""


class SourceError(IngestError):
    """The source cannot be read: unknown scheme or format, missing file, unreachable hub."""


class SourceEncodingError(SourceError):
    """A file's bytes are not valid in the expected text encoding (the message gives file, offset and line)."""


class EmptySourceError(SourceError):
    """A file has no bytes (or no rows at all), or the source has no file."""


class MissingColumnError(IngestError):
    """A column named in the settings is not in the source."""


class LabelColumnError(IngestError):
    """The label column has far more distinct values than a classification task can have."""


class SingleClassError(IngestError):
    """Fewer than two classes are left after the bad rows are set aside."""


class EmptySplitError(IngestError):
    """A split (train, validation or test) has no rows."""


class SplitNameError(IngestError):
    """File names name splits for some files of a source and not for others, or two splits for one file."""
