"""Start ``t2v`` server processes for tests without importing torch again for each one.

Every ``t2v serve`` a test starts spends about 8 of its 14 CPU seconds importing torch, diffusers,
transformers and peft (measured with process accounting over a whole suite run on 2 cores). A fork server
imports them once per test run (its pytest workers share it); each ``t2v`` process a test asks for is then a fork of it that runs the
same entry point ``python -m t2v`` runs (``t2v.cli.entry``), with the test's arguments, environment, working
folder and log file. The fork is a real process with its own pid: tests SIGKILL, SIGSTOP and restart it as
they would the program, and a restart is a new fork that shares nothing with the killed one.

What a fork could inherit that a fresh process would not is kept out:
- the fork server runs no Python thread but its main one, so a fork holds no lock another thread held;
- it imports libraries and runs no model code, so no torch thread pool exists before a fork;
- libraries read some variables when imported (``HF_HUB_OFFLINE``, ``TRANSFORMERS_VERBOSITY``, the
  Prometheus multiprocess folder, thread counts), so each set of such variables the tests start servers
  with has a fork server of its own, started with them (:data:`IMPORT_TIME`).

What it does give a fork on purpose: a home with no dry-run cache starts with the dry runs the earlier forks
made (:func:`seed_dry_runs`), as on a machine that has run t2v before; tests of the dry runs themselves turn
that off (``own_dry_runs``, tests/conftest.py).

``T2V_TEST_FORK=0`` starts every server as a fresh ``python -m t2v`` process. The suite keeps some fresh
starts of its own (``tests/api/test_server.py``: the program as users start it).

Run as a script, this file is the fork server: ``python tests/forkserver.py SOCKET OWNER_PID``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

#: Variables a library the fork server imports reads once, at import: a process that needs other values than
#: the fork server's gets a fork server of its own. Compared by prefix. Not here: the variables of libraries the
#: fork server does not import (Gradio, Ray: checked when it starts; a fork imports them under its own
#: environment), and LD_LIBRARY_PATH, which only an exec reads (OpenCV adds its folder when imported, for the
#: subprocesses it may start; a fork loads OpenCV's libraries by their own paths, as the worker itself does).
IMPORT_TIME = ("HF_", "HUGGINGFACE_", "TRANSFORMERS_", "DIFFUSERS_", "TORCH", "PYTORCH_", "OMP_", "MKL_", "CUDA_",
               "PYTHON", "PROMETHEUS_", "prometheus_", "TOKENIZERS_", "LD_PRELOAD",
               "COLUMNS", "LINES")  # (a Rich console made at import takes its width then)
NOT_IMPORTED = ("gradio", "ray")  # so their variables may differ between a fork server and its forks

#: What ``t2v`` itself sets where unset, before the libraries are imported (t2v.cli.common.quiet_third_party).
DEFAULTS = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error", "DIFFUSERS_VERBOSITY": "error"}


def import_time_env(env: dict[str, str]) -> dict[str, str]:
    """The variables of ``env`` that libraries read at import, as a ``t2v`` process started with it sees them."""
    return {k: v for k, v in {**DEFAULTS, **env}.items() if k.startswith(IMPORT_TIME)}


def read_line(conn: socket.socket, buf: bytearray) -> bytes | None:
    """The next newline-ended message from ``conn`` (what came after it stays in ``buf``); None when ``conn``
    closed first. A timeout of ``conn`` propagates, and what arrived so far stays in ``buf``."""
    while b"\n" not in buf:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        buf += chunk
    line, _, rest = bytes(buf).partition(b"\n")
    buf[:] = rest
    return line


# ---- the test side ------------------------------------------------------------------------------------


class ForkedProcess:
    """A ``t2v`` process forked by the fork server: the part of :class:`subprocess.Popen` tests use."""

    def __init__(self, args: list[str], conn: socket.socket, pid: int, buf: bytearray):
        self.args, self.pid, self.returncode = args, pid, None
        self._conn, self._buf = conn, buf

    def _read(self, timeout: float | None) -> None:
        self._conn.settimeout(timeout)
        try:
            line = read_line(self._conn, self._buf)
        except (TimeoutError, BlockingIOError):
            return
        # no line: the fork server went away, and its forks with it
        self.returncode = json.loads(line)["returncode"] if line is not None else -signal.SIGKILL
        self._conn.close()

    def poll(self) -> int | None:
        if self.returncode is None:
            self._read(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self._read(timeout)
            if self.returncode is None:
                raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """A fork server for one set of import-time variables, shared by the run's pytest workers (one per set, not
    one per worker: each costs about 12 CPU seconds of imports). The first worker to need it starts it, under a
    file lock, in the run's shared folder; it stops, killing what it forked, once the process that owns the run
    (pytest-xdist's controller, or pytest itself without workers) has exited."""

    def __init__(self, env: dict[str, str]):
        self.env, self.lock = dict(env), threading.Lock()
        key = json.dumps(sorted(import_time_env(env).items()))
        self.folder = shared_folder() / hashlib.sha1(key.encode()).hexdigest()[:16]
        self.path = str(self.folder / "sock")
        self.log = self.folder / "forkserver.log"

    def _connect(self) -> socket.socket | None:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self.path)
            return conn
        except OSError:
            conn.close()
            return None

    def _start(self) -> None:
        """Start the fork server unless another worker has (under the file lock); its socket accepts once ready."""
        from filelock import FileLock

        self.folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.folder) + ".lock"):
            if (conn := self._connect()) is not None:
                conn.close()
                return
            for stale in (self.path, self.path + ".ready"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(stale)
            with self.log.open("ab") as log:
                proc = subprocess.Popen([sys.executable, __file__, self.path, str(run_owner())], env=self.env,
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)  # a worker's Ctrl-C or exit does not stop it
            deadline = time.monotonic() + 180
            while not os.path.exists(self.path + ".ready"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the test fork server did not start: {self.log.read_text()[-3000:]}")
                time.sleep(0.05)

    def spawn(self, args: list[str], env: dict[str, str], log: Path, append: bool = False,
              err: Path | None = None, code: str | None = None) -> ForkedProcess:
        with self.lock:
            conn = self._connect()
            if conn is None:
                self._start()
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conn.connect(self.path)
        request = {"args": args, "env": env, "log": str(log), "err": str(err) if err else None, "append": append,
                   "cwd": os.getcwd(), "code": code}
        conn.sendall(json.dumps(request).encode() + b"\n")
        buf = bytearray()
        if (line := read_line(conn, buf)) is None:
            raise RuntimeError(f"the test fork server failed: {self.log.read_text()[-3000:]}")
        argv = [sys.executable, "-m", "t2v", *args] if code is None else [sys.executable, "-c", code, *args]
        return ForkedProcess(argv, conn, json.loads(line)["pid"], buf)


def run_owner() -> int:
    """The pid of the process that owns this test run: pytest-xdist's controller (a worker's parent), or this
    process when pytest runs without workers."""
    return os.getppid() if os.environ.get("PYTEST_XDIST_WORKER") else os.getpid()


_SHARED: list[Path] = []


def shared_folder() -> Path:
    """Where the run's fork servers live: beside the run's tiny models (a folder every worker sees), or a
    folder of this process's own outside a test run."""
    from tests import tinymodels

    if not _SHARED:
        builds = tinymodels.root()
        root = builds.parent if builds is not None else Path(tempfile.mkdtemp(prefix="t2v-fork-"))
        _SHARED.append(root / "fork-servers")
    return _SHARED[0]


#: This process's handles on the run's fork servers, one per set of import-time variables its tests start
#: servers with.
FORKS: dict[tuple, ForkServer] = {}
FORKS_LOCK = threading.Lock()


def fork_server(env: dict[str, str]) -> ForkServer:
    """The run's fork server for ``env``'s import-time variables (this process's handle on it)."""
    key = tuple(sorted(import_time_env(env).items()))
    with FORKS_LOCK:
        if key not in FORKS:
            FORKS[key] = ForkServer(env)
        return FORKS[key]


def start_t2v(args: list[str], env: dict[str, str], log: Path, append: bool = False, fresh: bool = False,
              err: Path | None = None):
    """``python -m t2v ARGS`` with ``env``, its output to ``log`` (its standard error too, unless ``err`` names
    a file of its own): a fork of the fork server for ``env``'s import-time variables (see the module's
    docstring), or with ``fresh`` (or ``T2V_TEST_FORK=0``) a new process. Returns a Popen-like object."""
    if not fresh and os.environ.get("T2V_TEST_FORK", "1") != "0":
        return fork_server(env).spawn(args, env, log, append, err)
    cmd = [sys.executable, "-m", "t2v", *args]
    with log.open("ab" if append else "wb") as out:
        if err is None:
            return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        with err.open("wb") as errors:
            return subprocess.Popen(cmd, env=env, stdout=out, stderr=errors)


def run_python(code: str, args: list, env: dict[str, str] | None = None,
               timeout: float | None = 300) -> subprocess.CompletedProcess:
    """``subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, ...)`` as a fork of
    the fork server for ``env`` (torch, diffusers and t2v imported, no model code run): for a test that measures
    a process of its own (its peak memory, say) but not its imports. Raises CalledProcessError on a non-zero
    exit, as ``check=True`` does."""
    args = [str(a) for a in args]
    env = dict(os.environ if env is None else env)
    with tempfile.TemporaryDirectory(prefix="t2v-run-") as folder:
        out, err = Path(folder) / "stdout", Path(folder) / "stderr"
        proc = fork_server(env).spawn(args, env, out, err=err, code=code)
        done = completed(proc, [sys.executable, "-c", code, *args], out, err, timeout)
    done.check_returncode()
    return done


def run_t2v(args: list, env: dict[str, str] | None = None, timeout: float | None = 300,
            fresh: bool = False) -> subprocess.CompletedProcess:
    """``subprocess.run([sys.executable, "-m", "t2v", *args], capture_output=True, text=True, ...)`` as a fork
    (see :func:`start_t2v`): the program's exit code, standard output and standard error, each its own."""
    args = [str(a) for a in args]
    with tempfile.TemporaryDirectory(prefix="t2v-run-") as folder:
        out, err = Path(folder) / "stdout", Path(folder) / "stderr"
        proc = start_t2v(args, dict(os.environ if env is None else env), out, fresh=fresh, err=err)
        return completed(proc, [sys.executable, "-m", "t2v", *args], out, err, timeout)


def completed(proc, argv: list[str], out: Path, err: Path, timeout: float | None) -> subprocess.CompletedProcess:
    """``proc`` waited for (killed past ``timeout``), as :func:`subprocess.run` reports it."""
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    read = lambda p: p.read_text(errors="replace") if p.exists() else ""  # noqa: E731
    return subprocess.CompletedProcess(argv, code, read(out), read(err))


# ---- the fork server ------------------------------------------------------------------------------------


#: The dry runs this fork server's forks have made, gathered as each exits (see :func:`seed_dry_runs`).
SEED: list[Path] = []


def home_dry_runs(env: dict[str, str]) -> Path | None:
    """The dry-run cache of the ``t2v`` home ``env`` names; None: none, or its test makes its own
    (``T2V_TEST_OWN_DRY_RUNS``: tests/conftest.py sets it for the tests marked ``own_dry_runs``)."""
    from t2v.planner import dryruns

    home = env.get("T2V_HOME")
    if not home or env.get("T2V_TEST_OWN_DRY_RUNS") == "1":
        return None
    return Path(home) / "cache" / dryruns.CACHE_NAME


def seed_dry_runs(env: dict[str, str]) -> None:
    """In a fork, before it runs: a home with no dry runs of its own starts with those the earlier forks made, as
    a machine that has run t2v before has them (what a dry run measures depends only on the architecture, the
    shape and the code; tests/conftest.py shares the in-process tests' the same way)."""
    target = home_dry_runs(env)
    if target is not None and SEED and SEED[0].is_file() and not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SEED[0], target)


def gather_dry_runs(env: dict[str, str]) -> None:
    """In the fork server, once a fork has exited: keep the dry runs its home holds for the forks to come."""
    from t2v.models.diskcache import merge_entries

    source = home_dry_runs(env)
    try:
        data = json.loads(source.read_text(encoding="utf-8")) if source is not None else None
    except (OSError, ValueError):
        return
    if isinstance(data, dict) and isinstance(data.get("runs"), dict) and SEED:
        merge_entries(SEED[0], data.get("version"), "runs", data["runs"])  # atomic: a fork may be copying it


def _child(request: dict, sel, listener: socket.socket, conns: list[socket.socket]) -> None:
    """In the fork: become ``python -m t2v ARGS`` as the request describes, then run it."""
    try:
        sel.close()
        listener.close()
        for c in conns:
            c.close()
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        seed_dry_runs(request["env"])
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if request["append"] else os.O_TRUNC)
        out = os.open(request["log"], flags, 0o644)
        err = os.open(request["err"], flags, 0o644) if request.get("err") else out
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        for fd in {out, err, null}:
            os.close(fd)
        sys.path[0] = request["cwd"]  # as `python -m` and `python -c` put it
        if request.get("code") is not None:  # `python -c CODE ARGS`
            sys.argv = ["-c", *request["args"]]
            status = 0
            try:
                exec(compile(request["code"], "<string>", "exec"), {"__name__": "__main__"})
            except SystemExit as e:
                status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
        sys.argv = [os.path.join(os.path.dirname(sys.modules["t2v"].__file__), "__main__.py"), *request["args"]]
        from t2v.cli import entry

        entry()  # ends the process
    except BaseException:  # noqa: BLE001 - a fork never returns into the fork server's loop
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
    os._exit(1)


def _serve(path: str, owner: int) -> None:
    import selectors

    for k, v in DEFAULTS.items():
        os.environ.setdefault(k, v)
    # What every `t2v serve` imports before it answers: the command line, the API, the service, and the
    # libraries that run jobs (t2v.runner.runtime.import_runtime), here once.
    import importlib
    import pkgutil

    import t2v.api
    import t2v.cli.app  # noqa: F401
    import t2v.service  # noqa: F401
    from t2v.runner.runtime import import_runtime

    import_runtime()
    for module in pkgutil.walk_packages(t2v.api.__path__, "t2v.api."):  # the routes, imported as the app is made
        importlib.import_module(module.name)
    for name in ("uvicorn.main", "uvicorn.protocols.http.h11_impl", "uvicorn.lifespan.on", "anyio._backends._asyncio",
                 "prometheus_client"):
        importlib.import_module(name)
    imported = [name for name in NOT_IMPORTED if name in sys.modules]
    if imported:
        print(f"imported {imported}: add their variables to IMPORT_TIME", flush=True)
        sys.exit(3)
    # No Python thread but this one (a fork would copy a lock another thread holds). numpy's OpenBLAS starts
    # its thread pool at import; it stops and restarts the pool around fork itself (pthread_atfork).
    threads = [t.name for t in threading.enumerate()]
    if len(threads) != 1:
        print(f"threads after the imports: {threads}", flush=True)
        sys.exit(3)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    children: dict[int, socket.socket] = {}
    SEED[:] = [Path(path).with_name("dry-runs.json")]
    envs: dict[int, dict[str, str]] = {}
    Path(path + ".ready").touch()
    checked = time.monotonic()
    while True:
        if time.monotonic() - checked > 0.5:  # the run is over once its owner has exited
            checked = time.monotonic()
            try:
                os.kill(owner, 0)
            except ProcessLookupError:
                for pid in children:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                shutil.rmtree(os.path.dirname(path), ignore_errors=True)  # its socket, log and dry runs
                return
        for _key, _ in sel.select(timeout=0.05):
            conn, _ = listener.accept()
            if (line := read_line(conn, bytearray())) is None:
                conn.close()
                continue
            request = json.loads(line)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(request, sel, listener, [conn, *children.values()])
            children[pid], envs[pid] = conn, request["env"]
            conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = children.pop(pid, None)
            if conn is not None:
                try:
                    conn.sendall(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
                except OSError:
                    pass
                conn.close()
            gather_dry_runs(envs.pop(pid, {}))


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]))
