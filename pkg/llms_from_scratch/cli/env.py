"""``llms-from-scratch env``: the environment check."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("env", help="check that the packages the book needs are installed")
    parser.add_argument("--test", action="store_true", help="also check the test tools (pytest, nbval, transformers, ...)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..envcheck import report

    groups = ("notebooks", "test") if args.test else ("notebooks",)
    return 1 if report(groups) else 0
