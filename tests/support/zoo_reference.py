"""Helpers for the model-zoo tests: random models of ours, random `transformers` references built from our
configs, and the reply a chat model should give."""

from __future__ import annotations

import torch

from llms_from_scratch.models import build_model
from llms_from_scratch.models.families import get_family


def hf_config_for(cfg):
    import transformers

    d = get_family(cfg.family).to_hf_config(cfg)
    model_type = d.pop("model_type")
    return transformers.AutoConfig.for_model(model_type, **d)


def hf_load_kwargs(cfg, dtype: torch.dtype = torch.float32) -> dict:
    """``from_config`` / ``from_pretrained`` options for an exact reference: eager attention, and for
    mixture-of-experts models eager experts (the grouped kernels sum in another order)."""
    kwargs = {"attn_implementation": "eager", "dtype": dtype}
    if cfg.moe is not None:
        kwargs["experts_implementation"] = "eager"
    return kwargs


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter distinct random values: norms near 1 (not exactly 1, so a swapped norm shows),
    weights large enough that logits spread over several units."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if p.dim() == 1 and ("norm" in name.lower() or "ln_" in name):
                p.copy_((1.0 if name.endswith(("weight", "gamma")) else 0.0) + 0.1 * noise)
            else:
                p.copy_(0.15 * noise)
    return model


def hf_reference(cfg, seed: int = 0, masked_lm: bool = False):
    """A random fp32 `transformers` model for ``cfg`` (eager attention and experts); DeepSeek's expert
    correction bias gets non-zero values large enough to change which experts are chosen."""
    import transformers

    auto = transformers.AutoModelForMaskedLM if masked_lm else transformers.AutoModelForCausalLM
    model = auto.from_config(hf_config_for(cfg), **hf_load_kwargs(cfg))
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.eos_token_id = None  # random models: never stop early
        model.generation_config.pad_token_id = 0
    randomize_(model, seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                buf.copy_(0.5 * torch.randn(buf.shape, generator=g))
    return model.eval()


def random_model(cfg, seed: int = 0) -> torch.nn.Module:
    """Our model for ``cfg`` in eval mode, with weights ~N(0, 0.2) and every 1-d parameter near 1."""
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.2)
            else:
                p.copy_(1 + 0.1 * torch.randn_like(p))
    return model


def stepwise_logits(model, ids, mask, chunks, max_length=None):
    """Feed ``ids`` through the cache in chunks of the given sizes; return the concatenated logits and the cache."""
    cache = model.new_cache(ids.shape[0], max_length or ids.shape[1])
    out, start = [], 0
    with torch.no_grad():
        for size in chunks:
            out.append(model(ids[:, start : start + size], mask[:, start : start + size], cache=cache))
            start += size
    assert start == ids.shape[1]
    return torch.cat(out, dim=1), cache


def expected_chat_reply(model, tokenizer, question: str, n: int) -> str:
    """The greedy answer of ``model`` to one user turn, cut at the first end-of-sequence id, as text."""
    from llms_from_scratch.serving.generation import generate

    ids = torch.tensor([tokenizer.encode(tokenizer.apply_chat_template([{"role": "user", "content": question}]))])
    out = generate(model, ids, n, eos_ids=tokenizer.eos_ids)[0, ids.shape[1]:].tolist()
    out = out[: next((i for i, t in enumerate(out) if t in tokenizer.eos_ids), len(out))]
    return tokenizer.decode(out, skip_special=True)
