"""A private PostgreSQL cluster for tests that stop servers or replicate (never the shared server).

Uses the machine's PostgreSQL binaries (Debian: /usr/lib/postgresql/<v>/bin) or, failing that, those
of the pgserver wheel. PostgreSQL refuses to run as root, so as root the processes run as the
`postgres` system user (or pgserver's `pgserver` user).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), reverse=True)
    if found:
        return Path(found[0]).parent
    import pgserver

    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    for user in ("postgres", "pgserver"):
        try:
            pwd.getpwnam(user)
            return user
        except KeyError:
            continue
    raise RuntimeError("running as root and no postgres/pgserver user exists to run PostgreSQL")


class Cluster:
    def __init__(self, data_dir: Path | None = None, port: int | None = None):
        self.base = Path(tempfile.mkdtemp(prefix="aw-cluster-"))
        self.data = data_dir or self.base / "data"
        self.port = port or free_port()
        self.user = _run_as()
        self.bin = bin_dir()
        self.log = self.base / "server.log"
        if self.user:
            shutil.chown(self.base, self.user)
            os.chmod(self.base, 0o755)

    def _cmd(self, *args: str) -> list[str]:
        return (["runuser", "-u", self.user, "--"] if self.user else []) + list(args)

    def run(self, *args: str, check=True):
        return subprocess.run(self._cmd(*args), capture_output=True, text=True, check=check, timeout=120)

    def initdb(self, **conf: str) -> Cluster:
        self.run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "root", "--auth=trust", "-E", "UTF8")
        lines = [f"port = {self.port}", "listen_addresses = '127.0.0.1'", "unix_socket_directories = ''",
                 "wal_level = replica", "max_wal_senders = 5", "fsync = off", "synchronous_commit = off",
                 "full_page_writes = off", *(f"{k} = {v}" for k, v in conf.items())]
        with open(self.data / "postgresql.auto.conf", "a") as f:
            f.write("\n".join(lines) + "\n")
        with open(self.data / "pg_hba.conf", "a") as f:
            f.write("host replication all 127.0.0.1/32 trust\n")
        return self

    def basebackup_from(self, primary: Cluster) -> Cluster:
        """A streaming standby of `primary` (pg_basebackup -R writes standby.signal and the conninfo)."""
        self.run(str(self.bin / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U", "root",
                 "-D", str(self.data), "-R", "-X", "stream")
        with open(self.data / "postgresql.auto.conf", "a") as f:
            f.write(f"port = {self.port}\n")
        return self

    def start(self) -> Cluster:
        self.run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        self.run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://root@127.0.0.1:{self.port}/{database}"

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.run(str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise TimeoutError(f"cluster on port {self.port} did not become ready")

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)
