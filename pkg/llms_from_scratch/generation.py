"""Text generation with a KV cache: prefill the prompt once, then decode one token per step.

>>> from llms_from_scratch.generation import generate
>>> out = generate(model, input_ids, max_new_tokens=20, eos_ids=[tokenizer.eos_id])

Batched prompts of different lengths are left-padded and passed with an ``attention_mask`` (1 = real
token); each row then yields exactly the tokens it yields alone. :func:`stream` produces the same tokens one
step at a time, for printing text as it arrives.

On a CPU, ``llms_from_scratch.nn.prepare_for_decoding(model, batch_size=...)`` (once, before generating) makes
every linear layer use the matrix-product kernel that was fastest for its number of input rows; it changes no
values (see ``nn/decode_layout.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import torch
from torch import nn


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack token lists of different lengths: (input_ids, attention_mask), both (batch, longest)."""
    if not sequences or any(len(s) == 0 for s in sequences):
        raise ValueError("every prompt needs at least one token")
    longest = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), longest), pad_id, dtype=torch.long)
    mask = torch.zeros(len(sequences), longest, dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, longest - len(seq):] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[row, longest - len(seq):] = 1
    return ids, mask


def _check_sampling(temperature: float, top_k: int | None, top_p: float | None, repetition_penalty: float | None):
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if repetition_penalty is not None and repetition_penalty <= 0:
        raise ValueError(f"repetition_penalty must be > 0, got {repetition_penalty}")


def next_token(
    logits: torch.Tensor,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float | None = None,
    seen: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick one token per row from ``logits`` (batch, vocab); ``seen`` (batch, vocab) marks tokens to penalize."""
    logits = logits.float()
    if repetition_penalty is not None and repetition_penalty != 1.0 and seen is not None:
        # CTRL-style penalty: shrink positive scores, grow negative ones, for tokens already present
        penalized = torch.where(logits > 0, logits / repetition_penalty, logits * repetition_penalty)
        logits = torch.where(seen, penalized, logits)
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # drop a token when the tokens ranked above it already reach top_p (the top token always stays)
        drop_sorted = (cumulative - sorted_logits.softmax(dim=-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


@torch.inference_mode()
def stream(
    model: nn.Module,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float | None = None,
    eos_ids: Iterable[int] | None = None,
    attention_mask: torch.Tensor | None = None,
    use_cache: bool = True,
    pad_id: int | None = None,
    generator: torch.Generator | None = None,
) -> Iterator[torch.Tensor]:
    """Yield the next token of every row, (batch,), once per step.

    A row that produced an end-of-sequence id is finished: later steps yield ``pad_id`` for it (default: the
    first eos id, else 0). Stops after ``max_new_tokens`` steps or when every row has finished.
    """
    _check_sampling(temperature, top_k, top_p, repetition_penalty)
    if input_ids.dim() == 1:
        input_ids = input_ids[None]
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    eos = torch.tensor(sorted(set(eos_ids or ())), dtype=torch.long, device=input_ids.device)
    if pad_id is None:
        pad_id = int(eos[0]) if len(eos) else 0
    batch, prompt_len = input_ids.shape
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(input_ids.device).long()
    if mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask shape {tuple(mask.shape)} differs from input_ids {tuple(input_ids.shape)}")
    finished = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
    seen = None
    if repetition_penalty is not None:
        vocab = model.cfg.vocab_size
        seen = torch.zeros(batch, vocab, dtype=torch.bool, device=input_ids.device)
        seen.scatter_(1, input_ids, mask.bool())

    cache = model.new_cache(batch, prompt_len + max_new_tokens) if use_cache else None
    tokens, step_mask = input_ids, mask
    for _ in range(max_new_tokens):
        if use_cache:
            logits = model(tokens, step_mask, cache=cache, last_token_only=True)[:, -1]
        else:
            logits = model(tokens, step_mask, last_token_only=True)[:, -1]
        nxt = next_token(logits, temperature=temperature, top_k=top_k, top_p=top_p,
                         repetition_penalty=repetition_penalty, seen=seen, generator=generator)
        nxt = torch.where(finished, torch.full_like(nxt, pad_id), nxt)
        yield nxt
        if seen is not None:
            seen.scatter_(1, nxt[:, None], True)
        if len(eos):
            finished |= torch.isin(nxt, eos)
            if bool(finished.all()):
                return
        ones = torch.ones(batch, 1, dtype=mask.dtype, device=mask.device)
        if use_cache:
            tokens, step_mask = nxt[:, None], ones
        else:
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
            step_mask = torch.cat([step_mask, ones], dim=1)


def generate(
    model: nn.Module,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float | None = None,
    eos_ids: Iterable[int] | None = None,
    attention_mask: torch.Tensor | None = None,
    use_cache: bool = True,
    pad_id: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Return the prompt followed by the generated tokens, (batch, prompt + generated)."""
    squeeze = input_ids.dim() == 1
    steps = list(stream(
        model, input_ids, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
        repetition_penalty=repetition_penalty, eos_ids=eos_ids, attention_mask=attention_mask,
        use_cache=use_cache, pad_id=pad_id, generator=generator,
    ))
    ids = input_ids[None] if squeeze else input_ids
    out = torch.cat([ids, torch.stack(steps, dim=1)], dim=1) if steps else ids
    return out[0] if squeeze else out


def add_generate_arguments(parser) -> None:
    """The options of ``llms-from-scratch generate`` for zoo models (see :func:`cli_generate`)."""
    from .cli.zoo import add_model_arguments, add_sampling_arguments

    parser.add_argument("-p", "--prompt", required=True, help="the prompt (instruct models get their chat format)")
    add_model_arguments(parser)
    add_sampling_arguments(parser)
    parser.add_argument("--stream", action="store_true", help="print tokens as they are generated")
    parser.add_argument("--benchmark", action="store_true", help="print tokens/second to stderr")


def cli_generate(args) -> int:
    """``llms-from-scratch generate -m MODEL -p PROMPT``: print the generated text to stdout."""
    import sys
    import time

    from .cli.zoo import TextStream, load_model_and_tokenizer, prompt_ids, resolve_device

    device, dtype = resolve_device(args.device, args.dtype)
    model, tokenizer = load_model_and_tokenizer(args.model, device, dtype)
    ids = torch.tensor([prompt_ids(tokenizer, [{"role": "user", "content": args.prompt}])], device=device)
    generator = torch.Generator(device=device).manual_seed(args.seed) if args.seed is not None else None
    text_stream = TextStream(tokenizer)
    n_new = 0
    start = time.perf_counter()
    for token in stream(model, ids, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                        top_p=args.top_p, eos_ids=tokenizer.eos_ids, generator=generator):
        token_id = int(token[0])
        if token_id in tokenizer.eos_ids:
            break
        n_new += 1
        piece = text_stream.push(token_id)
        if args.stream and piece:
            print(piece, end="", flush=True)
    elapsed = time.perf_counter() - start
    if args.stream:
        print()
    else:
        print(tokenizer.decode(text_stream.ids, skip_special=True))
    if args.benchmark:
        print(f"{n_new} tokens in {elapsed:.2f} s: {n_new / elapsed:.1f} tokens/s "
              f"(prompt {ids.shape[1]} tokens, {device.type}, {str(dtype).removeprefix('torch.')})", file=sys.stderr)
    return 0
