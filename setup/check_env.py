"""Check that this Python environment can run the book: prints OK/FAIL per requirement and exits 1 on FAIL.

    python setup/check_env.py          # what the notebooks need
    python setup/check_env.py --test   # plus the test tools

Works before the package is installed too (it then reads pkg/pyproject.toml and reports the package missing).
"""

import argparse
import sys
from pathlib import Path

try:
    from llms_from_scratch.envcheck import report
except ImportError:  # not installed yet: use the source tree next to this script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pkg"))
    from llms_from_scratch.envcheck import report


def main() -> int:
    parser = argparse.ArgumentParser(description="Check the Python environment for the LLMs-from-scratch notebooks.")
    parser.add_argument("--test", action="store_true", help="also check pytest, nbval, transformers and the linters")
    args = parser.parse_args()
    return 1 if report(("notebooks", "test") if args.test else ("notebooks",)) else 0


if __name__ == "__main__":
    sys.exit(main())
