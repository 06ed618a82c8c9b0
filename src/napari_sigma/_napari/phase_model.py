"""The evented table of phases (id, name, colour) shared by the Labels layer and the widgets.

One :class:`PhaseModel` lives in the ``metadata["napari_sigma"]["phases"]`` of each phases Labels
layer. The Phases widget renames phases and adds the ones a user paints; the Labels colormap,
the table and the latent plot all read names and colours from here and redraw on
:attr:`PhaseModel.changed`. Pure Python and psygnal (no Qt).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from psygnal import Signal

TRANSPARENT = (0.0, 0.0, 0.0, 0.0)


@dataclass
class Phase:
    """One phase: its label value, display name and RGBA colour (floats in [0, 1])."""

    id: int
    name: str
    color: tuple[float, float, float, float]


def to_rgba(color: Any) -> tuple[float, float, float, float]:
    """A colour (RGB or RGBA floats in [0, 1], or any matplotlib colour) as an RGBA tuple."""
    from matplotlib.colors import to_rgba as mpl_to_rgba

    if isinstance(color, str):
        return tuple(float(c) for c in mpl_to_rgba(color))  # type: ignore[return-value]
    values = np.asarray(color, dtype=np.float64).ravel()
    if values.size == 3:
        values = np.append(values, 1.0)
    if values.size != 4:
        raise ValueError(f"not a colour: {color!r}")
    if values.max() > 1.0:  # 0..255 integers
        values = values / 255.0
    return tuple(float(c) for c in np.clip(values, 0.0, 1.0))  # type: ignore[return-value]


def palette(n: int) -> list[tuple[float, float, float, float]]:
    """The project's first ``n`` phase colours (``napari_sigma.phases.colors.phase_colors``) as RGBA."""
    from napari_sigma.phases.colors import phase_colors

    return [to_rgba(c) for c in np.asarray(phase_colors(n), dtype=np.float64)[:n]]


def generated_color(phase_id: int) -> tuple[float, float, float, float]:
    """The default colour of phase ``phase_id`` (the palette's entry ``phase_id - 1``)."""
    return palette(phase_id)[phase_id - 1]


def generated_name(phase_id: int) -> str:
    """The default name of a phase a user created (``"phase 7"``)."""
    return f"phase {phase_id}"


class PhaseModel:
    """An evented, ordered table of phases keyed by label value (1..K; 0 = unassigned).

    Parameters
    ----------
    phases : iterable of Phase, optional
        The initial phases.

    Attributes
    ----------
    changed : psygnal.Signal
        Emitted (no arguments) after any phase is added, removed, renamed or recoloured.
    """

    changed = Signal()

    def __init__(self, phases: Iterable[Phase] = ()) -> None:
        self._phases: dict[int, Phase] = {}
        for phase in phases:
            self._check_id(phase.id)
            self._phases[phase.id] = Phase(phase.id, phase.name, to_rgba(phase.color))

    @classmethod
    def from_names(cls, names: Sequence[str], colors: Sequence[Any] | None = None) -> PhaseModel:
        """Phases 1..K named ``names``, coloured ``colors`` (default: the project palette)."""
        rgba = palette(len(names)) if colors is None else [to_rgba(c) for c in colors]
        return cls(Phase(i + 1, str(name), rgba[i]) for i, name in enumerate(names))

    # -- reading ---------------------------------------------------------------------------
    @property
    def ids(self) -> list[int]:
        """Label values of the phases, ascending."""
        return sorted(self._phases)

    def __len__(self) -> int:
        return len(self._phases)

    def __contains__(self, phase_id: object) -> bool:
        return phase_id in self._phases

    def __iter__(self) -> Iterator[Phase]:
        return (self._phases[i] for i in self.ids)

    def __getitem__(self, phase_id: int) -> Phase:
        return self._phases[phase_id]

    def name(self, phase_id: int) -> str:
        """Name of a phase (``"unassigned"`` for 0, a generated name for an unknown id)."""
        if phase_id == 0:
            return "unassigned"
        phase = self._phases.get(phase_id)
        return phase.name if phase is not None else generated_name(phase_id)

    def color(self, phase_id: int) -> tuple[float, float, float, float]:
        """RGBA colour of a phase (transparent for 0)."""
        if phase_id == 0:
            return TRANSPARENT
        phase = self._phases.get(phase_id)
        return phase.color if phase is not None else generated_color(phase_id)

    def next_id(self) -> int:
        """The smallest label value above every known phase."""
        return max(self._phases, default=0) + 1

    def color_dict(self) -> dict[int | None, np.ndarray]:
        """Label -> RGBA mapping for napari's ``DirectLabelColormap`` (0 and unknown transparent)."""
        mapping: dict[int | None, np.ndarray] = {
            None: np.array(TRANSPARENT),
            0: np.array(TRANSPARENT),
        }
        for phase in self:
            mapping[phase.id] = np.array(phase.color)
        return mapping

    def colormap(self) -> Any:
        """A napari ``DirectLabelColormap`` of the phases."""
        from napari.utils.colormaps import DirectLabelColormap

        return DirectLabelColormap(color_dict=self.color_dict())

    # -- editing ---------------------------------------------------------------------------
    def add(self, name: str | None = None, color: Any = None, phase_id: int | None = None) -> Phase:
        """Add a phase (default: the next id, a generated name and colour) and return it."""
        phase_id = self.next_id() if phase_id is None else int(phase_id)
        self._check_id(phase_id)
        if phase_id in self._phases:
            raise ValueError(f"phase {phase_id} exists already")
        phase = Phase(
            phase_id,
            generated_name(phase_id) if name is None else str(name),
            generated_color(phase_id) if color is None else to_rgba(color),
        )
        self._phases[phase_id] = phase
        self.changed.emit()
        return phase

    def ensure(self, phase_ids: Iterable[int]) -> list[int]:
        """Add a generated phase for every id > 0 not known yet; return the ids added."""
        added = [int(i) for i in phase_ids if int(i) > 0 and int(i) not in self._phases]
        for phase_id in sorted(set(added)):
            self._phases[phase_id] = Phase(
                phase_id, generated_name(phase_id), generated_color(phase_id)
            )
        if added:
            self.changed.emit()
        return sorted(set(added))

    def rename(self, phase_id: int, name: str) -> None:
        """Rename a phase (emits :attr:`changed` if the name differs)."""
        phase = self._phases[phase_id]
        if phase.name != name:
            phase.name = str(name)
            self.changed.emit()

    def set_color(self, phase_id: int, color: Any) -> None:
        """Recolour a phase."""
        self._phases[phase_id].color = to_rgba(color)
        self.changed.emit()

    def remove(self, phase_id: int) -> None:
        """Forget a phase (its pixels, if any, keep their label value)."""
        if self._phases.pop(phase_id, None) is not None:
            self.changed.emit()

    @staticmethod
    def _check_id(phase_id: int) -> None:
        if int(phase_id) < 1:
            raise ValueError(f"phase ids start at 1 (0 is unassigned), got {phase_id}")
