"""What quantizing the activations too (W8A8) costs in accuracy: SmolLM2-135M-Instruct decoding held-out text one
token at a time, the way a decode step multiplies (one row per product), against the float32 model.

Models (the GGUF file's weights dequantized to float32 are the reference):

* **int8 weight-only**: every linear layer and the head in int8 per channel, every product in float32 on the
  dequantized weight (the plain path: exact weight-only numbers, slow);
* **int8 W8A8**: the same int8 weights, with every decode product run by a dynamic kernel that quantizes its input
  row to 8 bits (``dynamic-fbgemm`` by default), whichever kernel a race would pick.

For each: perplexity of the text (teacher forcing through the KV cache), the relative error of the logits against
float32 per step (median and largest), and how often the most likely next token equals float32's.

    python decode_accuracy.py                    # 512 tokens of the second half of The Verdict
    python decode_accuracy.py --tokens 2048 --kernel dynamic-onednn
"""

from __future__ import annotations

import argparse
import math
import statistics

import torch
from benchmark_quantization import cpu_line


def decode_logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Logits after each token of ``ids`` (1, T), fed one token per step through the KV cache: (T, vocab)."""
    cache = model.new_cache(1, ids.shape[1])
    steps = []
    with torch.no_grad():
        for t in range(ids.shape[1]):
            steps.append(model(ids[:, t:t + 1], cache=cache, last_token_only=True).reshape(-1).float())
    return torch.stack(steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--kernel", default="dynamic-fbgemm", help="the W8A8 kernel every int8 layer runs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from llms_from_scratch.data import read_text
    from llms_from_scratch.models import load_pretrained, resolve
    from llms_from_scratch.models.gguf_quantized import load_gguf_quantized
    from llms_from_scratch.quant import QuantizedLinear, set_kernel

    reference, tokenizer = load_pretrained("smollm2-135m-instruct")
    _, path = resolve("smollm2-135m-instruct")
    text = read_text("the-verdict")
    ids = torch.tensor([tokenizer.encode(text[len(text) // 2:])[:args.tokens + 1]])
    weight_only = load_gguf_quantized(path, "int8", kernel="plain")
    w8a8 = load_gguf_quantized(path, "int8", kernel="plain")
    for layer in w8a8.modules():
        if isinstance(layer, QuantizedLinear):
            set_kernel(layer, args.kernel, rows=1)
    print(cpu_line())
    print(f"torch {torch.__version__}, {ids.shape[1] - 1} tokens of the second half of The Verdict, one per step; "
          f"W8A8 kernel {args.kernel}")

    targets = ids[0, 1:]
    logits = {name: decode_logits(model, ids)[:-1] for name, model in
              (("fp32", reference), ("int8 weight-only", weight_only), ("int8 W8A8", w8a8))}
    print("\n| model | perplexity | vs fp32 | logit error vs fp32, median (max) | top-1 equal to fp32 |")
    print("|---|---|---|---|---|")
    base = None
    for name, lg in logits.items():
        ppl = math.exp(float(torch.nn.functional.cross_entropy(lg, targets)))
        base = base or ppl
        error = ((lg - logits["fp32"]).norm(dim=-1) / logits["fp32"].norm(dim=-1)).tolist()
        same = int((lg.argmax(-1) == logits["fp32"].argmax(-1)).sum())
        vs = "" if name == "fp32" else f"{ppl / base - 1:+.2%}"
        err = "" if name == "fp32" else f"{statistics.median(error):.2%} ({max(error):.2%})"
        print(f"| {name} | {ppl:.2f} | {vs} | {err} | {same}/{len(targets)} |")


if __name__ == "__main__":
    main()
