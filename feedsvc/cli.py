"""The `feedsvc` command: check-data (and more as the service grows)."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .config import BUNDLED_DATA, from_env
from .dataset import DatasetError, load_dataset


def check_data(path: str) -> int:
    """Validate a dataset; print every problem to stderr and return 1, or a summary and 0."""
    try:
        dataset = load_dataset(path, from_env()["FEEDSVC_MAX_FILE_BYTES"])
    except DatasetError as error:
        print(error.report(), file=sys.stderr)
        return 1
    print(f"{path}: ok, {len(dataset.releases)} releases, {len(dataset.topics)} topics, "
          f"version {dataset.version}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="feedsvc", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check-data", help="validate a dataset file or directory")
    check.add_argument("path", nargs="?", default=None,
                       help="YAML file or directory (default: $FEEDSVC_DATA, else the bundled data/)")
    args = parser.parse_args(argv)
    if args.command == "check-data":
        import os
        return check_data(args.path or os.environ.get("FEEDSVC_DATA") or str(BUNDLED_DATA))
    return 2


if __name__ == "__main__":
    sys.exit(main())
