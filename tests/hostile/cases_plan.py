"""Attacks on the sandbox plan: a policy folder swapped for a link, threads that eat
another action's process share (see tests/test_redteam.py)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile

from llmos_grammar.actions import ActionRunner, run_action
from llmos_grammar.ir import ActionPolicy, Policy
from llmos_grammar.sandbox.probe import probe
from tests.hostile.cases import Probe

SECRET = "llmos-redteam-private-3c1d"


def make_root() -> str:
    """data/ (writable by any action), data/sub/, data/app.db; private/ (0700) with a
    world-readable pub/ that no policy names."""
    top = tempfile.mkdtemp(prefix="llmos-redteam-")
    os.chmod(top, 0o755)
    for folder, mode in (("data", 0o777), ("data/sub", 0o777), ("private", 0o700)):
        os.mkdir(os.path.join(top, folder))
        os.chmod(os.path.join(top, folder), mode)
    pub = os.path.join(top, "private", "pub")
    os.mkdir(pub)
    os.chmod(pub, 0o755)
    with open(os.path.join(pub, "secret.txt"), "w") as fh:
        fh.write(SECRET)
    for path, value in ((os.path.join(pub, "secret.db"), SECRET), (f"{top}/data/app.db", "x")):
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE s (v TEXT)")
            conn.execute("INSERT INTO s VALUES (?)", (value,))
        conn.close()
        os.chmod(path, 0o644)
    return top


SWAP = """import os
data = {data!r}
os.rename(data + "/sub", data + "/old-sub")
os.symlink({pub!r}, data + "/sub")
os.rename(data + "/app.db", data + "/old.db")
os.symlink({pub!r} + "/secret.db", data + "/app.db")
print("swapped")
"""


def link_swap(root: str) -> str | None:
    """A python action replaces a policy folder and the database with links to a private
    folder; the next files and sqlite actions must be refused, not bound through them."""
    caps = probe()
    data, pub = os.path.join(root, "data"), os.path.join(root, "private", "pub")
    writer = ActionPolicy(name="py", handler="python", write=(data,), timeout_s=10.0)
    swapped = run_action(writer, SWAP.format(data=data, pub=pub), caps=caps)
    if swapped.stdout != "swapped\n":
        return f"the swap itself failed: {swapped.status}"
    files = ActionPolicy(name="f", handler="files", read=(f"{data}/sub",), timeout_s=10.0)
    read = run_action(files, "read secret.txt", caps=caps)
    database = ActionPolicy(name="q", handler="sqlite", database=f"{data}/app.db", timeout_s=10.0)
    query = run_action(database, "SELECT v FROM s;", caps=caps)
    if SECRET in read.stdout:
        return "files read a folder no policy names, through the link"
    if SECRET in query.stdout:
        return "sqlite read a database no policy names, through the link"
    for result in (read, query):  # refused before anything starts, saying why
        if result.refused is None or "symbolic link" not in result.refused:
            return f"not refused with a reason: {result.status}"
    return None


THREADS = """import threading, time
for _ in range(24):
    try:
        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
    except RuntimeError:  # the session's own share is used up
        break
print(threading.active_count())
"""


def thread_starvation() -> str | None:
    """A persistent session holding 24 threads must leave another action its own share."""
    caps = probe()
    session = ActionPolicy(  # memory for 24 thread stacks under RLIMIT_AS
        name="s", handler="python", persistent=True, processes=32, timeout_s=10.0, memory_mb=2048
    )
    shell = ActionPolicy(name="sh", handler="shell", processes=8, timeout_s=10.0)
    with ActionRunner(Policy("redteam.yaml", {"s": session}), caps=caps, warm=False) as runner:
        started = runner.run("s", THREADS)
        if not (started.ok and int(started.stdout or 0) > 8):
            return f"the session did not start its threads: {started.status}"
        piped = run_action(shell, "echo hi | cat | cat", caps=caps)
    return None if piped.ok and piped.stdout == "hi\n" else f"starved: {piped.status}"


def _swap_probe() -> str | None:
    if probe().bwrap is None:
        return None  # without bubblewrap nothing is bound: the policy folders are the host's
    root = make_root()
    try:
        return link_swap(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _threads_probe() -> str | None:
    return thread_starvation() if probe().root else None  # the uid drop needs root


PROBES: tuple[Probe, ...] = (
    Probe(
        "policy_folder_becomes_link",
        _swap_probe,
        "refused: policy folders and files are bound by descriptor, a link is not followed",
    ),
    Probe(
        "threads_eat_nproc_share",
        _threads_probe,
        "contained: RLIMIT_NPROC's base counts uid 65534's threads, another action still runs",
    ),
)
