"""Markdown reports with inline plots: one self-contained file that the KFP UI renders."""

import base64
import io


def figure_markdown(fig, alt: str) -> str:
    """A Matplotlib figure as an inline PNG image in Markdown (then closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return f"![{alt}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})"


def new_figure(width: float = 5, height: float = 4):
    """A figure from the non-interactive backend (components run headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table; ``|`` inside cells is escaped so user text cannot break it."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)
