"""``llms-from-scratch pretrain``: pretrain a GPTModel on a text file or a folder of .txt files."""

from __future__ import annotations

from ..gpt2_sizes import GPT2_MODEL_SIZES
from ..training.pretrain_args import MOE_BALANCING
from .errors import UsageError, non_negative_int, positive_int
from .zoo import DEVICE_HELP


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, help="a text file, or a folder whose *.txt files form the corpus")
    parser.add_argument("--out-dir", required=True,
                        help="folder for tokens.bin (with its record tokens.json), checkpoint.pth and loss.png; "
                             "one run at a time")
    model = parser.add_argument_group("model")
    model.add_argument("--model", default="124M", choices=GPT2_MODEL_SIZES,
                       help="GPT-2 size to start from (default 124M)")
    model.add_argument("--context-length", type=positive_int, default=256)
    model.add_argument("--emb-dim", type=positive_int, help="override the size's width")
    model.add_argument("--n-layers", type=positive_int, help="override the size's depth")
    model.add_argument("--n-heads", type=positive_int, help="override the size's number of heads")
    model.add_argument("--drop-rate", type=float, default=0.1)
    run = parser.add_argument_group("training")
    length = run.add_mutually_exclusive_group(required=True)
    length.add_argument("--steps", type=positive_int, help="optimizer steps")
    length.add_argument("--epochs", type=float, help="passes over the training tokens (fractions allowed)")
    run.add_argument("--batch-size", type=positive_int, default=8, help="windows per micro-batch")
    run.add_argument("--grad-accum-steps", type=positive_int, default=1, help="micro-batches per optimizer step")
    run.add_argument("--learning-rate", type=float, default=4e-4, help="peak learning rate")
    run.add_argument("--initial-lr", type=float, default=1e-5, help="learning rate at the start of warmup")
    run.add_argument("--min-lr", type=float, default=1e-5, help="learning rate at the end of the cosine decay")
    run.add_argument("--warmup-steps", type=non_negative_int, help="default: 10%% of the steps")
    run.add_argument("--weight-decay", type=float, default=0.1)
    run.add_argument("--max-norm", type=float, default=1.0, help="gradient clipping threshold (0 turns it off)")
    run.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                     help="auto: bf16 autocast on GPUs that support it, fp32 otherwise")
    run.add_argument("--compile", action="store_true", help="train a torch.compile'd model")
    run.add_argument("--plain-loss", dest="fused_loss", action="store_false",
                     help="compute the full logits and F.cross_entropy, as chapter 5 does (default: the same loss "
                          "with the output head fused into it, faster and without the logits matrix)")
    run.add_argument("--seed", type=int, default=123)
    run.add_argument("--val-fraction", type=float, default=0.1, help="share of the tokens held out (the end)")
    run.add_argument("--eval-interval", type=positive_int, default=50, help="steps between evaluations and checkpoints")
    run.add_argument("--eval-iters", type=positive_int, default=5, help="validation batches per evaluation")
    run.add_argument("--device", default="auto", help=DEVICE_HELP)
    run.add_argument("--resume", action="store_true",
                     help="continue from OUT_DIR/checkpoint.pth (refused if it is damaged, or if the model options "
                          "or the text under --data changed)")
    run.add_argument("--stop-at-step", type=positive_int, help="end this session at this step (save, then --resume later)")
    run.add_argument("--sample-prompt", default="Every effort moves you")
    run.add_argument("--sample-tokens", type=non_negative_int, default=40)
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--strategy", choices=["single", "ddp", "fsdp"], default="single",
                     help="single: one process; ddp or fsdp: every process torchrun starts trains on its share of "
                          "each batch (ddp copies the model to every process, fsdp splits it between them), e.g. "
                          "torchrun --standalone --nproc-per-node=2 -m llms_from_scratch.cli pretrain --strategy fsdp "
                          "...")
    moe = parser.add_argument_group("mixture of experts")
    moe.add_argument("--moe", action="store_true",
                     help="replace every block's feed-forward with a mixture of SwiGLU experts (single process only)")
    moe.add_argument("--moe-experts", type=positive_int, help="experts per block (default 8)")
    moe.add_argument("--moe-top-k", type=positive_int, help="experts each token visits (default 2)")
    moe.add_argument("--moe-hidden-dim", type=positive_int,
                     help="width of each expert (default: the top-k experts together as large as the dense MLP)")
    moe.add_argument("--moe-balance", choices=MOE_BALANCING,
                     help="aux: softmax router plus the load-balancing loss (default); bias: DeepSeek-V3's sigmoid "
                          "router with a selection bias moved after each step; none: no balancing")
    moe.add_argument("--moe-aux-weight", type=float, help="weight of the load-balancing loss (default 0.01)")
    moe.add_argument("--moe-bias-rate", type=float, help="how far each bias moves per step (default 0.001)")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "pretrain", help="pretrain a GPT model on your own text (warmup + cosine, clipping, resumable)",
        description="Pretrain the book's GPTModel on a text file or a folder of .txt files. The corpus is tokenized "
                    "once into a memory-mapped token file; checkpoints are saved atomically every --eval-interval "
                    "steps, and --resume continues from the last one.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..training.pretrain_args import PretrainArgs, ResumeError, check_paths, check_values

    options = {k: v for k, v in vars(args).items() if k not in ("func", "command_parser")}
    moe_options = [k for k, v in options.items() if k.startswith("moe_") and v is not None]
    if moe_options and not options["moe"]:
        raise UsageError(f"--{moe_options[0].replace('_', '-')} sets up a mixture of experts: add --moe")
    options = {k: v for k, v in options.items() if not (k.startswith("moe_") and v is None)}  # the defaults
    if options["max_norm"] == 0:
        options["max_norm"] = None
    pretrain_args = PretrainArgs(**options)
    try:
        check_values(pretrain_args)  # before torch is imported: a wrong value is reported at once
        check_paths(pretrain_args)
        from ..training.pretrain import check_args, pretrain

        check_args(pretrain_args)  # the device, which needs torch; still before the corpus or a model is loaded
    except (ValueError, FileNotFoundError) as exc:  # ResumeError is a ValueError
        raise UsageError(str(exc)) from None
    try:
        result = pretrain(pretrain_args)
    except ResumeError as exc:  # the checkpoint in --out-dir does not fit this command line
        raise UsageError(str(exc)) from None
    if result.get("rank", 0) != 0:  # under torchrun, rank 0 reports for all
        return 0
    print(f"{result['steps']} steps, {result['tokens_seen']:,} tokens in {result['seconds']:.1f} s "
          f"({result['tokens_seen'] / max(result['seconds'], 1e-9):,.0f} tokens/s this session)")
    print(f"checkpoint: {result['checkpoint']}")
    if result["plot"] is not None:
        print(f"loss plot:  {result['plot']}")
    print(f"sample:     {result['sample']!r}")
    return 0
