"""What the Triton kernels of this package share: the Triton import, the dtype and head_dim
limits, the base-2 online-softmax step, the stride fix-up, tile configs, the launch cache and the
one cache of launch plans.

Shape convention: q, k, v and outputs are ``(batch, seq_len, num_heads, head_dim)``.
Under ``TRITON_INTERPRET=1`` (set before a kernel module is imported) kernels run on CPU tensors.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence

import torch

from .._cache import SignatureCache

try:
    import triton
    import triton.language as tl
    jit = triton.jit
except ImportError:  # the package must still import where triton is missing (e.g. macOS CPU)
    triton = None

    class _TlStub:
        constexpr = object  # only used as an annotation in kernel signatures

    tl = _TlStub()

    def jit(fn):
        return fn

HALF_DTYPES = (torch.float16, torch.bfloat16)
HEAD_DIMS = (16, 32, 64, 128)
LOG2E = 1.4426950408889634  # softmax runs in base 2: exp(x) = exp2(x * log2 e)


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def softmax_scale(head_dim: int, scale: float | None) -> float:
    """The softmax scale: ``scale`` as given, else 1 / sqrt(head_dim)."""
    return 1.0 / math.sqrt(head_dim) if scale is None else float(scale)


def unit_last_stride(t: torch.Tensor) -> torch.Tensor:
    # Kernels load a row of head_dim as one vector: any strides except along head_dim.
    return t if t.stride(-1) == 1 else t.contiguous()


def has_unit_last_stride(*tensors: torch.Tensor) -> bool:
    return all(t.stride(-1) == 1 for t in tensors)


def needs_grad(*tensors: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def signature(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple:
    """What a compiled launch depends on: shapes, strides, dtype, device and 16-byte alignment
    (Triton specialises pointers on it). Plans are valid for inputs with the same signature."""
    return (q.shape, k.shape, v.shape, q.stride(), k.stride(), v.stride(), q.dtype, k.dtype,
            v.dtype, q.device, k.device, v.device,
            q.data_ptr() % 16, k.data_ptr() % 16, v.data_ptr() % 16)


@dataclass(frozen=True)
class KernelConfig:
    """Tile sizes and launch options of one kernel launch."""

    block_m: int
    block_n: int
    num_warps: int
    num_stages: int


# The one cache of launch plans for callers that keep none of their own (the kernel modules'
# function entry points): (kernel, input signature, pattern, options) -> plan.
PLANS = SignatureCache(limit=1024)


def cached_plan(key: Hashable, build: Callable[[], Any]) -> Any:
    plan = PLANS.get(key)
    if plan is None:
        plan = PLANS.remember(key, build())
    return plan


@jit
def online_softmax(acc, l_i, m_i, qk, scale_log2):
    """Fold raw scores ``qk`` (BLOCK_M, BLOCK_N; masked entries -inf) into the running row max
    ``m_i`` and row sum ``l_i``, in base 2 (scores times ``scale_log2`` = softmax scale * log2 e,
    which is positive); returns (p, acc rescaled to the new max, l_i, m_i), and the caller adds
    ``p @ v``. The row max is taken on the raw scores and scaled once per row, so each score
    costs one fused multiply-add before exp2 instead of a multiply and a subtract."""
    m_new = tl.maximum(m_i, tl.max(qk, 1) * scale_log2)
    p = tl.math.exp2(qk * scale_log2 - m_new[:, None])
    alpha = tl.math.exp2(m_i - m_new)
    l_i = l_i * alpha + tl.sum(p, 1)
    return p, acc * alpha[:, None], l_i, m_new


# ----------------------------------------------------------------------------------------------
# Launching. ``kernel[grid](*args, **meta)`` binds and specialises every argument on every call:
# about 33 us of host time per launch on an H100, close to the 44 us of GPU time of a whole
# 4K-token dilated forward. The ``CompiledKernel`` that call returns can be launched again, so a
# plan keeps one bound to its grid, and later launches call its C launcher (``compiled.run``)
# directly on the current stream: Triton's own ``compiled[grid](*args)`` adds ~4 us per call
# building launch metadata that only a registered launch hook (a profiler such as proton) reads,
# so while one is registered, Triton's own runner is used. Where the JIT call returns no compiled
# kernel (the CPU interpreter), every call goes through the JIT path, which is always correct.
# ----------------------------------------------------------------------------------------------

Launch = Callable[..., None]  # launch(*args): the kernel's runtime arguments, in signature order


def _arg_key(arg: Any) -> Any:
    # What Triton specialises on (see triton/runtime/jit.py `specialize_impl`): pointer dtype and
    # 16-byte alignment; integer values (== 1, divisible by 16); floats and bools are not specialised.
    if isinstance(arg, torch.Tensor):
        return arg.dtype, arg.data_ptr() % 16 == 0
    if isinstance(arg, bool) or isinstance(arg, float):
        return type(arg)
    return arg


def current_stream(device_index: int) -> int:
    return torch._C._cuda_getCurrentRawStream(device_index)


def launch_hooks() -> tuple[Any, Any] | None:
    """Triton's launch hook chains (``triton.knobs``, Triton >= 3.4), or None where it has none."""
    try:
        from triton import knobs
    except ImportError:
        return None
    enter, leave = knobs.runtime.launch_enter_hook, knobs.runtime.launch_exit_hook
    return (enter, leave) if hasattr(enter, "calls") and hasattr(leave, "calls") else None


def _device_index(args: Sequence[Any]) -> int:
    first = next((a for a in args if isinstance(a, torch.Tensor)), None)
    return max(first.get_device(), 0) if first is not None else 0


class CachedLauncher:
    """Launches one ``@triton.jit`` kernel; re-uses its compiled form per argument signature.

    ``args`` are the kernel's leading runtime parameters in order, ``constexprs`` the trailing
    constexpr parameters by name, ``options`` the launch options (``num_warps``, ``num_stages``).
    ``hooks`` and ``stream`` say how to find Triton's launch hooks and the current stream
    (defaults: Triton's and torch's; tests pass fakes).
    """

    def __init__(self, kernel, hooks: Callable[[], tuple | None] = launch_hooks,
                 stream: Callable[[int], int] = current_stream) -> None:
        self.kernel = kernel
        self._hooks, self._stream = hooks, stream
        self._launches = SignatureCache(limit=512)  # key -> launch function for that signature

    def bind(self, compiled, grid: Sequence[int], device_index: int, tail: tuple = ()) -> Launch:
        """A launch function for a compiled kernel on ``grid`` (3 ints): ``launch(*args)``
        appends the constexpr values ``tail`` and launches on the device's current stream."""
        runner = compiled[tuple(grid)]
        hooks = self._hooks()
        run = getattr(compiled, "run", None)
        if hooks is None or run is None or not hasattr(compiled, "packed_metadata"):
            return lambda *args: runner(*args, *tail)  # a Triton whose internals we do not know
        enter, leave = hooks
        function, packed = compiled.function, compiled.packed_metadata
        g0, g1, g2 = grid
        stream = self._stream

        def launch(*args):
            if enter.calls or leave.calls:  # someone listens: Triton's path builds their metadata
                runner(*args, *tail)
            else:
                run(g0, g1, g2, stream(device_index), function, packed, None, None, None,
                    *args, *tail)
        return launch

    def first_launch(self, grid: Sequence[int], args: Sequence[Any], constexprs: dict[str, Any],
                     options: dict[str, Any]) -> Launch | None:
        """Launch through Triton's JIT (compiling if needed); return a launch function for later
        calls whose arguments have the same signature, or None where there is no compiled kernel."""
        compiled = self.kernel[tuple(grid)](*args, **constexprs, **options)
        if compiled is None or not hasattr(compiled, "__getitem__"):
            return None  # interpreter: nothing to cache
        names = list(getattr(self.kernel, "arg_names", ()))[len(args):]
        if sorted(names) != sorted(constexprs):
            return None  # parameters left to defaults: only the JIT path knows their values
        tail = tuple(constexprs[name] for name in names)  # constexprs in signature order
        return self.bind(compiled, (tuple(grid) + (1, 1))[:3], _device_index(args), tail)

    def launch(self, grid: Sequence[int], args: Sequence[Any], constexprs: dict[str, Any],
               options: dict[str, Any]) -> None:
        """Launch, re-using the compiled kernel of an earlier launch with the same signature."""
        device = args[0].get_device() if isinstance(args[0], torch.Tensor) else None
        key = (tuple(grid), tuple(_arg_key(a) for a in args), tuple(constexprs.items()),
               tuple(options.items()), device)
        known = self._launches.get(key)
        if known is not None:
            known(*args)
            return
        bound = self.first_launch(grid, args, constexprs, options)
        if bound is not None:
            self._launches.remember(key, bound)

    def cached_signatures(self) -> int:
        return len(self._launches)


class BoundLaunch:
    """One kernel launch whose grid, constexprs and options are fixed: the first call goes
    through Triton's JIT, later calls straight to the compiled kernel (callers guarantee that
    later arguments have the first call's signature)."""

    __slots__ = ("launcher", "grid", "constexprs", "options", "bound")

    def __init__(self, launcher: CachedLauncher, grid: tuple[int, ...], constexprs: dict,
                 options: dict) -> None:
        self.launcher, self.grid, self.constexprs, self.options = launcher, grid, constexprs, options
        self.bound: Launch | None = None

    def __call__(self, *args) -> None:
        if self.bound is not None:
            self.bound(*args)
        else:
            self.bound = self.launcher.first_launch(self.grid, args, self.constexprs, self.options)
