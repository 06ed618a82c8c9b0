"""Non-negative least squares of a block of pixels (:func:`_nnls_block`): the unconstrained
solution, then the exact Lawson-Hanson active set for the rows with a negative share (batched in
numpy or torch, or row by row in compiled code, :mod:`napari_sigma.unmixing._active_set`), then
coordinate descent for any row still unsettled."""

from __future__ import annotations

import numpy as np

from napari_sigma.compute.arrays import clamp_min, host, namespace, on_host
from napari_sigma.unmixing.restricted_inverses import _set_solver, _whole_table


def _nnls_block(gram, gram_inverse, rhs, max_iter: int, tol: float, inverses=None):
    """Solve ``min |H'a - s|`` with ``a >= 0`` for every row of ``rhs = s H'`` at once.

    Rows whose unconstrained solution is non-negative are already optimal. The others are
    solved exactly by the Lawson-Hanson active-set method, run on all rows of the block at once
    (:func:`_lawson_hanson`): every row carries its own set of free components, and the
    least-squares solution on a set is one small matrix product with the inverse of the Gram
    matrix restricted to that set, looked up by the set's bit code (``inverses`` caches them
    from block to block; there are at most ``2**C``). Rows still unsettled after the iteration
    cap (none in practice) are finished by projected coordinate descent.

    On the CPU (up to ``DENSE_SET_TABLE_MAX`` components, from ``COMPILED_NNLS_PIXELS``
    pixels: :func:`~napari_sigma.unmixing.abundances.nnls_maps` sets ``inverses["compiled"]``)
    the active set runs row by row in compiled code (:func:`_lawson_hanson_compiled`: the same
    decisions and arithmetic, the same shares), elsewhere batched in torch: a few
    ``(n, C) x (C, C)`` products per block whatever the dose or the number of components. The
    grouped solve it replaces looped over the distinct sets of a block (hundreds at 100 counts
    per pixel with 8 phases), then ran up to ``max_iter`` coordinate-descent sweeps on the rows
    that broke the optimality conditions.
    """
    inverses = {} if inverses is None else inverses
    unconstrained = rhs @ gram_inverse
    clipped = (unconstrained < 0).any(1)
    solution = clamp_min(unconstrained, 0.0)
    if bool(clipped.any()):
        rows = rhs[clipped]
        compiled = inverses.get("compiled", False)
        active_set = _lawson_hanson_compiled if compiled else _lawson_hanson
        refined, settled = active_set(gram, rows, unconstrained[clipped] >= 0, tol, inverses)
        unsettled = ~settled | _kkt_violations(gram, rows, refined, tol)
        if bool(unsettled.any()):
            refined[unsettled] = _coordinate_descent(
                gram, rows[unsettled], refined[unsettled], max_iter, tol
            )
        solution[clipped] = refined
    return solution


def _lawson_hanson_compiled(gram, rhs, free, tol: float, inverses: dict, drops: int = 4):
    """:func:`_lawson_hanson` of CPU tensors row by row in compiled code (numba, no GIL).

    The same steps on each row as the batched form and the same arithmetic, but for the
    gradient (a sum in component order instead of torch's matrix product), which only decides
    the path: the shares are those of the batched form (:mod:`._active_set`). The whole
    :func:`_nnls_block` on 131 072 pixels of the 1024² bench cube, both bases: 0.42-0.44 ->
    0.12-0.13 s CPU (s12 dev note; numba's cached code costs ~0.5 s CPU once per process).
    """
    from napari_sigma.compute._jit import wait_for_warm_up

    wait_for_warm_up()  # napari's warm-up child compiling these kernels: load them, not again
    from napari_sigma.unmixing._active_set import lawson_hanson_rows

    table = _whole_table(gram, inverses)
    solution, settled = lawson_hanson_rows(
        host(gram), np.ascontiguousarray(host(rhs)), np.ascontiguousarray(host(free)),
        float(tol), host(table), drops,
    )  # fmt: skip
    if on_host(rhs):
        return solution, settled
    import torch

    return torch.from_numpy(solution), torch.from_numpy(settled)


def _lawson_hanson(gram, rhs, free, tol: float, inverses: dict, drops: int = 4):
    """Exact NNLS of every row of ``rhs``: ``(solution, settled)``.

    Starts from ``free`` (the components with a non-negative unconstrained share) and drops
    the negative components for up to ``drops`` sweeps; rows whose solution is then positive
    on their free set start from it, the others from zero. Then the Lawson-Hanson iterations
    (Lawson & Hanson 1974, ch. 23) on all unfinished rows together: solve on the free set;
    where that solution is positive, take it and free the zero component of largest gradient
    (a row with none is optimal); where it is not, move from the current feasible point towards
    it until a component reaches zero, and fix that component at zero.

    numpy arrays (the CPU) or torch tensors (another device): one function, by the arrays'
    type (:mod:`~napari_sigma.compute.arrays`).
    """
    xp = namespace(rhs)
    solve = _set_solver(gram, inverses)
    # a row's solution depends on its own free set only: after the first sweep only the rows
    # whose set changed are solved again (the others keep theirs); the rows still changing are
    # kept apart (no gather from the whole block per sweep). Every product below sees the same
    # rows in the same order as one over the whole block's rows would: the same bits.
    free = xp.copy(free)
    trial = solve(rhs, free)
    rows, part_rhs, part_free, part_trial = None, rhs, free, trial
    for _ in range(drops):
        negative = part_free & (part_trial <= 0)
        changed = xp.any(negative, axis=1)
        if not bool(changed.any()):
            break
        keep = xp.flatnonzero(changed)
        part_rhs = part_rhs[keep]
        part_free = part_free[keep] & ~negative[keep]
        part_trial = solve(part_rhs, part_free)
        rows = keep if rows is None else rows[keep]
        free[rows], trial[rows] = part_free, part_trial
    free = free & ~xp.any(free & (trial <= 0), axis=1, keepdims=True)
    x = xp.where(free, trial, xp.zeros_like(trial))
    slack = max(tol, 1e-9) * clamp_min(xp.max(xp.abs(rhs), axis=1), 1e-30)
    settled = xp.zeros(len(rhs), dtype=bool, like=rhs)
    todo = xp.arange(len(rhs), like=rhs)
    # the unfinished rows (ids ``todo``) with their right-hand sides, free sets and points; at
    # first the solution on every row's free set is known (not solved again)
    b, f, xt, z = rhs, free, xp.copy(x), x
    for step in range(3 * gram.shape[0] + 10):
        if step:
            z = solve(b, f)
        positive = ~xp.any(f & (z <= 0), axis=1)
        xt = xp.where(positive[:, None], z, xt)
        gradient = xp.where(f, xp.zeros_like(xt), b - xt @ gram)
        best = xp.argmax(gradient, axis=1)
        rising = xp.take_along_axis(gradient, best[:, None], 1)[:, 0] > slack
        done, grow, back = positive & ~rising, positive & rising, ~positive
        f[grow, best[grow]] = True
        if bool(back.any()):
            xt[back], f[back] = _step_back(xt[back], z[back], f[back])
        finished = todo[done]
        x[finished], settled[finished] = xt[done], True
        keep = xp.flatnonzero(~done)
        todo, b, f, xt, slack = todo[keep], b[keep], f[keep], xt[keep], slack[keep]
        if len(todo) == 0:
            break
    x[todo] = xt  # rows still unsettled (the caller finishes them)
    return clamp_min(x, 0.0), settled


def _step_back(x, z, free):
    """Move from feasible ``x`` towards ``z`` until a free component reaches zero; fix it."""
    xp = namespace(x)
    blocking = free & (z <= 0)
    ratio = xp.where(blocking, x / clamp_min(x - z, 1e-300), xp.full_like(x, 2.0))
    first = xp.argmin(ratio, axis=1)
    alpha = xp.clip(xp.take_along_axis(ratio, first[:, None], 1), 0.0, 1.0)
    moved = x + alpha * (z - x)
    free = free & (moved > 0)
    free[xp.arange(len(free), like=free), first] = False
    return xp.where(free, moved, xp.zeros_like(moved)), free


def _kkt_violations(gram, rhs, solution, tol: float):
    """Rows where a zero coefficient could still lower the residual (not yet optimal)."""
    xp = namespace(rhs)
    gradient = rhs - solution @ gram  # minus half the gradient of the squared residual
    slack = max(tol, 1e-9) * clamp_min(xp.max(xp.abs(rhs), axis=1, keepdims=True), 1e-30)
    rising = (solution <= 0) & (gradient > slack)  # a zero share that should grow
    unsteady = (solution > 0) & (abs(gradient) > slack)  # a share not at its optimum
    return (rising | unsteady).any(1)


def _coordinate_descent(gram, rhs, solution, max_iter: int, tol: float):
    diagonal = gram.diagonal()
    for _ in range(max_iter):
        largest_change = 0.0
        for c in range(len(gram)):
            if diagonal[c] <= 0:
                continue
            updated = clamp_min(solution[:, c] + (rhs[:, c] - solution @ gram[c]) / diagonal[c], 0)
            largest_change = max(largest_change, float(abs(updated - solution[:, c]).max()))
            solution[:, c] = updated
        if largest_change <= tol * (float(abs(solution).max()) or 1.0):
            break
    return solution
