"""`llmos shell SPEC`: an interactive session; the KV cache and action state live across turns."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from llmos_grammar.cli.exits import EXIT_OK
from llmos_grammar.cli.options import machine_from_args
from llmos_grammar.cli.process import prepare_for_model
from llmos_grammar.cli.shell_input import LineReader, clean, history_path
from llmos_grammar.cli.view import TextView
from llmos_grammar.engines.select import ENGINES
from llmos_grammar.errors import LlmosError
from llmos_grammar.visible import visible

if TYPE_CHECKING:
    from llmos_grammar.ir import ActionPolicy
    from llmos_grammar.runtime.session import Session

PROMPT = "llmos> "
HELP = """\
Type a message; the model answers through the spec's state machine.
  Ctrl-C     stop the current answer or action (its sandbox is killed); the turn is rolled back
  Ctrl-D     leave (also /exit)
  /reset     start a fresh context (and fresh action state)
  /undo      remove the last turn from the context
  /save FILE write the session (trace JSONL); /load FILE replays one into a fresh context
  /limits    the policy in force, the budgets and the context used
  /help      this text"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="the spec YAML file")
    add_session_options(parser)


def add_session_options(parser: argparse.ArgumentParser) -> None:
    """Options the shell shares with `llmos-run` (which opens it when no task is given)."""
    parser.add_argument("--model", help="override the spec's model (name, hub id, folder, .gguf)")
    parser.add_argument("--engine", choices=ENGINES, help="what runs the model (default: spec's)")
    parser.add_argument("--temperature", type=float, help="sampling temperature (0 = greedy)")
    parser.add_argument("--seed", type=int, help="sampling seed")
    parser.add_argument("--max-tokens", type=int, help="token budget of each turn")
    parser.add_argument("--yes", action="store_true", help="approve actions whose policy asks")
    parser.add_argument("--no-color", action="store_true", help="plain text output")
    parser.add_argument("--history", metavar="FILE", help="history file (default: XDG state)")


def run(args: argparse.Namespace) -> int:
    """Open the session and read turns until Ctrl-D or /exit."""
    from llmos_grammar.actions import terminal_approver
    from llmos_grammar.runtime.session import Session

    machine = machine_from_args(args)
    colour = not getattr(args, "no_color", False) and sys.stdout.isatty()
    view = TextView(sys.stdout, machine, colour)
    ask = terminal_approver(yes=getattr(args, "yes", False))

    def approve(policy: ActionPolicy, text: str) -> bool:
        view.stop()
        return ask(policy, text)

    def notify(line: str) -> None:
        print(f"llmos shell: {visible(line)}", file=sys.stderr, flush=True)

    prepare_for_model()
    history = getattr(args, "history", None)
    reader = LineReader(Path(history) if history else history_path())
    try:
        with Session(machine, approve=approve, notify=notify) as session:
            view.engine = session.rt.engine_name
            return Shell(session, view, reader, notify).loop()
    finally:
        reader.close()


class Shell:
    """The read-answer loop over a Session."""

    def __init__(
        self, session: Session, view: TextView, reader: LineReader, notify: Callable[[str], None]
    ) -> None:
        self.session = session
        self.view = view
        self.reader = reader
        self.say = notify
        self.commands = {
            "/exit": self._exit,
            "/help": self._help,
            "/reset": self._reset,
            "/undo": self._undo,
            "/save": self._save,
            "/load": self._load,
            "/limits": self._limits,
        }

    def loop(self) -> int:
        while True:
            try:
                raw = self.reader.read(PROMPT)
            except EOFError:
                print()
                return EXIT_OK
            except KeyboardInterrupt:
                print("^C")
                continue
            line = clean(raw)
            if line.problem:
                self.say(line.problem)
            if line.refused or not line.text.strip():
                continue
            word, _, rest = line.text.strip().partition(" ")
            if word in self.commands:
                if self.commands[word](rest.strip()):
                    return EXIT_OK
            elif word.startswith("/") and " " not in line.text.strip():
                self.say(f"unknown command {word}; /help lists them")
            else:
                self._turn(line.text)

    def _turn(self, text: str) -> None:
        try:
            for event in self.session.stream(text):
                self.view.show(event)
        except KeyboardInterrupt:
            self.view.stop()
            print()
            self.say("interrupted: the turn was rolled back out of the context")
        except LlmosError as exc:
            self.view.stop()
            self.say(f"{exc} (the turn was rolled back)")

    # ---- commands: each returns True to leave ----------------------------------------
    def _exit(self, rest: str) -> bool:
        return True

    def _help(self, rest: str) -> bool:
        print(HELP)
        return False

    def _reset(self, rest: str) -> bool:
        self.session.reset()
        self.say("fresh context")
        return False

    def _undo(self, rest: str) -> bool:
        turn = self.session.undo()
        if turn is None:
            self.say("nothing to undo")
        else:
            self.say(f"removed the turn {turn.user[:60]!r}; {self._context()}")
        return False

    def _save(self, rest: str) -> bool:
        if not rest:
            self.say("usage: /save FILE")
            return False
        try:
            self.session.save(rest)
        except OSError as exc:
            self.say(f"cannot write {rest}: {exc.strerror}")
            return False
        self.say(f"saved {len(self.session.turns)} turn(s) to {rest}")
        return False

    def _load(self, rest: str) -> bool:
        if not rest:
            self.say("usage: /load FILE")
            return False
        try:
            n = self.session.load(rest)
        except LlmosError as exc:
            self.say(str(exc))
            return False
        self.say(f"replayed {n} turn(s) from {rest}; {self._context()}")
        return False

    def _limits(self, rest: str) -> bool:
        from llmos_grammar.cli.shell_limits import describe

        print(visible(describe(self.session)))
        return False

    def _context(self) -> str:
        s = self.session
        return f"context {s.context_tokens}/{s.max_context} tokens, {len(s.turns)} turn(s)"
