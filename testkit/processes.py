"""Processes for the tests and the benchmarks: free local ports, waiting for a condition or a process, running a
command, and a private Redis server."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path


def wait_until(cond, timeout: float, step: float = 0.05) -> bool:
    "Poll `cond` every `step` seconds until it is true or `timeout` seconds have passed; its last value."
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    "Poll `check()` until it returns something truthy; fail with the process's log if it dies or time runs out."
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited {proc.returncode}\n{log.read_text()[-4000:] if log else ''}")
        try:
            if v := check():
                return v
        except Exception:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{what} not ready after {timeout} s\n{log.read_text()[-4000:] if log else ''}")


class Redis:
    "A private redis-server on a free port (Debian's redis-server), no persistence."

    def __init__(self, workdir: Path):
        exe = shutil.which("redis-server")
        if exe is None:
            raise FileNotFoundError("redis-server not installed (apt-get install redis-server)")
        self.port, self.log = free_port(), workdir / "redis.log"
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
            ],
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        import redis

        wait_for(lambda: redis.Redis(port=self.port).ping(), 20, "redis-server", self.proc, self.log)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: float = 900) -> str:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r.stdout
