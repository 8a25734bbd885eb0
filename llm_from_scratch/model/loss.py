"""The output head and the cross-entropy in one pass: the training loss without a separate softmax backward.

For the book's model the head is the largest matrix (8192 x 256) and its logits the largest activation
(`batch x context x vocab` floats, 32 MB for 4 x 256 tokens). The plain path writes the logits, reads them for
`log_softmax`, writes those, and in the backward pass fills a gradient of the same size, reads both again for the
softmax gradient and writes the result: five trips through a tensor far larger than the CPU's caches. Since
`d loss / d logits = (softmax(logits) - onehot(target)) / n` is known in closed form, `LinearCrossEntropy`
computes it right after each chunk's logits, while they are still in cache, turns it into the hidden states'
gradient at once, and into the weight's with one matmul at the end (the idea behind Liger-Kernel's fused linear
cross-entropy, Hsu et al. 2024, and Wijmans et al. 2024's "cut cross-entropy"). Same matmuls, same numbers, fewer
passes over memory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def default_chunk_rows(vocab_size: int, device: torch.device) -> int:
    """Rows of logits per chunk: about 1M floats (4 MB) on a CPU, near its L2 cache; all rows on a GPU, where one
    large kernel beats many small ones."""
    if device.type != "cpu":
        return 1 << 30
    return max(16, (1 << 20) // vocab_size)


class LinearCrossEntropy(torch.autograd.Function):
    """`mean_i CE(x_i W^T, t_i)` over the rows whose target is not `-100`; the gradients are computed in the
    forward pass (chunk by chunk) and only scaled by the incoming gradient in the backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_rows: int) -> torch.Tensor:
        n_rows = x.shape[0]
        valid = targets != IGNORE_INDEX
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32  # softmax and loss precision
        n_valid = valid.sum().clamp(min=1).to(acc)
        safe_targets = targets.clamp(min=0)  # ignored rows index class 0, then count zero
        need_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        total = torch.zeros((), dtype=acc, device=x.device)
        grad_x = torch.empty_like(x) if need_grad else None
        grad_logits = None
        device_type = x.device.type
        # the dtype the gradient matmuls run in: autocast's (bf16) if on, else the input's
        mm_dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else x.dtype
        x_mm, w_mm = x.to(mm_dtype), weight.to(mm_dtype)  # cast once, not once per chunk
        for start in range(0, n_rows, chunk_rows):
            rows = slice(start, start + chunk_rows)
            logits = (x_mm[rows] @ w_mm.t()).to(acc)  # the matmul in bf16 under autocast, the softmax in fp32
            lse = torch.logsumexp(logits, dim=-1)
            picked = logits.gather(1, safe_targets[rows, None]).squeeze(1)
            total += ((lse - picked) * valid[rows]).sum()
            if need_grad:
                # softmax - onehot, scaled by 1/n, in place in the chunk's logits
                g = logits.sub_(lse[:, None]).exp_()
                g.scatter_add_(1, safe_targets[rows, None], torch.full_like(picked[:, None], -1.0))
                g.mul_((valid[rows].to(acc) / n_valid)[:, None])
                g = g.to(mm_dtype) if mm_dtype != acc else g
                if grad_logits is None:
                    grad_logits = torch.empty(n_rows, weight.shape[0], dtype=g.dtype, device=x.device)
                grad_logits[rows] = g
                grad_x[rows] = g @ w_mm
        grad_w = None
        if need_grad and ctx.needs_input_grad[1]:
            grad_w = (grad_logits.t() @ x_mm).to(weight.dtype)  # one large matmul
        ctx.save_for_backward(grad_x, grad_w)
        return total / n_valid

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        grad_x, grad_w = ctx.saved_tensors
        gx = grad_x * grad_loss if ctx.needs_input_grad[0] else None
        gw = grad_w * grad_loss if ctx.needs_input_grad[1] else None
        return gx, gw, None, None


def linear_cross_entropy(
    x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_rows: int | None = None
) -> torch.Tensor:
    """`F.cross_entropy(F.linear(x, weight), targets, ignore_index=-100)` for `x` of shape `[N, d]` without
    materialising the logits' softmax or its gradient (see the module docstring); equal to it up to rounding."""
    if chunk_rows is None:
        chunk_rows = default_chunk_rows(weight.shape[0], x.device)
    if not torch.is_grad_enabled() or not (x.requires_grad or weight.requires_grad):
        return F.cross_entropy((x @ weight.t()).float(), targets, ignore_index=IGNORE_INDEX)
    return LinearCrossEntropy.apply(x, weight, targets, chunk_rows)
