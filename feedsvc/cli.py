"""The `feedsvc` command: check-data, export."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import BUNDLED_DATA, ConfigError
from .dataset import DatasetError, load_dataset


def check_data(path: str) -> int:
    """Validate a dataset; print every problem to stderr and return 1, or a summary and 0."""
    try:
        dataset = load_dataset(path)
    except DatasetError as error:
        print(error.report(), file=sys.stderr)
        return 1
    print(f"{path}: ok, {len(dataset.releases)} releases, {len(dataset.topics)} topics, "
          f"version {dataset.version}")
    return 0


def export_feeds(directory: str) -> int:
    """Export every feed as configured by FEEDSVC_*; FEEDSVC_BASE_URL must be set."""
    from . import create_app
    from .export import ExportError, export

    try:
        app = create_app({"FEEDSVC_LOG_LEVEL": "WARNING"})
        if not app.config["FEEDSVC_BASE_URL"]:
            raise ConfigError("FEEDSVC_BASE_URL must be set: feeds hold absolute URLs")
        manifest = export(app, Path(directory))
    except DatasetError as error:
        print(error.report(), file=sys.stderr)
        return 1
    except (ConfigError, ExportError, OSError) as error:
        print(f"feedsvc export: {error}", file=sys.stderr)
        return 1
    print(f"{directory}: {len(manifest['files'])} files, dataset version "
          f"{manifest['dataset_version']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="feedsvc", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check-data", help="validate a dataset file or directory")
    check.add_argument("path", nargs="?", default=None,
                       help="YAML file or directory (default: $FEEDSVC_DATA, else the bundled data/)")
    export_cmd = commands.add_parser(
        "export", help="write every feed, as served, and manifest.json below DIR")
    export_cmd.add_argument("directory", metavar="DIR")
    args = parser.parse_args(argv)
    if args.command == "check-data":
        return check_data(args.path or os.environ.get("FEEDSVC_DATA") or str(BUNDLED_DATA))
    if args.command == "export":
        return export_feeds(args.directory)
    return 2


if __name__ == "__main__":
    sys.exit(main())
