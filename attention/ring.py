"""Dilated attention with the sequence split over the ranks of a torch.distributed group.

Each rank holds ``seq_len / world`` consecutive tokens of q, k, v, shaped
``(batch, seq_len / world, num_heads, head_dim)``, and gets back its own tokens of the output of
``DilatedAttention`` on the whole sequence (docs/semantics.md).

Key optimisation -- only blocks that can interact are ever sent or computed:

- A (group, offset) head slice whose segments lie inside one shard (``local_len % w == 0``) needs
  no communication at all: it runs the vectorised SDPA path on the local shard.
- For a slice whose segments span shards, rank ``p`` needs the keys of rank ``src`` only if a
  segment overlaps both shards (and, when causal, ``src <= p``). Ring step ``s`` delivers to every
  rank the k/v block of the rank ``s`` places before it on the ring, directly by point-to-point
  send/recv (not forwarded hop by hop), so a (rank, step) whose block cannot interact costs nothing
  and a step no rank needs is skipped entirely. Only the rows of the head slice's dilation offset
  travel, 1/r of the shard.

Partial results of the steps merge through their log-sum-exp. Gradients come from a custom
autograd.Function whose backward runs the same ring again: k/v come back in, and each block's dk/dv
go back to the rank that owns it. The spanning-slice kernel computes a masked score block of
(local rows x source rows) per step, so its memory is O((seq_len / world / r)^2) per step.
Works without any process group (world size 1), under gloo on CPU and NCCL on GPU.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.distributed as dist
from torch import nn

from ._groups import head_slices
from ._validate import check_dilated_shape, check_flag, check_pattern, check_qkv, check_scale
from .improved import attend_part


def _world(group) -> tuple[int, int]:
    if not (dist.is_available() and dist.is_initialized()):
        return 1, 0
    return dist.get_world_size(group), dist.get_rank(group)


@dataclass(frozen=True)
class RingPlan:
    """Geometry of one spanning (group, offset) head slice on one rank; identical on every rank."""

    world: int
    rank: int
    local_len: int
    segment: int
    rate: int
    offset: int
    causal: bool
    scale: float
    group: object = None

    def rows(self, rank: int, device=None) -> torch.Tensor:
        """Local row indices of ``rank``'s shard that this head slice covers."""
        pos = rank * self.local_len + torch.arange(self.local_len, device=device)
        return ((pos % self.segment) % self.rate == self.offset).nonzero().flatten()

    def _segments(self, rank: int) -> tuple[int, int]:
        start = rank * self.local_len
        return start // self.segment, (start + self.local_len - 1) // self.segment

    def needs(self, rank: int, src: int) -> bool:
        """Can queries of ``rank`` attend keys of ``src`` at all?"""
        if self.causal and src > rank:
            return False
        (a0, a1), (b0, b1) = self._segments(rank), self._segments(src)
        return max(a0, b0) <= min(a1, b1)

    def steps(self) -> list[int]:
        """Ring steps (distance to the source rank) that at least one rank needs."""
        return [s for s in range(self.world)
                if any(self.needs(p, (p - s) % self.world) for p in range(self.world))]

    def mask(self, src: int, device=None) -> torch.Tensor:
        """Bool (local rows, source rows): same segment and, if causal, key not after query."""
        qi = self.rank * self.local_len + self.rows(self.rank, device)
        kj = src * self.local_len + self.rows(src, device)
        allowed = (qi[:, None] // self.segment) == (kj[None, :] // self.segment)
        return allowed & (kj[None, :] <= qi[:, None]) if self.causal else allowed

    def peer(self, rank: int) -> int:
        return rank if self.group is None else dist.get_global_rank(self.group, rank)

    def exchange(self, step: int, send: torch.Tensor, recv_shape: tuple[int, ...],
                 backward: bool = False) -> torch.Tensor | None:
        """Step ``step`` of the ring: forward sends to rank + step and receives from rank - step
        (backward the reverse, carrying dk/dv home), for the pairs that need it."""
        w, p = self.world, self.rank
        ahead, behind = (p + step) % w, (p - step) % w
        if backward:  # dk/dv of the block we received go back to the rank that owns it
            send_to = behind if self.needs(p, behind) else None
            recv_from = ahead if self.needs(ahead, p) else None
        else:
            send_to = ahead if self.needs(ahead, p) else None
            recv_from = behind if self.needs(p, behind) else None
        ops, buf = [], None
        if send_to is not None:
            ops.append(dist.P2POp(dist.isend, send.contiguous(), self.peer(send_to), self.group))
        if recv_from is not None:
            buf = send.new_empty(recv_shape)
            ops.append(dist.P2POp(dist.irecv, buf, self.peer(recv_from), self.group))
        if ops:
            for req in dist.batch_isend_irecv(ops):
                req.wait()
        return buf

    def source_kv(self, step: int, kv: torch.Tensor) -> tuple[int, torch.Tensor | None]:
        """(source rank, its selected k/v rows stacked (2, b, rows, heads, d)) for this step."""
        src = (self.rank - step) % self.world
        if step == 0:
            return src, kv
        shape = (2, kv.shape[1], self.rows(src).numel(), *kv.shape[3:])
        return src, self.exchange(step, kv, shape)


def _scores(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor, scale: float) -> torch.Tensor:
    # q (b, h, nq, d), k (b, h, nk, d) -> masked scores (b, h, nq, nk) in float32
    s = torch.matmul(q, k.transpose(-1, -2)) * scale
    return s.masked_fill(~mask, float("-inf"))


def _finite_or_zero(x: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isfinite(x), x, torch.zeros_like(x))


def _heads_first(t: torch.Tensor) -> torch.Tensor:
    return t.transpose(1, 2).float()  # (b, rows, h, d) -> (b, h, rows, d), float32 accumulation


class _RingSliceAttention(torch.autograd.Function):
    """Ring attention for one spanning head slice; q, k, v are ``(b, local_len, heads, d)``."""

    @staticmethod
    def forward(ctx, q, k, v, plan: RingPlan):
        rows = plan.rows(plan.rank, q.device)
        qr = _heads_first(q[:, rows])
        kv = torch.stack([k[:, rows], v[:, rows]])
        out = torch.zeros_like(qr)
        lse = torch.full(qr.shape[:-1], float("-inf"), device=q.device)
        for step in plan.steps():
            src, kv_src = plan.source_kv(step, kv)
            if kv_src is None or kv_src.shape[2] == 0 or qr.shape[2] == 0:
                continue
            s = _scores(qr, _heads_first(kv_src[0]), plan.mask(src, q.device), plan.scale)
            m = _finite_or_zero(s.amax(-1, keepdim=True))
            e = torch.exp(s - m)
            total = e.sum(-1)
            lse_s = torch.log(total) + m.squeeze(-1)
            out_s = torch.matmul(e, _heads_first(kv_src[1])) / total.clamp_min(1e-30)[..., None]
            new_lse = torch.logaddexp(lse, lse_s)
            ref = _finite_or_zero(new_lse)
            out = out * torch.exp(lse - ref)[..., None] + out_s * torch.exp(lse_s - ref)[..., None]
            lse = new_lse
        ctx.plan = plan
        ctx.save_for_backward(q, k, v, out, lse, rows)
        result = q.new_zeros(q.shape)
        result[:, rows] = out.transpose(1, 2).to(q.dtype)
        return result

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse, rows = ctx.saved_tensors
        plan: RingPlan = ctx.plan
        qr = _heads_first(q[:, rows])
        dout = _heads_first(grad_out[:, rows])
        kv = torch.stack([k[:, rows], v[:, rows]])
        delta = (dout * out).sum(-1, keepdim=True)
        lse_ref = _finite_or_zero(lse)[..., None]
        dq = torch.zeros_like(qr)
        dkv_own = torch.zeros(2, *qr.shape, device=q.device)  # (2, b, h, rows, d)
        for step in plan.steps():
            src, kv_src = plan.source_kv(step, kv)
            dkv_src = None
            if kv_src is not None and (kv_src.shape[2] == 0 or qr.shape[2] == 0):
                dkv_src = qr.new_zeros(2, *qr.shape[:2], kv_src.shape[2], qr.shape[3])
            elif kv_src is not None:
                k_src, v_src = _heads_first(kv_src[0]), _heads_first(kv_src[1])
                p = torch.exp(_scores(qr, k_src, plan.mask(src, q.device), plan.scale) - lse_ref)
                ds = p * (torch.matmul(dout, v_src.transpose(-1, -2)) - delta)
                dq += torch.matmul(ds, k_src) * plan.scale
                dkv_src = torch.stack([torch.matmul(ds.transpose(-1, -2), qr) * plan.scale,
                                       torch.matmul(p.transpose(-1, -2), dout)])
            if step == 0:
                dkv_own += dkv_src
                continue
            send = dkv_src if dkv_src is not None else dkv_own  # placeholder when nothing to send
            back = plan.exchange(step, send, tuple(dkv_own.shape), backward=True)
            if back is not None:
                dkv_own += back
        grads = []
        for g in (dq, dkv_own[0], dkv_own[1]):
            full = q.new_zeros(q.shape)
            full[:, rows] = g.transpose(1, 2).to(q.dtype)
            grads.append(full)
        return grads[0], grads[1], grads[2], None


_P2P_READY: set = set()


def _ready_for_p2p(group) -> None:
    """Under NCCL, a batched P2P call that is a group's first collective must involve every rank;
    ring steps skip ranks, so one barrier first sets the communicator up for all of them."""
    key = id(group)
    if key not in _P2P_READY:
        if dist.get_backend(group) == "nccl":
            dist.barrier(group=group)
        _P2P_READY.add(key)


class RingDilatedAttention(nn.Module):
    """``DilatedAttention`` over a sequence sharded across ``group`` (default: the world group).

    Input and output are this rank's shard ``(batch, seq_len / world, num_heads, head_dim)``; rank
    ``i`` holds tokens ``[i * seq_len / world, (i + 1) * seq_len / world)``. Without an initialised
    process group (or with world size 1) it is plain single-process dilated attention.
    """

    def __init__(self, segment_lengths: Sequence[int], dilation_rates: Sequence[int],
                 causal: bool = False, group=None, scale: float | None = None):
        super().__init__()
        self.segment_lengths, self.dilation_rates = check_pattern(segment_lengths, dilation_rates)
        check_flag(causal, "causal")
        check_scale(scale)
        self.causal, self.group, self.scale = causal, group, scale

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                is_causal: bool | None = None) -> torch.Tensor:
        check_qkv(q, k, v)
        check_flag(is_causal, "is_causal", allow_none=True)
        world, rank = _world(self.group)
        batch, local_len, num_heads, head_dim = q.shape
        check_dilated_shape(local_len * world, num_heads, self.segment_lengths)
        causal = self.causal if is_causal is None else is_causal
        scale = self.scale if self.scale is not None else head_dim ** -0.5
        out = q.new_zeros(q.shape)
        if world > 1 and any(local_len % w for w in self.segment_lengths):
            _ready_for_p2p(self.group)
        for part in head_slices(num_heads, self.segment_lengths, self.dilation_rates):
            if local_len % part.segment == 0:
                attend_part(q, k, v, out, part, causal, scale)  # segments inside the shard: no comm
                continue
            plan = RingPlan(world, rank, local_len, part.segment, part.rate, part.offset, causal,
                            scale, self.group)
            heads = part.heads
            out[:, :, heads] = _RingSliceAttention.apply(q[:, :, heads], k[:, :, heads],
                                                         v[:, :, heads], plan)
        return out
