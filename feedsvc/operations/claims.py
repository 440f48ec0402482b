"""Once per box: of the processes that share a directory of claims (the workers forked from one
gunicorn master), only the first to claim a name gets it. One marker file per name."""
from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import stat
import tempfile
import weakref
from pathlib import Path

log = logging.getLogger("feedsvc.websub")

# Markers kept: the newest KEEP. A marker only matters while the processes of the box claim
# the same name, and they do so within seconds of each other: the master alone claims each
# dataset version it swaps in, and every worker's timer fires for the same scheduled moment
# (a worker busy for longer than gunicorn's 30 s timeout is ended). For a marker to be pruned
# while still needed, a hundred other versions or moments would have to be claimed in those
# seconds; and pruning too early costs no more than a second ping. The directory, and a
# claim's cost, stay the same however many versions were ever published. A count rather than
# an age: no clock is involved, and the bound holds however fast the data changes.
KEEP = 100


class Claims:
    """Names claimed once per box: a marker file for each in one directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def temporary(cls) -> Claims:
        """Claims in a temporary directory, named now, so that the workers forked from this
        process share it; made at the first claim, so that a process that never claims (a
        command, most tests) makes none; removed when this process exits or drops the claims,
        and not when a worker forked from it does."""
        claims = cls(Path(tempfile.gettempdir()) / f"feedsvc-websub-{secrets.token_hex(8)}")
        weakref.finalize(claims, _remove, claims.path, os.getpid())
        return claims

    def claim(self, name: str) -> bool:
        """Claim `name` for the box: True for the first process, False for the others."""
        try:
            self._make_directory()
            fd = os.open(self.path / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return False
        except OSError as exc:  # an unwritable temp dir: publishing twice beats never
            log.warning("websub: cannot claim %s in %s (%s); publishing anyway", name,
                        self.path, exc)
            return True
        os.close(fd)
        try:
            self._prune(name)
        except OSError as exc:  # claimed all the same; the next claim prunes again
            log.warning("websub: cannot prune the claims in %s (%s)", self.path, exc)
        return True

    def _make_directory(self) -> None:
        try:
            self.path.mkdir(mode=0o700)
        except FileExistsError:  # made by another process of the box, or by an earlier claim
            found = self.path.lstat()
            if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.geteuid():
                raise PermissionError(f"{self.path} is not a directory of this user's") from None
            return
        log.debug("websub: this box's claims are kept in %s", self.path)

    def _prune(self, made: str) -> None:
        """Remove all but the newest KEEP markers, `made` (the newest) among them."""
        markers: list[tuple[int, str]] = []
        with os.scandir(self.path) as entries:
            for entry in entries:
                if entry.name == made:  # whatever its time's granularity says
                    continue
                with contextlib.suppress(FileNotFoundError):  # pruned by another process
                    markers.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.name))
        markers.sort()
        for _mtime, name in markers[:max(0, len(markers) - (KEEP - 1))]:
            with contextlib.suppress(FileNotFoundError):
                (self.path / name).unlink()


def _remove(path: Path, owner: int) -> None:
    # Only in the process that named the directory: a gunicorn worker forked from it that
    # exits through sys.exit runs this too (atexit), while the others go on using it.
    if os.getpid() == owner:
        shutil.rmtree(path, ignore_errors=True)
