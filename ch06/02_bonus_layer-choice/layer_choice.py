"""Which layers should be fine-tuned? Train chapter 6's spam classifier several ways and print a table.

    python layer_choice.py                  # full mode: GPT-2 124M (stand-in if the weights are unavailable)
    LLMS_QUICK=1 python layer_choice.py     # quick mode: the small stand-in, one epoch on 400 messages

Every run uses the same seeded 70/10/20 split and starting weights; only the set of trainable parameters changes:
the output head and final norm only, the last block (the book's choice), the last two blocks, everything, or LoRA
adapters on every linear layer (appendix E). The table reports trainable parameters, wall time and accuracies.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

CHOICES = ("head", "last_block", "last_two_blocks", "all", "lora")


def run(choices, model_size: str, epochs: int, train_examples: int | None) -> list[dict]:
    from llms_from_scratch.ch06 import finetune_spam_classifier

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, trainable in enumerate(choices):
            result = finetune_spam_classifier(Path(tmp) / trainable, model_size=model_size, trainable=trainable,
                                              num_epochs=epochs, train_examples=train_examples, verbose=i == 0)
            print(f"{trainable}: test accuracy {result['test_accuracy'] * 100:.2f}%", file=sys.stderr)
            rows.append(result)
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = ["| trainable | trainable parameters | training time (s) | train acc. | val. acc. | test acc. |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['trainable']} | {r['trainable_parameters']:,} | {r['train_seconds']:.1f} | "
                     f"{r['train_accuracy'] * 100:.2f}% | {r['val_accuracy'] * 100:.2f}% | "
                     f"{r['test_accuracy'] * 100:.2f}% |")
    return "\n".join(lines)


def main() -> int:
    from llms_from_scratch.settings import is_quick, pick

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-size", default="124M")
    parser.add_argument("--epochs", type=int, default=pick(quick=1, full=5))
    parser.add_argument("--train-examples", type=int, default=pick(quick=400, full=None))
    parser.add_argument("--choices", nargs="+", default=list(CHOICES), choices=CHOICES)
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this Markdown file")
    args = parser.parse_args()

    rows = run(args.choices, args.model_size, args.epochs, args.train_examples)
    table = markdown_table(rows)
    header = (f"Model: {rows[0]['model']}; {args.epochs} epoch(s) on {rows[0]['train_examples']} training messages; "
              f"{'quick' if is_quick() else 'full'} mode.")
    print(header)
    print()
    print(table)
    if args.out is not None:
        args.out.write_text(f"{header}\n\n{table}\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
