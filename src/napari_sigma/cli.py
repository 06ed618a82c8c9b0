"""The ``napari-sigma`` command line: batch and headless use of the same core as the plugin.

Commands
--------
``napari-sigma run INPUT... --out DIR [--settings run.json] [--shared-model] [--scheduler ADDRESS]``
    Analyse each input; its results go to ``DIR/<input name>/``. With ``--settings``, the
    settings of an earlier run's ``run.json`` (or a saved settings file) reproduce that run.
    With ``--shared-model``, one phase model fitted on all inputs classifies each
    (``DIR/model.sigma``, ``DIR/pooled_stats.csv``); with ``--scheduler``, fields run on a
    dask.distributed cluster. Each input is isolated: any failure (a corrupt file, a reader
    crash, degenerate data, ``--bin`` larger than the map, an out-of-memory error) is one
    ``napari-sigma: error:`` line naming the file, and the next input runs. With several inputs
    a summary table lists each one's outcome. Exit code 0 when all were analysed, 1 when any
    failed.
``napari-sigma apply MODEL INPUT... --out DIR``
    Classify each input with a saved model (same phase ids, names and colours).
``napari-sigma convert INPUT OUTPUT.hspy``
    Copy a spectrum image to a .hspy stored in row bands (read in parts under --memory-limit).
``napari-sigma demo --out DIR``
    Analyse the embedded synthetic example and print its accuracy against the ground truth.
``napari-sigma elements FILE``
    Print the elements suggested from the file's sum spectrum, with scores.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NoReturn

from napari_sigma.cli_fields import (
    add_apply_command,
    add_convert_command,
    add_field_options,
    add_map_option,
    command_apply,
    command_convert,
    command_run_fields,
    memory_limit,
    print_error,
)
from napari_sigma.compute.progress import Progress
from napari_sigma.errors import SettingsError, SigmaError


class ProgressBar:
    """A one-line text progress bar on stderr, redrawn in place."""

    def __init__(self, stream=None, width: int = 30) -> None:
        self.stream = sys.stderr if stream is None else stream  # stderr now, not at import
        self.width = width
        self._last = 0.0

    def __call__(self, report: Progress) -> None:
        now = time.perf_counter()
        if now - self._last < 0.1 and report.step < report.total:
            return
        self._last = now
        filled = int(self.width * report.fraction)
        bar = "#" * filled + "-" * (self.width - filled)
        loss = f" loss {report.loss:.4g}" if report.loss is not None else ""
        line = f"\r{report.stage:>10} [{bar}] {report.message}{loss}"
        self.stream.write(line[:120].ljust(120))
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line."""
        self.stream.write("\n")
        self.stream.flush()


def _phases(text: str) -> str | int:
    from napari_sigma.pipeline.settings import parse_phases

    try:
        return parse_phases(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--{error}") from None


def build_settings(args: argparse.Namespace):
    """:class:`~napari_sigma.pipeline.settings.AnalysisSettings` from parsed command-line options.

    The preset (or the ``--settings`` file) with the options given on the command line applied,
    through the function the analysis widget uses too.

    Raises
    ------
    SettingsError
        The settings file cannot be read or holds a wrong setting.
    """
    from napari_sigma.pipeline.settings import load_settings, settings_from_choices

    base = load_settings(args.settings) if args.settings is not None else args.preset
    settings = settings_from_choices(
        base,
        elements=args.elements,
        phases=args.phases,
        latent_method=args.latent,
        epochs=args.epochs,
        bin_factor=args.bin,
        split=args.split,
        seed=args.seed,
        device=args.device,
    )
    return _with_minerals(settings, args)


def _with_minerals(settings, args: argparse.Namespace):
    """``--coating C``, ``--minerals FILE`` (checked now: a bad table is a one-line error) and
    ``--no-minerals``."""
    if getattr(args, "coating", None):
        settings = replace(settings, coating=(args.coating,))
    if getattr(args, "minerals", None) is not None:
        from napari_sigma.minerals.library import load_library

        load_library(args.minerals)
        settings = replace(settings, minerals=str(args.minerals))
    if getattr(args, "identify", None) is False:
        settings = replace(settings, identify_minerals=False)
    return settings


def _add_analysis_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--settings",
        type=Path,
        default=None,
        help="settings file (a run.json or saved settings) instead of the preset; "
        "options given here still apply on top",
    )
    parser.add_argument(
        "--elements", default=None, help="'auto' or a list: Fe,Si,O or lines Fe_Ka,Si_Ka"
    )
    parser.add_argument("--phases", default=None, type=_phases, help="'auto' or a number")
    parser.add_argument(
        "--no-split",
        dest="split",
        action="store_const",
        const=False,
        default=None,
        help="do not split phases made of two close compositions (tested grain by grain)",
    )
    parser.add_argument("--latent", default=None, choices=["ae", "pca", "umap"])
    parser.add_argument("--epochs", type=int, default=None, help="autoencoder epochs")
    parser.add_argument("--bin", type=int, default=None, help="spatial binning factor")
    parser.add_argument("--seed", type=int, default=None, help="seed of every random step (0)")
    parser.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"])
    parser.add_argument("--preset", default="default", choices=["default", "sigma"])
    parser.add_argument(
        "--minerals",
        type=Path,
        default=None,
        help="CSV of minerals (name,formula,group,density) extending the packaged library",
    )
    parser.add_argument(
        "--no-minerals",
        dest="identify",
        action="store_const",
        const=False,
        default=None,
        help="do not quantify and name the phases (no mineralogy report)",
    )
    parser.add_argument(
        "--coating",
        default=None,
        choices=["C"],
        help="the sample is carbon coated (or on a carbon film): a measured C that the coat "
        "can give is no evidence for a C-bearing mineral",
    )


def make_parser() -> argparse.ArgumentParser:
    """The argument parser of ``napari-sigma``."""
    parser = argparse.ArgumentParser(
        prog="napari-sigma", description="Phase maps from EDS spectrum images (SIGMA)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="analyse spectrum images")
    run.add_argument("inputs", nargs="+", type=Path, help="EDS files (.bcf, .emd, .hspy, ...)")
    add_map_option(run)
    _add_analysis_options(run)
    add_field_options(run)
    demo = commands.add_parser("demo", help="analyse the embedded synthetic example")
    _add_analysis_options(demo)
    demo.add_argument("--seed-data", type=int, default=0, help="seed of the synthetic example")
    add_apply_command(commands)
    add_convert_command(commands)
    elements = commands.add_parser("elements", help="suggest elements from the sum spectrum")
    elements.add_argument("file", type=Path)
    add_map_option(elements)
    return parser


def _analyse_and_export(image, settings, out_dir: Path):
    from napari_sigma.compute.progress import run_to_completion
    from napari_sigma.io.results.export import export_result
    from napari_sigma.pipeline.analysis import analyse

    bar = ProgressBar()
    try:
        # nothing the CLI writes shows the latent space: computed only when phases are found in it
        result = run_to_completion(analyse(image, settings, embed=False), bar)
    finally:
        bar.close()
    with collections_paused():  # report.png's figure: ~60 young collections and a full one
        written = export_result(result, out_dir)
    return result, written


@contextmanager
def collections_paused() -> Iterator[None]:
    """No cyclic garbage collection while the block runs (the collector as it was after it).

    The export's drawing (matplotlib: ~30 000 short-lived objects) ran ~60 young collections
    and a full one over every object of the process (~0.03 s of a 256² run's CPU, on its
    critical path); the figure's reference cycles are freed by the first collection after the
    block instead (they are still young then). Garbage collection changes no file.
    """
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _summary(result, out_dir: Path) -> str:
    seconds = sum(result.timings.values())
    names = ", ".join(result.phase_names)
    count = f"{result.n_phases} phase" + ("" if result.n_phases == 1 else "s")
    text = f"{count} ({names}) in {seconds:.1f} s on {result.device} -> {out_dir}"
    text += f"; {result.phase_choice()}"  # one line: the batch summary has a row per input
    if result.alternatives:
        text += f" (re-run with --phases {result.alternatives[0]}; curve in run.json)"
    for reason, n in result.unassigned.items():
        text += f"; unassigned {n} pixels ({100 * n / result.labels.size:.1f} %): {reason}"
    return text


@dataclass
class Outcome:
    """What became of one input of a batch: ``"ok"`` or ``"failed"``, and a one-line detail."""

    path: Path
    status: str
    detail: str
    n_warnings: int = 0


def run_one(
    path: Path,
    settings,
    out_dir: Path,
    limit: int | None = None,
    import_meanwhile: bool | None = None,
    map_index: int = 0,
) -> Outcome:
    """Read, check, analyse and export one input; any failure becomes a failed :class:`Outcome`.

    The package's own errors keep their message (which names the file); a reader crash is one of
    them (the reading is isolated, see :mod:`napari_sigma.io.reading_process.isolation`); a MemoryError or any
    other exception is reported as one line naming the file, never as a traceback. Data warnings
    (:mod:`napari_sigma.io.readers.validation`) are printed as ``napari-sigma: warning: ...``
    lines. ``limit``: the memory budget in bytes (``--memory``), or None. ``import_meanwhile``: import
    the analysis's modules in a thread while the file is read (:mod:`napari_sigma.pipeline.
    preimport`; default: without a limit only); ``napari-sigma run`` does under its default
    limit, not under a ``--memory-limit`` of the user's. With it (and a limit), a large
    ``.hspy`` read in memory is analysed while its rows arrive (:mod:`napari_sigma.compute.
    arrival`: the same numbers). ``map_index``: which of the file's spectrum images (``--map``;
    0: the first).
    """
    from napari_sigma.compute.chunks import memory_budget, read_within
    from napari_sigma.io.readers.reading import _isolating
    from napari_sigma.pipeline.preimport import (
        compiled_code_pays,
        finish_importing,
        start_importing,
        unfreeze_collections,
    )

    if import_meanwhile is None:
        import_meanwhile = limit is None
    import_meanwhile = import_meanwhile and _isolating(None)  # else this thread reads (imports)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with memory_budget(limit):
                # the analysis's imports (and for a large file numba's compiled code) on
                # another core while the file is read
                importing = (
                    start_importing(compiled_code=compiled_code_pays(path))
                    if import_meanwhile
                    else None
                )
                try:
                    # under the default limit a large .hspy's rows arrive while the analysis
                    # starts (compute.arrival: the feature pass overlaps the read);
                    # NAPARI_SIGMA_ARRIVING=0 reads the whole cube first (for A/B timings)
                    arriving = import_meanwhile and limit is not None and _arriving_allowed()
                    image = read_within(path, limit, arriving=arriving, map_index=map_index)
                    if importing is not None and _still_arriving(image):
                        importing.join()  # numba's code loaded as during a whole read
                finally:
                    finish_importing(importing)
                result, _ = _analyse_and_export(image, settings, out_dir)
            outcome = Outcome(path, "ok", _summary(result, out_dir))
        except SigmaError as error:
            outcome = Outcome(path, "failed", str(error))
        except MemoryError:
            outcome = Outcome(path, "failed", f"{path}: out of memory (try --bin 2 or more)")
        except Exception as error:  # one bad input must not stop the batch
            outcome = Outcome(path, "failed", f"{path}: {type(error).__name__}: {error}")
        finally:
            unfreeze_collections()  # the imports' objects, frozen by their thread
    notes = [w for w in caught if issubclass(w.category, UserWarning)]
    for note in notes:
        print(f"napari-sigma: warning: {_one_line(str(note.message))}", file=sys.stderr)
    outcome.n_warnings = len(notes)
    return outcome


def _arriving_allowed() -> bool:
    """Whether ``napari-sigma run`` may analyse a cube while it arrives (the same numbers either
    way): yes unless ``NAPARI_SIGMA_ARRIVING`` is ``0``/``no``/``false``."""
    from napari_sigma.env_flags import env_flag

    return env_flag("NAPARI_SIGMA_ARRIVING")


def _still_arriving(image) -> bool:
    """Whether ``image``'s rows are still being read (:mod:`napari_sigma.compute.arrival`):
    the import thread then goes on to numba's compiled code, as during a whole read."""
    from napari_sigma.compute.arrival import arrival_of

    return arrival_of(getattr(image, "counts", None)) is not None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def print_batch_summary(outcomes: Sequence[Outcome], stream=None) -> None:
    """A table of every input's outcome, after a batch of several inputs (on stdout)."""
    stream = stream or sys.stdout
    failed = sum(o.status != "ok" for o in outcomes)
    stream.write(f"summary: {len(outcomes)} inputs, {len(outcomes) - failed} ok, {failed} failed\n")
    width = max(len(o.path.name) for o in outcomes)
    for outcome in outcomes:
        detail = outcome.detail.removeprefix(f"{outcome.path}: ")
        warned = f" ({outcome.n_warnings} warnings)" if outcome.n_warnings else ""
        stream.write(f"  {outcome.status:<6} {outcome.path.name:<{width}}  {detail}{warned}\n")


def command_run(args: argparse.Namespace) -> int:
    """Analyse every input; a bad input is reported on one line and the others still run.

    Returns 0 when every input was analysed, 1 when any failed (the summary table says which).
    """
    from napari_sigma.pipeline.batch import output_names

    settings = build_settings(args)
    if args.shared_model or args.scheduler:  # --map N: each input's N-th map, as below
        return command_run_fields(args, settings)
    outcomes = []
    limit = memory_limit(args)
    for path, name in zip(args.inputs, output_names(args.inputs), strict=True):
        # inputs sharing a file name get their folders' names
        outcome = run_one(
            path, settings, args.out / name, limit, args.memory_limit is None, args.map - 1
        )
        if outcome.status == "ok":
            print(f"{path}: {outcome.detail}")
        else:
            print_error(_one_line(outcome.detail))
        outcomes.append(outcome)
    if len(outcomes) > 1:
        print_batch_summary(outcomes)
    return 1 if any(o.status != "ok" for o in outcomes) else 0


def command_demo(args: argparse.Namespace) -> int:
    """Analyse the synthetic example and print its accuracy against the ground truth."""
    from napari_sigma.metrics import phase_accuracy_report
    from napari_sigma.synthetic.generator import demo_sample

    sample = demo_sample(seed=args.seed_data)
    settings = build_settings(args)
    if settings.lines is None and settings.elements is None:
        settings = replace(settings, lines=tuple(sample.lines))
    result, written = _analyse_and_export(sample.image, settings, args.out)
    print(_summary(result, args.out))
    report = phase_accuracy_report(sample, result.labels, result.phase_spectra, result.components)
    print(f"phases found: {result.n_phases} (truth {len(sample.phase_names)})")
    for key, value in report.items():
        if isinstance(value, float | int):
            print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    for key in ("phase_spectra_cosine_summary", "components_cosine_summary"):
        if key in report:
            summary = report[key]
            print(
                f"{key.removesuffix('_summary')}: mean {summary['mean']:.4f}, min {summary['min']:.4f}"
            )
    print("files: " + ", ".join(sorted(p.name for p in written.values())))
    return 0


def command_elements(args: argparse.Namespace) -> int:
    """Print the suggested elements of a file with their scores, then, for a file that lists
    elements, its list and what a run analyses with no ``--elements`` (the list and the
    suggested elements it does not explain: `napari_sigma.xray.elements.default_elements`)."""
    from napari_sigma.io.readers.reading import read_any
    from napari_sigma.xray.elements import default_elements, suggest_elements

    data = read_any(args.file, map_index=args.map - 1)
    spectrum = data.sum_spectrum() if hasattr(data, "sum_spectrum") else data
    suggestions = suggest_elements(spectrum)
    for suggestion in suggestions:
        print(f"{suggestion.element:<3} {suggestion.line:<7} {suggestion.score:8.3f}")
    if not suggestions:
        total = float(sum(float(c) for c in spectrum.counts))
        print(f"no element stands out of the sum spectrum ({total:.0f} counts)")
    chosen = default_elements(spectrum)
    if chosen.listed:
        absent = (
            f" (its spectrum does not show {', '.join(chosen.absent)})" if chosen.absent else ""
        )
        print(f"the file lists: {', '.join(chosen.listed)}{absent}")
        print(f"a run analyses: {', '.join(chosen.elements)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-sigma`` command.

    Called without ``argv`` (the command line itself), the C library keeps freed memory for
    reuse (:func:`~napari_sigma.io.readers._memory.keep_freed_memory`: a pass's temporaries are not
    faulted in anew block after block), and the process ends here once the command has
    returned: exit handlers run and the streams are flushed, but the interpreter does not free
    every object and module one by one (:func:`end_process`). There, ``run`` starts its reading
    child first (:func:`_reader_started`), before this process imports numpy and the analysis,
    and the phases of a map are named with a forked child
    (:func:`~napari_sigma.compute.forked.allow_forked_maps`).
    """
    if argv is None:  # a process of its own: freed memory reused, not faulted in anew
        _reader_started(sys.argv[1:])
        from napari_sigma.compute.forked import allow_forked_maps
        from napari_sigma.io.readers._memory import keep_freed_memory

        keep_freed_memory()
        allow_forked_maps()  # the phases are named on two cores (compute.forked)
    code = _main(argv)
    if argv is None:
        end_process(code)
    return code


def end_process(code: int) -> NoReturn:
    """End the process as the interpreter would, without its teardown.

    After a 1024² run the teardown (freeing the analysis' objects, then torch, scipy and the
    other modules one by one) takes 0.5-1 s of CPU while the kernel frees the same memory at
    exit anyway. As the interpreter does: wait for non-daemon threads, run the ``atexit``
    handlers (the reading worker's stop, logging), flush the standard streams; then
    ``os._exit``. Every file the command writes is closed before it returns.
    """
    import atexit
    import os
    import threading

    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _reader_started(argv: Sequence[str]) -> bool:
    """Start the reading child of ``napari-sigma run ARGV...`` now, before the arguments are
    parsed (their checks import the analysis's settings, and numpy); whether it was started.

    The first read starts it otherwise, after this process has imported numpy and the CLI's
    modules (~0.1 s of CPU): an ``.hspy`` read, whose child imports dask, numba and scipy
    (~0.7 s), is then the longer of the two branches before a small map's analysis (the other:
    :mod:`~napari_sigma.pipeline.preimport`'s thread). Not for ``--shared-model`` or
    ``--scheduler`` (their fields are read elsewhere) or without isolation
    (``NAPARI_SIGMA_ISOLATE=0``); the child waits for the request instead of importing ahead.
    A command line that turns out to be wrong ends the process, and the child with it.
    """
    from napari_sigma.env_flags import env_flag

    if not argv or argv[0] != "run" or not env_flag("NAPARI_SIGMA_ISOLATE"):
        return False
    if any(arg.startswith(("--shared", "--sch")) for arg in argv):
        return False
    from napari_sigma.io.reading_process.isolation import start_for_a_read

    return start_for_a_read()


def _main(argv: Sequence[str] | None) -> int:
    args = make_parser().parse_args(argv)
    handlers = {
        "run": command_run,
        "apply": command_apply,
        "convert": command_convert,
        "demo": command_demo,
        "elements": command_elements,
    }
    try:
        return handlers[args.command](args)
    except SigmaError as error:  # an input no command can use: one line naming it, no traceback
        print_error(error)
        return 2 if isinstance(error, (SettingsError, _library_error())) else 1


def _library_error() -> type:
    """:class:`~napari_sigma.minerals.library.LibraryError`, imported when an error is reported
    (importing the library's module imports numpy: not before the reading child has started)."""
    from napari_sigma.minerals.library import LibraryError

    return LibraryError


if __name__ == "__main__":
    sys.exit(main())
