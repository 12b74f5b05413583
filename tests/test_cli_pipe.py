"""A reader that goes away (`llmos ... | head`) ends the command quietly, never with a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_a_closed_stdout_exits_141_without_a_traceback(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("llmos-policy: 1\nactions:\n  py: {handler: python}\n", encoding="utf-8")
    code = tmp_path / "code.py"
    code.write_text("print('x')\n", encoding="utf-8")
    read, write = os.pipe()
    os.close(read)  # nobody will read what the command prints
    cmd = [sys.executable, "-m", "llmos_grammar.cli.main", "exec"]
    done = subprocess.run(
        [*cmd, "--policy", str(policy), "--action", "py", str(code)],
        stdout=write,
        stderr=subprocess.PIPE,
        timeout=120,
        check=False,
    )
    os.close(write)
    assert done.returncode == 141, done.stderr
    assert b"Traceback" not in done.stderr and b"BrokenPipe" not in done.stderr, done.stderr
