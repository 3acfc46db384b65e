"""``llms-from-scratch data``: list the registered assets, fetch them, or show where they are kept."""

import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="list, fetch or locate the data files the book downloads")
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    actions.add_parser("list", help="list the registered assets").set_defaults(func=_list)
    fetch = actions.add_parser("fetch", help="download assets into the cache (or find them in the mirror)")
    fetch.add_argument("names", nargs="+", metavar="NAME", help="asset names, or 'all'")
    fetch.set_defaults(func=_fetch)
    actions.add_parser("where", help="print the cache and mirror folders").set_defaults(func=_where)


def _list(args) -> int:
    from ..data import list_assets

    for asset in list_assets():
        size = f"{asset.size:>13,} B" if asset.size is not None else " " * 15
        print(f"{asset.name:<34} {size}  {asset.description}  [{asset.license}]")
    return 0


def _fetch(args) -> int:
    from ..data import AssetUnavailableError, fetch, list_assets
    from .errors import error_message

    names = [a.name for a in list_assets()] if args.names == ["all"] else args.names
    failures = 0
    for name in names:
        try:
            print(f"{name}: {fetch(name)}")
        except (KeyError, AssetUnavailableError) as exc:
            failures += 1
            print(f"error: {error_message(exc)}", file=sys.stderr)
    return 1 if failures else 0


def _where(args) -> int:
    from ..data import MIRROR_ENV, cache_dir, mirror_dir

    print(f"cache:  {cache_dir()}")
    print(f"mirror: {mirror_dir() or f'(none; set {MIRROR_ENV})'}")
    return 0
