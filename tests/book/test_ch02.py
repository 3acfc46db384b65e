"""Chapter 2: the simple tokenizers, the sliding-window dataset and the data loader, package against notebook."""

from pathlib import Path

import pytest
import torch
from notebook_defs import load_notebook_definitions

from llms_from_scratch.ch02 import (
    END_OF_TEXT,
    UNK_TOKEN,
    GPTDatasetV1,
    SimpleTokenizerV1,
    SimpleTokenizerV2,
    build_vocab,
    create_dataloader_v1,
    tokenize,
)
from llms_from_scratch.data import gpt2_encoding, read_text

CHAPTER = Path(__file__).resolve().parents[2] / "ch02" / "01_main-chapter-code"


@pytest.fixture(scope="module")
def verdict() -> str:
    return read_text("the-verdict")


@pytest.fixture(scope="module")
def nb():
    return load_notebook_definitions(CHAPTER / "ch02.ipynb")


def test_verdict_tokens_and_vocabulary(verdict):
    tokens = tokenize(verdict)
    assert len(tokens) == 4690
    assert len(build_vocab(tokens)) == 1130
    assert len(build_vocab(tokens, special_tokens=(END_OF_TEXT, UNK_TOKEN))) == 1132
    assert len(gpt2_encoding().encode(verdict)) == 5145


def test_simple_tokenizers_agree_with_notebook(nb, verdict):
    vocab = build_vocab(tokenize(verdict))
    sample = '"It\'s the last he painted, you know," Mrs. Gisburn said with pardonable pride.'
    ours, theirs = SimpleTokenizerV1(vocab), nb.SimpleTokenizerV1(vocab)
    assert ours.encode(sample) == theirs.encode(sample)
    # quotes and apostrophes are tokens of their own, so decoding puts a space after them
    expected = sample.replace('"It\'s', '" It\' s')
    assert ours.decode(ours.encode(sample)) == theirs.decode(theirs.encode(sample)) == expected
    assert ours.encode(verdict) == theirs.encode(verdict)

    vocab2 = build_vocab(tokenize(verdict), special_tokens=(END_OF_TEXT, UNK_TOKEN))
    text = f"Hello, do you like tea? {END_OF_TEXT} In the sunlit terraces of the palace."
    ours2, theirs2 = SimpleTokenizerV2(vocab2), nb.SimpleTokenizerV2(vocab2)
    ids = ours2.encode(text)
    assert ids == theirs2.encode(text)
    assert ids[0] == vocab2[UNK_TOKEN] and vocab2[END_OF_TEXT] in ids
    assert ours2.decode(ids) == theirs2.decode(ids) == text.replace("Hello", UNK_TOKEN).replace("palace", UNK_TOKEN)


def test_dataset_and_loader_agree_with_notebook(nb, verdict):
    ours = GPTDatasetV1(verdict, gpt2_encoding(), max_length=8, stride=5)
    theirs = nb.GPTDatasetV1(verdict, gpt2_encoding(), max_length=8, stride=5)
    assert len(ours) == len(theirs)
    for i in (0, 1, len(ours) // 2, len(ours) - 1):
        assert torch.equal(ours[i][0], theirs[i][0]) and torch.equal(ours[i][1], theirs[i][1])

    ours_batches = list(create_dataloader_v1(verdict, batch_size=8, max_length=4, stride=4, shuffle=False))
    theirs_batches = list(nb.create_dataloader_v1(verdict, batch_size=8, max_length=4, stride=4, shuffle=False))
    assert len(ours_batches) == len(theirs_batches)
    for (x1, y1), (x2, y2) in zip(ours_batches, theirs_batches):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_targets_are_inputs_shifted_by_one(verdict):
    ids = gpt2_encoding().encode(verdict)
    dataset = GPTDatasetV1(verdict, gpt2_encoding(), max_length=16, stride=16)
    for i in range(len(dataset)):
        x, y = dataset[i]
        assert x.tolist() == ids[16 * i : 16 * i + 16]
        assert y.tolist() == ids[16 * i + 1 : 16 * i + 17]


@pytest.mark.parametrize("max_length, stride", [(4, 1), (4, 2), (4, 4), (4, 6), (256, 128)])
def test_stride_semantics(verdict, max_length, stride):
    dataset = GPTDatasetV1(verdict, gpt2_encoding(), max_length=max_length, stride=stride)
    n_tokens = 5145
    # windows start at 0, stride, 2*stride, ... while a full target (one token further) still fits
    assert len(dataset) == len(range(0, n_tokens - max_length, stride))
    ids = gpt2_encoding().encode(verdict)
    for k in (0, 1, len(dataset) - 1):  # window k starts at token k * stride
        assert dataset[k][0].tolist() == ids[k * stride : k * stride + max_length]
    if stride < max_length:  # overlapping windows share max_length - stride tokens
        assert torch.equal(dataset[0][0][stride:], dataset[1][0][: max_length - stride])


def test_batch_counts_on_the_verdict(verdict):
    # 5,145 tokens: with max_length = stride = 4 there are 1,286 windows, so 160 full batches of 8
    loader = create_dataloader_v1(verdict, batch_size=8, max_length=4, stride=4, shuffle=False)
    assert len(loader) == 160
    inputs, targets = next(iter(loader))
    assert inputs.shape == targets.shape == (8, 4)
    assert inputs[0].tolist() == [40, 367, 2885, 1464]
    # the book's chapter 5 split: 90% for training, context 256, stride 256, batch 2
    split = int(0.9 * len(verdict))
    train = create_dataloader_v1(verdict[:split], batch_size=2, max_length=256, stride=256, shuffle=False)
    val = create_dataloader_v1(verdict[split:], batch_size=2, max_length=256, stride=256, drop_last=False,
                               shuffle=False)
    assert (len(train), len(val)) == (9, 1)
    loose = create_dataloader_v1(verdict, batch_size=8, max_length=4, stride=4, drop_last=False, shuffle=False)
    assert len(loose) == 161 and len(list(loose)[-1][0]) == 1286 - 160 * 8


def test_shuffle_is_reproducible_with_a_seed(verdict):
    torch.manual_seed(123)
    a = next(iter(create_dataloader_v1(verdict, batch_size=4, max_length=4, stride=4)))[0]
    torch.manual_seed(123)
    b = next(iter(create_dataloader_v1(verdict, batch_size=4, max_length=4, stride=4)))[0]
    assert torch.equal(a, b)


def test_bad_input_gives_clear_errors(verdict):
    with pytest.raises(ValueError, match="text is empty"):
        create_dataloader_v1("")
    with pytest.raises(ValueError, match="too few for one input/target pair of max_length=256"):
        create_dataloader_v1("A short text.", max_length=256)
    with pytest.raises(ValueError, match="stride must be at least 1"):
        create_dataloader_v1(verdict, stride=0)
    with pytest.raises(ValueError, match="max_length must be at least 1"):
        GPTDatasetV1(verdict, gpt2_encoding(), max_length=0, stride=1)
    with pytest.raises(ValueError, match="fewer than batch_size"):
        create_dataloader_v1(verdict[:2000], batch_size=8, max_length=256, stride=256)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        create_dataloader_v1(verdict, batch_size=0)

    tokenizer = SimpleTokenizerV1(build_vocab(tokenize(verdict)))
    with pytest.raises(KeyError, match=r"not in the vocabulary: 'Hello'.*SimpleTokenizerV2"):
        tokenizer.encode("Hello, do you like tea?")
    with pytest.raises(ValueError, match=r"no <\|unk\|> entry"):
        SimpleTokenizerV2(build_vocab(tokenize(verdict)))
