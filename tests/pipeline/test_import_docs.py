"""scipy's and matplotlib's import-time docstring rendering left out of the import thread."""

import json
import subprocess
import sys
import textwrap

import pytest

from napari_sigma.pipeline import import_docs

pytest.importorskip("scipy")


def _fresh_process(code: str) -> dict:
    """Run ``code`` in a fresh interpreter (scipy and matplotlib not imported yet); the JSON it
    prints last."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_scipy_parses_no_docstring_in_the_block_and_again_after_it():
    from scipy._lib import _array_api

    parser = _array_api.FunctionDoc
    with import_docs.docs_unrendered(("scipy.ndimage",)):
        assert _array_api.FunctionDoc is import_docs._DocAsWritten
    assert _array_api.FunctionDoc is parser


def test_everything_is_put_back_when_the_block_raises():
    from matplotlib.artist import Artist
    from scipy._lib import _util

    documented = Artist.__dict__["_update_set_signature_and_docstring"]
    parser = _util.FunctionDoc
    with pytest.raises(ImportError), import_docs.docs_unrendered(("scipy", "matplotlib.figure")):
        assert _util.FunctionDoc is not parser
        assert Artist.__dict__["_update_set_signature_and_docstring"] is not documented
        raise ImportError("a module of the block")
    assert _util.FunctionDoc is parser
    assert Artist.__dict__["_update_set_signature_and_docstring"] is documented


def test_libraries_not_imported_by_the_block_are_left_alone():
    from scipy._lib import _array_api

    parser = _array_api.FunctionDoc
    with import_docs.docs_unrendered(("numpy", "napari_sigma.energy")):
        assert _array_api.FunctionDoc is parser


def test_a_decorated_function_keeps_its_docstring_as_written():
    from scipy._lib._array_api import xp_capabilities

    def twice(x):
        """Twice ``x``.

        Parameters
        ----------
        x : float
        """
        return 2 * x

    with import_docs.docs_unrendered(("scipy",)):
        decorated = xp_capabilities()(twice)
    assert decorated(2.5) == 5.0
    assert decorated.__doc__.startswith("Twice ``x``.") and "x : float" in decorated.__doc__


def test_the_imports_work_and_classes_defined_after_the_block_are_documented():
    found = _fresh_process(
        """
        import json
        import numpy as np
        from napari_sigma.pipeline.import_docs import docs_unrendered

        with docs_unrendered(("scipy.ndimage", "scipy.optimize", "matplotlib.figure")):
            import scipy.ndimage, scipy.optimize, matplotlib.figure
        from matplotlib.lines import Line2D
        from matplotlib.artist import Artist
        from scipy._lib import _array_api

        class Later(Artist):
            pass

        labels, n = scipy.ndimage.label(np.array([[1, 0, 1], [1, 0, 0]]))
        x, residual = scipy.optimize.nnls(np.eye(2), np.array([1.0, -1.0]))
        print(json.dumps({
            "n": int(n), "x": x.tolist(),
            "label_doc": scipy.ndimage.label.__doc__.lstrip().splitlines()[0],
            "line_doc": Line2D.set.__doc__, "later_doc": Later.set.__doc__,
            "parser": _array_api.FunctionDoc.__module__,
        }))
        """
    )
    assert found["n"] == 2 and found["x"] == [1.0, 0.0]
    assert found["label_doc"] == "Label features in an array."
    assert "matplotlib.artist.kwdoc(Line2D)" in found["line_doc"]
    assert "Properties:" in found["later_doc"] and "zorder" in found["later_doc"]
    assert found["parser"] == "scipy._lib._docscrape"


_DRAW = """
    import io, json, hashlib
    import numpy as np
    from napari_sigma.pipeline.import_docs import docs_unrendered

    if {unrendered}:
        with docs_unrendered(("matplotlib.figure", "matplotlib.backends.backend_agg")):
            import matplotlib.figure, matplotlib.backends.backend_agg
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    figure = Figure(figsize=(6, 3), dpi=80, layout="constrained")
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    left.imshow(np.arange(64.0).reshape(8, 8), interpolation="nearest")
    left.legend(handles=[Patch(color="C1", label="quartz (12.5 %)")], loc="upper left")
    right.plot(np.linspace(0, 10, 50), np.exp(np.linspace(0, 5, 50)), lw=0.8, label="a")
    right.set_yscale("log")
    right.axvline(1.74, color="0.5", ls="--")
    right.set_xlabel("Energy (keV)")
    right.set(title="set()", xlim=(0, 10))
    figure.suptitle("napari-sigma: test")
    png = io.BytesIO()
    figure.savefig(png, dpi=80)
    print(json.dumps({{"sha": hashlib.sha1(png.getvalue()).hexdigest()}}))
"""


def test_the_drawing_is_the_same_byte_for_byte():
    pytest.importorskip("matplotlib")
    rendered = _fresh_process(_DRAW.format(unrendered=False))
    unrendered = _fresh_process(_DRAW.format(unrendered=True))
    assert unrendered == rendered


def test_the_switch_off_leaves_the_libraries_alone(monkeypatch):
    from scipy._lib import _array_api

    parser = _array_api.FunctionDoc
    monkeypatch.setenv("NAPARI_SIGMA_DOCS_UNRENDERED", "0")
    with import_docs.docs_unrendered(("scipy.ndimage",)):
        assert _array_api.FunctionDoc is parser


def test_a_process_without_the_import_thread_documents_as_usual():
    # napari's process and a user's `import napari_sigma` never start the import thread: what
    # they import is documented by the libraries themselves
    found = _fresh_process(
        """
        import json
        import napari_sigma, napari_sigma.pipeline.analysis, napari_sigma.io.results.export
        import scipy.ndimage
        from matplotlib.lines import Line2D

        print(json.dumps({"label": scipy.ndimage.label.__doc__, "line": Line2D.set.__doc__}))
        """
    )
    assert "Array API Standard Support" in found["label"]
    assert "Properties:" in found["line"] and "kwdoc" not in found["line"]


def test_only_the_cli_starts_the_import_thread():
    from pathlib import Path

    import napari_sigma

    root = Path(napari_sigma.__file__).parent
    callers = {
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "start_importing(" in path.read_text(encoding="utf-8")
    }
    assert callers == {"cli.py", "pipeline/preimport.py"}


def _cli_outputs(source, out, unrendered: str) -> dict:
    import os

    env = {**os.environ, "NAPARI_SIGMA_DOCS_UNRENDERED": unrendered, "PYTHONHASHSEED": "0"}
    argv = [sys.executable, "-m", "napari_sigma.cli", "run", str(source), "--out", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    files = {}
    for path in sorted((out / source.stem).iterdir()):
        if path.name == "run.json":  # the same but for the stages' clock times
            run = json.loads(path.read_text())
            run.pop("timings_s")
            files[path.name] = json.dumps(run, sort_keys=True)
        else:
            files[path.name] = path.read_bytes()
    return files


def test_a_run_writes_the_same_files_with_and_without_the_docs(SHARED_EDS, tmp_path):
    source = SHARED_EDS / "bruker" / "30x30_instructively_packed_16bit_compressed.bcf"
    rendered = _cli_outputs(source, tmp_path / "rendered", "0")
    unrendered = _cli_outputs(source, tmp_path / "unrendered", "1")
    assert "report.png" in unrendered and "phases.tif" in unrendered
    assert unrendered == rendered


_CHILD = """
    import json
    from napari_sigma.pipeline.import_docs import unrendered_from_now_on

    set_up = unrendered_from_now_on()
    import numpy as np
    import dask.array as da
    import scipy.special
    from dask.utils import derived_from
    from matplotlib.lines import Line2D

    class Original:
        def there(self):
            "The original's docs."

    class Derived:
        @derived_from(Original)
        def there(self):
            "Dask's own docs."
            return 1

        @derived_from(Original)
        def missing(self):
            return 2

    try:
        Derived().missing()
        missing = "ran"
    except NotImplementedError:
        missing = "NotImplementedError"
    print(json.dumps({
        "set_up": set_up, "ravel": da.ravel(da.ones((2, 2))).compute().tolist(),
        "erf": float(scipy.special.erf(0.5)), "erf_doc": scipy.special.erf.__doc__,
        "ravel_doc": da.ravel.__doc__, "there": Derived().there(),
        "there_doc": Derived.there.__doc__, "missing": missing, "line_doc": Line2D.set.__doc__,
    }))
"""


def test_the_reading_child_s_libraries_keep_their_own_docs_and_work_the_same():
    pytest.importorskip("dask.array")
    found = _fresh_process(_CHILD)
    assert found["set_up"] and found["ravel"] == [1.0] * 4
    assert found["erf"] == pytest.approx(0.5204998778130465, rel=1e-15)
    assert "Array API Standard Support" not in found["erf_doc"]
    assert "This docstring was copied" not in found["ravel_doc"]
    assert found["there"] == 1 and found["there_doc"] == "Dask's own docs."
    assert found["missing"] == "NotImplementedError"  # as dask makes it without the change
    assert "matplotlib.artist.kwdoc(Line2D)" in found["line_doc"]


def test_the_reading_child_s_docs_with_the_switch_off(monkeypatch):
    pytest.importorskip("dask.array")
    monkeypatch.setenv("NAPARI_SIGMA_DOCS_UNRENDERED", "0")
    found = _fresh_process(_CHILD)
    assert not found["set_up"] and found["missing"] == "NotImplementedError"
    assert "Array API Standard Support" in found["erf_doc"]
    assert "This docstring was copied" in found["ravel_doc"]
    assert "Properties:" in found["line_doc"]
