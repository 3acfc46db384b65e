"""Helpers for the model-zoo tests: random `transformers` references built from our configs."""

from __future__ import annotations

import torch
from torch_threads import single_thread

from llms_from_scratch.models.families import get_family


def hf_config_for(cfg):
    import transformers

    d = get_family(cfg.family).to_hf_config(cfg)
    model_type = d.pop("model_type")
    return transformers.AutoConfig.for_model(model_type, **d)


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
    """A random fp32 `transformers` model with eager attention for ``cfg``."""
    import transformers

    hcfg = hf_config_for(cfg)
    auto = transformers.AutoModelForMaskedLM if masked_lm else transformers.AutoModelForCausalLM
    model = auto.from_config(hcfg, attn_implementation="eager", dtype=torch.float32)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.eos_token_id = None  # random models: never stop early
        model.generation_config.pad_token_id = 0
    return randomize_(model, seed).eval()


def one_thread():
    """Module fixture body (see torch_threads.single_thread): tiny models run faster on one thread."""
    with single_thread():
        yield
