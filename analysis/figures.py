"""Matplotlib for the analyses' PNGs: the Agg backend (files only, no display needed) and one way to write a figure."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["plt", "save"]


def save(fig, path: Path, dpi: int) -> Path:
    """Lay the figure out, write it as PNG at `dpi`, and free it (a report draws dozens). zlib level 1: a verdict's
    22 plots encode in a fifth of the time for files 2 % larger."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, pil_kwargs={"compress_level": 1})
    plt.close(fig)
    return path
