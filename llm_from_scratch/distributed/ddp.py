"""Data parallelism from scratch: same weights everywhere, a different slice of the batch per rank, and gradients
averaged by all-reduce in buckets while the backward pass is still running.

`DataParallel` is the mechanism of `torch.nn.parallel.DistributedDataParallel` (Li et al. 2020) in about
a hundred lines: broadcast the initial state from rank 0; group parameters into buckets in reverse registration
order (the order their gradients become ready); when the last gradient of a bucket has been accumulated, flatten the
bucket and start an asynchronous all-reduce, so communication overlaps the rest of the backward pass; wait for all
of them when the backward pass ends; `no_sync()` skips the all-reduce for gradient-accumulation micro-batches.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import nn


def broadcast_state(module: nn.Module, src: int = 0, group=None) -> None:
    """Copy rank `src`'s parameters and buffers to every rank: the replicas start identical, and identical
    averaged gradients keep them identical step after step."""
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src, group=group)


def make_buckets(params: list[nn.Parameter], bucket_cap_bytes: int) -> list[list[nn.Parameter]]:
    """Greedily pack parameters, in reverse order, into buckets of at most `bucket_cap_bytes` (a parameter larger
    than the cap gets a bucket of its own). Reverse order because backward produces the last layer's gradients first."""
    buckets: list[list[nn.Parameter]] = [[]]
    size = 0
    for p in reversed(params):
        nbytes = p.numel() * p.element_size()
        if buckets[-1] and size + nbytes > bucket_cap_bytes:
            buckets.append([])
            size = 0
        buckets[-1].append(p)
        size += nbytes
    return buckets


class DataParallel(nn.Module):
    """Wrap `module` so that after `loss.backward()` every rank holds the gradient of the mean loss over the
    global batch (the average of the ranks' gradients)."""

    def __init__(self, module: nn.Module, bucket_cap_mb: float = 25.0, group=None) -> None:
        super().__init__()
        self.module = module
        self.group = group
        self.world_size = dist.get_world_size(group)
        broadcast_state(module, group=group)
        self.params = [p for p in module.parameters() if p.requires_grad]  # a tied weight appears once
        self.buckets = make_buckets(self.params, int(bucket_cap_mb * 2**20))
        self.bucket_of = {id(p): i for i, bucket in enumerate(self.buckets) for p in bucket}
        self.require_sync = True
        self.bytes_reduced = 0  # payload handed to all-reduce, for the communication accounting
        self._reset()
        for p in self.params:
            # Fires once per backward, after the gradient (summed over all uses of a tied weight) is in p.grad.
            p.register_post_accumulate_grad_hook(self._grad_ready)

    def _reset(self) -> None:
        self.ready = [0] * len(self.buckets)
        self.pending: list[tuple[int, torch.Tensor, dist.Work]] = []
        self.launched: set[int] = set()
        self.callback_queued = False

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Accumulate gradients locally (no communication) inside the block; the next synced backward all-reduces
        the accumulated sum once, so k micro-batches cost one all-reduce instead of k."""
        old, self.require_sync = self.require_sync, False
        try:
            yield
        finally:
            self.require_sync = old

    def _grad_ready(self, p: nn.Parameter) -> None:
        if not self.require_sync:
            return
        if not self.callback_queued:  # run finish() once autograd has finished this backward pass
            torch.autograd.Variable._execution_engine.queue_callback(self.finish_gradient_synchronization)
            self.callback_queued = True
        b = self.bucket_of[id(p)]
        self.ready[b] += 1
        if self.ready[b] == len(self.buckets[b]):
            self._launch(b)

    def _launch(self, b: int) -> None:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.buckets[b]]
        flat = torch.cat([g.reshape(-1) for g in grads]).div_(self.world_size)  # average = sum / world size
        self.bytes_reduced += flat.numel() * flat.element_size()
        self.pending.append((b, flat, dist.all_reduce(flat, group=self.group, async_op=True)))
        self.launched.add(b)

    def finish_gradient_synchronization(self) -> None:
        """Launch the buckets whose parameters got no gradient, wait for every all-reduce, and copy the averaged
        values back into `p.grad`."""
        for b in range(len(self.buckets)):
            if b not in self.launched:  # every rank has the same buckets, so they all launch the same ones
                self._launch(b)
        for b, flat, work in self.pending:
            work.wait()
            offset = 0
            for p in self.buckets[b]:
                n = p.numel()
                if p.grad is None:
                    p.grad = torch.empty_like(p)
                p.grad.copy_(flat[offset : offset + n].view_as(p))
                offset += n
        self._reset()
