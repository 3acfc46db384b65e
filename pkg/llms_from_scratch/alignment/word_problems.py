"""A verifiable task for a chat model: arithmetic word problems of one or two steps, generated from templates.

A problem is a short story with a question ("Mia has 7 stickers. She buys 5 more. How many stickers does Mia
have now?") and an integer answer. The reward reads the model's reply with one fixed rule,
:func:`parse_final_integer`: the answer is the *last* integer the reply writes. A reply may show its working
("7 + 5 = 12") as long as it ends on the right number.

Held-out problems are decided by the numbers, not by the draw: a stable hash of (template, numbers) puts a
fifth of all number combinations in the test bucket, and training problems are drawn from the rest. A test
problem therefore never appears in training under another name or object, whatever the seeds.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

SPLITS = ("train", "test")
TEST_SHARE = 5  # one number combination in TEST_SHARE is held out


@dataclass(frozen=True)
class WordProblem:
    text: str
    answer: int
    template: str
    numbers: tuple[int, ...]

    @property
    def key(self) -> str:
        """What decides the split: the template and its numbers (names and objects are decoration)."""
        return f"{self.template}:{','.join(map(str, self.numbers))}"


NAMES = (("Mia", "She"), ("Leo", "He"), ("Ava", "She"), ("Sam", "He"), ("Zoe", "She"), ("Ben", "He"),
         ("Lily", "She"), ("Omar", "He"), ("Nora", "She"), ("Ivan", "He"))
OBJECTS = ("apples", "stickers", "marbles", "pencils", "cookies", "books", "shells", "coins")


def _numbers(template: str, rng: random.Random) -> tuple[int, ...]:
    """Numbers for ``template`` that keep every intermediate result a non-negative integer."""
    if template == "add":
        return rng.randint(2, 30), rng.randint(2, 30)
    if template == "sub":
        a = rng.randint(5, 40)
        return a, rng.randint(1, a - 1)
    if template == "mul":
        return rng.randint(2, 12), rng.randint(2, 12)
    if template == "add_sub":
        a, b = rng.randint(2, 20), rng.randint(2, 20)
        return a, b, rng.randint(1, a + b - 1)
    if template == "mul_add":
        return rng.randint(2, 9), rng.randint(2, 9), rng.randint(1, 20)
    if template == "sub_sub":
        a = rng.randint(10, 40)
        b = rng.randint(1, a // 2)
        return a, b, rng.randint(1, a - b - 1)
    raise ValueError(f"unknown template {template!r}; use one of {TEMPLATES}")


def _render(template: str, n: tuple[int, ...], name: str, pronoun: str, other: str, obj: str) -> tuple[str, int]:
    """The problem's sentences and its answer."""
    if template == "add":
        return (f"{name} has {n[0]} {obj}. {pronoun} buys {n[1]} more. How many {obj} does {name} have now?",
                n[0] + n[1])
    if template == "sub":
        return (f"{name} has {n[0]} {obj}. {pronoun} gives {n[1]} of them to {other}. "
                f"How many {obj} does {name} have left?", n[0] - n[1])
    if template == "mul":
        return (f"{name} buys {n[0]} bags. Each bag holds {n[1]} {obj}. How many {obj} does {name} buy in total?",
                n[0] * n[1])
    if template == "add_sub":
        return (f"{name} has {n[0]} {obj}. {pronoun} buys {n[1]} more and then gives {n[2]} to {other}. "
                f"How many {obj} does {name} have now?", n[0] + n[1] - n[2])
    if template == "mul_add":
        return (f"{name} has {n[0]} boxes with {n[1]} {obj} in each box, and {n[2]} more {obj} on the table. "
                f"How many {obj} does {name} have in all?", n[0] * n[1] + n[2])
    if template == "sub_sub":
        return (f"A basket holds {n[0]} {obj}. {name} takes {n[1]} and {other} takes {n[2]}. "
                f"How many {obj} are left in the basket?", n[0] - n[1] - n[2])
    raise ValueError(f"unknown template {template!r}; use one of {TEMPLATES}")


TEMPLATES = ("add", "sub", "mul", "add_sub", "mul_add", "sub_sub")  # three one-step, three two-step


def split_of(problem: WordProblem) -> str:
    """The split ``problem`` belongs to: ``"test"`` for a fifth of all (template, numbers) combinations."""
    return "test" if zlib.crc32(problem.key.encode()) % TEST_SHARE == 0 else "train"


def make_problems(n: int, split: str, seed: int, templates: Sequence[str] = TEMPLATES) -> list[WordProblem]:
    """``n`` distinct problems of ``split`` ("train" or "test"), the same ones for the same seed.

    Each problem's template is drawn at random; "mul" has the fewest number combinations (121, about 97 of them
    training ones), so a large training pool holds fewer of those.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    unknown = sorted(set(templates) - set(TEMPLATES))
    if unknown:
        raise ValueError(f"unknown templates {unknown}; use some of {TEMPLATES}")
    rng = random.Random(f"{split}:{seed}")
    problems: list[WordProblem] = []
    keys: set[str] = set()
    attempts = 0
    while len(problems) < n:
        attempts += 1
        if attempts > 100 * n + 1000:
            raise ValueError(f"could not draw {n} distinct {split} problems from templates {list(templates)}; "
                             "ask for fewer")
        template = rng.choice(templates)
        numbers = _numbers(template, rng)
        (name, pronoun), (other, _) = rng.sample(NAMES, 2)
        text, answer = _render(template, numbers, name, pronoun, other, rng.choice(OBJECTS))
        problem = WordProblem(text, answer, template, numbers)
        if problem.key in keys or split_of(problem) != split:
            continue
        keys.add(problem.key)
        problems.append(problem)
    return problems


# a number: a minus sign that does not follow a word ("12-5" is 12 and 5, "is -3" is -3), digits with optional
# thousands commas ("1,250"), an optional decimal part
_NUMBER = re.compile(r"(?:(?<![\w.])-)?(?<![\d.])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")


def parse_final_integer(text: str) -> int | None:
    """The last number written in ``text`` if it is an integer, else None.

    Rule: take the last number in the text (digits with an optional leading minus sign, optional thousands
    commas and an optional decimal part). "12" and "12.0" give 12, "1,250" gives 1250; a last number with a
    non-zero decimal part ("12.5") or no number at all gives None, which never matches an answer.
    """
    matches = _NUMBER.findall(text)
    if not matches:
        return None
    last = matches[-1].replace(",", "")
    whole, _, fraction = last.partition(".")
    if fraction and int(fraction) != 0:
        return None
    return int(whole)


def exact_answer_reward(problems: Sequence[WordProblem], decode: Callable[[list[int]], str]
                        ) -> Callable[[int, list[int]], float]:
    """``reward_fn(i, completion_ids)`` for GRPO: 1.0 when the last integer of the decoded completion is problem
    i's answer, else 0.0."""
    def reward(index: int, completion: list[int]) -> float:
        return 1.0 if parse_final_integer(decode(completion)) == problems[index].answer else 0.0

    return reward
