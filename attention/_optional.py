"""Optional parts of the package (the Triton kernels): imported on first use, once."""
from __future__ import annotations

import functools
import importlib
from types import ModuleType


@functools.lru_cache(maxsize=None)
def optional_submodule(name: str) -> ModuleType | None:
    """``attention.<name>``, or None where it cannot be imported (e.g. no triton on this build)."""
    try:
        return importlib.import_module(f"{__package__}.{name}")
    except ImportError:
        return None
