"""The concept model's pieces: sentence splitting, exact baselines, seeded candidates, masks, training, caching."""

import torch

from llms_from_scratch.concepts import (
    ConceptConfig,
    ConceptModel,
    cached_sentence_embeddings,
    concept_loss,
    context_mean,
    copy_previous,
    info_nce_loss,
    masked_mse_loss,
    next_sentence_items,
    pad_reviews,
    retrieval_accuracy,
    retrieval_hits,
    sample_candidates,
    split_sentences,
    train_concept_model,
)

TINY = ConceptConfig(sentence_dim=8, emb_dim=16, n_layers=2, n_heads=2, context_length=12, drop_rate=0.0)


def test_split_sentences_uses_lines_and_capitalised_sentence_ends():
    text = 'the film opens . \nmr . smith is " great . " \n \n" \nIt works. And it ends! ok ?'
    assert split_sentences(text) == ["the film opens .", 'mr . smith is " great . "', "It works.", "And it ends! ok ?"]


def test_baselines_exact_on_crafted_review():
    emb = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]])  # one review, last row is padding
    assert torch.equal(copy_previous(emb), emb)
    expected_mean = torch.tensor([[[1.0, 0.0], [0.5, 0.5], [2 / 3, 2 / 3], [0.5, 0.5]]])
    torch.testing.assert_close(context_mean(emb), expected_mean, rtol=0, atol=1e-7)


def test_baseline_accuracy_exact_on_crafted_pool():
    # review of four unit sentences a, b, b', c; pool = the review itself; one negative per target
    a, b, b2, c = torch.tensor([1.0, 0, 0]), torch.tensor([0, 1.0, 0]), torch.tensor([0, 0.8, 0.6]), torch.tensor([0, 0, 1.0])
    pool = torch.stack([a, b, b2, c])
    review, position, target = next_sentence_items([4])
    assert review.tolist() == [0, 0, 0] and position.tolist() == [0, 1, 2] and target.tolist() == [1, 2, 3]
    negatives = torch.tensor([[0], [0], [1]])  # a for b, a for b', b for c
    copy_pred = copy_previous(pool[None])[0][position]
    # b vs a after a: copy says a -> a wins (miss); b' after b: b.b'=0.8 > b.a=0 (hit); c after b': 0.6 > 0.8? miss
    assert retrieval_hits(copy_pred, target, negatives, pool).tolist() == [False, True, False]
    mean_pred = context_mean(pool[None])[0][position]
    # after a,b: mean (.5,.5,0): b'=.4 vs a=.5 miss; after a,b,b': mean (1/3,.6,.2): c=.2 vs b=.6 miss
    assert retrieval_hits(mean_pred, target, negatives, pool).tolist() == [False, False, False]
    assert retrieval_accuracy(copy_pred, target, negatives, pool) == 1 / 3


def test_ties_count_as_misses():
    pool = torch.eye(3)
    hits = retrieval_hits(torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([0]), torch.tensor([[1]]), pool)
    assert hits.tolist() == [False]


def test_candidates_exclude_target_are_distinct_and_seeded():
    targets = torch.tensor([0, 5, 9, 9, 3])
    neg = sample_candidates(targets, pool_size=10, k=9, seed=7)
    assert neg.shape == (5, 9)
    for t, row in zip(targets.tolist(), neg.tolist()):
        assert sorted(row) == [i for i in range(10) if i != t]  # k = pool - 1: every other sentence, once
    small = sample_candidates(torch.arange(200) % 50, pool_size=50, k=5, seed=1)
    assert not (small == (torch.arange(200) % 50)[:, None]).any()
    assert torch.equal(small, sample_candidates(torch.arange(200) % 50, pool_size=50, k=5, seed=1))
    assert not torch.equal(small, sample_candidates(torch.arange(200) % 50, pool_size=50, k=5, seed=2))


def test_pad_reviews_shapes_masks_and_truncation():
    reviews = [torch.randn(3, 8), torch.randn(5, 8), torch.randn(1, 8)]
    emb, mask = pad_reviews(reviews)
    assert emb.shape == (3, 5, 8) and mask.sum(1).tolist() == [3, 5, 1]
    assert torch.equal(emb[0, :3], reviews[0]) and not emb[0, 3:].any()
    emb4, mask4 = pad_reviews(reviews, max_sentences=4)
    assert emb4.shape == (3, 4, 8) and mask4.sum(1).tolist() == [3, 4, 1]


def test_padding_does_not_change_real_positions_or_losses():
    torch.manual_seed(0)
    model = ConceptModel(TINY).eval()
    short, long = torch.randn(3, 8), torch.randn(6, 8)
    emb, mask = pad_reviews([short, long])
    out = model(emb)
    assert out.shape == (2, 6, 8)
    torch.testing.assert_close(out[0, :3], model(short[None])[0])
    # garbage in the padding must not change the output at real positions nor the losses
    noisy = emb.clone()
    noisy[0, 3:] = 100.0
    torch.testing.assert_close(model(noisy)[0, :3], out[0, :3])
    for loss in (masked_mse_loss, info_nce_loss):
        torch.testing.assert_close(loss(model(noisy), noisy, mask), loss(out, emb, mask))


def test_mse_loss_counts_only_real_next_sentences():
    emb = torch.zeros(1, 4, 2)
    emb[0, 1] = torch.tensor([1.0, 1.0])
    mask = torch.tensor([[True, True, False, False]])
    pred = torch.zeros(1, 4, 2)
    pred[0, 1:] = 5.0  # predictions at positions without a real next sentence are ignored
    assert masked_mse_loss(pred, emb, mask).item() == 1.0  # only position 0 -> target (1, 1)


def test_info_nce_prefers_correct_pairs():
    target = torch.nn.functional.normalize(torch.randn(1, 5, 8), dim=-1)
    mask = torch.ones(1, 5, dtype=torch.bool)
    pred_good = torch.cat([target[:, 1:], torch.zeros(1, 1, 8)], dim=1)  # position t predicts sentence t + 1
    pred_bad = pred_good.flip(1)
    assert info_nce_loss(pred_good, target, mask) < info_nce_loss(pred_bad, target, mask)


def test_a_few_training_steps_lower_the_loss():
    torch.manual_seed(0)
    # reviews that cycle through four fixed directions: the next sentence is predictable from the current one
    basis = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    reviews = [basis[(torch.arange(n) + s) % 4] for n, s in [(5, 0), (7, 1), (4, 2), (6, 3)] * 2]
    for objective in ("mse", "infonce"):
        torch.manual_seed(1)
        model = ConceptModel(TINY)
        emb, mask = pad_reviews(reviews)
        before = concept_loss(model.eval(), emb, mask, objective).item()
        train_concept_model(model, reviews, objective=objective, epochs=6, batch_size=8, lr=1e-2)
        after = concept_loss(model, emb, mask, objective).item()
        assert after < 0.7 * before, (objective, before, after)


def test_embedding_cache_reuses_file_and_writes_atomically(tmp_path):
    calls = []

    def compute(sentences):
        calls.append(list(sentences))
        return torch.arange(len(sentences) * 2, dtype=torch.float32).view(-1, 2)

    first, path, cached = cached_sentence_embeddings(["a .", "b ."], compute, folder=tmp_path)
    assert not cached and path.is_file() and len(calls) == 1
    again, _, cached = cached_sentence_embeddings(["a .", "b ."], compute, folder=tmp_path)
    assert cached and torch.equal(first, again) and len(calls) == 1
    _, other, cached = cached_sentence_embeddings(["a .", "c ."], compute, folder=tmp_path)
    assert not cached and other != path and len(calls) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, other.name])  # no temporary files left


def test_load_reviews_reads_label_and_text_past_the_byte_order_mark(tmp_path):
    from llms_from_scratch.concepts import load_reviews

    path = tmp_path / "reviews.csv"
    path.write_text('\ufeff"1","a fine film . \nit works . "\n"0","dull ."\n', encoding="utf-8")
    assert load_reviews(path) == [(1, "a fine film . \nit works . "), (0, "dull .")]
    assert split_sentences(load_reviews(path)[0][1]) == ["a fine film .", "it works ."]
