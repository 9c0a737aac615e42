"""The data card: one Markdown file describing an ingested dataset, plots inlined as base64 PNG.

Inline images keep the card a single file, so the KFP UI renders it from the Markdown artifact
alone. Sections: overview, classes per split (table + bar chart), text length per class (table +
histogram), duplicates (within the data and across splits, i.e. leakage), examples, bad rows,
warnings. Counts, lengths and duplicates are computed on every row from the per-row numbers ingest
keeps (``textclf.data.accounting.RowStats``), never from the texts themselves; the examples are a
seeded sample.
"""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display in pipeline pods or CI
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from textclf.data.accounting import RowStats
from textclf.data.splits import SPLITS
from textclf.report import figure_markdown, markdown_table

BAD_ROWS_LISTED = 50  # the card lists the first rows; all of them are counted
LEGEND_MAX_CLASSES = 10  # above this, the plots draw one bar per class instead of a legend entry per class


def _class_section(stats: RowStats, labels: list[str]) -> list[str]:
    counts = pd.DataFrame(stats.counts(len(labels)), columns=list(SPLITS))
    total = int(counts.values.sum())
    rows = [
        [i, labels[i], *counts.loc[i].tolist(), counts.loc[i].sum(), f"{counts.loc[i].sum() / total:.1%}"]
        for i in counts.index
    ]
    rows.append(["", "**total**", *counts.sum().tolist(), total, "100%"])
    named = counts.rename(index=dict(enumerate(labels)))
    if len(labels) <= LEGEND_MAX_CLASSES:
        figure, axis = plt.subplots(figsize=(6, 3))
        named.T.plot.bar(ax=axis, rot=0)
        axis.set_ylabel("rows")
    else:  # many classes: one horizontal bar per class, the splits stacked; the figure grows up to 14 inches
        figure, axis = plt.subplots(figsize=(7, min(2 + 0.14 * len(labels), 14)))
        named.iloc[::-1].plot.barh(ax=axis, stacked=True, width=0.8, fontsize=max(4, min(9, 400 / len(labels))))
        axis.set_xlabel("rows")
    axis.set_title("Rows per class and split")
    return [
        "## Classes",
        "",
        markdown_table(["id", "label", *SPLITS, "total", "share"], rows),
        "",
        figure_markdown(figure, "rows per class and split"),
        "",
    ]


def _length_section(stats: RowStats, labels: list[str]) -> list[str]:
    words, chars = stats.words, stats.chars
    rows = []
    figure, axis = plt.subplots(figsize=(6, 3))
    upper = max(int(np.quantile(words, 0.99)), 1)
    per_class = len(labels) <= LEGEND_MAX_CLASSES  # beyond, one histogram of all rows: the table has the classes
    for label_id, name in enumerate(labels):
        mask = stats.labels == label_id
        if not mask.any():
            continue
        w = words[mask]
        rows.append(
            [
                name,
                f"{w.mean():.1f}",
                int(np.median(w)),
                int(np.quantile(w, 0.95)),
                int(w.max()),
                f"{chars[mask].mean():.0f}",
            ]
        )
        if per_class:
            axis.hist(np.clip(w, None, upper), bins=40, range=(0, upper), alpha=0.5, label=name)
    if not per_class:
        axis.hist(np.clip(words, None, upper), bins=40, range=(0, upper), label=f"all {len(labels)} classes")
    axis.set_xlabel(f"words per text (clipped at the 99th percentile, {upper})")
    axis.set_ylabel("rows")
    axis.set_title("Text length per class" if per_class else "Text length (all classes; per class in the table)")
    axis.legend()
    return [
        "## Text length",
        "",
        "Every row counted.",
        "",
        markdown_table(["label", "mean words", "median", "p95", "max", "mean chars"], rows),
        "",
        figure_markdown(figure, "text length histogram per class"),
        "",
    ]


def _examples_section(stats: RowStats, labels: list[str]) -> list[str]:
    rows = [
        [labels[label], html.escape(" ".join(text.split()), quote=False)]
        for label in sorted(stats.examples)
        for text in stats.examples[label]
    ]
    return [
        "## Examples",
        "",
        "A seeded sample: per class, the rows with the smallest sample hash (the first 300 characters).",
        "",
        markdown_table(["label", "text"], rows),
        "",
    ]


def _bad_rows_section(metadata: dict, bad_rows: list[dict]) -> list[str]:
    if not bad_rows:
        return ["None.", ""]
    listed = bad_rows[:BAD_ROWS_LISTED]
    with_file = any("file" in b for b in listed)
    header = ["file"] * with_file + ["row", "reason", "value"]
    table = [[b.get("file", "")] * with_file + [b["row"], b["reason"], f"`{b['value']}`"] for b in listed]
    return [
        markdown_table(["reason", "rows"], sorted(metadata["bad_rows_by_reason"].items())),
        "",
        f"First {len(listed)} of {metadata['bad_rows']} (row = record number in its file, 1 = first data row):",
        "",
        markdown_table(header, table),
        "",
    ]


def split_origin_line(metadata: dict) -> str:
    """Where the splits came from, in words."""
    origin = metadata.get("split_origin", "hash")
    if origin == "hash":
        return "made here by a seeded hash of each normalised text"
    if origin == "column":
        said = "the source's split column"
    else:
        files = metadata.get("split_files", {})
        said = "the file names (" + ", ".join(f"`{name}`: {split}" for name, split in list(files.items())[:10])
        said += f", ... {len(files)} files)" if len(files) > 10 else ")"
    carved = metadata.get("carved_splits") or []
    return said + (f"; {' and '.join(carved)} carved from its train rows by a seeded hash" if carved else "")


def render_data_card(stats: RowStats, metadata: dict, bad_rows: list[dict], warnings: list[str]) -> str:
    """The data card as Markdown text."""
    labels = metadata["labels"]
    duplicates = metadata["duplicates"]
    lines = [
        "# Data card",
        "",
        f"- Source: `{metadata['source']}` ({metadata.get('source_files', 1)} file(s))",
        f"- Fingerprint (sha256): `{metadata['fingerprint']}`",
        f"- Rows: {metadata['num_rows']} (" + ", ".join(f"{split} {metadata['rows'][split]}" for split in SPLITS) + ")",
        f"- Classes: {len(labels)} ({', '.join(labels)})",
        f"- Bad rows set aside: {metadata['bad_rows']}",
        f"- Splits: {split_origin_line(metadata)}",
    ]
    if metadata.get("sample_rate", 1) < 1:
        lines.append(f"- Subsample: each usable row kept with probability {metadata['sample_rate']:.4f} (seeded hash)")
    lines.append("")
    lines += _class_section(stats, labels)
    lines += _length_section(stats, labels)
    lines += [
        "## Duplicates",
        "",
        "Texts compared after lower-casing and collapsing whitespace, over every row.",
        "",
        f"- Duplicate rows (text seen in an earlier row): {duplicates['duplicate_rows']}",
        f"- Texts in more than one split (leakage): {duplicates['cross_split_texts']}",
        f"- Texts with more than one label: {duplicates['conflicting_label_texts']}",
        "",
    ]
    lines += _examples_section(stats, labels)
    lines += ["## Bad rows", ""] + _bad_rows_section(metadata, bad_rows)
    if warnings:
        lines += ["## Warnings", "", *[f"- {w}" for w in warnings], ""]
    return "\n".join(lines)


def write_data_card(path: str, stats: RowStats, metadata: dict, bad_rows: list[dict], warnings: list[str]) -> None:
    """Write the data card for the rows described by ``stats`` and ``metadata`` to ``path``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(render_data_card(stats, metadata, bad_rows, warnings), encoding="utf-8")
