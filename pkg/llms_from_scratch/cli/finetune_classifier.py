"""``llms-from-scratch finetune-classifier``: chapter 6's spam classifier, from data to saved weights."""

import json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "finetune-classifier", help="fine-tune GPT-2 (or the quick stand-in) as an SMS spam classifier (chapter 6)")
    parser.add_argument("--out", default="spam-classifier", help="folder for the data split and the weights")
    parser.add_argument("--model-size", default="124M", choices=["124M", "355M", "774M", "1558M"])
    parser.add_argument("--trainable", default="last_block",
                        choices=["head", "last_block", "last_two_blocks", "all", "lora"],
                        help="which parameters train (lora: appendix E adapters on every linear layer)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=None, help="default: 5e-5 for GPT-2, 1e-3 for the stand-in")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--lora-alpha", type=float, default=16)
    parser.add_argument("--train-examples", type=int, default=None, help="use only this many training messages")
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--quick", action="store_true", help="use the small stand-in model (as LLMS_QUICK=1)")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from ..ch06 import finetune_spam_classifier
    from ..settings import is_quick

    if args.epochs < 1 or args.batch_size < 1:
        raise SystemExit("--epochs and --batch-size must be at least 1")
    results = finetune_spam_classifier(
        args.out, model_size=args.model_size, trainable=args.trainable, num_epochs=args.epochs, lr=args.lr,
        batch_size=args.batch_size, lora_rank=args.lora_rank, lora_alpha=args.lora_alpha,
        train_examples=args.train_examples, seed=args.seed, quick=args.quick or is_quick())
    print(json.dumps(results, indent=2))
    return 0
