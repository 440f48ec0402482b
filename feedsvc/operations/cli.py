"""The `feedsvc` command: serve, check-data, new, export, snapshot, accept-removal, synth,
deliver."""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..config import ConfigError, from_env
from ..dataset import DatasetError, load_dataset
from ..dataset.records import Release
from ..dataset.yamlsource import DEFAULT_MAX_FILE_BYTES


def check_data(path: str, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> int:
    """Validate a dataset; print every problem to stderr and return 1, or a summary and 0."""
    try:
        dataset = load_dataset(path, max_file_bytes)
    except DatasetError as error:
        print(error.report(), file=sys.stderr)
        return 1
    print(f"{path}: ok, {len(dataset.releases)} releases, {len(dataset.topics)} topics, "
          f"version {dataset.version}")
    _print_lifecycle(dataset.releases)
    return 0


def _print_lifecycle(releases: Sequence[Release]) -> None:
    """Print how many releases are drafts, scheduled (with their dates) and withdrawn; warn
    (stderr) of an embargo more than a year ahead, most likely a mistyped year."""
    from .newrelease import now

    at = now()
    drafts = sum(1 for r in releases if r.draft)
    scheduled = sorted((r for r in releases if not r.draft and r.published > at),
                       key=lambda r: (r.published, r.id))
    withdrawn = sum(1 for r in releases if r.withdrawn is not None)
    print(f"  drafts: {drafts}, scheduled: {len(scheduled)}, withdrawn: {withdrawn}")
    for release in scheduled:
        print(f"  scheduled: {release.id} at {release.published.isoformat()}")
        if release.published - at > timedelta(days=365):
            print(f"warning: {release.id} is scheduled for {release.published.isoformat()}, more "
                  "than a year ahead: is the year right?", file=sys.stderr)


def synth(count: int, out: str, seed: int, split: bool, lifecycle: bool = False) -> int:
    """Write a synthetic archive and say where it went."""
    from .synth import write_archive

    target = write_archive(count, out, seed=seed, split=split, lifecycle=lifecycle)
    print(f"{target}: {count} synthetic releases (seed {seed})")
    return 0


def snapshot(path: str, snapshot_dir: str, max_file_bytes: int) -> int:
    """Validate a dataset and build its state file, so the next start with it serves at once."""
    import sqlite3
    from contextlib import closing

    from ..dataset import statedir
    from ..dataset.db import connect
    from ..dataset.sync import build, full

    root = Path(path)
    try:  # the instance lock: refused while a service uses the directory
        opened = statedir.open_state(snapshot_dir, path)
        if not opened.persistent:
            print(f"feedsvc snapshot: {opened.state}", file=sys.stderr)
            return 1
        with closing(connect(opened.path, write=True)) as db:
            found = full(db, root, max_file_bytes)
        # Nothing else reads the store (the instance lock): a new file replaces it, dated now
        # (meta "changed_at": a reload's commit writes it too, operations/reload.py).
        build(opened.path, root, found, {**statedir.META, "changed_at": str(int(time.time()))})
    except DatasetError as error:
        print(error.report(), file=sys.stderr)
        return 1
    except (ConfigError, OSError, sqlite3.Error) as error:
        print(f"feedsvc snapshot: {error}", file=sys.stderr)
        return 1
    print(f"{path}: state file {opened.path}")
    return 0


def new_release(args: argparse.Namespace, data: str, max_file_bytes: int) -> int:
    """Write a new release file (from options, or edited in $EDITOR with --edit)."""
    from .newrelease import DraftKept, NewReleaseError, write_release

    editor = None
    if args.edit or args.resume:
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
        if not editor:
            print("feedsvc new: --edit needs $VISUAL or $EDITOR", file=sys.stderr)
            return 2
    resume = Path(args.resume) if args.resume else None
    try:
        written = write_release(Path(args.data or data), vars(args), editor, max_file_bytes, resume)
    except DraftKept as kept:
        cause = kept.cause
        print(cause.report() if isinstance(cause, DatasetError) else f"feedsvc new: {cause}",
              file=sys.stderr)
        print(f"feedsvc new: nothing saved to the dataset; your text is kept in {kept.path}\n"
              f"  fix it with: feedsvc new --edit --resume {kept.path}", file=sys.stderr)
        return 1
    except DatasetError as error:
        print(error.report(), file=sys.stderr)
        print("feedsvc new: nothing saved", file=sys.stderr)
        return 1
    except (NewReleaseError, OSError) as error:
        print(f"feedsvc new: {error}", file=sys.stderr)
        return 1
    print(f"{written.path}: release {written.id}")
    return 0


def _new_parser(commands: Any) -> None:
    new = commands.add_parser("new", help="write a new release file with a fresh id, checked "
                                          "with the dataset before it is saved")
    new.add_argument("--data", default=None,
                     help="dataset folder (default: $FEEDSVC_DATA, else the bundled data/)")
    new.add_argument("--title")
    new.add_argument("--country", dest="countries", action="append", metavar="CODE",
                     help="ISO 3166-1 code (repeat for several)")
    new.add_argument("--topic", dest="topics", action="append", metavar="SLUG",
                     help="topic slug (repeat for several)")
    new.add_argument("--published", help="date or date-time with offset (default: now, in the "
                                         "site's timezone); in the future: scheduled")
    new.add_argument("--summary")
    new.add_argument("--body")
    new.add_argument("--dateline")
    new.add_argument("--url")
    new.add_argument("--type", default="press-release", help="release type (default: %(default)s)")
    new.add_argument("--image", metavar="SRC", help="picture: a path below media/ or https URL")
    new.add_argument("--alt", help="the picture's text alternative")
    new.add_argument("--attach", dest="attachments", action="append", nargs=2,
                     metavar=("SRC", "TITLE"), help="an attachment (repeat for several)")
    new.add_argument("--draft", action="store_true", help="mark it draft: validated, never served")
    new.add_argument("--edit", action="store_true",
                     help="open the release in $VISUAL or $EDITOR before checking and saving it "
                          "(a release that fails the check is kept as a draft file)")
    new.add_argument("--resume", metavar="PATH",
                     help="with --edit: open the draft a failed --edit kept, and try again")


def accept_removal(path: str, snapshot_dir: str | None) -> int:
    """Accept the mass removal the running service holds (docs/operations.md#mass-removal)."""
    from ..dataset.guard import accept_removal as accept

    if snapshot_dir is None:
        print("feedsvc accept-removal: FEEDSVC_STATE_DIR is off; restart the service with "
              "a larger FEEDSVC_MAX_REMOVAL instead", file=sys.stderr)
        return 2
    try:
        print(accept(path, snapshot_dir))
    except (LookupError, OSError) as error:
        print(f"feedsvc accept-removal: {error}", file=sys.stderr)
        return 1
    return 0


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def export_feeds(directory: str) -> int:
    """Export every feed as configured by FEEDSVC_*; FEEDSVC_BASE_URL must be set."""
    from .. import create_app
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


def export_keys(directory: str, state_dir: str | None) -> int:
    """Write the site's key pair from the durable file (made if new) into DIR, mode 0600."""
    from ..activitypub.durable import Durable, DurableError, durable_path
    from ..activitypub.keys import KeysError
    from ..activitypub.keys import export_keys as export

    if state_dir is None:
        print("feedsvc activitypub export-keys: FEEDSVC_STATE_DIR is off: there is no durable file",
              file=sys.stderr)
        return 2
    try:
        written = export(Durable(durable_path(state_dir)).site_key(), Path(directory))
    except (DurableError, KeysError, OSError) as error:
        print(f"feedsvc activitypub export-keys: {error}", file=sys.stderr)
        return 1
    print(f"{directory}: {', '.join(path.name for path in written)} (mode 0600)")
    return 0


def _activitypub_parser(commands: Any) -> None:
    fediverse = commands.add_parser("activitypub", help="the fediverse's durable state")
    actions = fediverse.add_subparsers(dest="action", required=True)
    keys = actions.add_parser("export-keys", help="write the site's key pair (private.pem, public.pem, "
                                                  "mode 0600) into DIR, for FEEDSVC_ACTIVITYPUB_KEYS_DIR")
    keys.add_argument("directory", metavar="DIR")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="feedsvc", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="serve the dataset ($FEEDSVC_DATA, else the bundled sample) with gunicorn "
                      "and the production settings shipped in the package")
    serve.add_argument("--bind", help="HOST:PORT or unix:/PATH (default: $FEEDSVC_BIND, "
                                      "else 127.0.0.1:8000)")
    serve.add_argument("--workers", help="worker processes (default: $FEEDSVC_WORKERS, else one "
                                         "per CPU)")
    check = commands.add_parser("check-data", help="validate a dataset file or directory")
    check.add_argument("path", nargs="?", default=None,
                       help="YAML file or directory (default: $FEEDSVC_DATA, else the bundled data/)")
    export_cmd = commands.add_parser(
        "export", help="write every feed, as served, and manifest.json below DIR")
    export_cmd.add_argument("directory", metavar="DIR")
    snap = commands.add_parser("snapshot", help="validate a dataset and build its state file "
                               "(a start with it then serves at once)")
    snap.add_argument("path", nargs="?", default=None,
                      help="YAML file or directory (default: $FEEDSVC_DATA, else the bundled data/)")
    snap.add_argument("--dir", default=None,
                      help="state directory (default: $FEEDSVC_STATE_DIR, else "
                           "$XDG_CACHE_HOME/feedsvc or ~/.cache/feedsvc)")
    _new_parser(commands)
    _activitypub_parser(commands)
    accept = commands.add_parser(
        "accept-removal", help="let the running service serve a held mass removal of releases")
    accept.add_argument("path", nargs="?", default=None,
                        help="the dataset the service serves (default: $FEEDSVC_DATA)")
    gen = commands.add_parser("synth", help="write a synthetic archive of N releases")
    gen.add_argument("count", metavar="N", type=_positive, help="how many releases")
    gen.add_argument("out", metavar="OUT", help="the bundle file to write (a directory with --split)")
    gen.add_argument("--seed", type=int, default=2004, help="random seed (default: 2004)")
    gen.add_argument("--split", action="store_true",
                     help="write a directory: site.yaml, topics.yaml, releases/<id>.yaml")
    gen.add_argument("--lifecycle", action="store_true",
                     help="add drafts, withdrawals, corrections, pictures and attachments "
                          "(and the media/ files they name)")
    commands.add_parser("deliver", help="send the fediverse what changed (the shipped gunicorn "
                                         "config starts it; a sidecar runs it with "
                                         "FEEDSVC_ACTIVITYPUB_DELIVER=external)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; a bad FEEDSVC_* value is one line on stderr and exit status 2."""
    args = _parser().parse_args(argv)
    if args.command == "serve":  # gunicorn's settings read them from the environment
        for name, value in (("FEEDSVC_BIND", args.bind), ("FEEDSVC_WORKERS", args.workers)):
            if value is not None:
                os.environ[name] = value
    try:
        settings = from_env()
    except ConfigError as error:
        doing = "not starting: " if args.command == "serve" else ""
        print(f"feedsvc: {doing}{error}", file=sys.stderr)
        return 2
    return _run(args, settings)


def _run(args: argparse.Namespace, settings: Mapping[str, Any]) -> int:
    max_bytes = settings["FEEDSVC_MAX_FILE_BYTES"]
    if args.command == "serve":
        from ..serving.serve import serve

        return serve(settings)
    if args.command == "check-data":
        return check_data(args.path or settings["FEEDSVC_DATA"], max_bytes)
    if args.command == "new":
        return new_release(args, settings["FEEDSVC_DATA"], max_bytes)
    if args.command == "export":
        return export_feeds(args.directory)
    if args.command == "snapshot":
        directory = args.dir or settings["FEEDSVC_SNAPSHOT_DIR"]
        if directory is None:
            print("feedsvc snapshot: FEEDSVC_STATE_DIR is off", file=sys.stderr)
            return 2
        return snapshot(args.path or settings["FEEDSVC_DATA"], directory, max_bytes)
    if args.command == "accept-removal":
        return accept_removal(args.path or settings["FEEDSVC_DATA"], settings["FEEDSVC_SNAPSHOT_DIR"])
    if args.command == "activitypub":  # its one action: export-keys
        return export_keys(args.directory, settings["FEEDSVC_SNAPSHOT_DIR"])
    if args.command == "synth":
        return synth(args.count, args.out, args.seed, args.split, args.lifecycle)
    if args.command == "deliver":
        from ..activitypub.supervise import main as deliver

        return deliver(settings)
    return 2


if __name__ == "__main__":
    sys.exit(main())
