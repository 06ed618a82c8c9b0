"""One undo history per phases layer: napari's label edits and the plugin's phase renames.

napari's Labels undo (Ctrl+Z on the layer) covers the label image only; a rename lives in the
layer's :class:`~napari_sigma._napari.phase_model.PhaseModel`. :class:`PhaseHistory` keeps the
order of both: every entry of napari's history (the layer emits one ``paint`` event per entry) and
every rename made through :meth:`PhaseHistory.rename`. The layer's Ctrl+Z / Ctrl+Shift+Z (bound on
the layer, before napari's Labels bindings) and the Phases tab's Undo / Redo buttons undo and redo
the latest of either kind.
"""

from __future__ import annotations

from typing import Any

from napari_sigma._napari import state

HISTORY_KEY = "history"
LABELS = "labels"
RENAME = "rename"


class PhaseHistory:
    """Undo/redo of a phases layer's label edits and phase renames, in the order they were made.

    Parameters
    ----------
    layer : napari.layers.Labels
        A phases layer (its plugin data holds the PhaseModel, ``"phases"``).
    """

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self._undo: list[tuple] = []
        self._redo: list[tuple] = []
        self._replaying = False
        layer.events.paint.connect(self._on_paint)

    @property
    def model(self) -> Any:
        """The layer's PhaseModel."""
        return state.plugin_data(self.layer)["phases"]

    @property
    def can_undo(self) -> bool:
        """Whether there is something to undo."""
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        """Whether there is something to redo."""
        return bool(self._redo)

    def rename(self, phase_id: int, name: str) -> bool:
        """Rename a phase as one undo step; return whether the name changed."""
        old = self.model.name(phase_id)
        if name == old:
            return False
        self.model.rename(phase_id, name)
        self._undo.append((RENAME, int(phase_id), old, name))
        self._redo.clear()
        return True

    def _on_paint(self, *_: Any) -> None:
        """napari saved one entry of its label history (a stroke, a fill, a plugin edit)."""
        if not self._replaying:
            self._undo.append((LABELS,))
            self._redo.clear()

    def undo(self) -> str | None:
        """Undo the latest label edit or rename; return its kind (None: nothing to undo)."""
        if not self._undo:
            self.layer.undo()  # napari may hold edits made before this history existed
            return None
        entry = self._undo.pop()
        self._replay(entry, undoing=True)
        self._redo.append(entry)
        return entry[0]

    def redo(self) -> str | None:
        """Redo the latest undone label edit or rename; return its kind (None: nothing)."""
        if not self._redo:
            self.layer.redo()
            return None
        entry = self._redo.pop()
        self._replay(entry, undoing=False)
        self._undo.append(entry)
        return entry[0]

    def _replay(self, entry: tuple, undoing: bool) -> None:
        if entry[0] == RENAME:
            _, phase_id, old, new = entry
            if phase_id in self.model:
                self.model.rename(phase_id, old if undoing else new)
            return
        self._replaying = True
        try:
            (self.layer.undo if undoing else self.layer.redo)()
        finally:
            self._replaying = False


def history_of(layer: Any) -> PhaseHistory | None:
    """The PhaseHistory of a phases layer (None for any other layer)."""
    return state.plugin_data(layer).get(HISTORY_KEY)


def attach_history(layer: Any) -> PhaseHistory:
    """Give a phases layer its PhaseHistory and route the layer's Ctrl+Z / Ctrl+Shift+Z to it."""
    history = history_of(layer)
    if history is not None:
        return history
    history = PhaseHistory(layer)
    state.plugin_data(layer)[HISTORY_KEY] = history
    try:
        from app_model.types import KeyCode, KeyMod

        undo_key = KeyMod.CtrlCmd | KeyCode.KeyZ
        redo_key = KeyMod.CtrlCmd | KeyMod.Shift | KeyCode.KeyZ
    except ImportError:  # older napari: key names
        undo_key, redo_key = "Control-Z", "Control-Shift-Z"
    layer.bind_key(undo_key, lambda _layer: history.undo(), overwrite=True)
    layer.bind_key(redo_key, lambda _layer: history.redo(), overwrite=True)
    return history
