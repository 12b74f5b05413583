"""The sandbox: probing, plans, strict refusal, reporting, cleanup; with and without bwrap."""

from __future__ import annotations

import dataclasses
import os
import sys

import pytest

from llmos_grammar.actions import run_action
from llmos_grammar.ir import ActionPolicy
from llmos_grammar.sandbox import probe, run_argv, without_bwrap
from llmos_grammar.sandbox.plan import HIDDEN, bwrap_argv, make_plan, scrub_env
from llmos_grammar.sandbox.probe import Capabilities

CAPS = probe()
NO_BWRAP = without_bwrap(CAPS)  # util-linux unshare (when it works) and cgroups
NO_NAMESPACES = dataclasses.replace(NO_BWRAP, unshare=None)
BARE = Capabilities(root=CAPS.root)  # no namespaces, no cgroups: only the "always" layer
MODES = {"probed": CAPS, "no-bwrap": NO_BWRAP, "no-namespaces": NO_NAMESPACES, "bare": BARE}
PY = ActionPolicy(name="py", handler="python", timeout_s=2)


def test_probe_is_cached_and_consistent() -> None:
    assert probe() is CAPS
    if CAPS.bwrap is None:
        assert any("bwrap" in note for note in CAPS.notes)


def test_plan_always_layer_and_optional_layers() -> None:
    bare = make_plan(PY, BARE)
    for layer in (
        "timeout",
        "cpu",
        "memory",
        "file_size",
        "open_files",
        "output",
        "env",
        "workdir",
    ):
        assert layer in bare.enforced
    assert {"pid_namespace", "network", "filesystem", "disk"} <= set(bare.unenforced)
    online = make_plan(dataclasses.replace(PY, network=True), BARE)
    assert "network" not in online.unenforced + online.enforced


@pytest.mark.parametrize("mode", list(MODES))
def test_trivial_action_in_every_mode_reports_unenforced_layers(mode: str) -> None:
    caps = MODES[mode]
    result = run_action(PY, "print('hi')\n", caps=caps)
    assert result.ok and result.stdout == "hi\n", result
    assert result.unenforced == make_plan(PY, caps).unenforced
    assert result.limits["memory_mb"] == 256


@pytest.mark.parametrize("mode", list(MODES))
def test_strict_policy_refuses_missing_isolation(mode: str) -> None:
    caps = MODES[mode]
    strict = dataclasses.replace(PY, strict=True)
    result = run_action(strict, "print('hi')\n", caps=caps)
    if make_plan(strict, caps).unenforced:
        assert result.refused is not None and "strict" in result.refused
        assert result.unenforced and not result.stdout
    else:
        assert result.ok


def test_scrub_env_keeps_only_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "x")
    monkeypatch.setenv("KEEP_ME", "y")
    env = scrub_env(dataclasses.replace(PY, env=("KEEP_ME", "SET=1", "ABSENT")), "/w")
    assert env["KEEP_ME"] == "y" and env["SET"] == "1" and env["HOME"] == "/w"
    assert "SECRET_TOKEN" not in env and "ABSENT" not in env
    assert env["PATH"].split(":")[0] == os.path.dirname(sys.executable)


@pytest.mark.skipif(CAPS.bwrap is None, reason="bwrap is not usable here")
def test_bwrap_argv_hides_homes_and_binds_allowed_paths(tmp_path: object) -> None:
    ap = dataclasses.replace(PY, read=(str(tmp_path),), write=(str(tmp_path),))
    passed: list[int] = []
    argv = bwrap_argv(ap, make_plan(ap, CAPS), None, lambda _: 3, passed.append)
    for fd in passed:
        os.close(fd)
    pairs = list(zip(argv, argv[1:], strict=False))
    triples = list(zip(argv, argv[1:], argv[2:], strict=False))
    for hidden in HIDDEN:
        if os.path.isdir(hidden):
            assert ("--tmpfs", hidden) in pairs
    assert argv.index("--bind-fd") > argv.index("/tmp")
    # folders bound by a descriptor opened without following links, read-only and read-write
    assert len(passed) == 2
    assert ("--ro-bind-fd", str(passed[0]), str(tmp_path)) in triples
    assert ("--bind-fd", str(passed[1]), str(tmp_path)) in triples
    assert "--unshare-net" in argv and "--unshare-pid" in argv


@pytest.mark.skipif(CAPS.bwrap is None, reason="bwrap is not usable here")
def test_bwrap_write_path_is_writable_and_rest_read_only(tmp_path: object) -> None:
    os.chmod(str(tmp_path), 0o777)
    ap = dataclasses.replace(PY, write=(str(tmp_path),))
    code = f"open({str(tmp_path)!r} + '/ok', 'w').write('1')\nopen('/usr/pwned', 'w')\n"
    result = run_action(ap, code)
    assert os.path.exists(os.path.join(str(tmp_path), "ok"))
    assert "Read-only file system" in result.stderr or "Permission denied" in result.stderr


@pytest.mark.parametrize("mode", list(MODES))
def test_no_cgroup_or_workdir_left_behind(mode: str) -> None:
    caps = MODES[mode]

    def groups() -> set[str]:
        found = set()
        for base in (caps.pids_cgroup, caps.memory_cgroup, caps.cpu_cgroup):
            if base is not None:
                found |= {n for n in os.listdir(base.path) if n.startswith(f"llmos-{os.getpid()}-")}
        return found

    before = groups()
    result = run_action(PY, "import os\nprint(os.getcwd())\n", caps=caps)
    assert result.ok and groups() == before
    if caps.bwrap is None:
        assert not os.path.exists(result.stdout.strip())


@pytest.mark.parametrize("mode", list(MODES))
def test_stdin_larger_than_a_pipe_and_explicit_workdir(mode: str, tmp_path: object) -> None:
    caps = MODES[mode]
    code = "x = 1\n" * 50000 + "import os\nprint(x, os.getcwd())\n"
    os.chmod(str(tmp_path), 0o777)
    result = run_action(dataclasses.replace(PY, workdir=str(tmp_path)), code, caps=caps)
    assert result.ok and result.stdout == f"1 {tmp_path}\n", result
    assert "disk" in result.unenforced


def test_unshare_layer_when_bwrap_is_absent() -> None:
    if NO_BWRAP.unshare is None:
        pytest.skip("util-linux unshare cannot create namespaces here")
    plan = make_plan(PY, NO_BWRAP)
    assert {"pid_namespace", "network", "kill_tree"} <= set(plan.enforced)
    code = "import os\nprint(os.getpid(), sorted(p for p in os.listdir('/proc') if p.isdigit()))\n"
    result = run_action(PY, code, caps=NO_BWRAP)
    assert result.ok and result.stdout == "1 ['1']\n", result


@pytest.mark.parametrize("mode", list(MODES))
def test_run_argv_reports_signal(mode: str) -> None:
    argv = [sys.executable, "-I", "-c", "import ctypes; ctypes.string_at(0)"]
    result = run_argv(argv, PY, caps=MODES[mode])
    assert result.signal == 11 and result.exit_code is None and not result.ok


@pytest.mark.parametrize("mode", list(MODES))
def test_cpu_limit_is_reported_in_every_mode(mode: str) -> None:
    # the wall clock has room: on two busy cores 1 s of CPU takes 10 s and more
    ap = dataclasses.replace(PY, cpu_s=1, timeout_s=120)
    result = run_action(ap, "while True:\n    pass\n", caps=MODES[mode])
    assert result.limit_hit == "cpu" and result.signal == 9, result
    assert result.cpu_s >= ap.cpu_s and not result.timed_out, result
    assert "unshare" not in result.stderr


@pytest.mark.parametrize("mode", list(MODES))
def test_a_program_that_kills_itself_is_no_cpu_limit(mode: str) -> None:
    code = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\nprint('pid 1')\n"
    ap = dataclasses.replace(PY, cpu_s=1, timeout_s=120)
    result = run_action(ap, code, caps=MODES[mode])
    # as pid 1 of its namespace a program cannot kill itself; elsewhere SIGKILL ends it
    assert result.signal == 9 or result.stdout == "pid 1\n", result
    assert result.limit_hit is None and result.cpu_s < 1, result


def test_other_sandboxes_of_the_same_uid_do_not_eat_the_process_limit() -> None:
    # Code runs as uid 65534 and RLIMIT_NPROC counts all of that uid's processes:
    # ten idle ones elsewhere (warm standbys, another run) must not starve this action.
    import subprocess

    from llmos_grammar.sandbox.probe import NOBODY

    plan = make_plan(ActionPolicy(name="py", handler="python"), probe())
    if os.geteuid() != 0 or not (plan.bwrap and plan.setpriv or plan.plain_uid_drop):
        pytest.skip("no uid drop on this machine")

    def as_nobody() -> None:
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    idle = [subprocess.Popen(["sleep", "60"], preexec_fn=as_nobody) for _ in range(10)]
    try:
        ap = ActionPolicy(name="py", handler="python", processes=4)
        result = run_action(ap, "import subprocess; subprocess.run(['true']); print('ran')")
        assert result.ok, result.stderr
        assert result.stdout == "ran\n"
    finally:
        for proc in idle:
            proc.kill()
            proc.wait()


def test_minimal_etc_is_a_layer_of_bwrap_only() -> None:
    for caps in (NO_BWRAP, NO_NAMESPACES, BARE):
        plan = make_plan(PY, caps)
        assert "minimal_etc" in plan.unenforced and "filesystem" in plan.unenforced
    strict = dataclasses.replace(PY, strict=True)
    refused = run_action(strict, "print(open('/etc/passwd').read())\n", caps=NO_BWRAP)
    assert refused.refused is not None and "minimal_etc" in refused.refused
    assert not refused.stdout


@pytest.mark.skipif(CAPS.bwrap is None, reason="bwrap is not usable here")
def test_minimal_etc_keeps_the_programs_actions_use_working() -> None:
    sh = ActionPolicy(name="sh", handler="shell", timeout_s=5)
    text = "ls -l / >/dev/null && awk 'BEGIN { print 1 + 1 }' && id -un && id -gn && date +%Z\n"
    result = run_action(sh, text)
    assert result.ok and result.stdout.split() == ["2", "nobody", "nogroup", "UTC"], result
    code = "import os, pwd, time\nprint(pwd.getpwuid(os.getuid()).pw_name, time.tzname[0])\n"
    full = run_action(dataclasses.replace(PY, site="full"), code)
    assert full.ok and full.stdout == "nobody UTC\n", full
    assert sorted(os.listdir("/etc")) != [], "host /etc untouched"


@pytest.mark.skipif(CAPS.bwrap is None, reason="bwrap is not usable here")
def test_resolv_conf_and_certificates_only_with_network() -> None:
    code = (
        "import os\n"
        "print(os.path.exists('/etc/resolv.conf'),"
        " os.path.exists('/etc/ssl/certs/ca-certificates.crt'))\n"
    )
    host = (
        os.path.exists("/etc/resolv.conf"),
        os.path.exists("/etc/ssl/certs/ca-certificates.crt"),
    )
    offline = run_action(PY, code)
    online = run_action(dataclasses.replace(PY, network=True), code)
    assert offline.stdout == "False False\n", offline
    assert online.stdout == f"{host[0]} {host[1]}\n", online
