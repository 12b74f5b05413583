"""Run one argv under an action policy's limits and turn what happened into an ActionResult."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from uuid import uuid4

from llmos_grammar.ir import ActionPolicy
from llmos_grammar.results import ActionResult
from llmos_grammar.sandbox.binds import BindRefused
from llmos_grammar.sandbox.cgroup import Cgroup
from llmos_grammar.sandbox.inflight import registered
from llmos_grammar.sandbox.lifeline import GUARD_PROCESS, popen
from llmos_grammar.sandbox.outcome import describe
from llmos_grammar.sandbox.plan import (
    INSIDE_WORKDIR,
    Plan,
    bwrap_argv,
    limits_of,
    make_launch,
    make_plan,
    scrub_env,
    unshare_argv,
)
from llmos_grammar.sandbox.probe import NOBODY, Capabilities, probe
from llmos_grammar.sandbox.pump import Streams, pump
from llmos_grammar.sandbox.spawn import helper_argv


def refusal(policy: ActionPolicy, plan: Plan) -> ActionResult | None:
    """A refused result when a strict policy asks for layers this machine lacks."""
    if policy.strict and plan.unenforced:
        missing = ", ".join(plan.unenforced)
        return ActionResult(
            exit_code=None,
            refused=f"strict policy: cannot enforce {missing} here (see `llmos sandbox doctor`)",
            unenforced=plan.unenforced,
            limits=limits_of(policy, plan),
        )
    return None


@contextlib.contextmanager
def workspace(policy: ActionPolicy, plan: Plan) -> Iterator[tuple[str | None, str, str]]:
    """(host folder to bind or None, cwd for Popen, the child's own view of its workdir)."""
    if policy.workdir != "temporary":
        os.makedirs(policy.workdir, exist_ok=True)
        yield policy.workdir, policy.workdir, policy.workdir
        return
    if plan.bwrap:
        yield None, "/", INSIDE_WORKDIR
        return
    folder = tempfile.mkdtemp(prefix="llmos-action-")
    if plan.plain_uid_drop:
        os.chown(folder, NOBODY, NOBODY)
    try:
        yield folder, folder, folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _ns_init(info: bytearray) -> int | None:
    text = bytes(info).decode(errors="replace")
    start = text.find("{")
    end = text.find("}", start)
    if start < 0 or end < 0:
        return None
    with contextlib.suppress(ValueError, TypeError):
        return int(json.loads(text[start : end + 1])["child-pid"])
    return None


def _guard(policy: ActionPolicy, plan: Plan, cwd: str, join: list[str]) -> str:
    """Tell the guard what to clean up should the runtime die; its key, or "" if nothing.

    Without a PID namespace the kernel does not end the tree with its first
    process, and cgroups and a host scratch folder would stay behind. Told
    before the child starts; `GUARD_PROCESS.started` adds the process group.
    """
    scratch = cwd if policy.workdir == "temporary" and not plan.bwrap else ""
    if plan.pid_namespace and not join and not scratch:
        return ""
    key = uuid4().hex
    groups = [os.path.dirname(p) for p in join]
    GUARD_PROCESS.watch(key, not plan.pid_namespace, scratch, groups)
    return key


class Child:
    """A program started inside the sandbox, with its workspace, groups and pipes.

    One-shot actions talk to it once (`exchange`, then `finish`); a persistent
    session exchanges many times over the same pipes, with `status=True` giving
    the program a pipe (its number replaces "{status_fd}" in argv) on which it
    writes one line after each action.
    """

    def __init__(
        self, argv: list[str], policy: ActionPolicy, plan: Plan, status: bool = False
    ) -> None:
        self.policy, self.plan = policy, plan
        self._stack = contextlib.ExitStack()
        bind, cwd, inside = self._stack.enter_context(workspace(policy, plan))
        self.cgroup: Cgroup | None = None
        if plan.cgroup_bases:
            self.cgroup = Cgroup(list(plan.cgroup_bases))
            self._stack.callback(self.cgroup.remove)
            self.cgroup.set_limits(policy.processes, policy.memory_mb)
        self.streams = Streams()
        self.info = bytearray()
        self._fds: dict[str, int] = {}
        passed: list[int] = []
        full = list(argv)
        if plan.bwrap:
            info_w = self._pipe("info", passed)
            try:
                data = functools.partial(self._data, passed=passed)
                full = bwrap_argv(policy, plan, bind, data, passed.append) + full
            except BaseException:  # a policy path is now a link: nothing starts
                for fd in (*passed, *self._fds.values()):
                    os.close(fd)
                self._stack.close()
                raise
            full[1:1] = ["--info-fd", str(info_w)]
        elif plan.unshare:
            full = unshare_argv(policy, plan) + full
        if status:
            status_w = self._pipe("status", passed)
            full = [a.replace("{status_fd}", str(status_w)) for a in full]
        child_in, self._fds["in"] = os.pipe()
        self._fds["out"], child_out = os.pipe()
        self._fds["err"], child_err = os.pipe()
        for fd in (self._fds["in"], self._fds["out"], self._fds["err"]):
            os.set_inheritable(fd, False)
        join = self.cgroup.procs_files() if self.cgroup is not None else []
        self.guard_key = _guard(policy, plan, cwd, join)
        self.start = time.monotonic()
        try:
            self.proc = popen(  # no preexec_fn: the helper sets the child up after exec
                args=helper_argv(make_launch(policy, plan, join), full),
                stdin=child_in,
                stdout=child_out,
                stderr=child_err,
                cwd=cwd,
                env=scrub_env(policy, inside),
                start_new_session=True,
                pass_fds=tuple(passed),
            )
        except BaseException:
            for fd in self._fds.values():
                os.close(fd)
            if self.guard_key:
                GUARD_PROCESS.forget(self.guard_key)
            self._stack.close()
            raise
        finally:
            for fd in (*passed, child_in, child_out, child_err):
                os.close(fd)
        self.pidfd = os.pidfd_open(self.proc.pid)
        self.returncode: int | None = None
        if self.guard_key:
            GUARD_PROCESS.started(self.guard_key, self.proc.pid)

    @staticmethod
    def _data(content: bytes, passed: list[int]) -> int:
        """A pipe holding `content` (at most a pipe's buffer), whose read end the child gets."""
        r, w = os.pipe()
        try:
            os.write(w, content)
        finally:
            os.close(w)
        passed.append(r)
        return r

    def _pipe(self, name: str, passed: list[int]) -> int:
        """A pipe whose read end we keep as `name` and whose write end the child gets."""
        r, w = os.pipe()
        self._fds[name] = r
        passed.append(w)
        return w

    def exchange(
        self, stdin: bytes, timeout_s: float, keep_stdin: bool = False, restart_clock: bool = False
    ) -> Streams:
        """Feed `stdin`, collect capped output until exit, a status line, or the deadline."""
        if restart_clock:  # a standby child: the action starts now, not at spawn
            self.start = time.monotonic()
        self.streams = Streams(info=self.info)
        with registered(self):  # a scope killed from another thread kills this child
            pump(
                self._fds,
                stdin,
                self.pidfd,
                self.policy.output_bytes,
                time.monotonic() + timeout_s,
                self.kill,
                result=self.streams,
                keep_stdin=keep_stdin,
            )
        self.info = self.streams.info
        return self.streams

    def kill(self) -> None:
        """Stop every process of the action: the namespace, the session, the group.

        Inside bwrap the program (or the `sh` that waits for it) is PID 1 of its
        namespace: killing it ends the namespace, and bwrap reaps it before
        exiting (so nothing is left for the machine's PID 1 to reap). After we
        reaped bwrap only the cgroup is used.
        """
        if self.returncode is not None:
            if self.cgroup is not None:
                self.cgroup.kill_all()
            return
        init = None if self.streams.exited else _ns_init(self._read_info())
        if init is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(init, signal.SIGKILL)
            select.select([self.pidfd], [], [], 1.0)  # bwrap reaps it and exits
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # not reaped yet: the id is still ours
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.cgroup is not None:
            self.cgroup.kill_all()

    def _read_info(self) -> bytearray:
        """bwrap's info (the namespace's PID 1), reading what the pump has not read yet."""
        fd = self._fds.get("info")
        if fd is not None and b"}" not in self.info:
            with contextlib.suppress(OSError):
                os.set_blocking(fd, False)
                self.info += os.read(fd, 4096)
        return self.info

    def finish(self, background_cleanup: bool = False) -> ActionResult:
        """Kill what is left, reap, clean up, and describe the last exchange.

        Everything the action started is dead before this returns; with
        `background_cleanup` only removing its (empty) cgroups and workspace is
        left to a thread, since rmdir of a cgroup waits for an RCU grace period.
        """
        try:
            self.kill()
            if self.guard_key:  # before the reap frees the process group's id
                GUARD_PROCESS.forget(self.guard_key)
            _, status, usage = os.wait4(self.proc.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
            self.proc.returncode = self.returncode
            duration = time.monotonic() - self.start
            self.kill()
            return describe(
                self.policy, self.plan, self.streams, self.returncode, usage, duration, self.cgroup
            )
        finally:
            self.close_fds()
            if background_cleanup:
                threading.Thread(target=self._stack.close, daemon=True).start()
            else:
                self._stack.close()

    def close_fds(self) -> None:
        """Close our ends; each fd is closed once (pump removes "in" when it closes it)."""
        os.close(self.pidfd)
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()


def run_argv(
    argv: list[str],
    policy: ActionPolicy,
    *,
    stdin: bytes = b"",
    caps: Capabilities | None = None,
) -> ActionResult:
    """Run `argv` (the program inside the sandbox) with `stdin` under `policy`."""
    plan = make_plan(policy, caps or probe())
    refused = refusal(policy, plan)
    if refused is not None:
        return refused
    try:
        child = Child(argv, policy, plan)
    except BindRefused as exc:
        return bind_refusal(policy, plan, exc)
    return run_child(child, stdin)


def bind_refusal(policy: ActionPolicy, plan: Plan, exc: BindRefused) -> ActionResult:
    """The refused result of an action whose policy folder or file became a link."""
    return ActionResult(exit_code=None, refused=str(exc), limits=limits_of(policy, plan))


def run_child(child: Child, stdin: bytes, warm: bool = False) -> ActionResult:
    """One exchange with a started child, then its result (`warm`: a standby child)."""
    try:
        child.exchange(stdin, child.policy.timeout_s, restart_clock=warm)
    finally:
        result = child.finish(background_cleanup=warm)
    return result
