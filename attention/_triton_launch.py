"""Launch a Triton kernel with Triton's per-call argument binding done once per input signature.

``kernel[grid](*args, **meta)`` binds and specialises every argument on every call: about 33 us of
host time per launch on the H100 box, close to the 44 us of GPU time of a whole 4K-token dilated
forward. The ``CompiledKernel`` that call returns can be launched again with the same arguments,
so we keep one per *signature*: everything Triton specialises a compiled kernel on (tensor dtypes
and 16-byte alignment, integer values, constexprs, options), plus the grid and the device.

Later launches call the compiled kernel's C launcher (``compiled.run``) directly with the current
stream: Triton's own ``compiled[grid](*args)`` adds ~4 us per call looking up the device and
stream and building launch metadata for hooks. That metadata only matters to a registered launch
hook (a profiler such as proton), so while one is registered, Triton's own runner is used.

Where the JIT call returns no compiled kernel (the CPU interpreter, ``TRITON_INTERPRET=1``), every
call goes through the JIT path, which is always correct.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from ._cache import SignatureCache

Launch = Callable[..., None]  # launch(*args): the kernel's runtime arguments, in signature order


def _arg_key(arg: Any) -> Any:
    # What Triton specialises on (see triton/runtime/jit.py `specialize_impl`): pointer dtype and
    # 16-byte alignment; integer values (== 1, divisible by 16); floats and bools are not specialised.
    if isinstance(arg, torch.Tensor):
        return arg.dtype, arg.data_ptr() % 16 == 0
    if isinstance(arg, bool) or isinstance(arg, float):
        return type(arg)
    return arg


def _current_stream(device_index: int) -> int:
    return torch._C._cuda_getCurrentRawStream(device_index)


def _launch_hooks() -> tuple[Any, Any] | None:
    """Triton's launch hook chains (``triton.knobs``, Triton >= 3.4), or None where it has none."""
    try:
        from triton import knobs
    except ImportError:
        return None
    enter, leave = knobs.runtime.launch_enter_hook, knobs.runtime.launch_exit_hook
    return (enter, leave) if hasattr(enter, "calls") and hasattr(leave, "calls") else None


def bind(compiled, grid: Sequence[int], device_index: int, tail: tuple = ()) -> Launch:
    """A launch function for a compiled kernel on ``grid`` (3 ints): ``launch(*args)`` appends the
    constexpr values ``tail`` and launches on the device's current stream."""
    runner = compiled[tuple(grid)]
    hooks = _launch_hooks()
    run = getattr(compiled, "run", None)
    if hooks is None or run is None or not hasattr(compiled, "packed_metadata"):
        return lambda *args: runner(*args, *tail)  # a Triton whose internals we do not know
    enter, leave = hooks
    function, packed = compiled.function, compiled.packed_metadata
    g0, g1, g2 = grid

    def launch(*args):
        if enter.calls or leave.calls:  # someone listens to launches: Triton's path builds their metadata
            runner(*args, *tail)
        else:
            run(g0, g1, g2, _current_stream(device_index), function, packed, None, None, None,
                *args, *tail)
    return launch


def _device_index(args: Sequence[Any]) -> int:
    first = next((a for a in args if isinstance(a, torch.Tensor)), None)
    return max(first.get_device(), 0) if first is not None else 0


class CachedLauncher:
    """Launches one ``@triton.jit`` kernel; re-uses its compiled form per argument signature.

    ``args`` are the kernel's leading runtime parameters in order, ``constexprs`` the trailing
    constexpr parameters by name, ``options`` the launch options (``num_warps``, ``num_stages``).
    """

    def __init__(self, kernel) -> None:
        self.kernel = kernel
        self._launches = SignatureCache(limit=512)  # key -> launch function for that signature

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
        return bind(compiled, (tuple(grid) + (1, 1))[:3], _device_index(args), tail)

    def launch(self, grid: Sequence[int], args: Sequence[Any], constexprs: dict[str, Any],
               options: dict[str, Any], key: tuple | None = None) -> None:
        """Launch; ``key``, when given, must determine everything Triton specialises on (a caller
        that keeps per-shape plans can build it cheaper than the generic key below)."""
        if key is None:
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
