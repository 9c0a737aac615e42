"""The in-process limit of one backend: the server's own inference engine (``textclf.inference``) on
batches of ``--batch_size`` texts sorted by length, no HTTP, no batcher. Prints one JSON line.

Run by bench/serve.py in a fresh process per backend, with the settings the server gets, so that
each served row has its ceiling measured in the same run:

    python bench/inprocess.py --model_dir DIR --texts texts.json -- --backend torch-bf16
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def measure(engine, texts: list[str], batch_size: int) -> dict:
    """Reviews/s over all ``texts`` in length-sorted batches, after one warm-up batch."""
    lengths = [len(ids) for ids in engine.encoder.encode(texts)]
    ordered = [text for _, text in sorted(zip(lengths, texts), key=lambda pair: pair[0])]
    batches = [ordered[start : start + batch_size] for start in range(0, len(ordered), batch_size)]
    engine.classify(batches[-1])  # warm-up on the longest batch: allocations, kernel choice
    started = time.perf_counter()
    for batch in batches:
        engine.classify(batch)
    seconds = time.perf_counter() - started
    return {
        "texts": len(texts),
        "batch_size": batch_size,
        "seconds": seconds,
        "reviews_per_s": len(texts) / seconds,
        "mean_tokens": sum(lengths) / len(lengths),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--texts", type=Path, required=True, help="a JSON list of texts")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("settings", nargs=argparse.REMAINDER, help="after --: python -m serving inference flags")
    args = parser.parse_args(argv)

    from textclf.inference import InferenceSettings, load_engine
    from textclf.settings import SettingsParser

    flags = args.settings[1:] if args.settings[:1] == ["--"] else args.settings
    (settings,) = SettingsParser([InferenceSettings]).parse_args_into_dataclasses(flags)
    engine = load_engine(args.model_dir, settings)
    result = measure(engine, json.loads(args.texts.read_text()), args.batch_size)
    result["backend"] = engine.name
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
