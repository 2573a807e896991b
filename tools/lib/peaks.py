"""Peak dense tensor-core throughput of known GPUs, for "how far from the hardware's limit".

TFLOP/s (10**12 FLOP/s) for bf16/fp16 inputs with fp32 accumulation, *dense* (the vendors' 2:4
structured-sparsity figures are twice these), from the vendors' datasheets at boost clock. Only
16-bit dtypes have a peak here: float32 runs on other units (TF32 or CUDA cores) whose peak is a
different number, and CPUs have no entry at all; the page then says "no peak known" rather than
guess.
"""
from __future__ import annotations

__all__ = ["PEAK_TFLOPS_16BIT", "peak_tflops"]

# (substring of torch.cuda.get_device_name, TFLOP/s). First match wins, so the specific names
# come before the general ones ("H100 PCIe" before "H100").
PEAK_TFLOPS_16BIT: tuple[tuple[str, float], ...] = (
    ("H200", 989.4),       # H200 SXM: the H100 SXM's tensor cores with more memory
    ("H100 PCIe", 756.0),
    ("H100", 989.4),       # H100 SXM5 ("NVIDIA H100 80GB HBM3")
    ("A100", 312.0),       # SXM and PCIe alike
    ("L40S", 362.1),
)
SIXTEEN_BIT = ("bfloat16", "float16")


def peak_tflops(gpu_name: str | None, dtype: str) -> float | None:
    """Peak dense TFLOP/s of ``gpu_name`` (machine.json's "gpu") for ``dtype`` ("bfloat16"), or
    None where the table has no figure (a CPU, an unlisted GPU, a 32-bit dtype)."""
    if not gpu_name or dtype.strip("'") not in SIXTEEN_BIT:
        return None
    return next((tflops for pattern, tflops in PEAK_TFLOPS_16BIT if pattern in gpu_name), None)
