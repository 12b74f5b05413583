"""Helpers that write small specs and policies into a folder for tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

POLICY = """\
llmos-policy: 1
actions:
  python:
    handler: python
    timeout_s: 5
"""

SPEC = """\
llmos: 1
name: demo
policy: policy.yaml
start: talk
states:
  talk:
    type: text
    on: {"[CODE]": code}
    eos: end
  code:
    type: grammar
    regex: "[a-z0-9+*() ]+\\\\n"
    close: "[/CODE]"
    next: run
  run:
    type: action
    action: python
    input: code
    output: "[OUTPUT]{stdout}[/OUTPUT]"
    next: talk
  end:
    type: final
"""


def write(folder: Path, spec: str = SPEC, policy: str = POLICY, name: str = "spec.yaml") -> Path:
    """Write `spec` (dedented) and `policy` into `folder`; return the spec's path."""
    (folder / "policy.yaml").write_text(textwrap.dedent(policy), encoding="utf-8")
    path = folder / name
    path.write_text(textwrap.dedent(spec), encoding="utf-8")
    return path
