"""compute.torch_draws: torch's CPU generator's draws made by numpy, checked against torch."""

import numpy as np
import pytest

from napari_sigma.compute.torch_draws import TorchCpuDraws

torch = pytest.importorskip("torch")


def _generator(seed):
    return torch.Generator(device="cpu").manual_seed(seed)


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 16384, 2**27, 2**28 - 1, 2**28, 2**31 + 5, 2**40])
def test_randint_is_torchs(n):
    for seed in (0, 1, 1000, 2**32 + 3):
        ours, theirs = TorchCpuDraws(seed), _generator(seed)
        assert [ours.randint(n) for _ in range(5)] == [
            int(torch.randint(n, (1,), generator=theirs)) for _ in range(5)
        ]


def test_multinomial_and_the_stream_after_it_are_torchs():
    rng = np.random.default_rng(5)
    for seed in range(30):
        n = int(rng.integers(1, 3000))
        p = rng.random(n) ** 4
        p[rng.random(n) < 0.3] = 0.0  # points already taken: never drawn
        p[0] = 0.5
        p /= p.sum()
        ours, theirs = TorchCpuDraws(seed), _generator(seed)
        tensor = torch.as_tensor(p)
        for _ in range(4):
            assert ours.multinomial_one(p) == int(torch.multinomial(tensor, 1, generator=theirs))
        assert ours.randint(997) == int(torch.randint(997, (1,), generator=theirs))


def test_ties_go_to_the_first_as_torchs():
    p = np.full(50, 1.0 / 50)
    for seed in range(10):
        theirs = int(torch.multinomial(torch.as_tensor(p), 1, generator=_generator(seed)))
        assert TorchCpuDraws(seed).multinomial_one(p) == theirs


def test_a_saved_state_continues_the_same_draws():
    draws = TorchCpuDraws(3)
    draws.randint(10)
    state = draws.get_state()
    after = [draws.randint(100), draws.multinomial_one(np.ones(5) / 5)]
    draws.randint(7)
    draws.set_state(state)
    assert [draws.randint(100), draws.multinomial_one(np.ones(5) / 5)] == after
