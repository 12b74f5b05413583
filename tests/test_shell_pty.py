"""`llmos shell` on a pseudo-terminal: turns, a persistent interpreter, Ctrl-C, /undo, Ctrl-D."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.pty_driver import Terminal, descendants
from tests.specs import write

pytestmark = pytest.mark.model

# Every token of the code is forced by the grammar, so the turns are the same on any
# model: the interpreter counts turns, and the third one sleeps until it is interrupted.
SPEC = r"""
llmos: 1
name: counter
policy: policy.yaml
prompt: {system: "Run the counter."}
limits: {max_tokens: 200, max_actions: 1, wall_s: 300}
start: code
states:
  code:
    type: grammar
    lark: |
      start: "n = globals().get('n', 0) + 1\nimport time\n" SLEEP "print('turn', n)\n"
      SLEEP: "time.sleep(60 if n == 3 else 0)\n"
    close: "[/CODE]"
    next: run
  run:
    type: action
    action: python
    input: code
    output: "[OUTPUT]{stdout}[/OUTPUT]"
    next: end
  end: {type: final}
"""

POLICY = """
llmos-policy: 1
actions:
  python: {handler: python, persistent: true, timeout_s: 120, cpu_s: 60}
"""


def _wait(cond: Callable[[], bool], timeout: float = 30) -> bool:
    """Whether `cond` came true before `timeout` seconds passed (polled)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def _sleeping(pid: int) -> bool:
    """Whether a process below `pid` sleeps in `time.sleep` (the action's third turn)."""
    for kid in descendants(pid):
        try:
            if "nanosleep" in Path(f"/proc/{kid}/wchan").read_text():
                return True
        except OSError:
            continue
    return False


def _children_gone(pid: int, timeout: float = 10) -> bool:
    return _wait(lambda: not descendants(pid), timeout)


def test_shell_turns_interrupt_undo_exit(tmp_path: Path) -> None:
    spec = write(tmp_path, SPEC, POLICY)
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "TERM": "dumb"}
    exe = [
        sys.executable,
        "-m",
        "llmos_grammar.cli.main",
        "shell",
        str(spec),
        "--no-color",
        "--engine",
        "transformers",
    ]
    term = Terminal(exe, env)
    try:
        term.expect("llmos> ", timeout=300)
        term.line("first question")
        assert "[OUTPUT]turn 1\n" in term.expect("llmos> ").replace("\r", "")
        term.line("second question")  # the interpreter kept n: the session survived a turn
        assert "[OUTPUT]turn 2\n" in term.expect("llmos> ").replace("\r", "")
        term.line("a long one")
        term.expect("print('turn', n)")
        assert _wait(lambda: _sleeping(term.proc.pid)), "no sandbox runs the action"
        term.key("c")
        term.expect("interrupted: the turn was rolled back")
        term.expect("llmos> ")
        assert _children_gone(term.proc.pid), "the sandbox outlived Ctrl-C"
        term.line("third question")  # a fresh interpreter: the killed one held n
        assert "[OUTPUT]turn 1\n" in term.expect("llmos> ").replace("\r", "")
        term.line("/limits")
        assert "3 turn(s)" in term.expect("llmos> ")
        term.line("/undo")
        assert "removed the turn 'third question'" in term.expect("llmos> ")
        term.line("/limits")
        assert "2 turn(s)" in term.expect("llmos> ")
        term.line("")  # an empty line does nothing
        assert term.expect("llmos> ").strip() == "llmos>"
        term.send(b"caf\xe9?\r")  # not UTF-8: readline drops the byte, or it is replaced
        shown = term.expect("llmos> ").replace("\r", "")
        assert "Traceback" not in shown and "[OUTPUT]turn 2\n" in shown
        term.key("d")
        assert term.wait() == 0
        assert (tmp_path / "state" / "llmos" / "history").read_text().count("question") == 3
    finally:
        term.close()


def test_llmos_run_without_a_task_on_a_terminal_opens_the_shell(tmp_path: Path) -> None:
    spec = write(tmp_path, SPEC, POLICY)
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "TERM": "dumb"}
    exe = [sys.executable, "-c", "from llmos_grammar.cli.main import run_main; exit(run_main())"]
    term = Terminal([*exe, str(spec), "--no-color", "--engine", "transformers"], env)
    try:
        term.expect("llmos> ", timeout=300)
        term.line("/help")
        assert "/undo" in term.expect("llmos> ")
        term.line("/exit")
        assert term.wait() == 0
    finally:
        term.close()


def test_bytes_that_are_not_utf8_are_replaced_and_reported(tmp_path: Path) -> None:
    import subprocess

    spec = write(tmp_path, SPEC, POLICY)
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    exe = [sys.executable, "-m", "llmos_grammar.cli.main", "shell", str(spec), "--no-color"]
    done = subprocess.run(
        [*exe, "--engine", "transformers"],
        input=b"caf\xe9 ok\n" + b"x" * (100 * 1024) + b"\n",
        capture_output=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr.decode()
    err = done.stderr.decode()
    assert "1 byte(s) of the input were not UTF-8; replaced with U+FFFD" in err
    assert "input of 100 KB refused" in err and "Traceback" not in err
    assert done.stdout.decode().count("[OUTPUT]turn") == 1  # the paste ran no turn
