"""Fields as tasks on a dask.distributed cluster (a scheduler and two workers on 127.0.0.1)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sigma.cli import main
from napari_sigma.compute.distributed import DaskExecutor, LocalExecutor
from napari_sigma.errors import SigmaError
from napari_sigma.io.results.export import read_labels_tiff
from napari_sigma.io.results.writing import write_hspy
from napari_sigma.synthetic.generator import make_synthetic

pytestmark = pytest.mark.slow  # starts two worker processes (a few seconds)


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        worker_dashboard_address=None,
    ) as local:
        yield local.scheduler_address


@pytest.fixture(scope="module")
def fields(tmp_path_factory):
    folder = tmp_path_factory.mktemp("in")
    minerals = ("quartz", "albite", "magnetite")
    paths = []
    for seed in (21, 22, 23):
        sample = make_synthetic(seed=seed, shape=(32, 32), phases=minerals, grain_size=10)
        paths.append(write_hspy(folder / f"f{seed}.hspy", sample.image, compression=None))
    return [str(p) for p in paths]


def _outputs(out, names):
    labels = [read_labels_tiff(out / n / "phases.tif")[0] for n in names]
    import tifffile

    maps = [tifffile.imread(out / n / "abundances.tif") for n in names]
    return labels, maps


def test_cluster_runs_give_the_local_results_field_by_field(cluster, fields, tmp_path):
    common = ["--device", "cpu", "--latent", "pca"]
    for mode, inputs in ((["--shared-model"], fields), ([], fields[:2])):
        names = [f"f{21 + i}" for i in range(len(inputs))]
        local, remote = tmp_path / f"local{len(mode)}", tmp_path / f"remote{len(mode)}"
        assert main(["run", *inputs, "--out", str(local), *mode, *common]) == 0
        argv = ["run", *inputs, "--out", str(remote), *mode, *common, "--scheduler", cluster]
        assert main(argv) == 0
        local_labels, local_maps = _outputs(local, names)
        remote_labels, remote_maps = _outputs(remote, names)
        for a, b in zip(local_labels + local_maps, remote_labels + remote_maps, strict=True):
            np.testing.assert_array_equal(a, b)
    assert (tmp_path / "remote1" / "model.sigma").is_file()


def test_executors_keep_the_order_and_report_an_unreachable_scheduler(cluster):
    with DaskExecutor(cluster) as remote:
        assert remote.n_workers == 2
        assert list(remote.map(abs, [-3, 1, -2])) == [3, 1, 2]
    assert list(LocalExecutor().map(abs, [-1, 2])) == [1, 2]
    with pytest.raises(SigmaError, match="cannot reach the dask scheduler"):
        DaskExecutor("tcp://127.0.0.1:9", timeout=1)
