"""``llms-from-scratch finetune-classifier``: chapter 6's spam classifier, from data to saved weights."""

import json

from ._finetune_args import add_finetune_args, check_finetune_args
from .errors import positive_float, positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "finetune-classifier", help="fine-tune GPT-2 (or the quick stand-in) as an SMS spam classifier (chapter 6)")
    parser.add_argument("--out", default="spam-classifier", help="folder for the data split and the weights")
    add_finetune_args(parser, model_size="124M", epochs=5, stand_in_lr=1e-3)
    parser.add_argument("--trainable", default="last_block",
                        choices=["head", "last_block", "last_two_blocks", "all", "lora"],
                        help="which parameters train (lora: appendix E adapters on every linear layer)")
    parser.add_argument("--lora-rank", type=positive_int, default=16)
    parser.add_argument("--lora-alpha", type=positive_float, default=16)
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from ..ch06 import finetune_spam_classifier

    quick = check_finetune_args(args)
    results = finetune_spam_classifier(
        args.out, model_size=args.model_size, trainable=args.trainable, num_epochs=args.epochs, lr=args.lr,
        batch_size=args.batch_size, lora_rank=args.lora_rank, lora_alpha=args.lora_alpha,
        train_examples=args.train_examples, seed=args.seed, quick=quick)
    print(json.dumps(results, indent=2))
    return 0
