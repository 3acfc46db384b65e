"""The output head and the cross-entropy in one pass over row chunks, without the full logits matrix.

Chapter 5 computes the training loss as ``F.cross_entropy(model(x).flatten(0, 1), y.flatten())``. For GPT-2's
vocabulary that materialises a ``(batch * tokens, 50257)`` logits matrix, and autograd adds three more of the
same size: the log-softmax output, the zero-filled gradient of the loss and the gradient of the log-softmax. On a
CPU, much of the cost of those four is writing fresh memory.

``head_cross_entropy(hidden, weight, bias, targets)`` takes the model's final hidden states (what the output
head receives) and the head's weight and bias, and computes the same mean loss, and its gradients, one block of
rows at a time:

    for each chunk of rows:  logits = h @ W.T + b                  (rows, vocab): at most CHUNK_BYTES
                             loss  += logsumexp(logits) - logits[target]
                             d logits = (softmax(logits) - onehot(target)) / n_targets   (in place)
                             d h  = d logits @ W ;  d W += d logits.T @ h ;  d b += sum of d logits

so the backward pass has nothing left to do but hand the stored gradients on. The arithmetic is that of the
ordinary path (the same matrix products, split by rows), so results agree to float rounding
(``tests/training/test_head_loss.py`` checks loss and gradients against ``F.cross_entropy``). What it gains in speed and
memory is measured in ``ch05/10_llm-training-speed/README.md``.

The function knows no model: the training loop gets the hidden states from its model and passes the head's
parameters (``llms_from_scratch.training.fused_loss`` does this for chapter 4's ``GPTModel``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# rows per chunk are chosen so that one chunk of fp32 logits stays under this size: glibc hands blocks this
# small back out of its heap instead of mapping fresh pages for each one (its mmap threshold tops out at 32 MiB)
CHUNK_BYTES = 24 * 2**20
VOCAB_BLOCK = 4096  # rows of d W per bf16 product


def chunk_rows_for(vocab_size: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """The most rows whose fp32 logits fit in ``chunk_bytes`` (at least one)."""
    return max(1, chunk_bytes // (4 * vocab_size))


class _HeadCrossEntropy(torch.autograd.Function):
    """Forward computes the loss and all gradients chunk by chunk; backward scales and returns them."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, ignore_index, chunk_rows, compute_dtype, needs):
        n, vocab = hidden.shape[0], weight.shape[0]
        need_h, need_w, need_b = needs  # which gradients to compute (none under torch.no_grad)
        valid = targets != ignore_index
        count = valid.sum()
        safe_targets = torch.where(valid, targets, 0)[:, None]  # (n, 1); ignored rows point anywhere, then zeroed
        # sums stay in fp32 (fp64 for fp64 inputs) even when the products run in bf16
        acc = torch.promote_types(compute_dtype, torch.float32)
        # the fraction of the mean each row carries: 1 / n_targets, and 0 for ignored rows
        row_scale = (valid.to(acc) / count)[:, None]  # (n, 1)

        w = weight.to(compute_dtype)
        h_all = hidden.to(compute_dtype)
        low_precision = compute_dtype != acc
        grad_hidden = torch.empty(n, hidden.shape[1], dtype=acc, device=hidden.device) if need_h else None
        # in fp32 the first chunk's product writes d W; in bf16 the products are added block by block
        new_grad_weight = torch.zeros if low_precision else torch.empty
        grad_weight = new_grad_weight(weight.shape, dtype=acc, device=weight.device) if need_w else None
        grad_bias = torch.zeros(vocab, dtype=acc, device=weight.device) if need_b else None
        loss_sum = torch.zeros((), dtype=acc, device=hidden.device)

        for start in range(0, n, chunk_rows):
            stop = min(start + chunk_rows, n)
            h = h_all[start:stop]  # (r, emb_dim)
            t = safe_targets[start:stop]  # (r, 1)
            scale = row_scale[start:stop]  # (r, 1)
            if low_precision:
                logits = F.linear(h, w)  # (r, vocab) in bf16, as autocast computes it
                z = logits.to(acc)  # the softmax runs in fp32, as autocast runs cross_entropy
                if bias is not None:
                    z += bias
            else:
                z = F.linear(h, w, bias)  # (r, vocab)

            # loss = logsumexp(z) - z[target], with the row maximum taken out so exp cannot overflow
            target_logit = z.gather(1, t)  # (r, 1)
            z_max = z.amax(dim=-1, keepdim=True)  # (r, 1)
            exp_sum = z.sub_(z_max).exp_().sum(dim=-1, keepdim=True)  # z now holds exp(z - max)
            loss_sum += ((z_max + exp_sum.log() - target_logit) * scale).sum()
            if not any(needs):
                continue  # evaluation: the loss is all that is wanted

            # d loss / d logits in place: softmax(z) * share - onehot(target) * share
            z.mul_(scale / exp_sum)
            z.scatter_add_(1, t, -scale)
            if need_b:
                grad_bias += z.sum(dim=0)
            g = logits.copy_(z) if low_precision else z  # the products run in the compute dtype
            if need_h:
                grad_hidden[start:stop] = torch.mm(g, w)
            if need_w and low_precision:
                # bf16 products summed in fp32, one block of the vocabulary at a time: a whole (vocab, emb_dim)
                # product would be a fresh 38 MB buffer per chunk (the training-speed README measures both)
                for v in range(0, vocab, VOCAB_BLOCK):
                    grad_weight[v : v + VOCAB_BLOCK] += torch.mm(g[:, v : v + VOCAB_BLOCK].t(), h)
            elif need_w and start == 0:
                torch.mm(g.t(), h, out=grad_weight)
            elif need_w:
                grad_weight.addmm_(g.t(), h)

        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
        ctx.dtypes = (hidden.dtype, weight.dtype)
        return loss_sum if n else loss_sum / count  # no rows: 0 / 0 = nan, the mean over nothing, as F.cross_entropy

    @staticmethod
    def backward(ctx, grad_loss):
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        hidden_dtype, weight_dtype = ctx.dtypes
        grads = [grad_hidden, grad_weight, grad_bias]
        # the loss is usually the end of the graph (grad 1); skip multiplying 77 MB of d W by one
        if grad_loss.numel() != 1 or grad_loss.item() != 1.0:
            grads = [None if g is None else g * grad_loss.to(g.dtype) for g in grads]
        grads = [None if g is None else g.to(dtype) for g, dtype in zip(grads, (hidden_dtype, weight_dtype,
                                                                                 weight_dtype), strict=True)]
        return (*grads, None, None, None, None, None)


@torch.compiler.disable  # hand-written chunk loop; a compiled model still feeds it (graph break here)
def head_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                       targets: torch.Tensor, ignore_index: int = -100,
                       chunk_rows: int | None = None) -> torch.Tensor:
    """Mean ``F.cross_entropy(hidden @ weight.T + bias, targets)`` without materialising the logits.

    ``hidden`` is ``(n, emb_dim)``, ``weight`` ``(vocab_size, emb_dim)``, ``targets`` ``(n,)``; rows whose target
    is ``ignore_index`` do not count, as in ``F.cross_entropy``. Under CPU or CUDA autocast the products run in
    the autocast dtype and the softmax in fp32.
    """
    if hidden.dim() != 2 or targets.shape != hidden.shape[:1]:
        raise ValueError(f"expected hidden (n, emb_dim) and targets (n,), got {tuple(hidden.shape)} and "
                         f"{tuple(targets.shape)}; flatten batch and positions first")
    if weight.shape[1] != hidden.shape[1]:
        raise ValueError(f"the head's weight {tuple(weight.shape)} does not fit hidden states of width "
                         f"{hidden.shape[1]}")
    device_type = hidden.device.type
    if torch.is_autocast_enabled(device_type):
        compute_dtype = torch.get_autocast_dtype(device_type)
    else:
        compute_dtype = torch.promote_types(hidden.dtype, weight.dtype)
    rows = chunk_rows or chunk_rows_for(weight.shape[0])
    n_chunks = -(-hidden.shape[0] // rows)
    # equal chunks: no short last chunk that streams W for few rows (and at least one row, for empty input)
    rows = max(1, -(-hidden.shape[0] // max(n_chunks, 1)))
    grad_on = torch.is_grad_enabled()
    needs = tuple(grad_on and t is not None and t.requires_grad for t in (hidden, weight, bias))
    with torch.autocast(device_type, enabled=False):  # the function picks its own dtypes
        return _HeadCrossEntropy.apply(hidden, weight, bias, targets, ignore_index, rows, compute_dtype, needs)
