"""Start sandboxed children through an exec helper: no runtime code runs between fork and exec.

Python documents `preexec_fn` as unsafe in a process with threads (the child
may deadlock on a lock another thread held at fork), and with it CPython must
fork, copying the page tables of a runtime that holds a model. Without it,
`subprocess` uses vfork and execs at once. What the child used to do before
exec is done instead by a chain of small programs, each of which ends by
exec'ing the next, all in the one process that finally becomes the sandbox:

    [setpriv --pdeathsig KILL]               die with the runtime (armed first)
    [unshare --ipc --mount]                  as root: the prelude's namespaces
    /bin/sh -c STEPS ...                     tmpfs mounts, IPC sysctls, cgroup join,
                                             and exit unless the runtime is the parent
    [setpriv --reuid 65534 ... --pdeathsig KILL  /bin/sh -c STEPS parent PID]
                                             uid drop without bwrap (it clears the
                                             signal, so it is armed and checked again)
    prlimit --cpu=... --as=... --            rlimits, last
    the program (bwrap ..., unshare ..., or the code's interpreter)

The parent-death signal survives each exec (none is set-uid) and `unshare`;
the check that the parent is still the runtime follows the last arming, so a
runtime that died during start leaves nothing running. Where setpriv or
prlimit is missing, one `python -I -S` step does the uid drop, the signal,
the check and the rlimits instead (slower by an interpreter start).

Chosen by measurement (2 loaded cores, `chrt -f`, p50 of 40, over an exec of
/bin/true): dash 0.5 ms, setpriv, prlimit and unshare 0.8 ms each, a mount
0.7 ms plus its fork; about 4 ms for the whole chain, against 12 ms for
`python -I -S -c pass` and 19-24 ms once it imports ctypes (needed for prctl,
unshare and mount on Python 3.11), so one interpreter as the helper would
cost 3-5 times as much. A cold python action: 21 -> 25 ms from a small
runtime, 104 -> 26 ms from one holding 2 GB of touched memory (its fork
copied the page tables: 80 ms), `benchmarks/bench_spawn.py`.
"""

from __future__ import annotations

import functools
import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from llmos_grammar.sandbox.prelude import Prelude

NOBODY = 65534
SH = "/bin/sh"
FAILED = 125  # the exit status of a helper that could not set the sandbox up

# The helper's steps, from its arguments: never `eval`, so no argument is code.
STEPS = r"""
fail() { printf 'llmos sandbox: cannot start the action: %s\n' "$1" >&2; exit 125; }
while :; do
  case $1 in
    parent) [ "$PPID" = "$2" ] || exit 125; shift 2 ;;
    mount) "$2" -n -i -t tmpfs -o "$4" tmpfs "$3" || fail "mount a tmpfs on $3"; shift 4 ;;
    sysctl) printf '%s\n' "$3" >"/proc/sys/kernel/$2" || fail "set kernel.$2"; shift 3 ;;
    join) printf '0\n' >"$2" || fail "join the control group $2"; shift 2 ;;
    --) shift; exec "$@" ;;
    *) fail "unknown step: $1" ;;
  esac
done
"""

# The same last steps where util-linux's setpriv or prlimit is missing.
FINISH = r"""
import ctypes, json, os, resource, sys
spec = json.loads(sys.argv[1])
try:
    if spec["drop"]:
        os.setgroups([]); os.setgid(65534); os.setuid(65534)
    ctypes.CDLL(None, use_errno=True).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
    if os.getppid() != spec["parent"]:
        os._exit(125)
    for name, soft, hard in spec["limits"]:
        resource.setrlimit(getattr(resource, "RLIMIT_" + name.upper()), (soft, hard))
    os.execvp(sys.argv[2], sys.argv[2:])
except OSError as exc:
    sys.stderr.write(f"llmos sandbox: cannot start the action: {exc}\n")
    os._exit(125)
"""


@dataclass(frozen=True)
class Tools:
    """The programs the helper chains (None: not on this machine)."""

    setpriv: str | None
    prlimit: str | None
    unshare: str | None
    mount: str | None
    python: str = sys.executable


@functools.cache
def tools() -> Tools:
    """This machine's tools, looked up once."""
    which = shutil.which
    return Tools(which("setpriv"), which("prlimit"), which("unshare"), which("mount"))


@dataclass(frozen=True)
class Launch:
    """What the child sets up before it runs the program, in this order."""

    parent: int  # the runtime's pid: a child whose parent is not it exits at once
    prelude: Prelude = Prelude()  # as root: IPC limits, capped tmpfs (sandbox.prelude)
    join: tuple[str, ...] = ()  # cgroup.procs files to join
    drop: bool = False  # become uid and gid 65534, no supplementary groups
    limits: tuple[tuple[str, int, int], ...] = ()  # (prlimit name, soft, hard), set last


def prelude_argv(prelude: Prelude, have: Tools) -> tuple[list[str], list[str]]:
    """(the unshare prefix, the helper's steps) that set `prelude` up; ([], []) if empty."""
    if not prelude:
        return [], []
    if have.unshare is None or (prelude.mounts and have.mount is None):
        raise OSError("the sandbox prelude needs util-linux unshare and mount")
    prefix = [have.unshare]
    if prelude.ipc:
        prefix.append("--ipc")
    if prelude.mounts:  # nothing mounted there may propagate back to the host
        prefix += ["--mount", "--propagation", "private"]
    steps: list[str] = []
    for target, options in prelude.mounts:
        steps += ["mount", str(have.mount), target, f"nosuid,nodev,{options}"]
    for name, value in prelude.ipc:
        steps += ["sysctl", name, value]
    return [*prefix, "--"], steps


def _limits_argv(launch: Launch, prlimit: str) -> list[str]:
    if not launch.limits:
        return []
    return [prlimit, *(f"--{name}={soft}:{hard}" for name, soft, hard in launch.limits), "--"]


def _finish_argv(launch: Launch, have: Tools) -> list[str]:
    spec = {"drop": launch.drop, "parent": launch.parent, "limits": launch.limits}
    return [have.python, "-I", "-S", "-c", FINISH, json.dumps(spec)]


def helper_argv(launch: Launch, argv: Sequence[str], have: Tools | None = None) -> list[str]:
    """The command that sets up `launch` in the started process and then execs `argv`."""
    have = have or tools()
    prefix, steps = prelude_argv(launch.prelude, have)
    for procs in launch.join:
        steps += ["join", procs]
    helper = [SH, "-c", STEPS, "llmos-spawn"]
    if have.setpriv is None or have.prlimit is None:
        finish = _finish_argv(launch, have)
        return [*prefix, *helper, *steps, "--", *finish, *argv] if steps else [*finish, *argv]
    limits = _limits_argv(launch, have.prlimit)
    parent = ["parent", str(launch.parent)]
    if not launch.drop:  # armed first, checked once everything before the program ran
        arm = [have.setpriv, "--pdeathsig", "KILL", "--"]
        return [*arm, *prefix, *helper, *parent, *steps, "--", *limits, *argv]
    drop = [have.setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    drop += ["--pdeathsig", "KILL", "--", *helper, *parent, "--"]
    before = [*prefix, *helper, *steps, "--"] if steps else []
    return [*before, *drop, *limits, *argv]
