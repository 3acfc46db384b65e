"""Arithmetic word problems for GRPO: the generator (determinism, answers, held-out split), the answer parser and
reward, and GRPO on a tiny random SmolLM2-shaped model through the chat template (no real weights)."""

import re

import pytest
import torch

from llms_from_scratch.alignment import word_problems_grpo
from llms_from_scratch.alignment.grpo import GRPOConfig
from llms_from_scratch.alignment.rollouts import sample_completions
from llms_from_scratch.alignment.word_problems import (
    TEMPLATES,
    exact_answer_reward,
    make_problems,
    parse_final_integer,
    split_of,
)
from llms_from_scratch.alignment.word_problems_grpo import (
    INSTRUCTION,
    WORKED_INSTRUCTION,
    answer_format_sft,
    cached_rollouts,
    chat_prompts,
    evaluate_word_problems,
    grpo_rollout_step,
    train_grpo_cached,
    train_top_blocks,
    worked_answer,
)
from llms_from_scratch.models.decoder import DecoderLM
from llms_from_scratch.models.llama import SMOLLM2_135M_INSTRUCT
from llms_from_scratch.tokenizers import ChatFormat
from llms_from_scratch.tokenizers.bpe import ByteLevelBPETokenizer

# the answer of each template from its numbers, written out independently of the generator
ANSWERS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "add_sub": lambda a, b, c: a + b - c,
    "mul_add": lambda a, b, c: a * b + c,
    "sub_sub": lambda a, b, c: a - b - c,
}


def test_same_seed_same_problems_other_seed_others():
    assert make_problems(60, "train", seed=3) == make_problems(60, "train", seed=3)
    assert make_problems(60, "train", seed=3) != make_problems(60, "train", seed=4)
    assert make_problems(30, "test", seed=0) == make_problems(30, "test", seed=0)


def test_answers_are_right_and_the_numbers_are_in_the_text():
    problems = make_problems(300, "train", seed=1) + make_problems(120, "test", seed=0)
    assert {p.template for p in problems} == set(TEMPLATES)
    for p in problems:
        assert p.answer == ANSWERS[p.template](*p.numbers), p
        assert p.answer >= 0, p
        for number in p.numbers:
            assert re.search(rf"\b{number}\b", p.text), p
        assert p.text.endswith("?")
    assert len({p.key for p in problems}) == len(problems)  # distinct within and across the two draws


def test_held_out_problems_never_appear_in_training():
    test_keys = {p.key for seed in range(3) for p in make_problems(120, "test", seed=seed)}
    train_keys = {p.key for seed in range(3) for p in make_problems(1000, "train", seed=seed)}
    assert test_keys and train_keys and not test_keys & train_keys
    assert all(split_of(p) == "test" for p in make_problems(50, "test", seed=5))
    # the split keeps about a fifth of the combinations for testing
    share = sum(split_of(p) == "test" for p in make_problems(600, "train", seed=9) + make_problems(150, "test", 9))
    assert 0.1 < share / 750 < 0.4
    with pytest.raises(ValueError, match="split"):
        make_problems(5, "validation", seed=0)
    with pytest.raises(ValueError, match="unknown templates"):
        make_problems(5, "train", seed=0, templates=("divide",))


@pytest.mark.parametrize("text, expected", [
    ("12", 12),
    ("The answer is 12.", 12),
    ("7 + 5 = 12", 12),
    ("Mia has 12 apples left.\n", 12),
    ("12.0", 12),
    ("1,250 apples", 1250),
    ("It is -3", -3),
    ("12-5", 5),  # a minus right after a number is subtraction, not a sign
    ("12.5", None),
    ("no number here", None),
    ("", None),
    ("3 bags of 4", 4),
])
def test_parse_final_integer(text, expected):
    assert parse_final_integer(text) == expected


def test_exact_answer_reward_reads_the_last_integer():
    problems = make_problems(2, "test", seed=0)
    reward = exact_answer_reward(problems, decode=lambda ids: "".join(map(chr, ids)))
    right = f"So the total is {problems[0].answer}."
    assert reward(0, [ord(c) for c in right]) == 1.0
    assert reward(0, [ord(c) for c in f"{problems[0].answer} and then 1000"]) == 0.0
    assert reward(1, [ord(c) for c in right]) == float(problems[1].answer == problems[0].answer)


# a byte-level tokenizer with SmolLM2's special tokens (ids 0, 1, 2) and its ChatML format
SPECIALS = {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2}
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def _tokenizer():
    return ByteLevelBPETokenizer(name="tiny-smollm2", ranks={bytes([b]): b for b in range(256)}, pattern=r"\s?\S+|\s+",
                                 special_tokens=SPECIALS, rank_to_id=[b + 3 for b in range(256)], eos_ids=(2,),
                                 chat_format=ChatFormat("chatml", default_system=SYSTEM))


def _tiny_smollm2(seed=0):
    cfg = SMOLLM2_135M_INSTRUCT.replace(vocab_size=259, context_length=512, emb_dim=24, n_layers=3, n_heads=3,
                                        n_kv_groups=1, hidden_dim=48)
    torch.manual_seed(seed)
    model = DecoderLM(cfg)
    # small embeddings: with the head tied to them, N(0, 1) rows would make every row repeat its last token
    torch.nn.init.normal_(model.tok_emb.weight, std=0.3)
    return model


def test_chat_prompts_use_the_chat_template():
    tok = _tokenizer()
    problems = make_problems(2, "test", seed=0)
    ids = chat_prompts(tok, problems)
    text = tok.decode(ids[0])
    assert text == (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{problems[0].text} "
                    "Answer with a single number.<|im_end|>\n<|im_start|>assistant\n")
    assert ids[0][0] == SPECIALS["<|im_start|>"]


def test_cached_rollouts_match_the_uncached_sampler():
    model = _tiny_smollm2()
    prompts = chat_prompts(_tokenizer(), make_problems(3, "test", seed=0))
    options = dict(max_new_tokens=6, eos_token_id=2, pad_token_id=0, num_samples=2, temperature=0.0)
    fast = cached_rollouts(model, prompts, **options)
    slow = sample_completions(model, prompts, **options)
    assert fast.completions() == slow.completions()
    assert torch.equal(fast.prompt_ids, slow.prompt_ids) and torch.equal(fast.prompt_mask, slow.prompt_mask)
    # with the end token forced, every completion is that token alone and counts as ended
    model.out_head.bias = torch.nn.Parameter(torch.zeros(259))
    with torch.no_grad():
        model.out_head.bias[2] = 1e4
    ended = cached_rollouts(model, prompts, **options)
    assert ended.completions() == [[2]] * 6 and bool(ended.ended.all())


def test_one_grpo_step_trains_only_the_top_blocks_through_the_chat_template():
    tok = _tokenizer()
    model = _tiny_smollm2()
    assert train_top_blocks(model, 1) == sum(p.numel() for p in model.trf_blocks[-1].parameters()) + 24
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    problems = make_problems(4, "train", seed=0)
    prompts = chat_prompts(tok, problems)

    def reward(index, completion):  # varies within a group, so the step has advantages to learn from
        return sum(t % 2 == 0 for t in completion) / len(completion)

    config = GRPOConfig(steps=1, prompts_per_step=2, group_size=4, learning_rate=1e-2, max_new_tokens=5,
                        temperature=1.0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)
    stats = grpo_rollout_step(model, None, optimizer, prompts, [0, 3], reward, config, eos_token_id=2,
                              pad_token_id=0, generator=torch.Generator().manual_seed(1))
    assert 0.0 < stats["reward"] < 1.0 and 1.0 <= stats["completion_length"] <= 5
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed and all(name.startswith(("trf_blocks.2.", "final_norm.")) for name in changed), changed
    with pytest.raises(ValueError, match="n_blocks"):
        train_top_blocks(model, 4)


def test_a_few_cached_grpo_steps_raise_a_toy_reward():
    """Reward 1 when the first token's id is even: the probability of an even first token must rise."""
    model = _tiny_smollm2(seed=1)
    train_top_blocks(model, 2)
    prompts = chat_prompts(_tokenizer(), make_problems(8, "train", seed=0))
    even = torch.arange(259) % 2 == 0

    def reward(index, completion):
        return float(completion[0] % 2 == 0)

    def p_even(m):  # mean over the prompts of the probability that the first token is even
        with torch.no_grad():
            probs = [torch.softmax(m(torch.tensor([p]))[0, -1], dim=-1)[even].sum() for p in prompts]
        return {"p_even": torch.stack(probs).mean().item()}

    config = GRPOConfig(steps=6, prompts_per_step=2, group_size=8, learning_rate=3e-2, max_new_tokens=2,
                        updates_per_batch=2, eval_interval=3, temperature=1.0)
    history = train_grpo_cached(model, None, prompts, reward, config, eos_token_id=2, pad_token_id=0,
                                evaluate=p_even, progress=False)
    assert history["eval"]["p_even"][-1] > history["eval"]["p_even"][0] + 0.2, history["eval"]
    assert len(history["reward"]) == 6 and history["eval_step"] == [0, 3, 6]


def test_evaluate_word_problems_counts_the_answers():
    tok = _tokenizer()
    problems = make_problems(4, "test", seed=0)
    metrics = evaluate_word_problems(_tiny_smollm2(), tok, problems, max_new_tokens=3, num_samples=2,
                                     sampled_problems=2)
    assert set(metrics) == {"greedy_pass@1", "sampled_pass@1", "sampled_pass@2", "greedy_by_template",
                            "greedy_replies"}
    assert len(metrics["greedy_replies"]) == 4
    assert 0.0 <= metrics["sampled_pass@1"] <= metrics["sampled_pass@2"] <= 1.0


def test_answer_format_sft_lowers_the_loss_of_the_answer_and_trains_only_the_top_blocks():
    tok = _tokenizer()
    model = _tiny_smollm2(seed=2)
    with pytest.raises(ValueError, match="train_top_blocks"):
        answer_format_sft(model.requires_grad_(False), tok, make_problems(2, "train", seed=0), steps=1,
                          batch_size=2, learning_rate=1e-2)
    train_top_blocks(model, 1)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    problems = make_problems(4, "train", seed=0)
    # the same four problems every step (batch 4 of 4), so the loss must fall as the answers are fitted
    losses = answer_format_sft(model, tok, problems, steps=12, batch_size=4, learning_rate=1e-2)
    assert len(losses) == 12 and losses[-1] < 0.7 * losses[0], losses
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed and all(name.startswith(("trf_blocks.2.", "final_norm.")) for name in changed), changed
    # the prompts carry the stricter instruction, and the reply the model was fitted to is the answer alone
    assert tok.decode(chat_prompts(tok, problems[:1], WORKED_INSTRUCTION)[0]).endswith(
        f"{WORKED_INSTRUCTION}<|im_end|>\n<|im_start|>assistant\n")


def test_evaluate_word_problems_passes_the_instruction_to_the_prompts(monkeypatch):
    seen = []

    def recording_chat_prompts(tokenizer, problems, instruction=INSTRUCTION):
        seen.append(instruction)
        return chat_prompts(tokenizer, problems, instruction)

    monkeypatch.setattr(word_problems_grpo, "chat_prompts", recording_chat_prompts)
    options = dict(max_new_tokens=2, num_samples=2, sampled_problems=1)
    problems = make_problems(2, "test", seed=0)
    evaluate_word_problems(_tiny_smollm2(), _tokenizer(), problems, **options)
    assert seen == [INSTRUCTION, INSTRUCTION]  # greedy, then sampled
    seen.clear()
    evaluate_word_problems(_tiny_smollm2(), _tokenizer(), problems, instruction=WORKED_INSTRUCTION, **options)
    assert seen == [WORKED_INSTRUCTION, WORKED_INSTRUCTION]


def test_worked_answer_writes_the_calculation_and_ends_on_the_answer():
    problems = make_problems(120, "train", seed=5)
    assert {p.template for p in problems} == set(TEMPLATES)
    for p in problems:
        reply = worked_answer(p)
        left, right = reply.split(" = ")
        numbers = [int(n) for n in re.findall(r"\d+", left)]
        assert tuple(numbers) == p.numbers, reply
        # the operators, applied left to right with * first, give the answer the generator computed
        assert ANSWERS[p.template](*numbers) == p.answer == int(right) == parse_final_integer(reply), reply
    assert worked_answer(make_problems(1, "train", seed=0, templates=["mul_add"])[0]).count("*") == 1
