"""Running independent tasks (one per field) here or on a dask.distributed cluster.

:class:`LocalExecutor` runs them one after the other in this process; :class:`DaskExecutor`
sends them to a running cluster (``napari-sigma run ... --scheduler tcp://host:8786``) and
gives the results back in the order of the inputs. The task functions are module-level
functions of :mod:`napari_sigma`, so every worker needs napari-sigma installed and the input
files at the same paths (a shared file system).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any


class LocalExecutor:
    """Runs tasks in this process, in order."""

    address = "local"

    def map(self, function: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        """``function(item)`` for every item, lazily and in order."""
        for item in items:
            yield function(item)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DaskExecutor:
    """Runs tasks on the dask.distributed cluster whose scheduler is at ``address``.

    Parameters
    ----------
    address : str
        The scheduler, e.g. ``"tcp://127.0.0.1:8786"``.
    timeout : float
        Seconds to wait for the scheduler.
    """

    def __init__(self, address: str, timeout: float = 30.0) -> None:
        from distributed import Client

        from napari_sigma.errors import SigmaError

        self.address = address
        try:
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as error:
            raise SigmaError(f"cannot reach the dask scheduler at {address}: {error}") from None

    @property
    def n_workers(self) -> int:
        """Workers currently connected."""
        return len(self.client.scheduler_info().get("workers", {}))

    def map(self, function: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        """``function(item)`` for every item on the cluster; results in the order of ``items``.

        Tasks are submitted at once (``pure=False``: every call runs) and collected in order;
        an exception in a task is raised here.
        """
        futures = self.client.map(function, list(items), pure=False)
        try:
            for future in futures:
                yield future.result()
        finally:
            self.client.cancel(futures)

    def close(self) -> None:
        """Disconnect from the cluster (the cluster keeps running)."""
        self.client.close()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def executor(scheduler: str | None = None) -> LocalExecutor | DaskExecutor:
    """A :class:`DaskExecutor` on ``scheduler``, or a :class:`LocalExecutor` when it is None."""
    return LocalExecutor() if scheduler is None else DaskExecutor(scheduler)
