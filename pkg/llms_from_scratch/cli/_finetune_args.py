"""Options that the fine-tuning commands share (not a command itself)."""

from ..gpt2_sizes import GPT2_MODEL_SIZES
from .errors import UsageError, positive_float, positive_int, random_seed


def add_finetune_args(parser, *, model_size: str, epochs: int, stand_in_lr: float) -> None:
    parser.add_argument("--model-size", default=model_size, choices=GPT2_MODEL_SIZES)
    parser.add_argument("--epochs", type=positive_int, default=epochs)
    parser.add_argument("--lr", type=positive_float, default=None,
                        help=f"default: 5e-5 for GPT-2, {stand_in_lr:g} for the stand-in")
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--train-examples", type=positive_int, default=None,
                        help="use only this many training examples (at least the batch size)")
    parser.add_argument("--seed", type=random_seed, default=123)
    parser.add_argument("--quick", action="store_true", help="use the small stand-in model (as LLMS_QUICK=1)")


def check_finetune_args(args) -> bool:
    """True for quick mode; a training set smaller than one batch is a usage error."""
    from ..settings import is_quick

    if args.train_examples is not None and args.train_examples < args.batch_size:
        raise UsageError(f"--train-examples must be at least the batch size ({args.batch_size})")
    return args.quick or is_quick()
