"""Untrusted text shown to a person: escapes for controls, bidi and invisible characters."""

from __future__ import annotations

import io
import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from llmos_grammar.actions.approval import approval_prompt, terminal_approver
from llmos_grammar.ir import ActionPolicy
from llmos_grammar.visible import (
    REVERSE,
    escaped_count,
    escaped_note,
    json_text,
    visible,
)
from tests.hostile.cases_terminal import OUR_STYLES, RAW, SPOOF, FakeTerminal

CHAT = Path(__file__).resolve().parent.parent / "examples" / "chat" / "spec.yaml"
C0 = [chr(c) for c in range(0x20) if chr(c) not in "\t\n"]
C1 = [chr(c) for c in range(0x80, 0xA0)]
BIDI = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x61C)]
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u180e"]
INVISIBLE = ["\u034f", "\u115f", "\u1160", "\u3164", "\uffa0", "\ufe0f", "\U000e0100"]
OTHER = ["\u2028", "\u2029", "\U000e0001", "\U000e0041", "\ud800", "\udcff", "\U000effff"]
ESCAPED = C0 + ["\x7f"] + C1 + BIDI + ZERO_WIDTH + INVISIBLE + OTHER


@pytest.mark.parametrize("ch", ESCAPED, ids=[f"U+{ord(c):04X}" for c in ESCAPED])
def test_every_control_bidi_and_invisible_character_becomes_an_escape(ch: str) -> None:
    code = ord(ch)
    letter, width = ("x", 2) if code <= 0xFF else ("u", 4) if code <= 0xFFFF else ("U", 8)
    assert visible(f"a{ch}b") == f"a\\{letter}{code:0{width}x}b"
    assert escaped_count(f"a{ch}b{ch}") == 2


def test_text_people_read_is_kept() -> None:
    text = "print('hi')\n\tx = 1  # café, 中文, Ελληνικά, עברית, 🎉, a\u00a0b, ~!@#$%^&*()\n"
    assert visible(text) == text
    assert escaped_count(text) == 0 and escaped_note(text) == ""
    ascii_text = "".join(chr(c) for c in range(0x20, 0x7F))
    assert visible(ascii_text) == ascii_text


def test_carriage_return_and_escape_sequences_show_as_text() -> None:
    assert visible("ok\r\nboom\x1b]0;title\x07") == "ok\\x0d\nboom\\x1b]0;title\\x07"
    assert visible("\x1b[2J", REVERSE) == "\x1b[7m\\x1b\x1b[27m[2J"


def test_nothing_a_terminal_acts_on_survives_any_code_point() -> None:
    everything = "".join(map(chr, range(0x110000)))
    shown = visible(everything)
    left = {
        ch
        for ch in set(shown)
        if ch not in "\t\n" and unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Cn", "Zl", "Zp"}
    }
    assert not left, sorted(left)[:10]
    assert escaped_count(everything) > 0x10000  # every unassigned code point counts


def test_escaped_note_counts_them() -> None:
    assert escaped_note("a\x1b[2K\x1b[1Gb\u202e") == (
        "3 control or invisible characters are shown as \\xNN / \\uNNNN escapes"
    )
    assert escaped_note("\x1b").startswith("1 control or invisible character is shown")


@pytest.mark.parametrize("ch", ESCAPED, ids=[f"U+{ord(c):04X}" for c in ESCAPED])
def test_json_text_escapes_and_round_trips(ch: str) -> None:
    value = {"out": f"a{ch}b", f"k{ch}": [f"{ch}"]}
    text = json_text(value, indent=2)
    assert json.loads(text) == value
    assert not RAW.search(text.replace("\n", "")), text
    assert all(escaped_count(c) == 0 for c in text if c != "\n")


def test_json_text_keeps_readable_text() -> None:
    value = {"text": 'café 中文 🎉\ttab\nline "quoted" \\'}
    text = json_text(value)
    assert "café 中文 🎉" in text and json.loads(text) == value


# ---- the approval prompt (`confirm: ask`) -----------------------------------------------
def _asked(text: str, answer: str = "y\n") -> tuple[bool, str]:
    shown = FakeTerminal()
    ask = terminal_approver(False, stdin=FakeTerminal(answer), stderr=shown)
    approved = ask(ActionPolicy(name="python", handler="python", confirm="ask"), text)
    return approved, shown.getvalue()


def test_the_approval_prompt_shows_the_hidden_command() -> None:
    approved, shown = _asked(SPOOF)
    assert approved
    assert "\x1b" not in shown and not RAW.search(shown.replace("\n", ""))
    assert 'os.system("echo pwned")  # \\x1b[2K\\x1b[1Gprint("hello")' in shown
    assert "2 control or invisible characters are shown" in shown
    assert f"1 line(s), {len(SPOOF)} character(s):" in shown


def test_the_approval_prompt_numbers_lines_and_counts_a_hidden_tail() -> None:
    text = "print(1)" + " " * 200 + "\rimport os\n\n\n" + "\u202eos.remove('x')\u202c"
    _, shown = _asked(text, "n\n")
    lines = shown.splitlines()
    assert lines[0].endswith(
        f"wants to run 4 line(s), {len(text)} character(s), no newline at the end:"
    )
    assert lines[1].startswith("1 | print(1)") and lines[1].endswith("\\x0dimport os")
    assert lines[4] == "4 | \\u202eos.remove('x')\\u202c"
    assert "3 control or invisible characters" in lines[5]
    assert lines[-1] == "--- run it? [y/N] "


def test_a_plain_prompt_has_no_note() -> None:
    prompt = approval_prompt(ActionPolicy(name="py", handler="python"), "print(1)\n")
    assert prompt == (
        "--- action 'py' (python) wants to run 1 line(s), 9 character(s):\n"
        "1 | print(1)\n--- run it? [y/N] "
    )


# ---- llmos-run's views -------------------------------------------------------------------
HOSTILE = "t\x1b]0;title\x07 \x1b]8;;http://e.x/\x1b\\l\x1b]8;;\x1b\\ \x1b[2J \x9b2J \u202eevil\n"


def _views(events: list[Any]) -> dict[str, str]:
    from llmos_grammar.cli.view import JsonView, TextView
    from llmos_grammar.spec.loader import load

    outs = {"plain": io.StringIO(), "colour": io.StringIO(), "json": io.StringIO()}
    machine = load(str(CHAT))
    views: list[TextView | JsonView] = [
        TextView(outs["plain"], machine, colour=False),
        TextView(outs["colour"], machine, colour=True),
        JsonView(outs["json"]),
    ]
    for event in events:
        for view in views:
            view.show(event)
            view.stop()
    return {name: out.getvalue() for name, out in outs.items()}


def _result(text: str) -> Any:
    from llmos_grammar.runtime.events import Result

    return Result(text, "end", "final", f"done: {text}", (), ())


def test_text_and_json_views_show_untrusted_text_as_escapes() -> None:
    from llmos_grammar.runtime.events import (
        ActionStarted,
        DoneEvent,
        InjectedEvent,
        TokenEvent,
        TransitionEvent,
    )

    events = [
        TokenEvent("talk", HOSTILE, (1,)),
        TransitionEvent("talk", "code", "```python"),
        TokenEvent("code", HOSTILE, (1,), forced=True),
        ActionStarted("run", "python\x1b[2J", HOSTILE),
        InjectedEvent("run", HOSTILE, 3),
        DoneEvent(_result(HOSTILE)),
    ]
    shown = _views(events)
    assert not RAW.search(shown["plain"].replace("\n", ""))
    assert shown["plain"].count("t\\x1b]0;title\\x07") == 4  # token, forced, injected, summary
    assert "\\x9b2J \\u202eevil" in shown["plain"]
    coloured = OUR_STYLES.sub("", shown["colour"])
    assert not RAW.search(coloured.replace("\n", "").replace("\r", "")), shown["colour"]
    assert "\x1b[7m\\x1b\x1b[27m]0;title" in shown["colour"]  # escapes in reverse video
    assert not RAW.search(shown["json"].replace("\n", ""))
    first = json.loads(shown["json"].splitlines()[0])
    assert first["text"] == HOSTILE


def test_llmos_run_prints_hostile_model_text_and_action_output_as_escapes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`llmos-run` end to end: the model writes an OSC title and a screen clear, the action
    prints C1 controls and a bidi override; none of it reaches the terminal."""
    from llmos_grammar.cli.main import dispatch
    from llmos_grammar.results import ActionResult
    from llmos_grammar.runtime import Runtime
    from tests.test_fences import Ranked
    from tests.test_runtime_helpers import FakeRunner, tiny_model

    steps: list[list[str] | str] = ["Hi", "\x1b", "]", "0", ";", "p", "wn", "\x07"]
    steps += ["\x1b", "[", "2", "J", "```", "python", "print", "(", "1", ")", "\n", "```"]
    steps += ["Done", ".", "\n"]
    runner = FakeRunner(ActionResult(stdout="1\x9b2J\x9d0;t\x9c\u202eevil\u202c\x1b[31m\n"))

    def scripted(machine: Any, model: Any = None, **kw: Any) -> Runtime:
        return Runtime(
            machine, tiny_model(), runner=runner, approve=kw.get("approve"),
            logits_processors=[Ranked(steps)],
        )  # fmt: skip

    monkeypatch.setattr("llmos_grammar.runtime.Runtime", scripted)
    assert dispatch([str(CHAT), "What is 1?"], "run") == 0
    out = capsys.readouterr().out
    assert runner.calls == [("python", "print(1)\n")]
    assert "\x1b" not in out and not RAW.search(out.replace("\n", "")), repr(out)
    assert "Hi\\x1b]0;pwn\\x07\\x1b[2J```python" in out
    assert "1\\x9b2J\\x9d0;t\\x9c\\u202eevil\\u202c\\x1b[31m" in out
    assert re.search(r"\nfinal: ", out)


def test_llmos_exec_json_escapes_c1_and_bidi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmos_grammar.cli.main import main

    policy = tmp_path / "policy.yaml"
    policy.write_text("llmos-policy: 1\nactions:\n  python:\n    handler: python\n")
    printed = "a\x9b2Jb\x9d0;t\x9cc\u202eevil\u202cd\x1b[31me\x7ff\n"
    code = tmp_path / "code.py"
    code.write_text(f"import sys\nsys.stdout.write({printed!r})\n")
    assert main(["exec", "--policy", str(policy), "--action", "python", str(code)]) == 0
    out = capsys.readouterr().out
    assert not RAW.search(out.replace("\n", "")), repr(out)
    assert "\\u009b2J" in out and "\\u202eevil" in out and "\\u001b[31m" in out
    assert json.loads(out)["stdout"] == printed


def test_check_shows_spec_text_with_escapes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmos_grammar.cli.main import main
    from tests.specs import SPEC, write

    spec = write(tmp_path, SPEC.replace("next: talk", "next: tlak\u202e"))
    assert main(["check", str(spec)]) == 1
    out = capsys.readouterr().out
    assert "\u202e" not in out and "tlak\\u202e" in out
