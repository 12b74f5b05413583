"""Terminal injection: untrusted text (model-written code, action output) shown to a person."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from llmos_grammar.actions import run_action, terminal_approver
from llmos_grammar.ir import ActionPolicy
from tests.hostile.cases import Probe

ROOT = Path(__file__).resolve().parents[2]
# In a terminal the escapes erase the line and return the cursor: only `print("hello")` shows.
SPOOF = 'import os; os.system("echo pwned")  # \x1b[2K\x1b[1Gprint("hello")\n'
# Window title, a hyperlink, colours, a screen clear, an 8-bit CSI and OSC, a bidi override.
HOSTILE_OUTPUT = (
    "import sys\n"
    "sys.stdout.write('\\x1b]0;pwned title\\x07' 'ok \\x1b]8;;http://evil.example/\\x1b\\\\link"
    "\\x1b]8;;\\x1b\\\\ \\x1b[31mred\\x1b[0m \\x1b[2J\\x1b[H \\x9b2J \\x9d0;t\\x9c "
    "\\u202eevil\\u202c\\n')\n"
)
# What the text view writes itself: its styles, and the spinner's erase of its line.
OUR_STYLES = re.compile(r"\x1b\[(?:0|1|2|7|27|3[0-7])m|\r\x1b\[K")
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\u061c]")


class FakeTerminal(io.StringIO):
    """A StringIO that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def approval_spoof() -> str | None:
    """`confirm: ask` shows code whose escapes would hide `os.system` behind `print`."""
    shown = FakeTerminal()
    ask = terminal_approver(False, stdin=FakeTerminal("y\n"), stderr=shown)
    approved = ask(ActionPolicy(name="python", handler="python", confirm="ask"), SPOOF)
    text = shown.getvalue()
    if "\x1b" in text:
        return f"an escape byte reached the terminal: {text!r}"
    if 'os.system("echo pwned")' not in text or "\\x1b[2K\\x1b[1G" not in text:
        return f"the prompt does not show the hidden command: {text!r}"
    if "2 control or invisible characters" not in text:
        return f"no note about the escaped characters: {text!r}"
    return None if approved else "a yes was not taken as approval"


def _view_output(text: str, colour: bool) -> str:
    """What `llmos-run`'s text view writes for model text and action output holding `text`."""
    from llmos_grammar.cli.view import TextView
    from llmos_grammar.runtime.events import InjectedEvent, TokenEvent
    from llmos_grammar.spec.loader import load

    out = io.StringIO()
    view = TextView(out, load(str(ROOT / "examples" / "chat" / "spec.yaml")), colour)
    view.show(TokenEvent("talk", text, (1,)))
    view.show(InjectedEvent("run", text, 1))
    view.show(TokenEvent("code", text, (1,), forced=True))
    return out.getvalue()


def run_view_osc() -> str | None:
    """A sandboxed action prints OSC/SGR/clear/C1/bidi; the text view shows it, plain and
    coloured, with no sequence of the output reaching the terminal."""
    result = run_action(ActionPolicy(name="python", handler="python"), HOSTILE_OUTPUT)
    if not result.ok or "\x1b]0;" not in result.stdout or "\x9b" not in result.stdout:
        return f"the action did not print the hostile output: {result.status} {result.stdout!r}"
    plain = _view_output(result.stdout, colour=False)
    if RAW.search(plain):
        return f"a control character reached the plain view: {plain!r}"
    if "\\x1b]0;pwned title\\x07" not in plain or "\\u202eevil" not in plain:
        return f"the plain view does not show the sequences as text: {plain!r}"
    coloured = _view_output(result.stdout, colour=True)
    left = RAW.search(OUR_STYLES.sub("", coloured))
    if left:
        return f"a control character other than our own styles reached the terminal: {coloured!r}"
    return None


def exec_json_c1_bidi() -> str | None:
    """`llmos exec` prints an action's U+009B, U+009D, U+202E, ESC and DEL as \\uXXXX."""
    printed = "a\x9b2Jb\x9d0;title\x9cc\u202eevil\u202cd\x1b[31me\x7ff\n"
    with tempfile.TemporaryDirectory(prefix="llmos-terminal-") as folder:
        policy = Path(folder) / "policy.yaml"
        policy.write_text("llmos-policy: 1\nactions:\n  python:\n    handler: python\n")
        code = f"import sys\nsys.stdout.write({printed!r})\n"
        done = subprocess.run(
            [sys.executable, "-m", "llmos_grammar.cli.main", "exec"]
            + ["--policy", str(policy), "--action", "python", "-"],
            input=code.encode(),
            capture_output=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONIOENCODING": "utf-8"},
            timeout=60,
            check=False,
        )
    out = done.stdout
    for raw in (b"\xc2\x9b", b"\xc2\x9d", b"\xe2\x80\xae", b"\x1b", b"\x7f"):
        if raw in out:
            return f"{raw!r} reached the terminal raw: {out[:300]!r}"
    try:
        stdout = json.loads(out)["stdout"]
    except (ValueError, KeyError):
        return f"not a JSON result (exit {done.returncode}): {out[:300]!r} {done.stderr[-300:]!r}"
    return None if stdout == printed else f"the JSON does not load back to the output: {stdout!r}"


PROBES: tuple[Probe, ...] = (
    Probe(
        "approval_spoof",
        approval_spoof,
        "contained: the prompt shows os.system and \\x1b[2K as text, no escape byte, a note",
    ),
    Probe(
        "run_view_osc",
        run_view_osc,
        "contained: title, link, colour, clear, C1 and bidi of action output shown as escapes",
    ),
    Probe(
        "exec_json_c1_bidi",
        exec_json_c1_bidi,
        "contained: U+009B, U+009D, U+202E, ESC, DEL as \\uXXXX; the JSON loads to the output",
    ),
)
