"""``llms-from-scratch finetune-instruct``: chapter 7's instruction fine-tuning, responses and weights saved."""

import json

from ._finetune_args import add_finetune_args, check_finetune_args
from .errors import positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "finetune-instruct", help="instruction-fine-tune GPT-2 (or the quick stand-in) and answer the test set")
    parser.add_argument("--out", default="instruct-finetuned", help="folder for responses and weights")
    add_finetune_args(parser, model_size="355M", epochs=2, stand_in_lr=5e-3)
    parser.add_argument("--test-examples", type=positive_int, default=None, help="answer only this many test entries")
    parser.add_argument("--prompt-style", default="alpaca", choices=["alpaca", "phi3"])
    parser.add_argument("--mask-instruction", action="store_true", help="count only response tokens in the loss")
    parser.add_argument("--lora-rank", type=positive_int, default=None, help="train LoRA adapters of this rank instead")
    parser.add_argument("--max-new-tokens", type=positive_int, default=256)
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from ..ch07 import finetune_instruction_model

    quick = check_finetune_args(args)
    results = finetune_instruction_model(
        args.out, model_size=args.model_size, num_epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
        train_examples=args.train_examples, test_examples=args.test_examples, prompt_style=args.prompt_style,
        mask_instruction=args.mask_instruction, lora_rank=args.lora_rank, max_new_tokens=args.max_new_tokens,
        seed=args.seed, quick=quick)
    print(json.dumps(results, indent=2))
    return 0
