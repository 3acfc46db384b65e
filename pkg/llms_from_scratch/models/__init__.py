"""The model zoo, built from the shared blocks in ``nn``: GPT-2, Llama 2/3/3.1/3.2, SmolLM2, Qwen1, Qwen3,
Qwen3-MoE, Mistral and DeepSeek-V3 (decoders), and BERT (an encoder). :mod:`.families` lists them.

>>> from llms_from_scratch.models import get_config, build_model, load_hf_checkpoint
>>> model = build_model(get_config("qwen3-0.6b"))            # random weights
>>> model = load_hf_checkpoint("path/to/Qwen3-0.6B")          # a Hugging Face folder
"""

from .config import ModelConfig
from .decoder import DecoderLM, TransformerBlock
from .encoder import EncoderMLM
from .families import FAMILIES, get_config, get_family, list_models
from .family import Family
from .gguf_file import load_gguf, read_gguf_config
from .loading import build_model, load_hf_checkpoint, read_hf_config, save_hf_checkpoint
from .meta_llama import load_meta_llama_checkpoint
from .pretrained import PRETRAINED, load_pretrained, resolve
from .weights import WeightMap, WeightMismatchError

__all__ = [
    "FAMILIES",
    "PRETRAINED",
    "DecoderLM",
    "EncoderMLM",
    "Family",
    "ModelConfig",
    "TransformerBlock",
    "WeightMap",
    "WeightMismatchError",
    "build_model",
    "get_config",
    "get_family",
    "list_models",
    "load_gguf",
    "load_hf_checkpoint",
    "load_meta_llama_checkpoint",
    "load_pretrained",
    "read_gguf_config",
    "read_hf_config",
    "resolve",
    "save_hf_checkpoint",
]
