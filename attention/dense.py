"""Dense (full) attention through ``torch.nn.functional.scaled_dot_product_attention``.

q, k, v and the output are ``(batch, seq_len, num_heads, head_dim)``; SDPA wants
``(batch, num_heads, seq_len, head_dim)``, so we transpose in and out (views, no copy).
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ._validate import check_choice, check_flag, check_qkv, check_scale

SDPA_BACKENDS: dict[str, SDPBackend] = {
    "math": SDPBackend.MATH,
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
}
BACKEND_CHOICES = ("auto", *SDPA_BACKENDS)


@functools.lru_cache(maxsize=None)
def _backend_runs(name: str, device_type: str, dtype: torch.dtype) -> bool:
    # Probing a tiny call is the only reliable test: availability depends on the build, the
    # device, the dtype and head_dim, and torch has no single query that covers all of them.
    q = torch.zeros(1, 1, 16, 64, device=device_type, dtype=dtype)
    try:
        with sdpa_kernel(SDPA_BACKENDS[name]):
            F.scaled_dot_product_attention(q, q, q)
    except RuntimeError:
        return False
    return True


def available_sdpa_backends(device: str | torch.device = "cpu",
                            dtype: torch.dtype = torch.float32) -> list[str]:
    """Names of the SDPA backends that run on ``device`` for ``dtype`` with this torch build."""
    device_type = torch.device(device).type
    return [name for name in SDPA_BACKENDS if _backend_runs(name, device_type, dtype)]


def check_backend(backend: str) -> None:
    check_choice(backend, "SDPA backend", BACKEND_CHOICES)


class DenseAttention(nn.Module):
    """Full softmax attention; ``backend`` pins the SDPA kernel ("auto" lets torch choose).

    A backend this build/device/dtype lacks raises RuntimeError naming the backend and what runs.
    """

    def __init__(self, causal: bool = False, backend: str = "auto", scale: float | None = None):
        super().__init__()
        check_flag(causal, "causal")
        check_backend(backend)
        check_scale(scale)
        self.causal, self.backend, self.scale = causal, backend, scale

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                is_causal: bool | None = None) -> torch.Tensor:
        check_qkv(q, k, v, same_seq_len=False)
        check_flag(is_causal, "is_causal", allow_none=True)
        causal = self.causal if is_causal is None else is_causal
        qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))
        if self.backend == "auto":
            out = F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal, scale=self.scale)
        else:
            if not _backend_runs(self.backend, q.device.type, q.dtype):
                runs = available_sdpa_backends(q.device, q.dtype)
                raise RuntimeError(f"SDPA backend {self.backend!r} is not available on "
                                   f"{q.device.type} for {q.dtype}; available: {runs}")
            with sdpa_kernel(SDPA_BACKENDS[self.backend]):
                out = F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal, scale=self.scale)
        return out.transpose(1, 2)
