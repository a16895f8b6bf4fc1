"""Worker ids that say which process holds a job, so a process on the same machine can tell at once when it died.

A running job whose worker stops sending heartbeats goes back to the queue after ``T2V_STALE_AFTER_S`` (10 s by
default): the only sign a process on another machine can read. A process on the same machine can do better: a
worker id names its process (pid and start time) and the machine's process table it lives in (the boot and the
PID namespace), and when the process is gone (no such pid, a zombie, or another process that reused the pid) its
jobs are requeued now, by a restarted server at start or by another server's janitor. A process that is only
stopped (SIGSTOP) or slow is alive here and waits for the heartbeat timeout, as before; where the process table
cannot be read (no ``/proc``) every job waits for it.

A worker id is ``host:pid:index:nonce:machine.start`` (the host cut short where the whole would pass 64
characters, the column's width).
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from functools import lru_cache
from pathlib import Path

__all__ = ["gone_here", "process_state", "worker_id"]

WIDTH = 64  # jobs.worker_id is VARCHAR(64)
PROC = Path("/proc")


def process_state(pid: int | str) -> tuple[str, str] | None:
    """(state letter, start time in clock ticks since boot) of process ``pid`` from /proc/PID/stat (fields 3 and
    22; the command name before them may hold spaces and parentheses); None when there is no such process or
    /proc cannot be read."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    return (fields[0], fields[19]) if len(fields) > 19 else None


@lru_cache(maxsize=1)
def machine_key() -> str | None:
    """This process table's key: the host, its boot and the PID namespace (a container has its own), hashed.
    None where they cannot be read."""
    try:
        boot = (PROC / "sys/kernel/random/boot_id").read_text().strip()
        pidns = os.stat(PROC / "self/ns/pid").st_ino
    except OSError:
        return None
    return hashlib.sha256(f"{socket.gethostname()}|{boot}|{pidns}".encode()).hexdigest()[:10]


def worker_id(index: int) -> str:
    """A new id for worker ``index`` of this process."""
    pid = os.getpid()
    key, own = machine_key(), process_state("self")
    proc = f"{key}.{own[1]}" if key and own else "-"
    tail = f":{pid}:{index}:{time.monotonic_ns() % 10**6}:{proc}"
    return socket.gethostname()[:max(1, WIDTH - len(tail))] + tail


def gone_here(worker_ids) -> list[str]:
    """The ids of ``worker_ids`` whose process ran on this machine's process table and no longer runs."""
    key = machine_key()
    if key is None:
        return []
    gone = []
    for wid in dict.fromkeys(w for w in worker_ids if w):
        parts = wid.split(":")
        if len(parts) != 5 or not parts[1].isdigit() or parts[4].partition(".")[0] != key:
            continue  # another machine's, or an id without its process: the heartbeat decides
        found = process_state(parts[1])
        if found is None or found[0] in ("Z", "X") or found[1] != parts[4].partition(".")[2]:
            gone.append(wid)  # no such process, a zombie, or another process under the same pid
    return gone
