"""The photo store across processes: a worker forked after the store was made, and a dead worker's spool claimed."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from plant_disease.photostore import PhotoStore
from testkit.processes import wait_until


def stored(root: Path, sha: str) -> Path:
    return root / sha[:2] / sha


def test_forked_worker_keeps_photos(tmp_path):
    """As Celery's prefork pool does: the store is made, then the process forks; the child's photos are written by
    the child's own writer thread, and the parent's store keeps working."""
    root = tmp_path / "photos"
    ps = PhotoStore(root, tmp_path / "spool", retry_every=0.2)
    try:
        parent_sha = ps.keep(b"photo kept before the fork")
        assert ps.flush(10)
        pid = os.fork()
        if pid == 0:  # the child: its thread was not forked with it
            ok = False
            try:
                seen = ps.flush(10) and ps.get(parent_sha) == b"photo kept before the fork"  # the parent's
                sha = ps.keep(b"photo kept by the forked worker")
                ok = seen and ps.flush(10) and stored(root, sha).read_bytes() == b"photo kept by the forked worker"
            finally:
                os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the forked worker did not store its photo"
        assert ps.flush(10)
        after = ps.keep(b"photo kept by the parent after the fork")
        assert ps.flush(10)
        assert stored(root, parent_sha).is_file() and stored(root, after).is_file()
        assert stored(root, hashlib.sha256(b"photo kept by the forked worker").hexdigest()).is_file()
    finally:
        ps.close()


CHILD = """
import os, sys
from plant_disease.photostore import PhotoStore
ps = PhotoStore(sys.argv[1], sys.argv[2], retry_every=60)
print(" ".join(ps.keep(f"photo {i} of a worker that dies".encode()) for i in range(int(sys.argv[3]))), flush=True)
assert ps.flush(10) and ps.spooled == int(sys.argv[3]), ps.spooled
print("spooled", flush=True)
sys.stdin.read()  # alive until the test has started both workers
os._exit(0)  # killed: no close(), no atexit; the photos are only in the spool
"""


def test_dead_workers_spool_is_claimed(tmp_path):
    """Two workers die while the store refuses (a file where its folder should be); a store for another URL leaves
    their spools alone, a new process for the right store claims them and writes every photo once."""
    root, spool = tmp_path / "photos", tmp_path / "spool"
    root.write_text("not a folder")
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(root), str(spool), "3"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    shas = []
    for w in workers:  # both alive at once: neither claims the other's spool
        shas += w.stdout.readline().split()
        assert w.stdout.readline() == "spooled\n", w.stderr.read()
    for w in workers:
        w.communicate("", timeout=30)
        assert w.returncode == 0, w.stderr
    dirs = sorted(spool.iterdir())
    assert len(dirs) == 2 and len(set(shas)) == 3, (dirs, shas)  # both workers kept the same three photos
    with PhotoStore(tmp_path / "elsewhere", spool) as other:
        assert other.spooled == 0
        assert other.get(shas[0]) is None  # another store's spool is not its photos
    assert sorted(spool.iterdir()) == dirs
    root.unlink()  # the store is back
    with PhotoStore(root, spool, retry_every=0.2) as ps:
        assert not any(d.exists() for d in dirs), "the dead workers' spools are claimed at start-up"
        assert all(ps.has(s) for s in shas)  # readable from the claimed spool already
        assert wait_until(lambda: ps.spooled == 0, 10), "a spool found at start-up is replayed at once"
        assert ps.healthy
        for i, s in enumerate(shas[:3]):
            assert stored(root, s).read_bytes() == f"photo {i} of a worker that dies".encode()
        assert sorted(p.name for p in root.rglob("*") if p.is_file()) == sorted(set(shas))
        assert wait_until(lambda: [p.name for p in spool.iterdir()] == [], 5), list(spool.iterdir())
