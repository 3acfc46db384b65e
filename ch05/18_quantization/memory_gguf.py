"""Resident memory of SmolLM2-135M-Instruct loaded from its GGUF file: dequantized to float32 (``load_gguf``)
against kept quantized (``load_gguf_quantized``), each in a process of its own so that neither sees the other's
memory.

The quantized models choose their kernels as ``generate --dtype auto`` does (bfloat16 activations allowed for
the quantized products); PyTorch's 4-bit kernel keeps its own packing of the codes beside the layer's, which the
"weights" column counts. Each child process loads the model, generates 16 tokens, and reports from
``/proc/self/status``: ``RssAnon`` (memory the process allocated: the weights, the KV cache, the GGUF reader's
parsed metadata, PyTorch's own buffers), ``RssFile`` (pages of mapped files: shared libraries, and the GGUF file
while its reader stays open) and the peak (``VmHWM``). A child that only imports PyTorch gives the baseline every
process pays.

    python memory_gguf.py          # kernels chosen by measuring (what generate uses)
    python memory_gguf.py plain    # the plain dequantize-then-multiply path only
"""

from __future__ import annotations

import json
import subprocess
import sys

CASES = {
    "baseline (import only)": None,
    "float32 (load_gguf)": "float32",
    "GGUF blocks kept, int8 head (default)": "gguf",
    "GGUF blocks kept, head shares the Q8_0 table": "gguf-file-head",
    "int8 per channel": "int8",
    "int4 groups of 32": "int4",
}

CHILD = r"""
import ctypes, json, sys
import torch
from pathlib import Path
torch.set_num_threads(1)

def rss():
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {key: int(status[key].split()[0]) / 1024 for key in ("RssAnon", "RssFile", "VmHWM")}

case, kernel = sys.argv[1], sys.argv[2]
storages, loaded = {}, rss()
if case != "None":
    from llms_from_scratch.models import load_gguf, resolve
    from llms_from_scratch.models.gguf_quantized import load_gguf_quantized
    from llms_from_scratch.serving.generation import generate
    _, path = resolve("smollm2-135m-instruct")
    if case == "float32":
        model = load_gguf(path)
    elif case == "gguf-file-head":
        model = load_gguf_quantized(path, head="file", kernel=kernel, activations=(torch.bfloat16,))
    else:
        model = load_gguf_quantized(path, case, kernel=kernel, activations=(torch.bfloat16,))
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
                for t in [*model.parameters(), *model.buffers()] if t.numel()}
    loaded = rss()
    generate(model, torch.tensor([[1, 504, 3458, 282]]), 16)
generated = rss()
ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand memory that was freed back to the system: what stays is in use
print(json.dumps({"weights": sum(storages.values()) / 2**20, "loaded": loaded, "generated": generated,
                  "trimmed": rss()}))
"""


def main() -> None:
    kernel = sys.argv[1] if len(sys.argv) > 1 else "auto"
    print(f"kernels: {kernel}; MiB; 'in use' is RssAnon after malloc_trim(0) returned freed memory to the system")
    print("| model in memory | weights | RssAnon after load | after 16 tokens | in use | RssFile | peak (VmHWM) |")
    print("|---|---|---|---|---|---|---|")
    for label, case in CASES.items():
        done = subprocess.run([sys.executable, "-c", CHILD, str(case), kernel], capture_output=True, text=True,
                              check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"| {label} | {r['weights']:.0f} | {r['loaded']['RssAnon']:.0f} | {r['generated']['RssAnon']:.0f} | "
              f"{r['trimmed']['RssAnon']:.0f} | {r['trimmed']['RssFile']:.0f} | {r['trimmed']['VmHWM']:.0f} |")


if __name__ == "__main__":
    main()
