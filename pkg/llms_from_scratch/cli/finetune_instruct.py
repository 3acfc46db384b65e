"""``llms-from-scratch finetune-instruct``: chapter 7's instruction fine-tuning, responses and weights saved."""

import json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "finetune-instruct", help="instruction-fine-tune GPT-2 (or the quick stand-in) and answer the test set")
    parser.add_argument("--out", default="instruct-finetuned", help="folder for responses and weights")
    parser.add_argument("--model-size", default="355M", choices=["124M", "355M", "774M", "1558M"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=None, help="default: 5e-5 for GPT-2, 5e-3 for the stand-in")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--train-examples", type=int, default=None, help="use only this many training entries")
    parser.add_argument("--test-examples", type=int, default=None, help="answer only this many test entries")
    parser.add_argument("--prompt-style", default="alpaca", choices=["alpaca", "phi3"])
    parser.add_argument("--mask-instruction", action="store_true", help="count only response tokens in the loss")
    parser.add_argument("--lora-rank", type=int, default=None, help="train LoRA adapters of this rank instead")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--quick", action="store_true", help="use the small stand-in model (as LLMS_QUICK=1)")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from ..ch07 import finetune_instruction_model
    from ..settings import is_quick

    if args.epochs < 1 or args.batch_size < 1:
        raise SystemExit("--epochs and --batch-size must be at least 1")
    results = finetune_instruction_model(
        args.out, model_size=args.model_size, num_epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
        train_examples=args.train_examples, test_examples=args.test_examples, prompt_style=args.prompt_style,
        mask_instruction=args.mask_instruction, lora_rank=args.lora_rank, max_new_tokens=args.max_new_tokens,
        seed=args.seed, quick=args.quick or is_quick())
    print(json.dumps(results, indent=2))
    return 0
