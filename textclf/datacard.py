"""The data card: one Markdown file describing an ingested dataset, plots inlined as base64 PNG.

Inline images keep the card a single file, so the KFP UI renders it from the Markdown artifact
alone. Sections: overview, classes per split (table + bar chart), text length per class (table +
histogram), duplicates (within the data and across splits, i.e. leakage), bad rows, warnings.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display in pipeline pods or CI
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from textclf.report import figure_markdown, markdown_table  # noqa: E402

SPLITS = ("train", "validation", "test")
BAD_ROWS_LISTED = 50  # the card lists the first rows; all of them are counted


def _class_section(frame: pd.DataFrame, labels: list[str]) -> list[str]:
    counts = pd.crosstab(frame["label"], frame["split"]).reindex(
        index=range(len(labels)), columns=list(SPLITS), fill_value=0)
    total = len(frame)
    rows = [[i, labels[i], *counts.loc[i].tolist(), counts.loc[i].sum(), f"{counts.loc[i].sum() / total:.1%}"]
            for i in counts.index]
    rows.append(["", "**total**", *counts.sum().tolist(), total, "100%"])
    figure, axis = plt.subplots(figsize=(6, 3))
    counts.rename(index=dict(enumerate(labels))).T.plot.bar(ax=axis, rot=0)
    axis.set_ylabel("rows")
    axis.set_title("Rows per class and split")
    return ["## Classes", "", markdown_table(["id", "label", *SPLITS, "total", "share"], rows), "",
            figure_markdown(figure, "rows per class and split"), ""]


def _length_section(frame: pd.DataFrame, labels: list[str]) -> list[str]:
    words = frame["text"].str.split().str.len()
    chars = frame["text"].str.len()
    rows = []
    figure, axis = plt.subplots(figsize=(6, 3))
    upper = max(int(words.quantile(0.99)), 1)
    for label_id, name in enumerate(labels):
        mask = frame["label"] == label_id
        if not mask.any():
            continue
        w = words[mask]
        rows.append([name, f"{w.mean():.1f}", int(w.median()), int(w.quantile(0.95)), int(w.max()),
                     f"{chars[mask].mean():.0f}"])
        axis.hist(w.clip(upper=upper), bins=40, range=(0, upper), alpha=0.5, label=name)
    axis.set_xlabel(f"words per text (clipped at the 99th percentile, {upper})")
    axis.set_ylabel("rows")
    axis.set_title("Text length per class")
    axis.legend()
    return ["## Text length", "",
            markdown_table(["label", "mean words", "median", "p95", "max", "mean chars"], rows), "",
            figure_markdown(figure, "text length histogram per class"), ""]


def render_data_card(frame: pd.DataFrame, metadata: dict, bad_rows: list[dict], warnings: list[str]) -> str:
    """The data card as Markdown text."""
    labels = metadata["labels"]
    duplicates = metadata["duplicates"]
    lines = [
        "# Data card", "",
        f"- Source: `{metadata['source']}`",
        f"- Fingerprint (sha256): `{metadata['fingerprint']}`",
        f"- Rows: {metadata['num_rows']} ("
        + ", ".join(f"{split} {metadata['rows'][split]}" for split in SPLITS) + ")",
        f"- Classes: {len(labels)} ({', '.join(labels)})",
        f"- Bad rows set aside: {len(bad_rows)}", "",
    ]
    lines += _class_section(frame, labels)
    lines += _length_section(frame, labels)
    lines += [
        "## Duplicates", "",
        "Texts compared after lower-casing and collapsing whitespace.", "",
        f"- Duplicate rows (text seen in an earlier row): {duplicates['duplicate_rows']}",
        f"- Texts in more than one split (leakage): {duplicates['cross_split_texts']}",
        f"- Texts with more than one label: {duplicates['conflicting_label_texts']}", "",
        "## Bad rows", "",
    ]
    if bad_rows:
        lines += [markdown_table(["reason", "rows"], sorted(metadata["bad_rows_by_reason"].items())), "",
                  f"First {min(len(bad_rows), BAD_ROWS_LISTED)} of {len(bad_rows)} "
                  "(row = record number in the source, 1 = first data row):", "",
                  markdown_table(["row", "reason", "value"],
                         [[b["row"], b["reason"], f"`{b['value']}`"] for b in bad_rows[:BAD_ROWS_LISTED]]), ""]
    else:
        lines += ["None.", ""]
    if warnings:
        lines += ["## Warnings", "", *[f"- {w}" for w in warnings], ""]
    return "\n".join(lines)


def write_data_card(path: str, frame: pd.DataFrame, metadata: dict, bad_rows: list[dict],
                    warnings: list[str]) -> None:
    """Write the data card for the dataset ``frame`` described by ``metadata`` to ``path``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(render_data_card(frame, metadata, bad_rows, warnings), encoding="utf-8")
