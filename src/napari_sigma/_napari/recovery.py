"""Autosave of edited phases to a recovery session, offered again when the same file is opened.

Every phases layer whose spectrum image comes from a file gets an :class:`Autosaver`: the first
edit after a save (a stroke, fill, undo, merge, lasso, rename, recolour) starts a
``AUTOSAVE_SECONDS`` timer; when it fires, the labels, names and colours are copied in the main
thread and written by a worker as a ``.sigma`` session (:mod:`napari_sigma.pipeline.session`) to
the user's cache folder (``recovery_dir()``; ``NAPARI_SIGMA_RECOVERY_DIR`` overrides it), one file
per source file. After a crash, opening that source file again in napari (the plugin's reader)
shows a notification with "Restore edits" (opens the recovery session into the viewer) and
"Discard" (deletes it). Saving the work as a session deletes its recovery session.

Maps without a source file (sample data, arrays) are not autosaved: their session would have to
embed the whole cube.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from qtpy.QtCore import QObject, QTimer

from napari_sigma._napari import state

AUTOSAVE_SECONDS = 60.0
AUTOSAVE_KEY = "autosave"
RECOVERY_ENV = "NAPARI_SIGMA_RECOVERY_DIR"
EDIT_EVENTS = ("paint", "labels_update", "data")


def recovery_dir() -> Path:
    """Where recovery sessions go: ``$NAPARI_SIGMA_RECOVERY_DIR`` or the user's cache folder."""
    override = os.environ.get(RECOVERY_ENV)
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("napari-sigma")) / "recovery"


def recovery_path(source: str | Path, map_index: int = 0) -> Path:
    """The recovery session of a source file (its name and a hash of its absolute path); of its
    ``map_index``-th spectrum image for a file of several (``-map2`` for the second: each map's
    edits are kept apart)."""
    source = Path(source).resolve()
    digest = hashlib.sha256(str(source).encode("utf-8")).hexdigest()[:16]
    which = f"-map{map_index + 1}" if map_index else ""
    return recovery_dir() / f"{source.stem}-{digest}{which}.sigma"


def map_of(layer: Any) -> int:
    """Which of its file's spectrum images a phases layer's result comes from (0: the first)."""
    image = getattr(state.result_of(layer), "image", None)
    return int((getattr(image, "metadata", None) or {}).get("map_index", 0))


def source_of(layer: Any) -> Path | None:
    """The file behind a phases layer's spectrum image, or None (sample data, arrays)."""
    result = state.result_of(layer)
    source = getattr(getattr(result, "image", None), "source", None)
    return Path(source) if source is not None and Path(source).is_file() else None


class Autosaver(QObject):
    """Saves a phases layer's edits to its recovery session, ``interval_s`` after an edit.

    Parameters
    ----------
    layer : napari.layers.Labels
        A phases layer whose spectrum image has a source file.
    interval_s : float
        Seconds between the first unsaved edit and the save.
    """

    def __init__(self, layer: Any, interval_s: float | None = None) -> None:
        super().__init__()
        self.layer = layer
        self.path = recovery_path(source_of(layer), map_of(layer))
        self.saves = 0  # recovery sessions written
        self.saving = False
        self._dirty = False
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        seconds = AUTOSAVE_SECONDS if interval_s is None else interval_s
        self.timer.setInterval(round(1000 * seconds))
        self.timer.timeout.connect(self.save_now)
        for name in EDIT_EVENTS:
            emitter = getattr(layer.events, name, None)
            if emitter is not None:
                emitter.connect(self._on_edit)
        model = state.plugin_data(layer).get("phases")
        if model is not None:
            model.changed.connect(self._on_edit)

    def _on_edit(self, *_: Any) -> None:
        self._dirty = True
        if not self.timer.isActive():  # the first edit after a save starts the countdown
            self.timer.start()

    def save_now(self) -> Any:
        """Copy the layer's work now and write the recovery session in a worker; return it."""
        from napari.qt.threading import create_worker

        from napari_sigma._napari.phases_widget import _LayerSnapshot

        if self.saving:  # one save at a time: the next edit schedules another
            self.timer.start()
            return None
        self._dirty = False
        snapshot = _LayerSnapshot(self.layer)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        worker = create_worker(
            _save_atomically, self.path, snapshot, _start_thread=False, _ignore_errors=True
        )
        worker.returned.connect(self._on_saved)
        worker.errored.connect(self._on_failed)
        self.saving = True
        worker.start()
        return worker

    def _on_saved(self, _path: Any) -> None:
        self.saving = False
        self.saves += 1

    def _on_failed(self, error: BaseException) -> None:
        from napari.utils.notifications import show_warning

        self.saving = False
        show_warning(f"Autosave of {self.layer.name} to {self.path} failed: {error}")


def forget_unsaved_edits(layer: Any) -> None:
    """The layer's work was saved as a session: its recovery session is no longer needed."""
    saver = state.plugin_data(layer).get(AUTOSAVE_KEY)
    if saver is not None:
        saver.timer.stop()
        saver.path.unlink(missing_ok=True)


def _save_atomically(path: Path, snapshot: Any) -> Path:
    """Write the session beside ``path`` and move it there (a crash never leaves half a file)."""
    from napari_sigma._napari.sessions import save_layer_session

    partial = path.with_name(f"{path.name}.partial.sigma")
    save_layer_session(partial, snapshot)
    os.replace(partial, path)
    return path


def attach_autosaver(layer: Any, interval_s: float | None = None) -> Autosaver | None:
    """Autosave a phases layer's edits (None: its spectrum image has no source file)."""
    data = state.plugin_data(layer)
    if AUTOSAVE_KEY in data:
        return data[AUTOSAVE_KEY]
    if source_of(layer) is None:
        return None
    data[AUTOSAVE_KEY] = Autosaver(layer, interval_s)
    return data[AUTOSAVE_KEY]


def offer_recovery(source: str | Path, map_index: int = 0) -> Path | None:
    """If ``source`` (its ``map_index``-th spectrum image) has a recovery session, say so with
    Restore / Discard actions; return it."""
    path = recovery_path(source, map_index)
    if not path.is_file():
        return None
    from napari.utils.notifications import Notification, notification_manager

    def restore() -> None:
        import napari

        restore_recovery(napari.current_viewer(), path)

    def discard() -> None:
        path.unlink(missing_ok=True)

    notification_manager.dispatch(
        Notification(
            f"{Path(source).name}: napari-sigma has unsaved phase edits of this file"
            f"{f' (its map {map_index + 1})' if map_index else ''} from an earlier session "
            f"({path}).",
            severity="info",
            actions=[("Restore edits", restore), ("Discard", discard)],
        )
    )
    return path


def restore_recovery(viewer: Any, path: str | Path) -> Any:
    """Read a recovery session in a worker and add its phases layer to ``viewer``; return it."""
    from napari.qt.threading import create_worker
    from napari.utils.notifications import show_error

    from napari_sigma._napari.sessions import add_session_layers, read_session

    worker = create_worker(read_session, path, _start_thread=False, _ignore_errors=True)
    worker.returned.connect(lambda read: add_session_layers(viewer, *read))
    worker.errored.connect(lambda error: show_error(f"Restoring {Path(path).name}: {error}"))
    worker.start()
    return worker
