"""The many-field commands of ``napari-sigma``: ``run --shared-model``, ``run --scheduler``, ``apply``.

Kept apart from :mod:`napari_sigma.cli` (which parses the options) so that the single-field path
stays as it was.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _size(text: str) -> int:
    from napari_sigma.compute.chunks import parse_size

    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def memory_limit(args: argparse.Namespace) -> int | None:
    """The ``--memory-limit`` in bytes, or the default (0.8 of the available memory)."""
    from napari_sigma.compute.chunks import default_memory_limit

    return args.memory_limit if args.memory_limit is not None else default_memory_limit()


MAP_HELP = (
    "which spectrum image of a file that holds several (a Phenom .elid): 1 = the first "
    "(default), 2 = the second ...; the file's maps are named when it is read; the same map "
    "of every input"
)


def _map_number(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"a map number is 1, 2, ...: not {text!r}")
    return number


def add_map_option(parser: argparse.ArgumentParser) -> None:
    """``--map N`` (``args.map``: 1 = a file's first spectrum image)."""
    parser.add_argument("--map", type=_map_number, default=1, metavar="N", help=MAP_HELP)


def add_field_options(parser: argparse.ArgumentParser, shared: bool = True) -> None:
    """The options of many-field runs, and the memory limit."""
    parser.add_argument(
        "--memory-limit",
        type=_size,
        default=None,
        metavar="SIZE",
        help="bound on memory (e.g. 2GB): a larger cube is read lazily and processed in row "
        "bands (default: 0.8 of the available memory)",
    )
    if shared:
        parser.add_argument(
            "--shared-model",
            action="store_true",
            help="fit one phase model on a sample of all inputs and apply it to each: the same "
            "mineral gets the same phase id in every field; writes DIR/model.sigma and "
            "DIR/pooled_stats.csv",
        )
        parser.add_argument(
            "--sample-pixels",
            type=int,
            default=None,
            help="pixels of the pooled sample the shared model is fitted on (default 262144)",
        )
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run the fields as tasks on a running dask.distributed cluster (tcp://host:port); "
        "the workers must see the input and output paths",
    )


def print_error(message: object) -> None:
    """One ``napari-sigma: error: ...`` line on stderr (the message names the file)."""
    print(f"napari-sigma: error: {message}", file=sys.stderr)


def _executor(args: argparse.Namespace):
    from napari_sigma.compute.distributed import executor

    return executor(args.scheduler)


def _report(outcomes, out: Path) -> int:
    from napari_sigma.pipeline.batch import FIELDS_FILE, write_fields_table

    failures = 0
    for outcome in outcomes:
        if outcome.error:
            failures += 1
            print_error(outcome.error)
        else:
            print(f"{outcome.path}: {outcome.summary}")
            if outcome.warning:  # an applied model that may not describe the field
                print(f"napari-sigma: warning: {outcome.path}: {outcome.warning}", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    write_fields_table(out / FIELDS_FILE, outcomes)
    return failures


def command_run_fields(args: argparse.Namespace, settings) -> int:
    """``run`` on a cluster (``--scheduler``) or with ``--shared-model``."""
    if args.shared_model:
        return _run_shared(args, settings)
    from napari_sigma.pipeline.batch import analyse_field, output_names

    names = output_names(args.inputs)
    limit = memory_limit(args)
    tasks = [(p, settings, args.out, n, limit, args.map - 1)
             for p, n in zip(args.inputs, names, strict=True)]  # fmt: skip
    with _executor(args) as runner:
        outcomes = list(runner.map(analyse_field, tasks))
    return 1 if _report(outcomes, args.out) else 0


def _run_shared(args: argparse.Namespace, settings) -> int:
    from napari_sigma.cli import ProgressBar
    from napari_sigma.compute.progress import run_to_completion
    from napari_sigma.pipeline.batch import MODEL_FILE, LimitedField, output_names, readable_fields
    from napari_sigma.pipeline.fitting import DEFAULT_SAMPLE_PIXELS, fit_model
    from napari_sigma.pipeline.model import save_model

    paths, errors = readable_fields(args.inputs, args.map - 1)
    for error in errors:
        print_error(error)
    if not paths:
        return 1
    names = dict(zip(args.inputs, output_names(args.inputs), strict=True))
    with _executor(args) as runner:
        bar = ProgressBar()
        limit = memory_limit(args)
        try:
            sources = [LimitedField(p, limit, args.map - 1) for p in paths]
            samples = args.sample_pixels or DEFAULT_SAMPLE_PIXELS
            model = run_to_completion(fit_model(sources, settings, samples, executor=runner), bar)
        finally:
            bar.close()
        save_model(args.out / MODEL_FILE, model)
        phases = "phase" if model.n_phases == 1 else "phases"
        print(f"model: {model.n_phases} {phases} ({', '.join(model.phase_names)}) fitted on "
              f"{model.info['sampled_pixels']} pixels of {len(paths)} fields "
              f"-> {args.out / MODEL_FILE}")  # fmt: skip
        failures = _apply_all(model, paths, names, args.out, runner, limit, args.map - 1)
    return 1 if failures or errors else 0


def _apply_all(
    model, paths, names, out: Path, runner, limit: int | None, map_index: int = 0
) -> int:
    from napari_sigma.pipeline.batch import POOLED_STATS, apply_field, write_pooled_statistics

    tasks = [(p, model, out, names[p], limit, map_index) for p in paths]
    outcomes = list(runner.map(apply_field, tasks))
    failures = _report(outcomes, out)
    if len(outcomes) > failures:
        write_pooled_statistics(out / POOLED_STATS, outcomes)
        print(f"pooled statistics of {len(outcomes) - failures} fields -> {out / POOLED_STATS}")
    return failures


def command_apply(args: argparse.Namespace) -> int:
    """``apply MODEL FIELD... --out DIR``: classify every field with a saved model."""
    from napari_sigma.pipeline.batch import output_names

    model = model_to_apply(args.model)
    _known_to_check(model)
    if args.device is not None:
        from dataclasses import replace

        model = replace(model, settings=replace(model.settings, device=args.device))
    names = dict(zip(args.inputs, output_names(args.inputs), strict=True))
    with _executor(args) as runner:
        limit = memory_limit(args)
        failures = _apply_all(
            model, list(args.inputs), names, args.out, runner, limit, args.map - 1
        )
    return 1 if failures else 0


def _known_to_check(model) -> None:
    """What the field checks compare with, made once here (not on every field's task): the
    model's elements; a model saved without its beam energy is said to be so, once."""
    from napari_sigma.pipeline.model_check import model_elements

    model_elements(model)
    if model.info.get("beam_energy_kV") is None:
        print("model: its beam energy is not recorded (an older model file, or fields that do "
              "not record one): the fields' beam energies are not compared with it")  # fmt: skip


def model_to_apply(path: Path):
    """The model ``apply`` uses: a model file's, or a session's (napari's *Save session*).

    A session keeps a fitted model when it has one; otherwise the model is made from the
    session's labels as the user left them (edits, names and colours: the phases and names
    ``apply`` gives), with one pass over its source file (:func:`model_from_result`).
    """
    from napari_sigma.io.results.archive import read_archive
    from napari_sigma.pipeline.model import load_model
    from napari_sigma.pipeline.session import SESSION_KIND, load_session

    if read_archive(path).kind != SESSION_KIND:
        return load_model(path)  # a model, or one line saying what the file is not
    session = load_session(path)
    if session.model is not None:
        return session.model
    from napari_sigma.compute.progress import run_to_completion
    from napari_sigma.pipeline.fitting import model_from_result

    result = session.result(session.read_image())
    model = run_to_completion(model_from_result(result, session.labels, session.phases))
    source = result.image.source
    source = Path(source).name if source else "its embedded counts"
    phases = "phase" if model.n_phases == 1 else "phases"
    print(f"model: {model.n_phases} {phases} ({', '.join(model.phase_names)}) from the session "
          f"{path.name} (its labels as edited, on {source})")  # fmt: skip
    return model


def add_apply_command(commands) -> None:
    """The ``apply`` sub-command."""
    apply = commands.add_parser("apply", help="classify spectrum images with a saved model")
    apply.add_argument(
        "model", type=Path, help="a model file (model.sigma) or a session saved in napari"
    )
    apply.add_argument("inputs", nargs="+", type=Path, help="EDS files")
    apply.add_argument("--out", required=True, type=Path, help="output folder")
    apply.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"])
    add_map_option(apply)
    add_field_options(apply, shared=False)


def add_convert_command(commands) -> None:
    """The ``convert`` sub-command."""
    convert = commands.add_parser(
        "convert", help="copy a spectrum image to a .hspy file stored in row bands"
    )
    convert.add_argument("input", type=Path, help="an EDS file")
    convert.add_argument("output", type=Path, help="the .hspy file to write")
    convert.add_argument(
        "--band-mb", type=float, default=32.0, help="size of a stored row band (default 32 MB)"
    )
    convert.add_argument("--compression", default="lzf", choices=["lzf", "gzip", "none"])


def command_convert(args: argparse.Namespace) -> int:
    """``convert IN OUT.hspy``: a copy stored in row bands, readable under a memory limit."""
    from napari_sigma.io.readers.reading import read_spectrum_image
    from napari_sigma.io.results.writing import write_hspy

    if args.output.suffix.lower() != ".hspy":
        print_error(f"{args.output}: the output must be a .hspy file")
        return 1
    image = read_spectrum_image(args.input, lazy=True)
    ny, nx = image.shape
    row_bytes = nx * image.energy.size * image.counts.dtype.itemsize
    rows = int(min(ny, max(1, args.band_mb * 1e6 // row_bytes)))
    compression = None if args.compression == "none" else args.compression
    write_hspy(args.output, image, chunks=(rows, nx, image.energy.size), compression=compression)
    print(f"{args.input} -> {args.output} ({ny}x{nx}x{image.energy.size}, bands of {rows} rows)")
    return 0
