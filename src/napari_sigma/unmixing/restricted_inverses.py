"""Inverses of a Gram matrix restricted to sets of components, the least-squares solves of
:mod:`~napari_sigma.unmixing.block_nnls`: one per distinct set of free components, computed when
a row first needs it and kept (a ``(2**C, C, C)`` table up to ``DENSE_SET_TABLE_MAX`` components).
"""

from __future__ import annotations

import numpy as np

from napari_sigma.compute.arrays import host, on_host

DENSE_SET_TABLE_MAX = 10  # components up to which all 2**C restricted inverses fit one table


def _pinv(matrix):
    """Pseudo-inverse with torch's default cut-off (``max(m, n) * eps`` of the largest
    singular value), numpy's on the CPU."""
    if not on_host(matrix):
        import torch

        return torch.linalg.pinv(matrix)
    return np.linalg.pinv(matrix, rcond=max(matrix.shape) * np.finfo(matrix.dtype).eps)


def _set_solver(gram, inverses: dict):
    """A function ``(rhs, free) -> least-squares solution on the free components`` (0 elsewhere).

    ``free`` is a boolean ``(n, C)`` mask. The inverse of the Gram matrix restricted to each
    distinct set (embedded in a C x C matrix of zeros) is computed once, when a row first needs
    it, and kept in ``inverses``: for ``C <= DENSE_SET_TABLE_MAX`` in one ``(2**C, C, C)`` table
    indexed by the set's bit code (no per-set Python work per block), else by code in the dict.

    The product of a row with its set's inverse is summed over the components in order from
    zero, without a fused multiply-add (torch's CPU ``bmm`` kernel; numpy arrays on the CPU).
    """
    if on_host(gram):
        return _set_solver_numpy(gram, inverses)
    import torch

    n_components = gram.shape[0]
    powers = 2 ** torch.arange(n_components, device=gram.device)
    if n_components <= DENSE_SET_TABLE_MAX:
        if "table" not in inverses:
            inverses["table"] = gram.new_zeros((2**n_components, n_components, n_components))
            inverses["known"] = torch.zeros(2**n_components, dtype=torch.bool, device=gram.device)
        table, known = inverses["table"], inverses["known"]

        def solve_dense(rhs, free):
            codes = (free.long() * powers).sum(1)
            missing = codes[~known[codes]]
            if len(missing):
                for code in torch.unique(missing).tolist():
                    table[code] = _restricted_inverse(gram, code, {})
                known[missing] = True
            return torch.bmm(rhs.unsqueeze(1), table.index_select(0, codes)).squeeze(1)

        return solve_dense

    def solve(rhs, free):
        codes = (free.long() * powers).sum(1)
        distinct, index = torch.unique(codes, return_inverse=True)
        table = torch.stack([_restricted_inverse(gram, c, inverses) for c in distinct.tolist()])
        return torch.bmm(rhs.unsqueeze(1), table[index]).squeeze(1)

    return solve


def _set_solver_numpy(gram: np.ndarray, inverses: dict):
    """:func:`_set_solver` of numpy arrays (the CPU)."""
    n_components = gram.shape[0]
    powers = 2 ** np.arange(n_components, dtype=np.int64)

    def product(rhs, table, codes):
        out = np.zeros(rhs.shape, dtype=rhs.dtype)
        for k in range(n_components):  # in component order from zero, each term rounded
            out += rhs[:, k : k + 1] * table[codes, k, :]
        return out

    if n_components <= DENSE_SET_TABLE_MAX:
        if "table" not in inverses:
            inverses["table"] = np.zeros((2**n_components, n_components, n_components))
            inverses["known"] = np.zeros(2**n_components, dtype=bool)
        table, known = inverses["table"], inverses["known"]

        def solve_dense(rhs, free):
            codes = (free.astype(np.int64) * powers).sum(1)
            missing = codes[~known[codes]]
            if len(missing):
                for code in np.unique(missing).tolist():
                    table[code] = _restricted_inverse(gram, code, {})
                known[missing] = True
            return product(rhs, table, codes)

        return solve_dense

    def solve(rhs, free):
        codes = (free.astype(np.int64) * powers).sum(1)
        distinct, index = np.unique(codes, return_inverse=True)
        table = np.stack([_restricted_inverse(gram, c, inverses) for c in distinct.tolist()])
        return product(rhs, table, index.reshape(-1))

    return solve


def _compiled_rows(gram) -> bool:
    """Whether :func:`~napari_sigma.unmixing.block_nnls._lawson_hanson_compiled` solves the rows of
    this Gram matrix."""
    on_cpu = on_host(gram) or gram.device.type == "cpu"
    return on_cpu and gram.shape[0] <= DENSE_SET_TABLE_MAX


def _whole_table(gram, inverses: dict):
    """The ``(2**C, C, C)`` table of :func:`_set_solver` with every set's restricted inverse
    (each made by the same call as when a row first needs it)."""
    _set_solver(gram, inverses)
    table, known = inverses["table"], inverses["known"]
    if not bool(known.all()):
        missing = np.flatnonzero(host(~known)).tolist()
        for code in missing:
            table[code] = _restricted_inverse(gram, code, {})
        known[:] = True
    return table


def _restricted_inverse(gram, code: int, inverses: dict):
    """Inverse of ``gram`` restricted to the components of bit ``code``, zeros elsewhere."""
    if code not in inverses and on_host(gram):
        kept = [c for c in range(gram.shape[0]) if code >> c & 1]
        inverse = np.zeros_like(gram)
        if kept:
            index = np.array(kept, dtype=np.int64)
            inverse[np.ix_(index, index)] = _pinv(gram[np.ix_(index, index)])
        inverses[code] = inverse
    if code not in inverses:
        import torch

        kept = [c for c in range(gram.shape[0]) if code >> c & 1]
        inverse = torch.zeros_like(gram)
        if kept:
            index = torch.tensor(kept, dtype=torch.long, device=gram.device)
            block = torch.linalg.pinv(gram[index][:, index])
            inverse[index.unsqueeze(1), index.unsqueeze(0)] = block
        inverses[code] = inverse
    return inverses[code]
