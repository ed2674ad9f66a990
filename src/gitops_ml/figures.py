"""Static PNG figures of the evaluation, drawn from the same records as the DVC plot JSON.

The PNGs are DVC outputs, so they must be byte-identical for identical inputs: figures are drawn
on a bare Agg canvas (no pyplot, no global backend), with matplotlib's default style whatever the
user's matplotlibrc says, and saved without the "Software" metadata that names the version.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Records = list[dict[str, Any]]

SIZE = (6.0, 4.5)
DPI = 100
#: Most features shown in the importance chart.
MAX_FEATURES = 20


def _roc(records: Records, metrics: Mapping[str, Any]) -> Figure:
    fig, ax = _figure()
    ax.plot([r["fpr"] for r in records], [r["tpr"] for r in records], color="C0", lw=2)
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
    auc = metrics.get("roc_auc")
    ax.set_title("ROC curve" + (f" (AUC {auc:.3f})" if auc is not None else ""))
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    return fig


def _precision_recall(records: Records, metrics: Mapping[str, Any]) -> Figure:
    fig, ax = _figure()
    ax.plot([r["recall"] for r in records], [r["precision"] for r in records], color="C0", lw=2)
    ap = metrics.get("average_precision")
    ax.set_title("Precision-recall" + (f" (AP {ap:.3f})" if ap is not None else ""))
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    return fig


def _confusion(records: Records, metrics: Mapping[str, Any]) -> Figure:
    import numpy as np

    labels = sorted({str(r["actual"]) for r in records} | {str(r["predicted"]) for r in records})
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=int)
    for r in records:
        counts[index[str(r["actual"])], index[str(r["predicted"])]] += 1
    fig, ax = _figure()
    ax.imshow(counts, cmap="Blues")
    for i in range(len(labels)):
        for j in range(len(labels)):
            dark = counts[i, j] > counts.max() / 2
            ax.text(
                j,
                i,
                str(counts[i, j]),
                ha="center",
                va="center",
                color="white" if dark else "black",
            )
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("Actual")
    ax.set_title(f"Confusion matrix (n={len(records)})")
    return fig


def _calibration(records: Records, metrics: Mapping[str, Any]) -> Figure:
    fig, ax = _figure()
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfectly calibrated")
    ax.plot(
        [r["mean_predicted"] for r in records],
        [r["fraction_positive"] for r in records],
        marker="o",
        color="C0",
        label="model",
    )
    brier = metrics.get("brier")
    ax.set_title("Calibration" + (f" (Brier {brier:.3f})" if brier is not None else ""))
    ax.set_xlabel("Mean predicted probability")
    ax.set_ylabel("Fraction of positives")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    return fig


def _importance(records: Records, metrics: Mapping[str, Any]) -> Figure:
    top = records[:MAX_FEATURES][::-1]  # most important at the top
    fig, ax = _figure(height=max(SIZE[1], 0.3 * len(top) + 1.2))
    ax.barh(
        [r["feature"] for r in top],
        [r["importance"] or 0.0 for r in top],
        xerr=[r["std"] or 0.0 for r in top],
        color="C0",
    )
    ax.axvline(0, color="grey", lw=1)
    ax.set_title("Permutation importance")
    ax.set_xlabel("Drop in score when the feature is shuffled")
    return fig


def _predicted_vs_actual(records: Records, metrics: Mapping[str, Any]) -> Figure:
    fig, ax = _figure()
    actual = [r["actual"] for r in records]
    predicted = [r["predicted"] for r in records]
    ax.scatter(actual, predicted, s=8, alpha=0.5, color="C0")
    lo, hi = min(actual + predicted), max(actual + predicted)
    ax.plot([lo, hi], [lo, hi], color="grey", ls="--", lw=1)
    r2 = metrics.get("r2")
    ax.set_title("Predicted vs actual" + (f" (R² {r2:.3f})" if r2 is not None else ""))
    ax.set_xlabel("Actual")
    ax.set_ylabel("Predicted")
    return fig


#: plot data name -> (figure file, renderer)
FIGURES: dict[str, tuple[str, Callable[[Records, Mapping[str, Any]], Figure]]] = {
    "roc": ("roc.png", _roc),
    "precision_recall": ("precision_recall.png", _precision_recall),
    "confusion": ("confusion_matrix.png", _confusion),
    "calibration": ("calibration.png", _calibration),
    "importance": ("importance.png", _importance),
    "predicted_vs_actual": ("predicted_vs_actual.png", _predicted_vs_actual),
}


def _figure(height: float = SIZE[1]) -> tuple[Figure, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(SIZE[0], height), dpi=DPI, layout="tight")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def figure_files(
    plots: Mapping[str, Records], metrics: Mapping[str, Any] | None = None
) -> dict[str, bytes]:
    """The PNG of every plot with a renderer and at least one record, by file name.

    `metrics` (the headline metrics) only adds the AUC, AP, Brier or R² to the titles.
    """
    import matplotlib.style

    files = {}
    with matplotlib.style.context("default"):
        for name, records in plots.items():
            if name not in FIGURES or not records:
                continue
            filename, render = FIGURES[name]
            fig = render(records, metrics or {})
            png = io.BytesIO()
            fig.savefig(png, format="png", dpi=DPI, metadata={"Software": None})
            files[filename] = png.getvalue()
    return files


def write_figures(files: Mapping[str, bytes], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write `figure_files`' PNGs into `out_dir`; return the files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, data in files.items():
        path = out / filename
        path.write_bytes(data)
        written.append(path)
    return written
