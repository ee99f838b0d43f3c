"""Figures: the classic picture of σ and σ' (``fastsig plot``), and the
throughput of ``fastsig bench --plot``.

matplotlib is optional (the ``plot`` extra) and imported only when a figure
is drawn. The figures are drawn on a bare :class:`matplotlib.figure.Figure`
with the Agg canvas: no pyplot, no GUI backend, no global state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .bench import Row

SIGMOID_COLOR = "#307EC7"
DERIVATIVE_COLOR = "#9621E2"
#: One colour per implementation in the throughput plot; fastsig's is σ's blue.
IMPL_COLORS = {
    "fastsig": SIGMOID_COLOR,
    "baseline": "#7F7F7F",
    "scipy": "#E8A33D",
    "numexpr": "#3AA876",
    "torch": "#D9534F",
}
IMPL_LABELS = {
    "fastsig": "fastsig",
    "baseline": "NumPy baseline",
    "scipy": "scipy.special.expit",
    "numexpr": "numexpr",
    "torch": "torch",
}


def require_matplotlib():
    """The matplotlib.figure module; ImportError naming the ``plot`` extra if missing."""
    try:
        import matplotlib.figure
    except ImportError as error:
        raise ImportError(
            "fastsig's plots need matplotlib: pip install 'fastsig[plot]' (or pip install matplotlib)"
        ) from error
    return matplotlib.figure


def _save(fig, path: str, dpi: int) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # the PNG canvas, whatever backend pyplot uses
    fig.savefig(path, dpi=dpi)


def plot_sigmoid(path: str, *, dpi: int = 100) -> None:
    """The classic figure of σ and σ' on x in [-6, 6] (steps of 0.01), saved to ``path``.

    9×5 inches; the axes cross at the origin (the left spine is centred, the
    top and right ones hidden); σ in #307EC7 and σ' in #9621E2, line width
    3; the legend upper right, without a frame.
    """
    figure = require_matplotlib()
    from . import _api

    x = np.linspace(-6.0, 6.0, 1201)  # -6, -5.99, ..., 6
    fig = figure.Figure(figsize=(9, 5))
    ax = fig.add_subplot(1, 1, 1)
    ax.spines["left"].set_position("zero")  # x = 0: the centre of [-6, 6]
    ax.spines["bottom"].set_position("zero")  # y = 0: the axes cross at the origin
    ax.spines["right"].set_color("none")
    ax.spines["top"].set_color("none")
    ax.xaxis.set_ticks_position("bottom")
    ax.yaxis.set_ticks_position("left")
    ax.plot(x, _api.sigmoid(x), color=SIGMOID_COLOR, linewidth=3, label=r"$\sigma(x)$")
    ax.plot(x, _api.sigmoid_derivative(x), color=DERIVATIVE_COLOR, linewidth=3, label=r"$\sigma'(x)$")
    ax.set_xlim(-6, 6)
    ax.set_ylim(-0.05, 1.2)  # room above σ for the legend
    ax.set_yticks([0.5, 1.0])  # a 0.25 label would sit on σ'(x) near its peak
    ax.legend(loc="upper right", frameon=False)
    _save(fig, path, dpi)


def plot_throughput(rows: Sequence["Row"], path: str, *, dpi: int = 100) -> None:
    """Throughput (elements per second) against size, log-log, one panel per
    operation (rows) and dtype (columns); the dashed line is np.copyto of
    the same array: the memory-bandwidth limit."""
    figure = require_matplotlib()
    from .bench import COPY, size_label

    if not rows:
        raise ValueError("no benchmark rows to plot")
    ops = list(dict.fromkeys(r.op for r in rows))
    dtypes = list(dict.fromkeys(r.dtype for r in rows))
    impls = [i for i in IMPL_COLORS if any(i in r.ns for r in rows)]
    fig = figure.Figure(figsize=(5.2 * len(dtypes), 3.6 * len(ops) + 0.9), layout="constrained")
    axes = fig.subplots(len(ops), len(dtypes), squeeze=False, sharex=True)
    for i, op in enumerate(ops):
        for j, dtype in enumerate(dtypes):
            ax = axes[i][j]
            these = sorted((r for r in rows if r.op == op and r.dtype == dtype), key=lambda r: r.size)
            for impl in [*impls, COPY]:
                points = [(r.size, r.throughput(impl)) for r in these if r.throughput(impl)]
                if not points:
                    continue
                sizes, rates = zip(*points)
                if impl == COPY:
                    ax.plot(sizes, rates, "k--", linewidth=1.5, label="memory copy (np.copyto)")
                else:
                    ax.plot(
                        sizes, rates, "o-", color=IMPL_COLORS[impl], label=IMPL_LABELS[impl],
                        linewidth=3 if impl == "fastsig" else 1.5, markersize=4,
                    )
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{op}  ·  {dtype}", fontsize=11)
            ax.grid(True, which="major", alpha=0.3)
            if j == 0:
                ax.set_ylabel("elements / s")
            if i == len(ops) - 1:
                ax.set_xlabel("array size (elements)")
            ax.set_xticks([r.size for r in these], [size_label(r.size) for r in these])
            ax.minorticks_off()
    handles, labels = axes[0][0].get_legend_handles_labels()
    for row in axes:
        for ax in row:
            for h, label in zip(*ax.get_legend_handles_labels()):
                if label not in labels:
                    handles.append(h)
                    labels.append(label)
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6), frameon=False)
    fig.suptitle("fastsig bench: throughput, higher is better (dashed: the memory-copy limit)", fontsize=12)
    _save(fig, path, dpi)
