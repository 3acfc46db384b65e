"""Chapter 7: prompt format, data split, the collate function's exact ids and masks, and the data set."""

import pytest
import torch

from llms_from_scratch import ch07
from llms_from_scratch.ch07 import (
    ALPACA_PREAMBLE,
    InstructionDataset,
    custom_collate_fn,
    extract_response,
    format_input,
    format_input_phi3,
    format_prompt,
    load_instruction_data,
    split_instruction_data,
)
from llms_from_scratch.data import gpt2_encoding

PAD = 50256


def test_collate_pads_keeps_first_end_of_text_and_masks_the_rest():
    inputs, targets = custom_collate_fn([[0, 1, 2, 3, 4], [5, 6], [7, 8, 9]])
    assert inputs.tolist() == [
        [0, 1, 2, 3, 4],
        [5, 6, PAD, PAD, PAD],
        [7, 8, 9, PAD, PAD],
    ]
    assert targets.tolist() == [
        [1, 2, 3, 4, PAD],
        [6, PAD, -100, -100, -100],
        [8, 9, PAD, -100, -100],
    ]
    assert inputs.dtype == targets.dtype == torch.long
    assert inputs.shape == targets.shape == (3, 5)


def test_collate_custom_pad_and_ignore_index_and_truncation():
    inputs, targets = custom_collate_fn([[1, 2, 3, 4, 5, 6], [7]], pad_token_id=0, ignore_index=-1,
                                        allowed_max_length=4)
    assert inputs.tolist() == [[1, 2, 3, 4], [7, 0, 0, 0]]
    assert targets.tolist() == [[2, 3, 4, 5], [0, -1, -1, -1]]


def test_collate_keeps_end_of_text_that_is_part_of_the_text():
    # masking goes by position, so an <|endoftext|> inside the text stays a target
    _, targets = custom_collate_fn([[1, PAD, 2], [3]])
    assert targets.tolist() == [[PAD, 2, PAD], [PAD, -100, -100]]


def test_collate_masks_prompt_when_given_prompt_lengths():
    _, targets = custom_collate_fn([([10, 11, 12, 13], 2), ([20, 21, 22], 3)])
    # row 0: the prompt is tokens 10, 11; the target of position 0 (token 11) is still prompt
    assert targets.tolist() == [[-100, 12, 13, PAD], [-100, -100, PAD, -100]]


def test_collate_device_and_empty_batch():
    inputs, targets = custom_collate_fn([[1, 2]], device="meta")
    assert inputs.device.type == targets.device.type == "meta"
    with pytest.raises(ValueError, match="empty batch"):
        custom_collate_fn([])


def test_format_input_alpaca_and_phi3():
    entry = {"instruction": "Rewrite the sentence.", "input": "It is cold.", "output": "It's chilly."}
    assert format_input(entry) == (
        f"{ALPACA_PREAMBLE}\n\n### Instruction:\nRewrite the sentence.\n\n### Input:\nIt is cold."
    )
    assert "### Input" not in format_input({**entry, "input": ""})
    assert format_input_phi3(entry) == "<|user|>\nRewrite the sentence.\nIt is cold."
    assert format_prompt(entry, "phi3").endswith("\n<|assistant|>:\n")
    with pytest.raises(ValueError, match="prompt_style"):
        format_prompt(entry, "chatml")


def test_split_counts_on_the_real_data():
    data = load_instruction_data()
    assert len(data) == 1100
    train, val, test = split_instruction_data(data)
    assert (len(train), len(val), len(test)) == (935, 55, 110)
    assert train[0] == data[0] and test[0] == data[935] and val[0] == data[1045]


def test_instruction_dataset_encodes_prompt_and_response():
    tokenizer = gpt2_encoding()
    entry = {"instruction": "Name a colour.", "input": "", "output": "Blue."}
    dataset = InstructionDataset([entry], tokenizer)
    assert dataset[0] == tokenizer.encode(format_input(entry) + "\n\n### Response:\nBlue.")
    masked = InstructionDataset([entry], tokenizer, mask_instruction=True)
    ids, prompt_length = masked[0]
    assert tokenizer.decode(ids[prompt_length:]) == "Blue."


def test_extract_response():
    prompt = "Q\n\n### Response:\n"
    assert extract_response(prompt + " Paris. ", prompt) == "Paris."
    with pytest.raises(ValueError, match="start with the prompt"):
        extract_response("something else", prompt)


def test_quick_instruction_fine_tuning_lowers_loss_and_answers():
    """Seeded: 8 steps on 32 entries lower the stand-in's validation loss by at least 1 nat."""
    from functools import partial

    from torch.utils.data import DataLoader

    from llms_from_scratch.base_model import load_base_gpt
    from llms_from_scratch.ch05 import calc_loss_loader, train_model_simple
    from llms_from_scratch.ch07 import generate_responses

    tokenizer = gpt2_encoding()
    train, val, test = split_instruction_data(load_instruction_data())
    collate = partial(custom_collate_fn, allowed_max_length=128)
    torch.manual_seed(123)
    train_loader = DataLoader(InstructionDataset(train[:32], tokenizer), batch_size=8, shuffle=True,
                              collate_fn=collate, generator=torch.Generator().manual_seed(123))
    val_loader = DataLoader(InstructionDataset(val[:16], tokenizer), batch_size=8, collate_fn=collate)
    model = load_base_gpt(quick=True, verbose=False).model
    with torch.no_grad():
        loss_before = calc_loss_loader(val_loader, model, "cpu")
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.1)
    train_model_simple(model, train_loader, val_loader, optimizer, "cpu", num_epochs=2, eval_freq=100,
                       eval_iter=1, start_context=format_input(val[0]), tokenizer=tokenizer)
    with torch.no_grad():
        loss_after = calc_loss_loader(val_loader, model, "cpu")
    assert loss_after < loss_before - 1.0

    results = generate_responses(model, tokenizer, test[:2], "cpu", max_new_tokens=5, progress=False)
    assert [r["instruction"] for r in results] == [e["instruction"] for e in test[:2]]
    assert all(isinstance(r["model_response"], str) for r in results)


def test_notebook_definitions_agree_with_package():
    from pathlib import Path

    from notebook_defs import load_notebook_definitions

    nb = load_notebook_definitions(Path(__file__).parents[2] / "ch07/01_main-chapter-code/ch07.ipynb")
    data = load_instruction_data()
    for entry in data[:50]:
        assert nb.format_input(entry) == format_input(entry)
    tokenizer = gpt2_encoding()
    assert nb.InstructionDataset(data[:20], tokenizer).encoded_texts == InstructionDataset(data[:20],
                                                                                             tokenizer).encoded_texts
    batches = [[[0, 1, 2, 3, 4], [5, 6], [7, 8, 9]], [[1, 50256, 2], [3]], [[9] * 12, [8] * 3]]
    for batch in batches:
        for kwargs in ({}, {"allowed_max_length": 4}, {"pad_token_id": 0, "ignore_index": -1}):
            expected = custom_collate_fn(batch, **kwargs)
            got = nb.custom_collate_fn(batch, **kwargs)
            assert all(torch.equal(a, b) for a, b in zip(got, expected))
        # the two drafts the chapter builds the collate function through
        assert torch.equal(nb.custom_collate_draft_1(batch), ch07.custom_collate_draft_1(batch))
        assert all(torch.equal(a, b) for a, b in zip(nb.custom_collate_draft_2(batch),
                                                      ch07.custom_collate_draft_2(batch), strict=True))
