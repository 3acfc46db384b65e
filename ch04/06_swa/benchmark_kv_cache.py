"""KV-cache memory per token (MHA, GQA, MLA, sliding window) and ring-buffer decode speed against `transformers`.

Part 1 allocates real caches for the registered configs (all their layers' widths, two layers, bf16) and
compares the bytes they hold with the estimator in ``llms_from_scratch.models.memory``; then it prints the
estimate for the full models at several context lengths.

Part 2 decodes greedily with a Mistral-style model (random weights, fp32, sliding window) from a prompt
longer than the window, our ring-buffer cache against `transformers` `generate`, alternating the two, and
checks that both produce the same tokens. Run:  python benchmark_kv_cache.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from llms_from_scratch.models import get_config
from llms_from_scratch.models.blocks import make_cache
from llms_from_scratch.models.memory import kv_cache_bytes, kv_numbers_per_token

CASES = [  # (label, registry name)
    ("MHA   (Llama 2 7B)", "llama2-7b"),
    ("GQA   (Mistral 7B Instruct v0.2)", "mistral-7b-instruct-v0.2"),
    ("SWA   (Mistral 7B v0.1, window 4096)", "mistral-7b-v0.1"),
    ("MLA   (DeepSeek-V3)", "deepseek-v3"),
]


def memory_table(tokens_measured: int, contexts: list[int]) -> None:
    print(f"KV cache, bf16: real caches of 2-layer copies holding {tokens_measured} tokens vs the estimator")
    print(f"{'attention':38s} {'numbers/token/layer':>20s} {'measured MiB':>13s} {'estimated MiB':>14s}")
    for label, name in CASES:
        cfg = get_config(name)
        small = cfg.replace(n_layers=2, moe=None if cfg.moe is None else cfg.moe.__class__(
            **{**cfg.moe.__dict__, "first_dense_layers": 2, "n_experts": 8, "n_experts_per_tok": 2, "n_groups": 1,
               "topk_groups": 1}), vocab_size=8, hidden_dim=8)
        cache = make_cache(small, 1, tokens_measured, dtype=torch.bfloat16, device="cpu")
        measured = cache.nbytes() / 2**20
        estimated = kv_cache_bytes(small, tokens_measured) / 2**20
        print(f"{label:38s} {kv_numbers_per_token(cfg):20d} {measured:13.2f} {estimated:14.2f}")
        assert measured == estimated, (label, measured, estimated)
    print("\nFull models, GiB of bf16 KV cache for one sequence:")
    print(f"{'attention':38s}" + "".join(f"{c:>10d}" for c in contexts))
    for label, name in CASES:
        cfg = get_config(name)
        print(f"{label:38s}" + "".join(f"{kv_cache_bytes(cfg, c) / 2**30:10.2f}" for c in contexts))


def decode_speed(prompt_len: int, new_tokens: int, rounds: int) -> None:
    import transformers

    from llms_from_scratch.generation import generate
    from llms_from_scratch.models import load_hf_checkpoint
    from llms_from_scratch.nn import prepare_for_decoding

    cfg = get_config("mistral-7b-v0.1", vocab_size=32000, emb_dim=256, n_layers=4, n_heads=8, n_kv_groups=2,
                     head_dim=32, hidden_dim=768, sliding_window=256, context_length=4096)
    from llms_from_scratch.models.families import get_family

    hf_cfg = transformers.AutoConfig.for_model(**get_family("mistral").to_hf_config(cfg))
    torch.manual_seed(0)
    ref = transformers.MistralForCausalLM(hf_cfg).eval()
    ref.generation_config.eos_token_id = None
    ref.generation_config.pad_token_id = 0
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        ref.save_pretrained(d)
        ours = prepare_for_decoding(load_hf_checkpoint(d), batch_size=1)  # kernels measured fastest here; same values
    ids = torch.randint(0, cfg.vocab_size, (1, prompt_len), generator=torch.Generator().manual_seed(1))

    def run_ours(n):
        return generate(ours, ids, n)

    def run_hf(n):
        with torch.inference_mode():
            return ref.generate(ids, max_new_tokens=n, do_sample=False)

    runners = {"ours": run_ours, "transformers": run_hf}
    same = run_ours(new_tokens).tolist() == run_hf(new_tokens).tolist()  # warm-up; the tokens must agree
    # alternate ours and theirs; prefill (1 new token) is timed separately so the decode rate can be isolated
    times = {(label, n): [] for label in runners for n in (1, new_tokens)}
    for _ in range(rounds):
        for n in (1, new_tokens):
            for label, fn in runners.items():
                start = time.perf_counter()
                fn(n)
                times[label, n].append(time.perf_counter() - start)
    cache = ours.new_cache(1, prompt_len + new_tokens)
    full = kv_cache_bytes(cfg.replace(sliding_window=None), prompt_len + new_tokens, bytes_per_number=4)
    print(f"\nDecode, Mistral-style (4 layers, 256 wide, window {cfg.sliding_window}), prompt {prompt_len}, "
          f"{new_tokens} new tokens, batch 1, fp32, {torch.get_num_threads()} thread(s); identical tokens: {same}")
    print(f"our ring cache holds {cache.nbytes() / 2**20:.2f} MiB for {prompt_len + new_tokens} tokens "
          f"(a full cache would hold {full / 2**20:.2f} MiB)")
    rates = {}
    for label in runners:
        prefill = statistics.median(times[label, 1])
        total = statistics.median(times[label, new_tokens])
        rates[label] = (new_tokens - 1) / (total - prefill)
        print(f"{label:13s} prefill {prefill * 1000:7.1f} ms (median)   decode {rates[label]:6.1f} tok/s "
              f"(median total {total:.2f} s over {rounds} rounds)")
    print(f"decode ratio ours / transformers: {rates['ours'] / rates['transformers']:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for both (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    memory_table(8192, [4096, 32768, 131072])
    if args.quick:
        decode_speed(prompt_len=512, new_tokens=32, rounds=2)
    else:
        decode_speed(prompt_len=2048, new_tokens=200, rounds=5)
