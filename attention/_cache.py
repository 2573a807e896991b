"""A small dict for per-signature results on hot paths (checks passed, launch plans, kernels)."""
from __future__ import annotations

from typing import Any, Hashable


class SignatureCache(dict):
    """Input signature -> what was worked out for it once (a check's verdict, a launch plan).

    Cleared when it holds ``limit`` entries: a caller cycling through endless shapes keeps the
    cost of one miss per call, and memory stays bounded.
    """

    def __init__(self, limit: int = 1024) -> None:
        super().__init__()
        self.limit = limit

    def remember(self, key: Hashable, value: Any = True) -> Any:
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value
