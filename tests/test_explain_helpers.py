"""Shared pieces for the `--explain` tests: a spec with a state of every kind, compiled."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from llmos_grammar.ir import Machine
from llmos_grammar.spec.check import check_file
from tests.specs import POLICY, write

EXPLAIN_SPEC = r"""
llmos: 1
name: explain
policy: policy.yaml
start: talk
states:
  talk:
    type: text
    on:
      "[CODE]": code
      "[SAY]": say
      "[JSON]": json
      "[WORD]": word
      "[TAG]": tag
    eos: end
  code:
    type: grammar
    lark: |
      start: "print(" expr ")" "\n"
      ?expr: atom (OP atom)*
      atom: NUMBER | NAME
      OP: / ?[+*-] ?/
      NUMBER: /[0-9]+/
      KEYWORD: /(if|else|for)/
      NAME: /[a-z]+/ & ~KEYWORD
    open: "\n"
    close: "[/CODE]"
    next: run
  run:
    type: action
    action: python
    input: code
    output: "[OUTPUT]{stdout}[/OUTPUT]"
    next: talk
  say:
    type: grammar
    lark: |
      start: "say " STRING "\n"
      STRING: /"[^"\n]*"/ & NO_CLOSE
      NO_CLOSE: ~/(?s:.*)\[\/(?s:.*)/
    close: "[/SAY]"
    next: talk
  json:
    type: grammar
    json_schema:
      type: object
      properties:
        name: {type: string}
        age: {type: integer}
      required: [name, age]
      additionalProperties: false
    close: "[/JSON]"
    next: talk
  word:
    type: grammar
    regex: "[a-z ]+\\n"
    close: "[/WORD]"
    next: talk
  tag:
    type: text
    regex: "#[a-z]+ ?(\\[END\\])?"
    on: {"[END]": end}
  end:
    type: final
"""


def spec_path(folder: Path) -> Path:
    """EXPLAIN_SPEC and its policy written into `folder`."""
    return write(folder, EXPLAIN_SPEC, POLICY)


@functools.lru_cache(maxsize=1)
def machine() -> Machine:
    """EXPLAIN_SPEC compiled (once per test process)."""
    folder = Path(tempfile.mkdtemp(prefix="llmos-explain-"))
    checked = check_file(str(spec_path(folder)))
    assert checked.machine is not None, checked.diagnostics
    return checked.machine
