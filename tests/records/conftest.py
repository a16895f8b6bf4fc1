"""A MongoDB wire-protocol server for the record tests: nx-27017 (from PyPI, stores into SQLite), started on a
free loopback port, with a database file that survives a restart. No ``mongod`` can be installed here."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from t2v.desktop.local import free_port


class MongoServer:
    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.url = f"mongodb://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> MongoServer:
        exe = shutil.which("nx-27017") or str(Path(sys.executable).with_name("nx-27017"))
        if not Path(exe).is_file():  # one line naming it (a failure under CI=true, see tests/conftest.py)
            pytest.skip("the MongoDB wire-protocol server nx-27017 (the dev extra) is not installed")
        self.log = (self.folder / "nx.log").open("ab")
        self.proc = subprocess.Popen([exe, "--db", str(self.folder / "mongo.db"), "--host", "127.0.0.1",
                                      "-p", str(self.port)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nx-27017 did not start: {(self.folder / 'nx.log').read_text()[-2000:]}")
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def collection(self, db: str = "t2v", name: str = "records"):
        import pymongo

        return pymongo.MongoClient(self.url, serverSelectionTimeoutMS=5000, tz_aware=True)[db][name]


@pytest.fixture
def mongo(tmp_path):
    os.environ.pop("T2V_RECORDS_URL", None)
    server = MongoServer(tmp_path).start()
    yield server
    server.stop()
