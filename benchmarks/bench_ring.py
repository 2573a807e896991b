"""Ring dilated attention: world size 1 in-process, larger worlds through spawned processes.

Spawned ranks use gloo on CPU and NCCL on GPU (one GPU per rank). Each rank holds
seq_len / world tokens, as attention.ring expects. World sizes: ATTNBENCH_RING_WORLD_SIZES.
"""
import os
import socket
import sys
import statistics
import tempfile
import time
from pathlib import Path

import torch

from . import common

NAME = "RingDilatedAttention"
REPEATS = 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, params: tuple, result_path: str) -> None:
    """One spawned rank: join the group, run the forward REPEATS times, rank 0 writes the median ms."""
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    backend = "nccl" if common.DEVICE == "cuda" else "gloo"
    if common.DEVICE == "cuda":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        torch.set_num_threads(common.threads())
        seq_len, batch, heads, head_dim, dtype, causal = params
        spec = common.make_spec(seq_len, batch, heads, head_dim, dtype, causal)
        fn = common.build(common.implementation(NAME), spec)
        local = seq_len // world
        qkv = tuple(t[:, rank * local:(rank + 1) * local].contiguous() for t in common.make_qkv(spec))
        common.run_synced(fn, qkv)  # warm-up
        samples = []
        for _ in range(REPEATS):
            dist.barrier()
            start = time.perf_counter()
            common.run_synced(fn, qkv)
            dist.barrier()
            samples.append((time.perf_counter() - start) * 1e3)
        if rank == 0:
            with open(result_path, "w") as f:
                f.write(repr(statistics.median(samples)))
    finally:
        dist.destroy_process_group()


def _suite_on_path() -> bool:
    package = Path(__file__).resolve().parent
    return any(p and (Path(p) / __package__).resolve() == package for p in sys.path)


def _make_suite_importable(tmp: str) -> None:
    """Let spawned ranks unpickle ``_rank_main`` from this package.

    asv imports the suite without leaving its parent directory on sys.path, and that directory
    (the repo root) must not go there anyway: its ``attention/`` would shadow the commit's
    installed package. So a directory holding only a link to this package is appended instead.
    """
    if not _suite_on_path():
        os.symlink(Path(__file__).resolve().parent, os.path.join(tmp, __package__))
        sys.path.append(tmp)


def spawned_forward_ms(world: int, params: tuple) -> float:
    """Median forward ms (slowest rank, barrier to barrier) over ``world`` spawned processes."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        _make_suite_importable(tmp)
        result_path = os.path.join(tmp, "median_ms")
        try:
            mp.start_processes(_rank_main, args=(world, _free_port(), params, result_path),
                               nprocs=world, join=True, start_method="spawn")
        finally:
            if tmp in sys.path:
                sys.path.remove(tmp)
        with open(result_path) as f:
            return float(f.read())


class RingForward:
    """Forward ms of RingDilatedAttention over the whole sequence, per world size."""

    params = [list(common.ring_world_sizes()), list(common.PROFILE.seq_lens[-1:]),
              list(common.PROFILE.dtypes), list(common.PROFILE.causals)]
    param_names = ["world_size", "seq_len", "dtype", "causal"]
    unit = "ms"
    rounds = 1
    timeout = 600

    def setup(self, world, seq_len, dtype, causal):
        p = common.PROFILE
        self.shape = (seq_len, p.batches[0], p.heads[0], p.head_dims[0], dtype, causal)
        if world > 1:
            available = torch.cuda.device_count() if common.DEVICE == "cuda" else os.cpu_count() or 1
            if world > available:
                common.skip(f"world size {world} needs {world} {common.DEVICE} devices/cores; {available} here")
            if not torch.distributed.is_available():
                common.skip("torch.distributed is not available in this build")
            if seq_len % world:
                common.skip(f"seq_len {seq_len} does not split over {world} ranks")
        # Also checks that the implementation exists at this commit (else: skip).
        self.case = common.AttentionCase(NAME, *self.shape, warmup=(world == 1))

    def track_forward_ms(self, world, seq_len, dtype, causal):
        if world == 1:
            return self.case.median_ms(REPEATS)
        return spawned_forward_ms(world, self.shape)
