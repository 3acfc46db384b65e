"""The ch06 bonus encoder notebook: its BERT (random weights) and WordPiece tokenizer match Hugging Face's."""

from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

NOTEBOOK = Path(__file__).parents[2] / "ch06/05_bonus_pretrained-encoder/minilm-spam-classifier.ipynb"


@pytest.fixture(scope="module")
def nb():
    from notebook_defs import load_notebook_definitions

    return load_notebook_definitions(NOTEBOOK)


def test_encoder_matches_hf_bert_with_padding(nb):
    hf_config = transformers.BertConfig(vocab_size=101, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                        intermediate_size=64, max_position_embeddings=40, layer_norm_eps=1e-12,
                                        hidden_act="gelu")
    torch.manual_seed(0)
    hf_model = transformers.BertModel(hf_config).eval()
    cfg = {**nb.MINILM_CONFIG, "vocab_size": 101, "emb_dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64,
           "context_length": 40}
    model = nb.load_minilm_weights(nb.MiniLMEncoder(cfg), hf_model.state_dict()).eval()

    in_idx, mask = nb.collate_ids([[2, 5, 9, 14, 3], [2, 7, 3]])
    with torch.no_grad():
        expected = hf_model(input_ids=in_idx, attention_mask=mask.long()).last_hidden_state
        got = model(in_idx, mask)
    torch.testing.assert_close(got[mask], expected[mask], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(nb.mean_pool(got, mask)[1], got[1, :3].mean(dim=0))


def test_weight_loader_refuses_incomplete_checkpoints(nb):
    cfg = {**nb.MINILM_CONFIG, "vocab_size": 11, "emb_dim": 8, "n_layers": 1, "n_heads": 2, "hidden_dim": 16}
    model = nb.MiniLMEncoder(cfg)
    hf_state = transformers.BertModel(transformers.BertConfig(
        vocab_size=11, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)).state_dict()
    del hf_state["encoder.layer.0.output.dense.bias"]
    with pytest.raises(KeyError, match="missing"):
        nb.load_minilm_weights(model, hf_state)


def test_wordpiece_matches_hf_bert_tokenizer(nb, tmp_path):
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "win", "##ner", "a", "free", "prize", "call", "now", "!",
             ",", ".", "£", "9", "##0", "##00", "cafe", "un", "##believ", "##able", "é", "中", "the", "'", "s", "$"]
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(words) + "\n", encoding="utf-8")
    ours = nb.WordPieceTokenizer(vocab)
    tokenizers = pytest.importorskip("tokenizers")
    reference = tokenizers.BertWordPieceTokenizer(str(vocab), lowercase=True)  # Hugging Face's Rust WordPiece
    texts = ["WINNER!! A free prize, call now.", "Café unbelievable £900", "the winner's $9", "中文 win",
             "unknownword win", "tabs\tand\nnewlines  win", "x" * 120, ""]
    for text in texts:
        assert ours.encode(text) == reference.encode(text).ids, text
    reference.enable_truncation(max_length=5)
    assert ours.encode("win " * 20, max_length=5) == reference.encode("win " * 20).ids
