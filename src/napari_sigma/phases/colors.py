"""One colour per phase, the same in the napari layers, the report and the exported figures.

Phase ``k`` (label ``k >= 1``) has colour ``phase_colors(n)[k - 1]`` for any ``n >= k``; label 0
(unassigned) is transparent (:data:`UNASSIGNED`), drawn black on an opaque background.
"""

from __future__ import annotations

import colorsys

import numpy as np

UNASSIGNED = (0.0, 0.0, 0.0, 0.0)
"""RGBA of label 0: transparent (black once composited on black)."""

# Distinct, colour-blind-aware colours (Okabe-Ito first, then tab20-like picks), RGB 0-255.
_PALETTE = (
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (240, 228, 66),
    (0, 114, 178),
    (213, 94, 0),
    (204, 121, 167),
    (148, 103, 189),
    (140, 86, 75),
    (188, 189, 34),
    (23, 190, 207),
    (255, 152, 150),
    (127, 127, 127),
    (197, 176, 213),
    (152, 223, 138),
    (255, 187, 120),
    (158, 218, 229),
    (219, 219, 141),
    (196, 156, 148),
    (247, 182, 210),
)
_GOLDEN = 0.618033988749895


def phase_colors(n: int) -> np.ndarray:
    """RGBA colours (float64 in 0..1, opaque) of phases 1..n: row ``k - 1`` is phase ``k``.

    Parameters
    ----------
    n : int
        Number of phases (>= 0).

    Returns
    -------
    ndarray (n, 4)
        The first 20 come from a fixed palette; later ones step around the hue circle by the
        golden ratio, so every phase keeps its colour when more phases are added.
    """
    if n < 0:
        raise ValueError(f"number of phases must be >= 0, got {n}")
    colors = np.ones((n, 4), dtype=np.float64)
    for i in range(n):
        colors[i, :3] = _color(i)
    return colors


def _color(i: int) -> tuple[float, float, float]:
    if i < len(_PALETTE):
        return tuple(c / 255.0 for c in _PALETTE[i])
    hue = ((i - len(_PALETTE)) * _GOLDEN + 0.11) % 1.0
    value = 0.95 if (i // 2) % 2 == 0 else 0.75
    return colorsys.hsv_to_rgb(hue, 0.65, value)


def label_colormap(n: int) -> dict[int | None, np.ndarray]:
    """A ``{label: RGBA}`` dict for napari's ``DirectLabelColormap`` (0 transparent, None grey)."""
    mapping: dict[int | None, np.ndarray] = {0: np.array(UNASSIGNED), None: np.array(UNASSIGNED)}
    for k, color in enumerate(phase_colors(n), start=1):
        mapping[k] = color
    return mapping


def label_rgba(labels: np.ndarray, n: int | None = None) -> np.ndarray:
    """An RGBA image (y, x, 4) float64 of a label image (0 transparent).

    Parameters
    ----------
    labels : ndarray (y, x) int
        Label image; labels above ``n`` are coloured as if ``n`` were large enough.
    n : int or None
        Number of phases (default: the largest label).
    """
    labels = np.asarray(labels)
    largest = int(labels.max(initial=0))
    n = max(largest, n or 0)
    table = np.vstack([np.array(UNASSIGNED)[None, :], phase_colors(n)])
    return table[labels]
