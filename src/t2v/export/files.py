"""Files written atomically, and removed without raising: what every writer of t2v's outputs builds on."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

logger = logging.getLogger(__name__)


def remove_output(path: Path) -> None:
    """Remove a file or directory tree if present; never raises."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink()
    except OSError as e:  # pragma: no cover - best effort cleanup
        logger.warning("could not remove %s: %s", path, e)


@contextmanager
def atomic_path(final: Path, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``final``; rename it onto ``final`` on success.

    On any exception (KeyboardInterrupt included) the temporary is removed and
    the exception re-raised; ``final`` is left untouched.
    """
    final = Path(final)
    tmp = final.with_name(f".{final.name}.{secrets.token_hex(4)}.part")
    try:
        yield tmp
        if is_dir and (final.exists() or final.is_symlink()):
            remove_output(final)  # os.replace cannot replace a non-empty directory
        os.replace(tmp, final)
    except BaseException:
        remove_output(tmp)
        raise
