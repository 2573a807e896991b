"""RingDilatedAttention: ring geometry, world size 1, and 2/4 gloo processes vs one process."""
from __future__ import annotations

import os
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp

from attention import DilatedAttention, RingDilatedAttention
from attention._groups import head_slices
from attention.reference import dilated_mask, reference_dilated_attention
from attention.ring import RingPlan

# (seq_len, num_heads, segments, rates, causal). With 2 ranks the first config's segments lie inside
# a shard (no communication); the others have a segment spanning every shard, or straddling shards
# unevenly (48 tokens over 4 ranks: 12-token shards, 8-token segments).
CONFIGS = [
    (64, 6, (8, 16, 32), (1, 2, 4), False),
    (64, 6, (8, 16, 32), (1, 2, 4), True),
    (64, 4, (16, 64), (1, 2), False),
    (64, 4, (16, 64), (1, 2), True),
    (48, 4, (8, 48), (3, 2), False),
    (48, 4, (8, 48), (3, 2), True),
]
SPAWN_TIMEOUT_S = 240


def steps_from_mask(seq_len, heads, segments, rates, causal, world, part) -> list[int]:
    """Ring steps whose (rank, source) block of the reference mask has any allowed pair."""
    mask = dilated_mask(seq_len, heads, segments, rates, causal)[part.heads].any(0)
    n = seq_len // world
    block = mask.view(world, n, world, n).any(3).any(1)  # (query rank, key rank)
    return [s for s in range(world) if any(block[p, (p - s) % world] for p in range(world))]


@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("seq_len,heads,segments,rates,causal", CONFIGS)
def test_plan_steps_are_exactly_the_interacting_ones(world, seq_len, heads, segments, rates, causal):
    for part in head_slices(heads, segments, rates):
        local = seq_len // world
        if local % part.segment == 0:
            continue  # handled without communication
        plan = RingPlan(world, 0, local, part.segment, part.rate, part.offset, causal, 1.0)
        assert plan.steps() == steps_from_mask(seq_len, heads, segments, rates, causal, world, part)


def test_steps_are_skipped():
    # 64 tokens on 4 ranks, 32-token segments: ranks (0, 1) and (2, 3) share segments, so step 2
    # is never needed, and causal also drops step 3 (the wrap-around to a later rank).
    plan = RingPlan(4, 0, 16, 32, 1, 0, False, 1.0)
    assert plan.steps() == [0, 1, 3]
    assert RingPlan(4, 0, 16, 32, 1, 0, True, 1.0).steps() == [0, 1]


@pytest.mark.parametrize("causal", [False, True])
def test_world_size_one_without_process_group(causal, make_qkv, check_against):
    q, k, v = make_qkv((2, 64, 4, 8))
    check_against(RingDilatedAttention((16, 64), (1, 2), causal=causal),
                  lambda a, b, c: reference_dilated_attention(a, b, c, (16, 64), (1, 2), causal), q, k, v)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    sent = []
    original = dist.batch_isend_irecv

    def counting(ops):
        sent.append(len(ops))
        return original(ops)

    dist.batch_isend_irecv = counting
    results = []
    for seq_len, heads, segments, rates, causal in CONFIGS:
        gen = torch.Generator().manual_seed(seq_len + heads)
        q, k, v, g = (torch.randn(2, seq_len, heads, 8, generator=gen) for _ in range(4))
        q, k, v = (t.requires_grad_() for t in (q, k, v))
        want = DilatedAttention(segments, rates, causal)(q, k, v)
        want_grads = torch.autograd.grad(want, (q, k, v), g)
        n = seq_len // world
        shard = slice(rank * n, (rank + 1) * n)
        ql, kl, vl = (t.detach()[:, shard].clone().requires_grad_() for t in (q, k, v))
        sent.clear()
        got = RingDilatedAttention(segments, rates, causal)(ql, kl, vl)
        got_grads = torch.autograd.grad(got, (ql, kl, vl), g[:, shard])
        errors = [(got - want[:, shard]).abs().max().item()]
        errors += [(a - b[:, shard]).abs().max().item() for a, b in zip(got_grads, want_grads)]
        results.append({"errors": errors, "p2p_calls": len(sent)})
    torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def _run_spawned(world: int, out_dir) -> list[list[dict]]:
    ctx = mp.start_processes(_worker, args=(world, _free_port(), str(out_dir)), nprocs=world,
                             join=False, start_method="spawn")
    deadline = time.monotonic() + SPAWN_TIMEOUT_S
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.terminate()
            pytest.fail(f"{world} ring processes did not finish within {SPAWN_TIMEOUT_S} s")
    return [torch.load(out_dir / f"rank{r}.pt") for r in range(world)]


@pytest.mark.slow
@pytest.mark.parametrize("world", [2, 4])
def test_ring_matches_single_process(world, tmp_path):
    per_rank = _run_spawned(world, tmp_path)
    for rank, results in enumerate(per_rank):
        for config, result in zip(CONFIGS, results):
            assert max(result["errors"]) < 1e-5, (world, rank, config, result)
    calls = [sum(per_rank[r][i]["p2p_calls"] for r in range(world)) for i in range(len(CONFIGS))]
    if world == 2:
        assert calls[0] == calls[1] == 0, "segments inside a shard must need no communication"
    assert all(c > 0 for c in calls[2:]), "segments spanning shards must communicate"
