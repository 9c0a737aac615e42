"""Agreement of each serving backend with fp32 PyTorch on a labelled test set (issue 22: the full IMDB test split).

    make bench-agreement   # or:
    python bench/agreement.py --model_dir OPTIMIZED_MODEL_DIR --data ../shared/data/imdb/test.csv.gz

The optimize step's own measurement (``textclf.optimize.measure``: the inference engine, backends
taking turns on each batch of texts) on another split: label flips against fp32, the largest and
mean probability change, accuracy against the true labels and texts/s on this machine, per backend
the model directory has built. Prints a Markdown table (``--report`` also writes it).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import machine_line  # noqa: E402

BATCH_ROWS = 512


def csv_batches(path: str, limit: int):
    """(texts, labels) of a CSV with ``text`` and int ``label`` columns, in batches, a seeded shuffle
    (IMDB's files are sorted by label) cut to ``limit`` rows (0: all)."""
    import pandas as pd

    frame = pd.read_csv(path, usecols=["text", "label"]).sample(frac=1.0, random_state=0)
    frame = frame.head(limit) if limit else frame
    for start in range(0, len(frame), BATCH_ROWS):
        part = frame.iloc[start : start + BATCH_ROWS]
        yield part["text"].astype(str).tolist(), part["label"].astype(int).tolist()


def table(results: dict[str, dict]) -> str:
    lines = [
        "| backend | texts | label flips vs fp32 | flip rate % | max probability change | mean change "
        "| accuracy % | texts/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['texts']} | {r['label_flips']} | {100 * r['flip_rate']:.2f} | "
            f"{r['max_probability_change']:.4f} | {r['mean_probability_change']:.5f} | "
            f"{100 * r['accuracy']:.2f} | {r['texts_per_second']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="an optimize step's Model directory (with serving.json)")
    parser.add_argument("--data", required=True, help="csv(.gz) with text and label (int) columns")
    parser.add_argument("--texts", type=int, default=0, help="score at most this many texts (0: all)")
    parser.add_argument("--report", type=Path, help="also write the Markdown table here")
    args = parser.parse_args()

    import logging

    from textclf.optimize import measure

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    serving = json.loads((Path(args.model_dir) / "serving.json").read_text())
    names = [name for name, entry in serving["backends"].items() if "flip_rate" in entry]
    header = (
        f"Machine: {machine_line(libraries=False)}, {date.today().isoformat()}; model {args.model_dir} "
        f"(serving.json: {serving['backend']}; validation flips "
        + ", ".join(f"{n} {serving['backends'][n]['label_flips']}/{serving['backends'][n]['texts']}" for n in names)
        + f"); data {args.data}"
    )

    def partial(results: dict[str, dict]) -> None:  # a run stopped early still leaves its table
        if args.report:
            args.report.write_text(f"{header}; **partial**, the first texts of the shuffled set.\n\n{table(results)}\n")

    results = measure(Path(args.model_dir), names, csv_batches(args.data, args.texts), partial)
    report = f"{header}.\n\n{table(results)}\n"
    print("\n" + report)
    if args.report:
        args.report.write_text(report)


if __name__ == "__main__":
    main()
