"""Homogeneous pixels: the grain interiors that phase finding learns its phases from (step 1 of
:mod:`~napari_sigma.phases.finding`)."""

from __future__ import annotations

import numpy as np

from napari_sigma.compute.blocks import threaded_map


def local_variance(
    maps: np.ndarray, radius: int = 1, device: str = "cpu", band: int = 64
) -> np.ndarray:
    """Sum over features of the variance in a ``(2r+1)^2`` neighbourhood, shape ``(y, x)``.

    In float64 (numpy on the CPU, torch on another device; edges repeat the nearest pixel),
    ``band`` rows at a time (with ``radius`` rows either side), so that the temporaries stay in
    cache; on the CPU the bands run on every core (each band is computed by the same calls
    whichever thread).
    """
    from napari_sigma.compute.device import resolve_device
    from napari_sigma.phases._filters import box_sum

    device = resolve_device(device)
    maps = np.asarray(maps)
    if maps.ndim == 2:
        maps = maps[..., None]
    height = maps.shape[0]
    size = (2 * radius + 1) ** 2
    if device == "cpu":
        out_cpu = np.empty(maps.shape[:2], dtype=np.float64)

        def band_variance_cpu(top: int) -> None:
            low, high = max(top - radius, 0), min(top + band + radius, height)
            values = maps[low:high].astype(np.float64)
            mean = box_sum(values, radius)
            mean /= size
            square = box_sum(values * values, radius)  # values: maybe the input
            square /= size
            mean *= mean
            square -= mean
            variance = np.maximum(0.0, square).sum(axis=-1)
            rows = min(band, height - top)
            out_cpu[top : top + rows] = variance[top - low : top - low + rows]

        for _ in threaded_map(band_variance_cpu, range(0, height, band)):
            pass
        return out_cpu
    import torch

    source = torch.as_tensor(maps, device=device)
    out = torch.empty(maps.shape[:2], dtype=torch.float64, device=device)
    if device != "cpu":  # bands keep the CPU's temporaries in cache; a GPU wants one
        band = max(band, height)

    def band_variance(top: int) -> None:
        with torch.no_grad():
            low, high = max(top - radius, 0), min(top + band + radius, height)
            values = source[low:high].to(torch.float64)
            mean = box_sum(values, radius).div_(size)
            square = box_sum(values * values, radius).div_(size)  # values: maybe the input
            variance = square.sub_(mean.mul_(mean)).clamp_min_(0.0).sum(dim=-1)
            rows = min(band, height - top)
            out[top : top + rows] = variance[top - low : top - low + rows]

    for _ in threaded_map(band_variance, range(0, height, band), None if device == "cpu" else 1):
        pass
    return out.cpu().numpy()


def homogeneous_pixels(
    smoothed: np.ndarray,
    factor: float = 2.0,
    quantile: float = 0.5,
    valid: np.ndarray | None = None,
    device: str = "cpu",
) -> np.ndarray:
    """Boolean ``(y, x)`` mask of pixels whose neighbourhood is as uniform as counting noise allows.

    The noise level is the ``quantile`` of the local variance over the map (grain interiors must
    make up more than that fraction of the map); pixels up to ``factor`` times it are kept.
    Only ``valid`` pixels (default: all) count and are kept.
    """
    variance = local_variance(smoothed, device=device)
    if valid is None or not valid.any():
        return variance <= factor * np.quantile(variance, quantile)
    return valid & (variance <= factor * np.quantile(variance[valid], quantile))
