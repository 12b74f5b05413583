"""The `python` handler: the code runs with the interpreter that runs llmos, isolated (-I).

How the interpreter starts (`site` options) is in `llmos_grammar.actions.interpreter`.

One-shot by default: a fresh process and working directory per action. With
`persistent: true` in the policy, one sandboxed interpreter lives for the run
and keeps its variables between actions, like a notebook kernel; it gets the
same limits (the wall timeout per action; the CPU limit per action, within a
hard cap of ten actions' worth for the session) and is restarted, with its
variables lost, when an action times out or the process dies.
"""

from __future__ import annotations

import dataclasses
import struct
import time

from llmos_grammar.actions.interpreter import interpreter_argv, program_argv, site_paths
from llmos_grammar.actions.registry import standby_key
from llmos_grammar.ir import ActionPolicy
from llmos_grammar.results import ActionResult
from llmos_grammar.sandbox.binds import BindRefused
from llmos_grammar.sandbox.plan import limits_of, make_plan
from llmos_grammar.sandbox.probe import Capabilities, probe
from llmos_grammar.sandbox.runner import Child, bind_refusal, refusal, run_argv, run_child
from llmos_grammar.sandbox.standby import StandbyPool


def run_python(
    text: str,
    policy: ActionPolicy,
    caps: Capabilities | None = None,
    pool: StandbyPool | None = None,
) -> ActionResult:
    """Run `text` as a program in a fresh sandboxed interpreter (a warm one from `pool`)."""
    argv = program_argv(policy)
    if pool is not None:
        child = pool.take(standby_key(policy), argv, policy)
        if child is not None:
            return run_child(child, text.encode(), warm=True)
    return run_argv(argv, policy, stdin=text.encode(), caps=caps)


# The session's main loop: read a length-prefixed chunk of code from stdin, run it in one
# namespace, print any traceback, flush, then write "ok"/"error" on the status pipe.
_WORKER = r"""
import math, os, resource, signal, sys, struct, traceback
signal.signal(signal.SIGXCPU, lambda *_: os._exit(128 + signal.SIGXCPU))
status = int(sys.argv[1]); cpu = float(sys.argv[2]); ns = {"__name__": "__main__"}
sys.path.extend(sys.argv[3:])
import builtins
builtins.__dict__.setdefault("exit", sys.exit); builtins.__dict__.setdefault("quit", sys.exit)
inp = sys.stdin.buffer
while True:
    head = inp.read(4)
    if len(head) < 4:
        break
    code = inp.read(struct.unpack(">I", head)[0]).decode("utf-8", "replace")
    used = sum(os.times()[:2])
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    resource.setrlimit(resource.RLIMIT_CPU, (min(hard, math.ceil(used + cpu)), hard))
    ok = True
    try:
        exec(compile(code, "<action>", "exec"), ns)
    except SystemExit as exc:
        ok = exc.code in (None, 0)
    except BaseException:
        ok = False
        traceback.print_exc()
    sys.stdout.flush(); sys.stderr.flush()
    os.write(status, b"ok\n" if ok else b"error\n")
"""


class PythonSession:
    """One persistent sandboxed interpreter for the actions of one run."""

    def __init__(self, policy: ActionPolicy, caps: Capabilities | None = None) -> None:
        self.policy = policy
        self.caps = caps or probe()
        self.plan = make_plan(policy, self.caps)
        self.child: Child | None = None

    def _start(self) -> Child:
        session_policy = dataclasses.replace(self.policy, cpu_s=self.policy.cpu_s * 10)
        argv = [
            *interpreter_argv(self.policy),
            "-c",
            _WORKER,
            "{status_fd}",
            str(self.policy.cpu_s),
            *site_paths(self.policy),
        ]
        return Child(argv, session_policy, self.plan, status=True)

    def run(self, text: str) -> ActionResult:
        """Run `text` in the session's namespace."""
        refused = refusal(self.policy, self.plan)
        if refused is not None:
            return refused
        if self.child is None:
            try:
                self.child = self._start()
            except BindRefused as exc:
                return bind_refusal(self.policy, self.plan, exc)
        start, cpu0, oom0 = time.monotonic(), self._cpu(), self._oom_kills()
        payload = text.encode()
        streams = self.child.exchange(
            struct.pack(">I", len(payload)) + payload, self.policy.timeout_s, keep_stdin=True
        )
        if streams.status.startswith(b"ok") or streams.status.startswith(b"error"):
            result = self._answer(streams.status.startswith(b"ok"), self._oom_kills() > oom0)
            duration = round(time.monotonic() - start, 6)
            return dataclasses.replace(result, duration_s=duration, cpu_s=self._cpu() - cpu0)
        result = self.child.finish()  # timed out, hit a limit or died: the session restarts
        result = dataclasses.replace(result, limits=limits_of(self.policy, self.plan))
        self.child = None
        note = "\n[session restarted: variables were lost]\n"
        return dataclasses.replace(result, stderr=result.stderr + note)

    def _cpu(self) -> float:
        group = self.child.cgroup if self.child is not None else None
        return round((group.cpu_seconds() or 0.0) if group is not None else 0.0, 6)

    def _oom_kills(self) -> int:
        """OOM kills so far in the session's memory cgroup (0 without one)."""
        group = self.child.cgroup if self.child is not None else None
        return group.oom_kills() if group is not None else 0

    def _answer(self, ok: bool, oom_killed: bool = False) -> ActionResult:
        """The result of an action the session survived; a process it started may have
        been ended by the memory cap (`oom_killed`), which is then the limit hit."""
        assert self.child is not None
        streams = self.child.streams
        return ActionResult(
            stdout=bytes(streams.out).decode("utf-8", errors="replace"),
            stderr=bytes(streams.err).decode("utf-8", errors="replace"),
            exit_code=0 if ok else 1,
            limit_hit="memory" if oom_killed else None,
            truncated=streams.truncated,
            unenforced=self.plan.unenforced,
            peak_memory_mb=self._peak_memory_mb(),
            limits=limits_of(self.policy, self.plan),
        )

    def _peak_memory_mb(self) -> float:
        """The session's peak memory from its cgroup (0 without one)."""
        group = self.child.cgroup if self.child is not None else None
        return round(group.peak_memory_mb() or 0.0, 3) if group is not None else 0.0

    def close(self) -> None:
        """End the interpreter and everything it started."""
        if self.child is not None:
            self.child.finish()
            self.child = None
