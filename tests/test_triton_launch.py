"""attention.kernels' CachedLauncher against a fake kernel that records how it was launched.

The fake mimics Triton's API: ``kernel[grid](*args, **constexprs, **options)`` compiles (counted)
and returns a compiled kernel whose ``compiled[grid3](*all_args)`` launches it through Triton's
runner, and whose ``compiled.run(g0, g1, g2, stream, function, packed_metadata, launch_metadata,
enter_hook, exit_hook, *all_args)`` is the C launcher; ``arg_names`` lists the parameters in
signature order. The launcher is given fake launch hooks and a fake current stream (no GPU here).
"""
from __future__ import annotations

import pytest
import torch

from attention.kernels import CachedLauncher

STREAM = 7


class FakeHooks:
    def __init__(self):
        self.calls = []


@pytest.fixture
def fake_hooks_and_stream():
    return (FakeHooks(), FakeHooks())


@pytest.fixture
def make_launcher(fake_hooks_and_stream):
    def make(kernel, hooks=True):
        chains = fake_hooks_and_stream if hooks else None
        return CachedLauncher(kernel, hooks=lambda: chains, stream=lambda index: STREAM)
    return make


class FakeCompiled:
    function, packed_metadata = "fn-handle", "packed"

    def __init__(self, log):
        self.log = log

    def __getitem__(self, grid):
        return lambda *args: self.log.append(("runner", grid, args))

    def run(self, g0, g1, g2, stream, function, packed, metadata, enter, leave, *args):
        self.log.append(("run", (g0, g1, g2), (stream, function, packed, metadata, enter, leave), args))


class FakeKernel:
    arg_names = ["X", "n", "scale", "BLOCK", "EVEN"]

    def __init__(self, returns_compiled=True):
        self.log, self.compiles = [], 0
        self.returns_compiled = returns_compiled

    def __getitem__(self, grid):
        def jit(*args, **kwargs):
            self.compiles += 1
            self.log.append(("jit", grid, args, kwargs))
            return FakeCompiled(self.log) if self.returns_compiled else None
        return jit


def launch(launcher, x, n=64, scale=0.5, block=16, grid=(4, 2)):
    launcher.launch(grid, (x, n, scale), {"EVEN": True, "BLOCK": block}, {"num_warps": 4})


def test_second_call_with_same_signature_launches_the_compiled_kernel_with_all_args_in_order(make_launcher):
    kernel, x = FakeKernel(), torch.zeros(8)
    launcher = make_launcher(kernel)
    launch(launcher, x)
    launch(launcher, x, scale=0.25)  # floats are not specialised: same signature
    assert kernel.compiles == 1
    assert kernel.log[0][0] == "jit" and kernel.log[0][3] == {"EVEN": True, "BLOCK": 16, "num_warps": 4}
    # The C launcher, on the current stream, no hook metadata, constexprs in signature order.
    assert kernel.log[1] == ("run", (4, 2, 1), (STREAM, "fn-handle", "packed", None, None, None),
                             (x, 64, 0.25, 16, True))


def test_a_registered_launch_hook_gets_tritons_own_runner(fake_hooks_and_stream, make_launcher):
    kernel, x = FakeKernel(), torch.zeros(8)
    launcher = make_launcher(kernel)
    launch(launcher, x)
    fake_hooks_and_stream[0].calls.append(print)  # e.g. a profiler registered after the first call
    launch(launcher, x)
    assert kernel.log[1] == ("runner", (4, 2, 1), (x, 64, 0.5, 16, True))


def test_a_triton_without_hook_chains_gets_tritons_own_runner(make_launcher):
    kernel, x = FakeKernel(), torch.zeros(8)
    launcher = make_launcher(kernel, hooks=False)
    launch(launcher, x)
    launch(launcher, x)
    assert kernel.compiles == 1 and kernel.log[1] == ("runner", (4, 2, 1), (x, 64, 0.5, 16, True))


def test_what_triton_specialises_on_makes_a_new_signature(make_launcher):
    kernel, x = FakeKernel(), torch.zeros(16)
    launcher = make_launcher(kernel)
    launch(launcher, x)
    launch(launcher, x, n=65)  # integer value
    launch(launcher, x.to(torch.float64))  # pointer dtype
    launch(launcher, x[1:])  # pointer no longer 16-byte aligned
    launch(launcher, x, block=32)  # constexpr
    launch(launcher, x, grid=(8, 2))  # grid
    assert kernel.compiles == 6
    assert launcher.cached_signatures() == 6


def test_without_a_compiled_kernel_every_call_goes_through_the_jit_path(make_launcher):
    kernel, x = FakeKernel(returns_compiled=False), torch.zeros(8)  # like TRITON_INTERPRET=1
    launcher = make_launcher(kernel)
    launch(launcher, x)
    launch(launcher, x)
    assert kernel.compiles == 2 and launcher.cached_signatures() == 0


def test_signature_cache_stays_bounded():
    from attention.kernels import SignatureCache

    cache = SignatureCache(limit=3)
    for i in range(7):
        assert cache.remember(i, i * 10) == i * 10
        assert len(cache) <= 3 and cache[i] == i * 10
