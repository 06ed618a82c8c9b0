"""Every stage runs on the requested device: the pipeline under a fake CUDA device.

No GPU is needed: a ``TorchFunctionMode`` makes ``"cuda"`` tensors that live on the CPU but are
tracked as device tensors. It records what a real GPU would refuse or pay for: an operation
mixing device tensors with (non-scalar) host tensors, ``.numpy()`` of a device tensor, a CPU
random generator used on device tensors; and the bytes copied host -> device and back, per stage.
The whole analysis then runs with ``device="cuda"`` and its labels are compared with the CPU run.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from napari_sigma.compute.progress import run_to_completion
from napari_sigma.pipeline import analysis
from napari_sigma.pipeline.analysis import AnalysisSettings, analyse
from napari_sigma.synthetic.generator import make_synthetic
from napari_sigma.unmixing import nmf as unmixing

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FLAG = "_napari_sigma_fake_cuda"
HOST_WORK_ELEMENTS = 4096  # a host torch operation on more elements is work left on the CPU
HOST_ALLOWED = {"numpy", "kaiming_uniform_", "uniform_", "dim", "size", "is_floating_point"}
INDEXING = {"__getitem__", "__setitem__", "index_select", "index_put_", "index_add_", "gather"}


def _is_cuda(device) -> bool:
    return device is not None and str(device).startswith("cuda")


def _on_device(value) -> bool:
    return isinstance(value, torch.Tensor) and getattr(value, FLAG, False)


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def _mark(value):
    for tensor in _tensors(value):
        setattr(tensor, FLAG, True)
    return value


@dataclass
class StageLog:
    device_ops: int = 0
    host_ops: int = 0
    to_device_bytes: int = 0
    to_host_bytes: int = 0
    problems: list[str] = field(default_factory=list)
    host_work: list[str] = field(default_factory=list)


class FakeCuda(TorchFunctionMode):
    """Run "cuda" tensors on the CPU, tracking them as device tensors (see the module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self.stage = "setup"
        self.logs: dict[str, StageLog] = {}
        self.device_generators: set[int] = set()

    @property
    def log(self) -> StageLog:
        return self.logs.setdefault(self.stage, StageLog())

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is torch.Tensor.to:
            return self._to(args, kwargs)
        if func is torch.Tensor.cuda:
            return self._upload(args[0])
        if func is torch.Tensor.cpu:
            return self._download(args[0])
        if func is torch.Tensor.numpy and _on_device(args[0]):
            self.log.problems.append("numpy() of a device tensor")
            return args[0].numpy()
        name = getattr(func, "__name__", str(func))
        if name == "_has_compatible_shallow_copy_type":  # a type check of Module.to
            return func(*args, **kwargs)
        if name in ("__get__", "__set__"):
            return self._attribute(func, name, args, kwargs)
        wants_device = _is_cuda(kwargs.get("device"))
        if wants_device:
            kwargs["device"] = "cpu"
        inputs = list(_tensors((args, kwargs)))
        on_device = [t for t in inputs if _on_device(t)]
        host = [t for t in inputs if not _on_device(t) and t.dim() > 0]
        if name in INDEXING:  # CUDA tensors accept host index tensors (copied over)
            host = [t for t in host if t.dtype.is_floating_point]
        if on_device and host:
            shapes = [tuple(t.shape) for t in host]
            self.log.problems.append(f"{name} mixes device tensors with host tensors {shapes}")
        generator = kwargs.get("generator")
        if on_device and generator is not None and id(generator) not in self.device_generators:
            self.log.problems.append(f"{name} draws device numbers from a CPU generator")
        if wants_device and not on_device:
            arrays = [a for a in args if isinstance(a, np.ndarray)]
            self.log.to_device_bytes += sum(t.nbytes for t in inputs) + sum(
                a.nbytes for a in arrays
            )
        out = func(*args, **kwargs)
        if on_device or wants_device:
            self.log.device_ops += 1
            return _mark(out)
        self.log.host_ops += 1
        size = max((t.numel() for t in inputs), default=0)
        if size >= HOST_WORK_ELEMENTS:
            self.log.host_work.append(f"{name} on {size} host elements")
        return out

    def _attribute(self, func, name, args, kwargs):
        """Attribute access: ``.device``/``.is_cuda`` of device tensors say CUDA; ``.grad`` and
        ``.data`` of device tensors are device tensors; assigning a device tensor to ``.data``
        (how ``Module.to`` moves parameters) makes the owner a device tensor."""
        out = func(*args, **kwargs)
        owner = args[0]
        if name == "__set__":
            if any(_on_device(t) for t in _tensors(args[1:])):
                _mark(owner)
            return out
        if not _on_device(owner):
            return out
        if isinstance(out, torch.device):
            return torch.device("cuda", 0)
        if isinstance(out, bool) and getattr(func, "__self__", None) is torch.Tensor.is_cuda:
            return True
        return _mark(out) if isinstance(out, torch.Tensor) else out

    def _to(self, args, kwargs):
        tensor, rest = args[0], list(args[1:])
        target = kwargs.get("device")
        for i, item in enumerate(rest):
            if isinstance(item, str | torch.device):
                target, rest[i] = item, "cpu"
            elif isinstance(item, torch.Tensor):
                target = "cuda" if _on_device(item) else "cpu"
        if "device" in kwargs:
            kwargs["device"] = "cpu"
        out = tensor.to(*rest, **kwargs)
        if target is None:
            return _mark(out) if _on_device(tensor) else out
        if _is_cuda(target):
            return self._upload(out)
        return self._download(out) if _on_device(tensor) else out

    def _upload(self, tensor):
        if not _on_device(tensor):
            self.log.to_device_bytes += tensor.nbytes
        return _mark(tensor.view_as(tensor))

    def _download(self, tensor):
        if _on_device(tensor):
            self.log.to_host_bytes += tensor.nbytes
        return tensor.view_as(tensor)  # a new, unmarked tensor object


@pytest.fixture
def fake_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    mode = FakeCuda()
    real_generator = torch.Generator

    def generator(device="cpu"):
        made = real_generator(device="cpu")
        if _is_cuda(device):
            mode.device_generators.add(id(made))
        return made

    monkeypatch.setattr(torch, "Generator", generator)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (80 * 2**30, 80 * 2**30))

    def host_pass(*args, **kwargs):
        raise AssertionError("a phase-sum pass over the cube ran on the CPU")

    monkeypatch.setattr(unmixing, "phase_sum_spectra", host_pass)
    stage_of_stopwatch = analysis._Stopwatch.stage
    timed = analysis._timed

    @contextmanager
    def stage(self, name):
        mode.stage = name
        with stage_of_stopwatch(self, name):
            yield

    def timed_stage(clock, name, computation):
        mode.stage = name
        return (yield from timed(clock, name, computation))

    monkeypatch.setattr(analysis._Stopwatch, "stage", stage)
    monkeypatch.setattr(analysis, "_timed", timed_stage)
    tf32 = torch._C._get_cublas_allow_tf32(), torch.backends.cudnn.allow_tf32
    yield mode
    torch._C._set_cublas_allow_tf32(tf32[0])
    torch.backends.cudnn.allow_tf32 = tf32[1]


@pytest.fixture(scope="module")
def sample():
    return make_synthetic(
        seed=1, shape=(40, 40), phases=("quartz", "albite", "magnetite"), n_channels=1024
    )


def _settings(sample, device: str) -> AnalysisSettings:
    return AnalysisSettings.preset("default", lines=tuple(sample.lines), device=device)


@pytest.fixture(scope="module")
def cpu(sample):
    """The CPU run (made before ``fake_cuda`` tells torch that CUDA exists)."""
    return run_to_completion(analyse(sample.image, _settings(sample, "cpu")))


def test_every_stage_runs_on_the_device_and_gives_the_cpu_labels(cpu, fake_cuda, sample):
    with fake_cuda:
        gpu = run_to_completion(analyse(sample.image, _settings(sample, "cuda")))
    logs = fake_cuda.logs
    summary = {s: {**vars(log), "problems": sorted(set(log.problems))} for s, log in logs.items()}
    assert gpu.device == "cuda"
    for stage in ("features", "latent", "clustering", "unmixing"):
        assert logs[stage].device_ops > 0, summary
    problems = {s: sorted(set(log.problems)) for s, log in logs.items() if log.problems}
    assert problems == {}, problems
    # no torch arithmetic on host tensors of any size: only conversions and the network's
    # initialisation (made on the CPU for seeding, then moved) touch host tensors
    computed = {
        stage: sorted({work for work in log.host_work if work.split()[0] not in HOST_ALLOWED})
        for stage, log in logs.items()
    }
    assert not any(computed.values()), computed
    cube_bytes = sample.image.counts.nbytes
    as_float32 = sample.image.counts.size * 4
    for stage in ("features", "latent", "clustering", "unmixing"):
        # the cube is not copied back: what comes back per stage is per-pixel results
        assert logs[stage].to_host_bytes < cube_bytes / 4, summary
        # and it goes over at most once per stage (features: one pass; unmixing: resident)
        assert logs[stage].to_device_bytes <= 1.05 * as_float32, summary
    assert logs["unmixing"].to_device_bytes >= as_float32, summary
    np.testing.assert_array_equal(gpu.labels, cpu.labels)
    np.testing.assert_allclose(gpu.abundances, cpu.abundances, rtol=1e-3, atol=1e-2)
