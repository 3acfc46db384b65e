"""``llms-from-scratch convert SRC DEST``: turn a GGUF file or a Meta Llama folder into a Hugging Face
checkpoint folder (config.json + model.safetensors) that this package and `transformers` both load."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("convert", help="convert a .gguf file or Meta Llama folder to safetensors")
    parser.add_argument("source", help="a .gguf file, a Meta folder (params.json), or a downloadable name")
    parser.add_argument("dest", help="output folder")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.set_defaults(func=_run)


def _run(args) -> int:
    import torch

    from ..models import PRETRAINED, load_gguf, load_meta_llama_checkpoint, save_hf_checkpoint
    from ..models.pretrained import resolve
    from .errors import CommandError

    dtype = getattr(torch, args.dtype)
    source = Path(args.source)
    if args.source in PRETRAINED:
        fmt, source = resolve(args.source)
        if fmt == "hf":
            raise CommandError(f"{args.source} is already a Hugging Face checkpoint at {source}")
    if not source.exists():
        raise CommandError(f"{source} does not exist: give a .gguf file, a Meta Llama folder (params.json) or a "
                           "downloadable name (`llms-from-scratch download` lists them)")
    if source.suffix == ".gguf":
        model = load_gguf(source, dtype=dtype)  # a truncated or damaged file fails here, naming itself
    elif (source / "params.json").is_file():
        model = load_meta_llama_checkpoint(source, dtype=dtype)
    else:
        raise CommandError(f"{source} is neither a .gguf file nor a Meta Llama folder with params.json")
    out = save_hf_checkpoint(model, args.dest)
    print(f"wrote {out} ({model.cfg.family}, {sum(p.numel() for p in model.parameters()):,} parameters)")
    return 0
