"""The Lawson-Hanson active set of :func:`napari_sigma.unmixing.nmf._lawson_hanson`, row by row
in compiled code (numba, ``nogil``: the abundance batches of two threads run at once).

The same decisions and the same arithmetic as the batched torch form, one row at a time: the
solution on a free set is the product of the right-hand side with that set's restricted inverse
(the same table), summed over the components in order from zero without a fused multiply-add,
as torch's CPU ``bmm`` kernel sums a (1 x C)(C x C) product; the step back, the slack and the
drops are the same element-wise operations. The one sum computed differently is the gradient
(``rhs - x @ gram``: torch's matrix product, here the sum in component order); it only decides
which component is freed or whether a row is done, so the two forms agree unless a gradient is
within its last bit of the slack or of another component's. The final shares of a row are the
solve on its final set, so where the path is the same the numbers are the same bit for bit.
Measured: 131 072 pixels of the 1024² bench cube (8 components, two bases), every share
identical; see the s12 dev note.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _solve(rhs, table, code, out):  # pragma: no cover - compiled
    # out[j] = sum over k in order, from zero: the components' sums side by side (k outer)
    n = rhs.shape[0]
    for j in range(n):
        out[j] = 0.0
    for k in range(n):
        for j in range(n):
            out[j] += rhs[k] * table[code, k, j]


@njit(cache=True, nogil=True)
def _code(free):  # pragma: no cover - compiled
    code = 0
    for c in range(free.shape[0]):
        if free[c]:
            code += 1 << c
    return code


@njit(cache=True, nogil=True)
def _any_non_positive(free, z):  # pragma: no cover - compiled
    for c in range(free.shape[0]):
        if free[c] and z[c] <= 0:
            return True
    return False


@njit(cache=True, nogil=True)
def lawson_hanson_rows(gram, rhs, free0, tol, table, drops):  # pragma: no cover - compiled
    """``(solution (n, C), settled (n,))`` of every row: see ``nmf._lawson_hanson``."""
    n, size = rhs.shape
    x = np.zeros((n, size))
    settled = np.zeros(n, np.bool_)
    free = np.empty(size, np.bool_)
    trial = np.empty(size)
    z = np.empty(size)
    xt = np.empty(size)
    gradient = np.empty(size)
    product = np.empty(size)
    ratio = np.empty(size)
    tolerance = max(tol, 1e-9)
    steps = 3 * size + 10
    for row in range(n):
        b = rhs[row]
        for c in range(size):
            free[c] = free0[row, c]
        _solve(b, table, _code(free), trial)
        for _ in range(drops):
            if not _any_non_positive(free, trial):
                break
            for c in range(size):
                if free[c] and trial[c] <= 0:
                    free[c] = False
            _solve(b, table, _code(free), trial)
        if _any_non_positive(free, trial):
            for c in range(size):
                free[c] = False
        for c in range(size):
            xt[c] = trial[c] if free[c] else 0.0
            z[c] = xt[c]
        largest = 0.0
        for c in range(size):
            largest = max(largest, abs(b[c]))
        slack = tolerance * max(largest, 1e-30)
        done = False
        for step in range(steps):
            if step:
                _solve(b, table, _code(free), z)
            if not _any_non_positive(free, z):
                for c in range(size):
                    xt[c] = z[c]
                for j in range(size):
                    product[j] = 0.0
                for k in range(size):
                    for j in range(size):
                        product[j] += xt[k] * gram[k, j]
                best = -1
                for j in range(size):
                    gradient[j] = 0.0 if free[j] else b[j] - product[j]
                    if best < 0 or gradient[j] > gradient[best]:
                        best = j
                if gradient[best] > slack:
                    free[best] = True
                else:
                    done = True
                    break
            else:  # step back from xt towards z until a free component reaches zero
                first = -1
                for c in range(size):
                    if free[c] and z[c] <= 0:
                        ratio[c] = xt[c] / max(xt[c] - z[c], 1e-300)
                    else:
                        ratio[c] = 2.0
                    if first < 0 or ratio[c] < ratio[first]:
                        first = c
                alpha = min(max(ratio[first], 0.0), 1.0)
                for c in range(size):
                    moved = xt[c] + alpha * (z[c] - xt[c])
                    free[c] = free[c] and moved > 0 and c != first
                    xt[c] = moved if free[c] else 0.0
        for c in range(size):
            x[row, c] = max(xt[c], 0.0)
        settled[row] = done
    return x, settled


def warm_up() -> None:
    """Compile (or load from numba's cache) :func:`lawson_hanson_rows` and the kernels it calls
    for the types ``nmf._lawson_hanson_compiled`` passes: float64 C arrays (Gram matrix, rows,
    the restricted inverses' table), a bool C array, a float and an int; a two-component
    problem. Used by napari's warm-up child (``compute._jit.WARM_UPS``) and by
    ``nmf.start_compiled_warm_up``: loading code changes no number."""
    size = 2
    table = np.zeros((1 << size, size, size))
    for code in range(1 << size):  # the identity Gram's restricted inverses, one per free set
        for c in range(size):
            table[code, c, c] = float(code >> c & 1)
    rows = np.ones((1, size))
    lawson_hanson_rows(np.eye(size), rows, np.ones((1, size), np.bool_), 1e-9, table, 4)
