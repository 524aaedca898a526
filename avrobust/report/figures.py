"""The report's figures as PNG bytes (matplotlib, Agg): heatmaps and bar charts of rates, the
patches at their physical proportions, and example frames side by side."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import cv2
import matplotlib.pyplot as plt
import numpy as np

from avrobust.report.metrics import Rate

DPI = 130


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def heatmap(
    cells: dict[tuple, Rate], rows: list, cols: list, title: str, xlabel: str, ylabel: str
) -> bytes:
    """Rates on a grid (rows x cols); each cell shows the rate and k/n; empty cells are grey."""
    grid = np.full((len(rows), len(cols)), np.nan)
    for (r, c), rate in cells.items():
        if rate.n:
            grid[rows.index(r), cols.index(c)] = rate.value
    fig, ax = plt.subplots(figsize=(1.2 + 1.05 * len(cols), 0.9 + 0.55 * len(rows)))
    cmap = plt.get_cmap("RdYlGn_r").with_extremes(bad="#e6e6e6")
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    for (r, c), rate in cells.items():
        if rate.n:
            v = rate.value
            ax.text(
                cols.index(c),
                rows.index(r),
                f"{v:.0%}\n{rate.k}/{rate.n}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if v > 0.75 or v < 0.2 else "black",
            )
    ax.set_xticks(range(len(cols)), [str(c) for c in cols], fontsize=8)
    ax.set_yticks(range(len(rows)), [str(r) for r in rows], fontsize=8)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_title(title, fontsize=9.5)
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02).ax.tick_params(labelsize=7)
    return _png(fig)


def bars(series: dict[str, dict[str, Rate]], title: str, ylabel: str) -> bytes:
    """Grouped bars: one group per category, one bar per series, labelled with k/n."""
    cats: list[str] = []
    for s in series.values():
        cats += [c for c in s if c not in cats]
    fig, ax = plt.subplots(figsize=(max(5.5, 1.3 * len(cats) + 2), 3.2))
    width = 0.8 / max(1, len(series))
    for i, (name, rates) in enumerate(series.items()):
        xs = np.arange(len(cats)) + (i - (len(series) - 1) / 2) * width
        vals = [rates[c].value if c in rates and rates[c].n else 0.0 for c in cats]
        bar = ax.bar(xs, vals, width * 0.92, label=name)
        for x, c, b in zip(xs, cats, bar, strict=True):
            if c in rates and rates[c].n:
                ax.text(
                    x,
                    b.get_height() + 0.02,
                    f"{rates[c].k}/{rates[c].n}",
                    ha="center",
                    fontsize=6.5,
                )
    ax.set_xticks(range(len(cats)), cats, fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_title(title, fontsize=9.5)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def patch_figure(
    texture: np.ndarray, mask: np.ndarray, size_m: tuple[float, float], title: str
) -> bytes:
    """The patch as printed (masked-out parts as a checkerboard), axes in centimetres."""
    h, w = mask.shape
    yy, xx = np.mgrid[0:h, 0:w]
    checker = np.where(((yy // max(1, h // 16)) + (xx // max(1, w // 16))) % 2 == 0, 0.85, 0.7)
    rgb = texture * mask[..., None] + checker[..., None] * (1 - mask[..., None])
    wcm, hcm = size_m[0] * 100, size_m[1] * 100
    fig, ax = plt.subplots(figsize=(3.6, 3.6 * hcm / wcm + 0.4))
    ax.imshow(np.clip(rgb, 0, 1), extent=(0, wcm, hcm, 0), interpolation="nearest")
    ax.set_xlabel("cm", fontsize=8)
    ax.set_ylabel("cm", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9)
    return _png(fig)


def read_picture(path) -> np.ndarray | None:
    """A kept example picture (a JPEG the runner wrote) as RGB, or None when unreadable."""
    img = cv2.imread(str(path))
    return None if img is None else img[:, :, ::-1]


def side_by_side(images: list[tuple[str, np.ndarray]], height: int = 300) -> bytes:
    """Pictures in a row at one height, each with a caption bar above it."""
    tiles = []
    for caption, img in images:
        scale = height / img.shape[0]
        tile = cv2.resize(img, (round(img.shape[1] * scale), height), interpolation=cv2.INTER_AREA)
        bar = np.full((26, tile.shape[1], 3), 32, np.uint8)
        cv2.putText(
            bar, caption, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA
        )
        tiles.append(np.vstack([bar, tile]))
        tiles.append(np.full((height + 26, 6, 3), 255, np.uint8))
    row = np.hstack(tiles[:-1])
    _, buf = cv2.imencode(".png", row[:, :, ::-1])
    return buf.tobytes()


def roc(
    curves: dict[str, list[dict]],
    title: str,
    xlabel: str = "true detections dropped (false positives)",
    ylabel: str = "successful attacks caught",
) -> bytes:
    """A check's ROC curves: per attack (label), the share of successful attacks it catches
    against the share of true detections it drops, one point per threshold (annotated with
    the point's ``label``, or its ``threshold``)."""
    fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=110)
    for label, points in curves.items():
        pts = sorted(points, key=lambda p: p["false_positive_rate"])
        x = [p["false_positive_rate"] for p in pts]
        y = [p["detection_rate"] for p in pts]
        ax.plot(x, y, marker="o", label=label)
        at: dict[tuple[float, float], list[str]] = {}  # thresholds that land on one point
        for p in pts:
            at.setdefault((p["false_positive_rate"], p["detection_rate"]), []).append(
                p["label"] if "label" in p else f"{p['threshold']:g}"
            )
        for i, (xy, names) in enumerate(at.items()):  # alternate below / above: neighbours
            text = names[0] if len(names) == 1 else f"{names[0]}-{names[-1]}"
            offset = (4, -10) if i % 2 == 0 else (4, 5)
            ax.annotate(text, xy, textcoords="offset points", xytext=offset, fontsize=7)
    # Room on the right for the last point's label.
    ax.set_xlim(
        -0.01, 1.25 * max(0.2, *(p["false_positive_rate"] for c in curves.values() for p in c))
    )
    ax.set_ylim(-0.03, 1.03)
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    return _png(fig)
