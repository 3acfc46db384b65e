"""Chapter 7: instruction fine-tuning a GPT model on Alpaca-style instruction/response pairs.

Each entry (``instruction``, optional ``input``, ``output``) becomes one training text: a prompt in the Alpaca
format followed by ``### Response:`` and the answer. Batches are padded with GPT-2's end-of-text token; the
first end-of-text after each text stays a target (so the model learns to stop) and every later one is masked
with ``-100``, the index that PyTorch's cross-entropy skips.

The chapter's evaluation asks a larger model to score the responses over Ollama's chat API
(:func:`query_model`, :func:`generate_model_scores`); ``llms-from-scratch serve`` answers that API too.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from .data import fetch, fetch_asset, list_assets
from .files import atomic_path

PAD_TOKEN_ID = 50256  # <|endoftext|>
IGNORE_INDEX = -100  # the default ignore_index of torch.nn.functional.cross_entropy
ALPACA_PREAMBLE = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
)
PROMPT_STYLES = ("alpaca", "phi3")


def load_instruction_data(name: str = "instruction-data") -> list[dict[str, Any]]:
    """Fetch a JSON list of instruction entries through the data layer and check the keys every entry needs."""
    with open(fetch(name), encoding="utf-8") as f:
        data = json.load(f)
    for i, entry in enumerate(data):
        missing = {"instruction", "input", "output"} - set(entry)
        if missing:
            raise ValueError(f"{name}: entry {i} lacks {sorted(missing)}; each entry needs instruction, input, output")
    return data


def download_and_load_file(file_path: str | Path, url: str) -> Any:
    """The book's loader: save ``url`` at ``file_path`` unless that file exists, then return the file's JSON.

    A URL the data layer knows (this chapter's instruction data, the preference data) is fetched through it, so
    the cache, ``$LLMS_DATA_MIRROR`` and the SHA-256 check apply; any other URL is downloaded as it is.
    """
    file_path = Path(file_path)
    if not file_path.exists():
        asset = next((a for a in list_assets() if url in a.urls), None)
        data = fetch_asset(asset).read_bytes() if asset is not None else _download_bytes(url, file_path)
        # write under a temporary name, then rename: an interrupted write must not look like a finished file
        with atomic_path(file_path) as tmp:
            tmp.write_bytes(data)
    with open(file_path, encoding="utf-8") as f:
        return json.load(f)


def _download_bytes(url: str, file_path: Path, timeout: float = 60.0) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()
    except (urllib.error.URLError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConnectionError(f"could not download {url} ({reason}); save the file at {file_path} yourself and "
                              f"call again (an existing file is read, not downloaded)") from None


def format_input(entry: dict[str, Any]) -> str:
    """The Alpaca prompt: preamble, ``### Instruction:``, and ``### Input:`` only when the entry has an input."""
    instruction_text = f"{ALPACA_PREAMBLE}\n\n### Instruction:\n{entry['instruction']}"
    input_text = f"\n\n### Input:\n{entry['input']}" if entry["input"] else ""
    return instruction_text + input_text


def format_input_phi3(entry: dict[str, Any]) -> str:
    """The Phi-3 chat style (exercise 7.1): ``<|user|>``, the instruction and its input on the next line."""
    input_text = f"\n{entry['input']}" if entry["input"] else ""
    return f"<|user|>\n{entry['instruction']}{input_text}"


def response_prefix(prompt_style: str = "alpaca") -> str:
    """What separates prompt and answer in a training text; generation starts right after it."""
    _check_style(prompt_style)
    return "\n\n### Response:\n" if prompt_style == "alpaca" else "\n<|assistant|>:\n"


def format_prompt(entry: dict[str, Any], prompt_style: str = "alpaca") -> str:
    """The text the model is given at inference time: the formatted prompt plus the response prefix."""
    _check_style(prompt_style)
    body = format_input(entry) if prompt_style == "alpaca" else format_input_phi3(entry)
    return body + response_prefix(prompt_style)


def _check_style(prompt_style: str) -> None:
    if prompt_style not in PROMPT_STYLES:
        raise ValueError(f"prompt_style must be one of {PROMPT_STYLES}, got {prompt_style!r}")


def split_instruction_data(
    data: Sequence[dict[str, Any]], train_frac: float = 0.85, test_frac: float = 0.10
) -> tuple[list, list, list]:
    """Return ``(train, val, test)`` parts, cut in the file's order (the file is already shuffled).

    The training part comes first, then ``test_frac`` for testing; validation gets the rest. With the book's
    1,100 entries: 935 train, 110 test and the remaining 55 for validation.
    """
    if not (0 < train_frac and 0 <= test_frac and train_frac + test_frac <= 1):
        raise ValueError(f"need 0 < train_frac, 0 <= test_frac, sum <= 1; got {train_frac}, {test_frac}")
    train_end = int(len(data) * train_frac)
    test_end = train_end + int(len(data) * test_frac)
    return list(data[:train_end]), list(data[test_end:]), list(data[train_end:test_end])


class InstructionDataset(Dataset):
    """Token ids of each entry's full training text (prompt + response prefix + answer).

    With ``mask_instruction=True`` (exercise 7.2) each item is a ``(token_ids, prompt_length)`` pair, which
    :func:`custom_collate_fn` uses to mask the prompt tokens out of the loss as well.
    """

    def __init__(self, data: Sequence[dict[str, Any]], tokenizer, prompt_style: str = "alpaca",
                 mask_instruction: bool = False):
        _check_style(prompt_style)
        self.data = list(data)
        self.mask_instruction = mask_instruction
        self.encoded_texts, self.prompt_lengths = [], []
        for entry in self.data:
            prompt = format_prompt(entry, prompt_style)
            self.encoded_texts.append(tokenizer.encode(prompt + entry["output"]))
            self.prompt_lengths.append(len(tokenizer.encode(prompt)))

    def __getitem__(self, index: int):
        if self.mask_instruction:
            return self.encoded_texts[index], self.prompt_lengths[index]
        return self.encoded_texts[index]

    def __len__(self) -> int:
        return len(self.data)


def _padded_with_end_of_text(batch: Sequence[Sequence[int]], pad_token_id: int) -> list[list[int]]:
    """Every text plus one end-of-text token, padded to the longest such text: ``len(longest) + 1`` ids each."""
    if len(batch) == 0:
        raise ValueError("a collate function got an empty batch")
    batch_max_length = max(len(item) + 1 for item in batch)
    return [list(item) + [pad_token_id] * (batch_max_length - len(item)) for item in batch]


def custom_collate_draft_1(batch: Sequence[Sequence[int]], pad_token_id: int = PAD_TOKEN_ID,
                           device: str | torch.device = "cpu") -> torch.Tensor:
    """The chapter's first collate step: the inputs only, padded with ``pad_token_id``.

    Returns a ``(batch, len(longest text))`` long tensor: each row is its text followed by padding; the
    end-of-text token every text gets appended falls off the end of the longest row.
    """
    padded = _padded_with_end_of_text(batch, pad_token_id)
    return torch.tensor([ids[:-1] for ids in padded]).to(device)


def custom_collate_draft_2(batch: Sequence[Sequence[int]], pad_token_id: int = PAD_TOKEN_ID,
                           device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The chapter's second collate step: ``(inputs, targets)``, the targets being the inputs shifted by one.

    Nothing is masked yet: every padding position is a target (:func:`custom_collate_fn` masks all but the first).
    """
    padded = _padded_with_end_of_text(batch, pad_token_id)
    inputs = torch.tensor([ids[:-1] for ids in padded])
    targets = torch.tensor([ids[1:] for ids in padded])
    return inputs.to(device), targets.to(device)


def custom_collate_fn(
    batch: Sequence[Sequence[int] | tuple[Sequence[int], int]],
    pad_token_id: int = PAD_TOKEN_ID,
    ignore_index: int = IGNORE_INDEX,
    allowed_max_length: int | None = None,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a batch of token-id lists into ``(inputs, targets)``, both ``(batch, length)`` long tensors.

    Every text gets one end-of-text token appended, then the batch is padded to its longest text. Targets are
    the inputs shifted left by one; the first end-of-text of each row stays a target, the padding after it
    becomes ``ignore_index``. Items given as ``(token_ids, prompt_length)`` also get their prompt positions
    masked. ``allowed_max_length`` cuts both tensors to that many positions.
    """
    if len(batch) == 0:
        raise ValueError("custom_collate_fn got an empty batch")
    items, prompt_lengths = [], []
    for item in batch:
        if isinstance(item, tuple):
            items.append(list(item[0]))
            prompt_lengths.append(item[1])
        else:
            items.append(list(item))
            prompt_lengths.append(0)
    batch_max_length = max(len(ids) + 1 for ids in items)  # +1 for the end-of-text token every text gets

    inputs_lst, targets_lst = [], []
    for ids, prompt_length in zip(items, prompt_lengths):
        padded = ids + [pad_token_id] * (batch_max_length - len(ids))  # at least one end-of-text each
        inputs = torch.tensor(padded[:-1])
        targets = torch.tensor(padded[1:])
        # positions len(ids)-1 .. end predict padding; only the first of them (the end-of-text) is kept
        first_pad = len(ids) - 1
        targets[first_pad + 1:] = ignore_index
        if prompt_length > 0:
            # target i is token i+1, so the prompt's tokens 1..prompt_length-1 sit at targets 0..prompt_length-2
            targets[:prompt_length - 1] = ignore_index
        if allowed_max_length is not None:
            inputs = inputs[:allowed_max_length]
            targets = targets[:allowed_max_length]
        inputs_lst.append(inputs)
        targets_lst.append(targets)
    return torch.stack(inputs_lst).to(device), torch.stack(targets_lst).to(device)


def create_instruction_loaders(
    train_data, val_data, test_data, tokenizer, batch_size: int = 8, device="cpu", allowed_max_length: int = 1024,
    num_workers: int = 0, prompt_style: str = "alpaca", mask_instruction: bool = False, seed: int = 123,
) -> tuple[DataLoader, DataLoader, DataLoader]:
    """Data loaders for the three splits, collated by :func:`custom_collate_fn` straight onto ``device``."""
    collate = partial(custom_collate_fn, device=device, allowed_max_length=allowed_max_length)
    loaders = []
    for i, data in enumerate((train_data, val_data, test_data)):
        dataset = InstructionDataset(data, tokenizer, prompt_style=prompt_style, mask_instruction=mask_instruction)
        is_train = i == 0
        loaders.append(DataLoader(
            dataset, batch_size=batch_size, collate_fn=collate, shuffle=is_train, drop_last=is_train,
            num_workers=num_workers, generator=torch.Generator().manual_seed(seed) if is_train else None,
        ))
    return tuple(loaders)


def extract_response(generated_text: str, prompt: str) -> str:
    """The model's answer: the generated text after the prompt, without the response header, stripped."""
    if not generated_text.startswith(prompt):
        raise ValueError("the generated text does not start with the prompt; pass the text that generate() returned")
    return generated_text[len(prompt):].replace("### Response:", "").strip()


def generate_responses(model, tokenizer, data: Sequence[dict[str, Any]], device, max_new_tokens: int = 256,
                       prompt_style: str = "alpaca", progress: bool = True) -> list[dict[str, Any]]:
    """Answer every entry greedily; return copies of the entries with a ``model_response`` field added."""
    from tqdm import tqdm

    from .ch05 import generate, text_to_token_ids, token_ids_to_text

    context_size = model.pos_emb.weight.shape[0]
    model.eval()
    results = []
    for entry in tqdm(data, disable=not progress, desc="Generating"):
        prompt = format_prompt(entry, prompt_style)
        token_ids = generate(model=model, idx=text_to_token_ids(prompt, tokenizer).to(device),
                             max_new_tokens=max_new_tokens, context_size=context_size, eos_id=PAD_TOKEN_ID)
        text = token_ids_to_text(token_ids, tokenizer)
        results.append({**entry, "model_response": extract_response(text, prompt)})
    return results


def save_json(data: Any, path: str | Path) -> Path:
    """Write ``data`` as indented UTF-8 JSON; the file appears atomically."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=4, ensure_ascii=False)
    return path


def finetune_instruction_model(
    out_dir: str | Path, model_size: str = "355M", num_epochs: int = 2, lr: float | None = None,
    batch_size: int = 8, train_examples: int | None = None, test_examples: int | None = None,
    prompt_style: str = "alpaca", mask_instruction: bool = False, lora_rank: int | None = None,
    max_new_tokens: int = 256, seed: int = 123, quick: bool | None = None, verbose: bool = True,
    device: str | torch.device | None = None,
) -> dict:
    """Chapter 7 end to end: fine-tune, answer the test set, save responses (JSON) and weights in ``out_dir``.

    ``lr=None`` picks 5e-5 for real GPT-2 weights and 5e-3 for the random stand-in. With ``lora_rank`` the model
    is frozen and only LoRA adapters train (and only they are saved). ``device=None`` picks CUDA, MPS or the CPU.
    """
    import time

    from .appendix_e import replace_linear_with_lora, save_lora_adapters
    from .ch05 import calc_loss_loader, train_model_simple
    from .ch06 import save_model
    from .data import gpt2_encoding
    from .device import pick_device
    from .training.base_model import load_base_gpt

    device = pick_device(verbose=verbose)[0] if device is None else torch.device(device)
    out_dir = Path(out_dir)
    tokenizer = gpt2_encoding()
    train_data, val_data, test_data = split_instruction_data(load_instruction_data())
    train_data = train_data[:train_examples] if train_examples is not None else train_data
    test_data = test_data[:test_examples] if test_examples is not None else test_data
    base = load_base_gpt(model_size, quick=quick, seed=seed, verbose=verbose)
    model = base.model
    if lora_rank is not None:
        model.requires_grad_(False)
        torch.manual_seed(seed)
        replace_linear_with_lora(model, rank=lora_rank, alpha=lora_rank)
    model.to(device)
    train_loader, val_loader, _ = create_instruction_loaders(
        train_data, val_data, test_data, tokenizer, batch_size=batch_size, device=device,
        allowed_max_length=base.config["context_length"], prompt_style=prompt_style,
        mask_instruction=mask_instruction, seed=seed)
    if lr is None:
        lr = 5e-5 if base.pretrained else 5e-3
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.1)
    with torch.no_grad():
        val_loss_before = calc_loss_loader(val_loader, model, device)
    start = time.perf_counter()
    train_model_simple(model, train_loader, val_loader, optimizer, device, num_epochs=num_epochs, eval_freq=50,
                       eval_iter=5, start_context=format_prompt(val_data[0], prompt_style), tokenizer=tokenizer)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        val_loss_after = calc_loss_loader(val_loader, model, device)
    responses = generate_responses(model, tokenizer, test_data, device, max_new_tokens=max_new_tokens,
                                   prompt_style=prompt_style, progress=verbose)
    responses_path = save_json(responses, out_dir / "instruction-data-with-response.json")
    if lora_rank is not None:
        weights_path = save_lora_adapters(model, out_dir / "instruct-lora-adapters.safetensors")
    else:
        weights_path = save_model(model, out_dir / "instruct.safetensors")
    return {
        "model": f"GPT-2 {model_size}" if base.pretrained else "random stand-in (see note)",
        "note": base.note,
        "epochs": num_epochs,
        "lr": lr,
        "train_examples": len(train_data),
        "val_loss_before": val_loss_before,
        "val_loss_after": val_loss_after,
        "train_seconds": seconds,
        "responses": str(responses_path),
        "saved": str(weights_path),
    }


# ---------------------------------------------------------------------------------------------------------------
# Scoring responses with a model served over Ollama's chat API (the chapter's evaluation section)
# ---------------------------------------------------------------------------------------------------------------

OLLAMA_CHAT_URL = "http://localhost:11434/api/chat"
# the options the book sends for reproducible replies: fixed seed, greedy decoding, a 2,048-token context
QUERY_OPTIONS = {"seed": 123, "temperature": 0, "num_ctx": 2048}
_PROC = Path("/proc")  # Linux's process table, read when psutil is not installed


def check_if_running(process_name: str) -> bool:
    """Whether some running process has ``process_name`` in its name (the book checks for ``"ollama"``).

    Uses ``psutil`` when it is installed; otherwise ``/proc`` (Linux), ``ps`` (macOS, BSD) or ``tasklist``
    (Windows).
    """
    return any(process_name in name for name in _process_names())


def _process_names() -> list[str]:
    try:
        import psutil
    except ImportError:
        pass
    else:
        return [proc.info["name"] or "" for proc in psutil.process_iter(["name"])]
    if (_PROC / "self" / "comm").is_file():
        return [name for pid in _PROC.iterdir() if pid.name.isdigit() and (name := _proc_name(pid))]
    import subprocess
    import sys

    command = ["tasklist", "/fo", "csv", "/nh"] if sys.platform == "win32" else ["ps", "-A", "-o", "comm="]
    try:
        out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(f"cannot list the running processes ({exc}); install psutil (`pip install psutil`)") \
            from None
    if sys.platform == "win32":
        return [line.split('","')[0].strip('"') for line in out.splitlines() if line]
    return [Path(line.strip()).name for line in out.splitlines() if line.strip()]


def _proc_name(pid_dir: Path) -> str:
    """A Linux process's name; the kernel cuts ``comm`` at 15 characters, so a cut name is completed from argv[0]."""
    try:
        name = (pid_dir / "comm").read_text().strip()
        if len(name) == 15:
            argv0 = (pid_dir / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            full = Path(argv0).name
            if full.startswith(name):
                name = full
    except OSError:  # the process ended while we looked, or belongs to someone we may not inspect
        return ""
    return name


def query_model(prompt: str, model: str = "llama3", url: str = OLLAMA_CHAT_URL, *,
                options: dict[str, Any] | None = None, timeout: float | None = None) -> str:
    """Send ``prompt`` as one user message to an Ollama-style ``/api/chat`` endpoint; return the reply's text.

    The request carries the book's options (``seed`` 123, ``temperature`` 0, ``num_ctx`` 2048); ``options``
    (not in the book) adds to or overrides them, e.g. ``{"num_predict": 32}``. The server streams one JSON object
    per line and the reply is the concatenation of their ``message.content``; a server asked not to stream sends
    a single such line. Works with Ollama and, offline, with this project's server:
    ``llms-from-scratch serve -m smollm2-135m-instruct --name llama3 --port 11434``.
    """
    body = {"model": model, "messages": [{"role": "user", "content": prompt}],
            "options": {**QUERY_OPTIONS, **(options or {})}}
    request = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"), method="POST",
                                     headers={"Content-Type": "application/json"})
    pieces = []
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            for line in response:  # one JSON object per line
                if not line.strip():
                    continue
                chunk = json.loads(line)
                if "error" in chunk:  # Ollama reports a failure that happens mid-stream in the stream itself
                    raise RuntimeError(f"{url} reported an error while answering: {chunk['error']}")
                pieces.append(chunk["message"]["content"])
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{url} answered HTTP {exc.code}: {_error_detail(exc)}") from None
    except urllib.error.URLError as exc:
        raise ConnectionError(
            f"could not reach {url} ({exc.reason}); start Ollama (`ollama serve`, then `ollama pull {model}`) or "
            f"this project's server (`llms-from-scratch serve -m smollm2-135m-instruct --name {model} --port 11434`)"
        ) from None
    return "".join(pieces)


def _error_detail(exc: urllib.error.HTTPError) -> str:
    raw = exc.read()
    try:
        error = json.loads(raw)["error"]
    except (ValueError, KeyError, TypeError):
        return raw[:200].decode("utf-8", errors="replace") or str(exc.reason)
    return error["message"] if isinstance(error, dict) and "message" in error else str(error)


def generate_model_scores(json_data: Sequence[dict[str, Any]], json_key: str, model: str = "llama3", *,
                          url: str = OLLAMA_CHAT_URL) -> list[int]:
    """Ask the model behind ``url`` to score each entry's ``json_key`` response from 0 to 100 against ``output``.

    The prompt is the book's. A reply that is not an integer is reported (printed) and skipped, as in the book,
    so the list can be shorter than ``json_data``. ``url`` (not in the book) points at another server.
    """
    from tqdm import tqdm

    scores = []
    for entry in tqdm(json_data, desc="Scoring entries"):
        prompt = (
            f"Given the input `{format_input(entry)}` and correct output `{entry['output']}`, "
            f"score the model response `{entry[json_key]}` on a scale from 0 to 100, where 100 is the best score. "
            f"Respond with the integer number only."
        )
        reply = query_model(prompt, model, url)
        try:
            scores.append(int(reply))
        except ValueError:
            print(f"Could not convert score: {reply}")
    return scores
