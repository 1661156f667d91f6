"""A private, throwaway PostgreSQL 15 cluster for tests, reached through pyodbc + psqlODBC.

    from testkit.pg import postgres    # module-scoped pytest fixture
    def test_x(postgres): ... postgres.odbc_url ... postgres.stop(); postgres.start()

The cluster lives in a temp dir owned by `postgres` (initdb refuses to run as root, so when we are root the
server binaries run through `runuser -u postgres --`), listens only on 127.0.0.1 on a free port, keeps its unix
socket in that temp dir, trusts every local connection and has a database `predlog`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from testkit.processes import free_port

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
ODBC_DRIVER = os.environ.get("PG_ODBC_DRIVER", "PostgreSQL Unicode")


def _missing() -> str | None:
    "Why a private cluster cannot be started here (None when it can)."
    if not all((PG_BIN / b).is_file() for b in ("initdb", "pg_ctl", "postgres")):
        return f"PostgreSQL server binaries not found in {PG_BIN} (apt-get install postgresql-15, or set PG_BIN)"
    try:
        import pyodbc
    except ImportError:
        return "pyodbc is not installed"
    if ODBC_DRIVER not in pyodbc.drivers():
        return f"ODBC driver {ODBC_DRIVER!r} not registered in odbcinst.ini (apt-get install odbc-postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root but there is no `postgres` user to own the cluster"
        if not shutil.which("runuser"):
            return "running as root but `runuser` is missing"
    return None


class PostgresServer:
    "Start a private cluster on enter, delete it on exit; `stop()`/`start()` simulate an outage."

    def __init__(self, db: str = "predlog"):
        self.db, self.port, self.tmp = db, None, None

    # -- plumbing
    def _run(self, *args, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [str(a) for a in args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.tmp)
        if check and r.returncode:
            log = self.logfile.read_text()[-2000:] if self.logfile and self.logfile.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}\n{r.stdout}\n{r.stderr}\n{log}")
        return r

    @property
    def data(self) -> Path:
        return Path(self.tmp) / "data"

    @property
    def logfile(self) -> Path | None:
        return Path(self.tmp) / "server.log" if self.tmp else None

    @property
    def odbc_url(self) -> str:
        "SQLAlchemy URL through the `postgresql+pyodbc` dialect registered by `plant_disease.predlog`."
        return f"postgresql+pyodbc://postgres@127.0.0.1:{self.port}/{self.db}?driver={ODBC_DRIVER.replace(' ', '+')}"

    @property
    def odbc_connect(self) -> str:
        "Plain ODBC connection string (for `pyodbc.connect`)."
        return f"DRIVER={{{ODBC_DRIVER}}};Server=127.0.0.1;Port={self.port};Database={self.db};UID=postgres;CommLog=0;Debug=0"

    # -- lifecycle
    def __enter__(self) -> PostgresServer:
        if why := _missing():
            pytest.skip(why)
        self.tmp = tempfile.mkdtemp(prefix="pgtest-")
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
        os.chmod(self.tmp, 0o700)
        self.port = free_port()
        self._run(
            PG_BIN / "initdb",
            "-D",
            self.data,
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        conf = (
            f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.tmp}'\n"
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 40\n"
            # not UTC on purpose: the prediction log must store and return UTC whatever the server's zone
            "shared_buffers = 32MB\ntimezone = 'Asia/Kolkata'\n"
        )
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(conf)
        self.start()
        self._run(PG_BIN / "createdb", "-h", self.tmp, "-p", self.port, "-U", "postgres", self.db)
        return self

    def start(self) -> None:
        "Start the server and wait until it accepts connections."
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-l", self.logfile, "-w", "-t", "30", "start")

    def stop(self) -> None:
        "Fast shutdown: open sessions are terminated, in-flight transactions roll back."
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "30", "stop")

    def __exit__(self, *exc) -> None:
        if self.tmp is None:
            return
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", "immediate", "stop", check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp = None
        # Debian's odbcinst.ini turns psqlODBC's CommLog on for the driver as a whole; a connection string's
        # CommLog=0 silences it except for a "PQfinish" line per closed connection in /tmp: tidy ours away.
        for f in Path(tempfile.gettempdir()).glob(f"psqlodbc_*{os.getpid()}.log"):
            f.unlink(missing_ok=True)

    # -- queries straight through pyodbc (independent of the code under test)
    def query(self, sql: str) -> list[tuple]:
        "All rows of `sql`, run directly through pyodbc."
        import pyodbc

        con = pyodbc.connect(self.odbc_connect, timeout=5)
        try:
            return [tuple(r) for r in con.cursor().execute(sql).fetchall()]
        finally:
            con.close()

    def count(self, sql: str):
        "The first column of the first row of `sql` (e.g. `select count(*) from t`), run directly through pyodbc."
        return self.query(sql)[0][0]


@pytest.fixture(scope="module")
def postgres():
    "A private PostgreSQL 15 cluster for the test module (skips when the server or psqlODBC is missing)."
    with PostgresServer() as pg:
        yield pg
