"""The random draws of a seeded CPU ``torch.Generator``, made by numpy without importing torch.

The k-means++ seeding of the Gaussian mixtures (:mod:`napari_sigma.phases.mixture`) draws its
first centre with ``torch.randint`` and each next one with ``torch.multinomial(p, 1)`` from
``torch.Generator(device="cpu").manual_seed(seed)``. Those draws are made here from the same
Mersenne Twister stream, so that the seeding (hence every label) is the same whether or not torch
is imported, on any device:

- ``manual_seed(seed)``: MT19937 seeded by ``init_genrand(seed mod 2**32)``, numpy's
  ``RandomState(seed)``; each draw below takes 32-bit outputs of that stream in order.
- ``randint(n)`` (int64): one output modulo ``n`` for ``n < 2**28``; from ``2**28`` two outputs
  ``(a << 32 | b)`` modulo ``n`` (torch 2.13's CPU kernel, found by bisection).
- ``exponential_(1)`` (float64): per element two outputs ``(a << 32 | b)``, their low 53 bits
  times ``2**-53`` as ``u``, and ``-log1p(-u)``.
- ``multinomial(p, 1)``: ``argmax(p / q)`` with ``q`` such exponential draws, one per entry of
  ``p`` (Gumbel's trick, torch's one-sample path): ``2 len(p)`` outputs.

``tests/compute/test_torch_draws.py`` checks each against torch itself. numpy's ``log1p`` can
differ from the C library's (which torch calls) in the last bit; the entries whose ratio is
within ``1e-12`` of the largest are compared again with ``math.log1p`` (the C library's), so the
pick is torch's.
"""

from __future__ import annotations

import math

import numpy as np

TWO_OUTPUTS_FROM = 1 << 28
"""``randint(n)`` takes two 32-bit outputs from this ``n`` on (one below)."""

NEAR_TIE = 1e-12
"""Ratios this close to the largest are compared again with the C library's log1p."""


class TorchCpuDraws:
    """``torch.Generator(device="cpu").manual_seed(seed)``'s ``randint`` and one-sample
    ``multinomial``, with its state saved and restored (``get_state`` / ``set_state``)."""

    def __init__(self, seed: int) -> None:
        self._stream = np.random.RandomState(int(seed) % 2**32)

    def _outputs(self, count: int) -> np.ndarray:
        # the full 32-bit range: numpy returns the stream's outputs themselves, in order
        return self._stream.randint(0, 2**32, size=count, dtype=np.uint32).astype(np.uint64)

    def randint(self, n: int) -> int:
        """``int(torch.randint(n, (1,), generator=g))``."""
        if n <= 0:
            raise ValueError(f"randint needs n > 0, not {n}")
        if n < TWO_OUTPUTS_FROM:
            return int(self._outputs(1)[0]) % n
        high, low = (int(v) for v in self._outputs(2))
        return ((high << 32) | low) % n

    def _uniforms(self, n: int) -> np.ndarray:
        outputs = self._outputs(2 * n)
        joined = (outputs[0::2] << np.uint64(32)) | outputs[1::2]
        return (joined & np.uint64((1 << 53) - 1)).astype(np.float64) * 2.0**-53

    def multinomial_one(self, probabilities: np.ndarray) -> int:
        """``int(torch.multinomial(probabilities, 1, generator=g))`` for float64
        ``probabilities`` (finite, non-negative, not all 0: torch's own conditions)."""
        p = np.asarray(probabilities, dtype=np.float64)
        u = self._uniforms(len(p))
        ratio = p / -np.log1p(-u)
        best = int(np.argmax(ratio))
        near = np.flatnonzero(ratio >= ratio[best] * (1.0 - NEAR_TIE))
        if len(near) > 1:
            exact = [p[i] / -math.log1p(-float(u[i])) for i in near]
            best = int(near[int(np.argmax(exact))])  # the first of equal largest, as argmax
        return best

    def get_state(self):
        return self._stream.get_state()

    def set_state(self, state) -> None:
        self._stream.set_state(state)
