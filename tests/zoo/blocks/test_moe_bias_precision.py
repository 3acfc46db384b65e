"""DeepSeek's correction bias keeps float32 in a bfloat16 model, as `transformers` keeps it.

The bias only ranks experts, by offsets that can be far smaller than bfloat16's step (2**-7 near 1.0). The
config here is built so that rounding matters: router weights are tiny, so every token's scores sit within
~1e-5 of 0.5, and the biases 1.0 + 4e-4 * k (k = 0..7, shuffled) all round to 1.0 in bfloat16. In float32 the
bias alone decides (group 1, experts 4 and 6, for every token); rounded, the tiny score differences would.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from zoo_reference import random_model

from llms_from_scratch.models import get_config, load_hf_checkpoint, save_hf_checkpoint
from llms_from_scratch.nn import MLAConfig, MoEConfig
from llms_from_scratch.nn.moe import MoEFeedForward, route

transformers = pytest.importorskip("transformers")

CFG = get_config(
    "deepseek-v3", vocab_size=256, emb_dim=32, n_layers=2, hidden_dim=48, context_length=64, n_heads=4,
    head_dim=24, rope_scaling=None,
    mla=MLAConfig(kv_lora_rank=16, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=12, q_lora_rank=24),
    moe=MoEConfig(n_experts=8, n_experts_per_tok=2, hidden_dim=16, scoring="sigmoid", n_groups=2, topk_groups=1,
                  routed_scaling=2.5, n_shared_experts=1, correction_bias=True, first_dense_layers=0),
)
BIAS = 1.0 + 4e-4 * torch.tensor([3.0, 0, 6, 1, 7, 2, 5, 4])  # float32 winners: group 1, experts 4 and 6
BIAS_KEY = "model.layers.{}.mlp.gate.e_score_correction_bias"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    model = random_model(CFG, seed=3)
    with torch.no_grad():
        for moe in (m for m in model.modules() if isinstance(m, MoEFeedForward)):
            moe.gate.weight.normal_(0.0, 1e-5)
            moe.correction_bias.copy_(BIAS)
    path = tmp_path_factory.mktemp("deepseek-bias")
    save_hf_checkpoint(model, path, dtype=torch.bfloat16)  # a bf16 checkpoint, the bias stored in float32
    return path


def test_bias_survives_bfloat16_save_and_load(folder):
    assert torch.bfloat16.itemsize == 2 and not torch.equal(BIAS.bfloat16().float(), BIAS)  # not representable
    stored = load_file(folder / "model.safetensors")
    assert stored[BIAS_KEY.format(0)].dtype == torch.float32 and torch.equal(stored[BIAS_KEY.format(0)], BIAS)
    assert stored["model.embed_tokens.weight"].dtype == torch.bfloat16
    model = load_hf_checkpoint(folder, dtype=torch.bfloat16)
    biases = [m.correction_bias for m in model.modules() if isinstance(m, MoEFeedForward)]
    assert len(biases) == 2 and all(b.dtype == torch.float32 and torch.equal(b, BIAS) for b in biases)
    assert model.tok_emb.weight.dtype == torch.bfloat16
    model.to(torch.float16)  # casting the model never rounds the bias either
    assert all(torch.equal(b, BIAS) for b in biases)


def test_expert_choice_in_bfloat16_matches_transformers(folder):
    ours = load_hf_checkpoint(folder, dtype=torch.bfloat16)
    ref = transformers.AutoModelForCausalLM.from_pretrained(
        folder, attn_implementation="eager", experts_implementation="eager", dtype=torch.bfloat16).eval()
    routers = [m for m in ref.modules() if type(m).__name__ == "DeepseekV3TopkRouter"]
    assert len(routers) == 2 and all(r.e_score_correction_bias.dtype == torch.float32 for r in routers)
    chosen_ref = []
    hooks = [r.register_forward_hook(lambda _m, _i, out: chosen_ref.append(out[2])) for r in routers]
    ids = torch.randint(0, CFG.vocab_size, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref(ids)
        ours(ids)
    for h in hooks:
        h.remove()
    layers = [m for m in ours.modules() if isinstance(m, MoEFeedForward)]
    for moe, ref_ids in zip(layers, chosen_ref):
        _, ours_ids = route(moe.router_logits, moe.cfg, moe.correction_bias)
        assert ours_ids.sort(dim=-1).values.tolist() == ref_ids.sort(dim=-1).values.tolist()
        assert ours_ids.sort(dim=-1).values.unique(dim=0).tolist() == [[4, 6]]
        # the premise: with the bias rounded to bfloat16 the choice would differ
        _, rounded = route(moe.router_logits, moe.cfg, moe.correction_bias.bfloat16())
        assert (rounded.sort(dim=-1).values != ours_ids.sort(dim=-1).values).any()
