"""Progress reports of long computations, and running a computation generator to its end.

Every long computation in the core is a generator that yields :class:`Progress` and returns its
result (``return value`` in the generator, i.e. ``StopIteration.value``). A caller shows the
progress and cancels by simply not asking for the next step (``generator.close()``).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

Computation = Generator["Progress", None, T]


@dataclass(frozen=True)
class Progress:
    """One step of a long computation.

    Parameters
    ----------
    stage : str
        Which part of the pipeline: ``"features"``, ``"latent"``, ``"clustering"``,
        ``"unmixing"``, ``"statistics"``.
    step, total : int
        Steps done and the number expected in this stage (``total`` may be 0 if unknown).
    message : str
        A short human-readable line (e.g. ``"epoch 3/20"``).
    loss : float or None
        The training loss, where the stage has one.
    """

    stage: str
    step: int
    total: int
    message: str = ""
    loss: float | None = None

    @property
    def fraction(self) -> float:
        """Fraction of the stage done, in [0, 1] (0 when the total is unknown)."""
        return min(self.step / self.total, 1.0) if self.total > 0 else 0.0


def run_to_completion(
    computation: Generator[Progress, None, T],
    on_progress: Callable[[Progress], None] | None = None,
) -> T:
    """Drive a computation generator to its end and return its result.

    Parameters
    ----------
    computation : generator
        A generator yielding :class:`Progress` and returning a result.
    on_progress : callable, optional
        Called with every :class:`Progress`.

    Returns
    -------
    The value the generator returned.
    """
    while True:
        try:
            report = next(computation)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(report)
