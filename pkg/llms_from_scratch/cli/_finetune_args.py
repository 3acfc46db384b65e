"""Options that the fine-tuning commands share (not a command itself)."""


def add_finetune_args(parser, *, model_size: str, epochs: int, stand_in_lr: float) -> None:
    parser.add_argument("--model-size", default=model_size, choices=["124M", "355M", "774M", "1558M"])
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--lr", type=float, default=None,
                        help=f"default: 5e-5 for GPT-2, {stand_in_lr:g} for the stand-in")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--train-examples", type=int, default=None, help="use only this many training examples")
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--quick", action="store_true", help="use the small stand-in model (as LLMS_QUICK=1)")


def check_finetune_args(args) -> bool:
    """True for quick mode; exits with a message when a count is not positive."""
    from ..settings import is_quick

    if args.epochs < 1 or args.batch_size < 1:
        raise SystemExit("--epochs and --batch-size must be at least 1")
    if args.train_examples is not None and args.train_examples < args.batch_size:
        raise SystemExit(f"--train-examples must be at least the batch size ({args.batch_size})")
    return args.quick or is_quick()
