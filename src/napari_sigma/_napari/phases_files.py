"""The Phases tab's files: a session saved and opened (in a worker, the layer copied first), and
the result exported with the layer's edits and names (in a worker; report.png drawn in a child
process). :class:`_PhasesFiles` holds the `PhasesWidget` methods that do it.

Moved verbatim from :mod:`napari_sigma._napari.phases_widget` (which still exports every name).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtWidgets import QFileDialog

from napari_sigma._napari import state
from napari_sigma._napari.phases_table_data import _export, _LayerSnapshot, _running_sums
from napari_sigma._napari.threads import leaving_a_core
from napari_sigma._napari.threads import start as start_low_priority


class _PhasesFiles:
    """Sessions and export (methods of `PhasesWidget`)."""

    # -- sessions ----------------------------------------------------------------------------
    def _choose_session_to_save(self) -> None:
        from napari_sigma._napari.sessions import SESSION_FILTER

        path, _ = QFileDialog.getSaveFileName(self, "Save session", "", SESSION_FILTER)
        if path:
            self.save_session(path if path.endswith(".sigma") else f"{path}.sigma")

    def _choose_model_to_save(self) -> None:
        from napari_sigma._napari.sessions import MODEL_FILTER

        path, _ = QFileDialog.getSaveFileName(self, "Save model", "", MODEL_FILTER)
        if path:
            self.save_model(path if path.endswith(".sigma") else f"{path}.sigma")

    def _choose_session_to_open(self) -> None:
        from napari_sigma._napari.sessions import SESSION_FILTER

        path, _ = QFileDialog.getOpenFileName(self, "Open session", "", SESSION_FILTER)
        if path:
            self.open_session(path)

    def save_session(self, path: str | Path) -> Any:
        """Save the current layer's session to ``path`` (in a worker); return the worker."""
        from napari.utils.notifications import show_info

        from napari_sigma._napari.sessions import save_layer_session

        if self.layer is None or self.result is None:
            show_info("Save session: no phases layer to save (run an analysis first)")
            return None
        saved = partial(self._on_session_saved, self.layer)
        snapshot = (path, _LayerSnapshot(self.layer))
        return self._session_worker("Save session", path, save_layer_session, snapshot, saved)

    def save_model(self, path: str | Path) -> Any:
        """Save the current layer's model as the user left it (edits, names, ids, colours) to
        ``path``, for ``napari-sigma apply`` (in a worker); return the worker."""
        from napari.utils.notifications import show_info

        from napari_sigma._napari.sessions import save_layer_model

        if self.layer is None or self.result is None:
            show_info("Save model: no phases layer to save (run an analysis first)")
            return None
        snapshot = (path, _LayerSnapshot(self.layer))
        return self._session_worker(
            "Save model", path, leaving_a_core(save_layer_model), snapshot, self._on_model_saved
        )

    @state.alive_only
    def _on_model_saved(self, written: Any) -> None:
        from napari.utils.notifications import show_info

        show_info(f"Model saved to {written} (napari-sigma apply {Path(written).name} FILES)")

    @state.alive_only
    def _on_session_saved(self, layer: Any, written: Any) -> None:
        from napari.utils.notifications import show_info

        from napari_sigma._napari.recovery import forget_unsaved_edits

        forget_unsaved_edits(layer)  # saved: nothing to recover any more
        show_info(f"Session saved to {written}")

    def open_session(self, path: str | Path) -> Any:
        """Open a session file (read in a worker) and add its layers; return the worker."""
        from napari_sigma._napari.sessions import read_session

        return self._session_worker(
            "Open session", path, read_session, (path,), self._on_session_read
        )

    def _session_worker(
        self, action: str, path: str | Path, function: Any, args: tuple, returned: Any
    ) -> Any:
        """Start ``function(*args)`` in a worker: ``returned`` gets its result, an error is
        reported naming ``action`` and ``path``, and the widget is busy until it finishes."""
        from napari.qt.threading import create_worker

        worker = create_worker(function, *args, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(returned)
        worker.errored.connect(lambda error: self._on_session_error(action, path, error))
        self.busy = True
        worker.finished.connect(self._on_session_done)
        worker.start()
        return worker

    @state.alive_only
    def _on_session_read(self, read: tuple[Any, Any]) -> None:
        from napari_sigma._napari.sessions import add_session_layers

        session, result = read
        self.set_layer(add_session_layers(self.viewer, session, result))

    @state.alive_only
    def _on_session_error(self, what: str, path: Any, error: BaseException) -> None:
        from napari.utils.notifications import show_error

        message = str(error)
        if str(Path(path).name) not in message:
            message = f"{Path(path).name}: {message}"
        show_error(f"{what} failed: {message}")

    @state.alive_only
    def _on_session_done(self) -> None:
        self.busy = False

    def _choose_export_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export phases to folder")
        if folder:
            self.export_in_background(folder)

    def export_in_background(self, out_dir: str | Path) -> Any:
        """Export like :meth:`export_to`, in a worker (the edited labels are copied first)."""
        from napari.qt.threading import create_worker

        if self.layer is None or self.result is None:
            return None
        labels, names = self._export_labels_and_names()
        worker = create_worker(
            leaving_a_core(_export), self.result, out_dir, labels, names,
            self._export_sums(labels), _start_thread=False, _ignore_errors=True,
        )  # fmt: skip
        worker.returned.connect(lambda written: self._on_exported(out_dir, written))
        worker.errored.connect(self._on_export_failed)
        self.exporting = True
        self._set_title(f"exporting to {out_dir} ...")
        start_low_priority(worker)
        return worker

    @state.alive_only
    def _on_exported(self, out_dir: Any, written: dict) -> None:
        """Say it in the title, beside the Export button: a napari notification (a toast over the
        canvas) made napari redraw its canvas (software OpenGL: 2.5x the compose of a label's
        text; heartbeat 78-171 ms vs 41-44 ms at load 10)."""
        from napari_sigma.io.results.export_child import session_child

        self.exporting = False
        name = self.layer.name if self.layer is not None else "no phases layer"
        notice = session_child().take_notice()  # its child died: said once, here
        notice = f" ({notice})" if notice else ""
        self._set_title(f"{name}: exported {len(written)} files to {out_dir}{notice}")

    @state.alive_only
    def _on_export_failed(self, error: BaseException) -> None:
        from napari.utils.notifications import show_error

        self.exporting = False
        self._set_title(f"export failed: {error}")
        show_error(f"Export failed: {type(error).__name__}: {error}")

    def _export_labels_and_names(self) -> tuple[np.ndarray, list[str]]:
        labels = np.array(self.layer.data, copy=True)
        names = [self.model.name(k) for k in range(1, int(labels.max(initial=0)) + 1)]
        return labels, names

    def _export_sums(self, labels: np.ndarray) -> np.ndarray | None:
        """The statistics' running sums over ``labels`` when up to date (:func:`_running_sums`)."""
        if self.pending_updates():  # a worker is moving them
            return None
        return _running_sums(self._statistics.get(id(self.layer)), self.result, labels)

    def export_to(self, out_dir: str | Path) -> dict[str, Path]:
        """Export the result with the layer's edited labels and names to ``out_dir``."""
        from napari.utils.notifications import show_info

        from napari_sigma.io.results.export_child import session_child

        labels, names = self._export_labels_and_names()
        written = _export(self.result, out_dir, labels, names, self._export_sums(labels))
        notice = session_child().take_notice()  # its child died: said once, here
        notice = f" ({notice})" if notice else ""
        show_info(f"Exported {len(written)} files to {out_dir}{notice}")
        return written
