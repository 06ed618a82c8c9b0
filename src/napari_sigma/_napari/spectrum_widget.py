"""The "Spectrum and elements" dock widget.

Shows, for the spectrum image of a chosen plugin layer: its mean spectrum, the spectrum under the
cursor (mean of the 3x3 neighbourhood, recomputed only when the pixel under the cursor changes) and
the mean spectrum of the phase selected in the active phase Labels layer (its ``selected_label``),
with markers of the X-ray lines of the checked elements and a log/linear switch. The elements an
analysis uses by default (:func:`napari_sigma.xray.elements.default_elements`, the CLI's rule: the
file's list and the suggested elements it does not explain) start checked; more can be typed in.
"Add element maps" fits every pixel with the checked elements' line families and a continuum
(:func:`napari_sigma.xray.image_fit.fitted_line_maps`, never negative) in a worker thread and adds
one Image layer per element; only lines inside the recorded spectrum are used
(:func:`napari_sigma.xray.lines.usable_line`). The checked elements are :attr:`SpectrumWidget.selected_elements`.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_sigma._napari import state
from napari_sigma._napari.layers import display_title, element_map_layer, spatial_calibration
from napari_sigma._napari.plotting import SpectrumPlot
from napari_sigma._napari.threads import leaving_a_core
from napari_sigma._napari.threads import start as start_low_priority
from napari_sigma._napari.viewer_widget import ViewerWidget
from napari_sigma.compute.cancel import Cancelled, cancelled_by
from napari_sigma.phases.spectra import masked_mean, neighbourhood_mean
from napari_sigma.spectrum_image import Spectrum, SpectrumImage

SOURCE_ROLES = ("total", "cube", "image", "spectrum")
PHASE_ROLES = ("phases", "truth")
MARKER_MIN_WEIGHT = 0.5
MEAN_KEY = "map mean"
SPECTRUM_KEY = "spectrum"  # a file of one spectrum: its counts, not a mean per pixel
CURSOR_KEY = "cursor (3x3)"
PHASE_KEY = "phase"


class ElementPanel(QWidget):
    """Element checkboxes (suggested ones pre-checked) and a line edit to add more.

    Emits ``changed`` whenever the set of checked elements changes.
    """

    changed = Signal()
    COLUMNS = 6

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._boxes: dict[str, QCheckBox] = {}
        self._suggested: tuple[str, ...] = ()
        self._grid = QGridLayout()
        self.entry = QLineEdit(self)
        self.entry.setPlaceholderText("add elements, e.g. Fe, Cu")
        self.entry.returnPressed.connect(self._add_from_entry)
        add = QPushButton("Add", self)
        add.clicked.connect(self._add_from_entry)
        self.message = QLabel("", self)
        row = QHBoxLayout()
        row.addWidget(self.entry, 1)
        row.addWidget(add)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("elements (suggested ones checked)", self))
        layout.addLayout(self._grid)
        layout.addLayout(row)
        layout.addWidget(self.message)

    @property
    def elements(self) -> tuple[str, ...]:
        """All elements listed, checked or not."""
        return tuple(self._boxes)

    def checked(self) -> tuple[str, ...]:
        """The checked elements, in the order shown."""
        return tuple(el for el, box in self._boxes.items() if box.isChecked())

    def unedited(self) -> bool:
        """Whether the checked elements are still those `set_suggestions` gave (none: False)."""
        return bool(self._suggested) and self.checked() == self._suggested

    def set_suggestions(self, elements: list[str]) -> None:
        """Replace the list by ``elements``, all checked."""
        self._suggested = tuple(elements)
        for box in self._boxes.values():
            self._grid.removeWidget(box)
            box.deleteLater()
        self._boxes = {}
        for element in elements:
            self._add_box(element)
        self.changed.emit()

    def add_elements(self, text: str) -> list[str]:
        """Add (checked) the element symbols in ``text`` (comma or space separated).

        Returns
        -------
        list of str
            The symbols added or re-checked; unknown symbols are reported in ``message``.
        """
        from napari_sigma.xray.lines import ELEMENTS

        words = [w.strip().capitalize() for w in text.replace(",", " ").split()]
        unknown = [w for w in words if w not in ELEMENTS]
        known = [w for w in words if w in ELEMENTS]
        for element in known:
            if element in self._boxes:
                self._boxes[element].setChecked(True)
            else:
                self._add_box(element)
        self.message.setText(f"unknown element: {', '.join(unknown)}" if unknown else "")
        self.changed.emit()
        return known

    def _add_from_entry(self) -> None:
        if self.add_elements(self.entry.text()):
            self.entry.clear()

    def _add_box(self, element: str) -> None:
        box = QCheckBox(element, self)
        box.setChecked(True)
        box.toggled.connect(self.changed.emit)
        index = len(self._boxes)
        self._grid.addWidget(box, index // self.COLUMNS, index % self.COLUMNS)
        self._boxes[element] = box


class SpectrumWidget(ViewerWidget):
    """Spectra of a spectrum image, X-ray line markers, element choice and element maps.

    Parameters: those of `ViewerWidget`.
    """

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        self.source = QComboBox(self)
        self.plot = SpectrumPlot(self, ylabel="counts per pixel")
        self.elements = ElementPanel(self)
        self.add_maps = QPushButton("Add element maps", self)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self._sources: list[Any] = []
        self._image: SpectrumImage | None = None
        self._spectrum: Spectrum | None = None
        self._mean: np.ndarray | None = None
        self.cursor_pixel: tuple[int, int] | None = None
        self.cursor_spectrum: np.ndarray | None = None
        self.phase_spectrum: np.ndarray | None = None
        self._phase_counts = 0.0  # the counts behind one count per pixel of phase_spectrum
        self._phase_name = ""
        self._source: Any = None
        self.loading = False  # True while the sum spectrum and suggestions are computed
        # set: the running sum/suggestion stops at its next checkpoint (another source chosen,
        # the widget or its viewer closed, napari exiting), not waited for
        self._suggestion_cancel = threading.Event()
        self._watched_labels: Any = None
        self.worker: Any = None
        self._layout_widgets()
        self._connect()
        self.refresh_sources()
        self._on_active_layer()

    # ----------------------------------------------------------------- layout and events
    def _layout_widgets(self) -> None:
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(QLabel("spectrum image", self))
        row.addWidget(self.source, 1)
        layout.addLayout(row)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.elements)
        layout.addWidget(self.add_maps)
        layout.addWidget(self.status)

    def _connect(self) -> None:
        self.source.currentIndexChanged.connect(self._on_source_changed)
        self.elements.changed.connect(self._update_markers)
        self.add_maps.clicked.connect(self.add_element_maps)
        layers = self.viewer.layers
        layers.events.inserted.connect(self.refresh_sources)
        layers.events.removed.connect(self.refresh_sources)
        layers.selection.events.active.connect(self._on_active_layer)
        self.viewer.mouse_move_callbacks.append(_weak_mouse_callback(self))
        state.phase_spectra_events.updated.connect(self._on_phase_spectra)

    @state.alive_only
    def _on_phase_spectra(self, layer: Any) -> None:
        """The Phases widget's phase sums changed (ready, or an edit): follow them."""
        if layer is self._watched_labels and int(layer.selected_label) > 0:
            self._on_selected_label()

    # ----------------------------------------------------------------- public API
    @property
    def selected_elements(self) -> tuple[str, ...]:
        """The checked element symbols, in the order shown."""
        return self.elements.checked()

    @property
    def elements_unedited(self) -> bool:
        """Whether the checked elements are the pre-checked default, untouched by the user (an
        analysis then chooses them itself, as the CLI does: ``elements="auto"``)."""
        return not self.loading and self.elements.unedited()

    @property
    def spectrum_image(self) -> SpectrumImage | None:
        """The spectrum image whose spectra are shown (None for a single spectrum or nothing)."""
        return self._image

    def refresh_sources(self, *_: Any) -> None:
        """Re-list the plugin layers that hold a spectrum image or a spectrum."""
        current = self._source_object_shown()
        self._sources, names = _source_layers(self.viewer.layers)
        self.source.blockSignals(True)
        self.source.clear()
        self.source.addItems(names)
        objects = [_source_object(layer) for layer in self._sources]
        index = next((i for i, obj in enumerate(objects) if obj is current), 0)
        self.source.setCurrentIndex(index if names else -1)
        self.source.blockSignals(False)
        if (objects[index] if objects else None) is not current:
            self._on_source_changed()

    def _source_object_shown(self) -> Any:
        index = self.source.currentIndex()
        return _source_object(self._sources[index]) if 0 <= index < len(self._sources) else None

    def update_cursor(self, position: tuple[float, ...]) -> None:
        """Show the 3x3-mean spectrum at the world ``position`` (recomputed only on a new pixel)."""
        if self._image is None:
            return
        pixel = _pixel_at(position, self._image)
        if pixel is None or pixel == self.cursor_pixel:
            return
        self.cursor_pixel = pixel
        self.cursor_spectrum = neighbourhood_mean(self._image.counts, *pixel)
        self._redraw()

    def show_phase(self, labels_layer: Any, label: int) -> None:
        """Show the mean spectrum of the pixels of ``labels_layer`` equal to ``label`` (0: none).

        It comes from the phase sums the Phases widget keeps up to date when there are some (no
        pass over the cube); while the Phases widget computes them it comes when they are ready;
        otherwise it is computed in a worker.
        """
        image = state.spectrum_image_of(labels_layer)
        self.phase_spectrum = None
        if image is None or label <= 0 or image is not self._image:
            self._redraw()
            return
        self._phase_name = _phase_name(labels_layer, label)
        cached = _cached_phase_spectrum(labels_layer, label, image)
        if cached is not None:
            self.phase_spectrum, self._phase_counts = cached
            self._redraw()
            return
        self._redraw()
        self._phase_request = (labels_layer, label)
        if state.phase_spectra_pending(labels_layer):  # the Phases widget's pass brings it
            return
        from napari.qt.threading import create_worker

        mask = np.asarray(labels_layer.data) == label
        pixels = int(np.count_nonzero(mask))
        if not pixels:
            return
        worker = create_worker(
            leaving_a_core(masked_mean),
            image.counts,
            mask,
            _start_thread=False,
            _ignore_errors=True,
        )
        worker.returned.connect(lambda mean: self._on_phase_mean(labels_layer, label, mean, pixels))
        worker.errored.connect(lambda error: self.status.setText(f"phase spectrum failed: {error}"))
        start_low_priority(worker)

    @state.alive_only
    def _on_phase_mean(self, layer: Any, label: int, mean: np.ndarray, pixels: int) -> None:
        if getattr(self, "_phase_request", None) == (layer, label):
            self.phase_spectrum, self._phase_counts = mean, float(pixels)
            self._redraw()

    def add_element_maps(self) -> Any:
        """Compute the line-intensity map of each checked element in a worker; add Image layers.

        Returns
        -------
        GeneratorWorker or None
            The started worker (None when nothing is to be done).
        """
        from napari.qt.threading import create_worker

        from napari_sigma.compute.device import resolve_device
        from napari_sigma.features.intensities import FeatureSettings
        from napari_sigma.xray.lines import lines_for_elements, usable_range

        image = self._image
        if image is None or not self.selected_elements:
            self.status.setText("Choose a spectrum image and at least one element.")
            return None
        energy_range = usable_range(image.energy, FeatureSettings().low_energy_cutoff_kev)
        lines = list(lines_for_elements(self.selected_elements, image.beam_energy, energy_range))
        if not lines:
            self.status.setText("No checked element has a line inside the recorded spectrum.")
            return None
        worker = create_worker(
            leaving_a_core(fitted_maps),
            image,
            lines,
            resolve_device("auto"),
            _start_thread=False,
            _ignore_errors=True,
        )
        worker.yielded.connect(lambda p: self.status.setText(f"element maps: {p.step}/{p.total}"))
        worker.returned.connect(lambda maps: self._add_map_layers(image, lines, maps))
        worker.errored.connect(lambda error: self.status.setText(f"element maps failed: {error}"))
        self.add_maps.setEnabled(False)
        worker.finished.connect(lambda: self.add_maps.setEnabled(True))
        self.status.setText(f"computing {len(lines)} element maps ...")
        self.worker = worker
        start_low_priority(worker)
        return worker

    # ----------------------------------------------------------------- internals
    def _add_map_layers(self, image: SpectrumImage, lines: list[str], maps: np.ndarray) -> None:
        for index, line in enumerate(lines):
            data, kwargs, _ = element_map_layer(maps[..., index], line, image)
            if kwargs["name"] in self.viewer.layers:
                self.viewer.layers[kwargs["name"]].data = data
            else:
                self.viewer.add_image(data, **kwargs)
        self.status.setText(f"added {len(lines)} element maps: {', '.join(lines)}")

    def _on_source_changed(self, *_: Any) -> None:
        """Show the new source: its sum spectrum and element suggestion come from a worker."""
        from napari.qt.threading import create_worker

        index = self.source.currentIndex()
        data = state.plugin_data(self._sources[index]) if 0 <= index < len(self._sources) else {}
        self._image = data.get("spectrum_image") if "spectrum" not in data else None
        source = data.get("spectrum") or self._image
        self.cursor_pixel = self.cursor_spectrum = self.phase_spectrum = None
        self._spectrum = self._mean = None
        self._source = source
        self.add_maps.setEnabled(False)
        self.plot.set_markers({})
        self._redraw()
        if source is None:
            self.loading = False
            return
        self.loading = True
        self.status.setText("summing the spectra and suggesting elements ...")
        self._suggestion_cancel.set()  # the previous source's, if it still runs
        cancel = self._suggestion_cancel = threading.Event()
        self.destroyed.connect(cancel.set)  # closed with its viewer: stop, do not wait for it
        worker = create_worker(
            leaving_a_core(_sum_and_suggestions), source, cancel,
            _start_thread=False, _ignore_errors=True,
        )  # fmt: skip
        worker.returned.connect(lambda out: self._on_sum_ready(source, *out))
        worker.errored.connect(lambda error: self._on_sum_failed(source, error))
        start_low_priority(worker)

    @state.alive_only
    def _on_sum_ready(self, source: Any, spectrum: Spectrum, suggested: list[str]) -> None:
        if source is not self._source:  # the user chose another source meanwhile
            return
        self.loading = False
        self.status.setText("")
        self._spectrum = spectrum
        pixels = np.prod(self._image.shape) if self._image is not None else 1
        self.plot.set_ylabel("counts per pixel" if self._image is not None else "counts")
        self._mean = np.asarray(spectrum.counts, dtype=np.float64) / pixels
        self.elements.set_suggestions(suggested)
        self.add_maps.setEnabled(self._image is not None)
        self.plot.set_energy_range(*self._energy_range())
        self._update_markers()

    @state.alive_only
    def _on_sum_failed(self, source: Any, error: BaseException) -> None:
        if isinstance(error, Cancelled):  # another source chosen, or the widget closing
            return
        if source is self._source:
            self.loading = False
            self.status.setText(f"could not read the spectra: {error}")

    def _on_active_layer(self, *_: Any) -> None:
        layer = self.viewer.layers.selection.active
        if self._watched_labels is not None:
            self._watched_labels.events.selected_label.disconnect(self._on_selected_label)
            model = state.plugin_data(self._watched_labels).get("phases")
            if model is not None:
                model.changed.disconnect(self._on_phases_renamed)
            self._watched_labels = None
        if layer is not None and state.role_of(layer) in PHASE_ROLES:
            self._watched_labels = layer
            layer.events.selected_label.connect(self._on_selected_label)
            model = state.plugin_data(layer).get("phases")
            if model is not None:  # a rename in the Phases widget reaches the legend
                model.changed.connect(self._on_phases_renamed)
            self._on_selected_label()

    def _on_phases_renamed(self, *_: Any) -> None:
        layer = self._watched_labels
        if layer is not None and self.phase_spectrum is not None:
            self._phase_name = _phase_name(layer, int(layer.selected_label))
            self._redraw()

    def _on_selected_label(self, *_: Any) -> None:
        layer = self._watched_labels
        if layer is not None:
            self.show_phase(layer, int(layer.selected_label))

    def _energy_range(self) -> tuple[float | None, float | None]:
        """From 0 to the beam energy (or the last channel): no counts lie above the beam energy."""
        if self._spectrum is None:
            return None, None
        top = self._spectrum.energy.max_energy
        if self._spectrum.beam_energy:
            top = min(top, float(self._spectrum.beam_energy))
        return 0.0, top

    def _update_markers(self, *_: Any) -> None:
        self.plot.set_markers(line_markers(self.selected_elements, self._spectrum))
        self._redraw()

    def _redraw(self) -> None:
        if self._spectrum is None:
            self.plot.set_spectra(np.zeros(0), {})
            return
        key = MEAN_KEY if self._image is not None else SPECTRUM_KEY
        curves = {key: self._mean}
        # the counts behind one count per pixel of each curve (`plotting.signal_top`)
        counts = {key: float(np.prod(self._image.shape)) if self._image is not None else 1.0}
        if self.cursor_spectrum is not None:
            name = f"{CURSOR_KEY} at {self.cursor_pixel}"
            curves[name] = self.cursor_spectrum
            counts[name] = float(_neighbourhood_pixels(self.cursor_pixel, self._image.shape))
        if self.phase_spectrum is not None:
            name = f"{PHASE_KEY} {self._phase_name}"
            curves[name], counts[name] = self.phase_spectrum, self._phase_counts
        self.plot.set_spectra(self._spectrum.energy.energies, curves, counts=counts)


def _neighbourhood_pixels(pixel: tuple[int, int], shape: tuple[int, ...], radius: int = 1) -> int:
    """The pixels `neighbourhood_mean` averages around ``pixel`` (fewer at the map's edges)."""
    (row, col), (ny, nx) = pixel, shape[:2]
    rows = min(row + radius + 1, ny) - max(row - radius, 0)
    cols = min(col + radius + 1, nx) - max(col - radius, 0)
    return rows * cols


def _cached_phase_spectrum(
    layer: Any, label: int, image: SpectrumImage
) -> tuple[np.ndarray, float] | None:
    """The Phases widget's running mean spectrum of ``label``, on the image's energy axis, and
    the counts behind one count per pixel of it (its pixels, times the channels summed)."""
    cached = state.phase_spectra_of(layer)
    if cached is None:
        return None
    energies, table = cached
    rows = {int(phase_id): row for row, phase_id in enumerate(table.phase_ids)}
    if label not in rows or table.pixels[rows[label]] == 0:
        return None
    mean = np.asarray(table.mean_spectra[rows[label]], dtype=np.float64)
    pixels = float(table.pixels[rows[label]])
    full = image.energy.energies
    if mean.size == full.size:
        return mean, pixels
    width = (energies[1] - energies[0]) / image.energy.scale if len(energies) > 1 else 1.0
    return np.interp(full, energies, mean / width, left=0.0, right=0.0), pixels * width


def _weak_mouse_callback(widget: SpectrumWidget):
    """A mouse-move callback that does not keep the widget alive."""
    reference = weakref.ref(widget)

    def on_mouse_move(viewer: Any, event: Any) -> None:
        target = reference()
        if target is not None:
            try:
                target.update_cursor(tuple(event.position))
            except RuntimeError:  # the Qt widget was deleted
                viewer.mouse_move_callbacks.remove(on_mouse_move)

    return on_mouse_move


def _source_object(layer: Any) -> Any:
    data = state.plugin_data(layer)
    return data.get("spectrum", data.get("spectrum_image"))


def _source_layers(layers: Any) -> tuple[list[Any], list[str]]:
    """One layer per distinct spectrum image or spectrum among the plugin's layers."""
    chosen, seen = [], []
    for layer in layers:
        source = _source_object(layer)
        if state.role_of(layer) in SOURCE_ROLES and source is not None:
            if not any(source is other for other in seen):
                seen.append(source)
                chosen.append(layer)
    return chosen, [display_title(_source_object(layer)) for layer in chosen]


def _pixel_at(position: tuple[float, ...], image: SpectrumImage) -> tuple[int, int] | None:
    """Pixel ``(row, col)`` under the world position (last two axes), None outside the map."""
    if len(position) < 2:
        return None
    size, _ = spatial_calibration(image)
    row, col = (round(p / size) for p in position[-2:])
    ny, nx = image.shape
    return (row, col) if 0 <= row < ny and 0 <= col < nx else None


def _phase_name(layer: Any, label: int) -> str:
    name = state.phase_name(layer, label)
    return f"{label}: {name}" if name is not None else str(label)


_SUM_SPECTRA: dict[int, Spectrum] = {}


def _sum_and_suggestions(
    source: SpectrumImage | Spectrum, cancel: threading.Event | None = None
) -> tuple[Spectrum, list[str]]:
    """The sum spectrum of ``source`` (computed once per spectrum image) and its suggestions;
    :class:`~napari_sigma.compute.cancel.Cancelled` once ``cancel`` is set (at the suggestion's
    next fit)."""
    with cancelled_by(cancel or threading.Event()):
        if isinstance(source, Spectrum):
            return source, _suggestions(source)
        key = id(source)
        if key not in _SUM_SPECTRA:
            _SUM_SPECTRA[key] = source.sum_spectrum()
            weakref.finalize(source, _SUM_SPECTRA.pop, key, None)
        spectrum = _SUM_SPECTRA[key]
        return spectrum, _suggestions(spectrum)


def _suggestions(spectrum: Spectrum | None) -> list[str]:
    """Elements to pre-check: those an analysis uses by default
    (:func:`napari_sigma.xray.elements.default_elements`, the CLI's rule)."""
    if spectrum is None:
        return []
    from napari_sigma.xray.elements import default_elements

    return list(default_elements(spectrum).elements)


def fitted_maps(image: SpectrumImage, lines: list[str], device: str):
    """Fitted intensity maps ``(y, x, L)`` of ``lines`` (a generator of progress reports).

    The same fit as the analysis (:func:`napari_sigma.xray.image_fit.fitted_line_maps`).
    """
    from napari_sigma.features.intensities import FeatureSettings
    from napari_sigma.xray.image_fit import fitted_line_maps

    settings = FeatureSettings()
    maps, _, _ = yield from fitted_line_maps(
        image.counts, image.energy, lines, image.beam_energy,
        fwhm_mnka_kev=settings.fwhm_mnka_kev, low_cutoff_kev=settings.low_energy_cutoff_kev,
        device=device,
    )  # fmt: skip
    return maps


def line_markers(elements: tuple[str, ...], spectrum: Spectrum | None) -> dict[str, float]:
    """Main lines (weight >= 0.5) of ``elements`` inside the spectrum and excited by the beam.

    The same rule as the analysis (:func:`napari_sigma.xray.lines.marker_lines`).
    """
    if spectrum is None:
        return {}
    from napari_sigma.features.intensities import FeatureSettings
    from napari_sigma.xray.lines import marker_lines, usable_range

    energy_range = usable_range(spectrum.energy, FeatureSettings().low_energy_cutoff_kev)
    lines = marker_lines(elements, spectrum.beam_energy, energy_range, MARKER_MIN_WEIGHT)
    return {line.name: line.energy for line in lines}
