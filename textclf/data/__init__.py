"""The data path in bounded memory: sources read in chunks, rows accounted by hashes, shards on disk.

``sources`` (shards and chunked readers), ``labels`` (the label vocabulary), ``splits`` (hash-based
split and sample), ``accounting`` (fingerprint, duplicates, lengths, bad rows), ``shards`` (the
ingested Parquet shards) and ``tokenized`` (the tokenized Arrow splits). ``textclf.ingest`` and
``textclf.tokenize`` put them together.
"""
