"""Attacks that still get through, reproduced; each is an xfail until the sandbox plan closes it.

Both live in `llmos_grammar/sandbox/plan.py`: bubblewrap binds a policy folder (or
database) by its path, so a folder that another action replaced with a symbolic link is
bound where the link points; and the RLIMIT_NPROC base counts `nobody`'s processes while
the kernel counts its threads. When a fix lands the test passes, strict xfail fails, and
the attack moves to `tests/hostile/cases_redteam.py` as a Case or Probe.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator

import pytest

from llmos_grammar.actions import ActionRunner, run_action
from llmos_grammar.ir import ActionPolicy, Policy
from llmos_grammar.sandbox.probe import probe

SECRET = "llmos-redteam-private-3c1d"
CAPS = probe()
needs_bwrap = pytest.mark.skipif(CAPS.bwrap is None, reason="needs bubblewrap")


@pytest.fixture()
def root() -> Iterator[str]:
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
    yield top
    shutil.rmtree(top, ignore_errors=True)


SWAP = """import os
data = {data!r}
os.rename(data + "/sub", data + "/old-sub")
os.symlink({pub!r}, data + "/sub")
os.rename(data + "/app.db", data + "/old.db")
os.symlink({pub!r} + "/secret.db", data + "/app.db")
print("swapped")
"""


@pytest.mark.sandbox
@needs_bwrap
@pytest.mark.xfail(
    strict=True,
    reason="plan.bwrap_argv binds policy.read/write by path: bwrap follows a link that another"
    " action put in place of the folder (bind an O_PATH fd opened without following links)",
)
def test_policy_folder_swapped_for_a_link(root: str) -> None:
    data, pub = os.path.join(root, "data"), os.path.join(root, "private", "pub")
    writer = ActionPolicy(name="py", handler="python", write=(data,), timeout_s=10.0)
    swapped = run_action(writer, SWAP.format(data=data, pub=pub), caps=CAPS)
    assert swapped.stdout == "swapped\n", swapped.stderr
    files = ActionPolicy(name="f", handler="files", read=(f"{data}/sub",), timeout_s=10.0)
    read = run_action(files, "read secret.txt", caps=CAPS)
    database = ActionPolicy(name="q", handler="sqlite", database=f"{data}/app.db", timeout_s=10.0)
    query = run_action(database, "SELECT v FROM s;", caps=CAPS)
    assert SECRET not in read.stdout, "files read a folder no policy names, through the link"
    assert SECRET not in query.stdout, "sqlite read a database no policy names, through the link"


THREADS = """import threading, time
for _ in range(24):
    try:
        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
    except RuntimeError:  # the session's own share is used up
        break
print(threading.active_count())
"""


@pytest.mark.sandbox
@pytest.mark.skipif(not CAPS.root, reason="the uid drop to nobody needs root")
@pytest.mark.xfail(
    strict=True,
    reason="plan._user_processes counts nobody's processes; RLIMIT_NPROC counts their threads"
    " (count /proc/PID/task entries), so one session's threads use up another action's share",
)
def test_threads_of_a_session_starve_another_action() -> None:
    session = ActionPolicy(  # memory for 24 thread stacks under RLIMIT_AS
        name="s", handler="python", persistent=True, processes=32, timeout_s=10.0, memory_mb=2048
    )
    shell = ActionPolicy(name="sh", handler="shell", processes=8, timeout_s=10.0)
    with ActionRunner(Policy("redteam.yaml", {"s": session}), caps=CAPS, warm=False) as runner:
        started = runner.run("s", THREADS)
        assert started.ok and int(started.stdout) > 8, started.stderr
        piped = run_action(shell, "echo hi | cat | cat", caps=CAPS)
    assert piped.ok and piped.stdout == "hi\n", f"another action starved: {piped.status}"
