"""What `llmos-run` and `llmos shell` print: streamed text, a spinner, a summary; or JSON."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, TextIO

from llmos_grammar.visible import PLAIN, REVERSE, json_text, visible

if TYPE_CHECKING:
    from llmos_grammar.ir import Machine
    from llmos_grammar.runtime.events import Event, Result, TransitionEvent

STATE_COLOURS = {"grammar": "\033[36m", "action": "\033[33m", "text": "", "final": ""}
DIM, RESET, BOLD = "\033[2m", "\033[0m", "\033[1m"


class JsonView:
    """One JSON object per event."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def show(self, event: Event) -> None:
        from llmos_grammar.runtime import event_to_json

        self.out.write(json_text(event_to_json(event)) + "\n")
        self.out.flush()

    def stop(self) -> None:
        pass


class TextView:
    """Model text as it streams, state changes, a spinner during actions, a summary."""

    def __init__(self, out: TextIO, machine: Machine, colour: bool) -> None:
        self.out = out
        self.machine = machine
        self.colour = colour
        self.spinner: Spinner | None = None
        self.engine = ""  # the engine the run decodes with, named in the summary
        self.fired: list[tuple[str, str]] = []  # (trigger, target) of each trigger that fired

    def _paint(self, text: str, style: str) -> str:
        """Untrusted `text` with its control characters shown as escapes, then our style."""
        shown = visible(text, REVERSE if self.colour else PLAIN)
        return f"{style}{shown}{RESET}" if self.colour and style else shown

    def _state_style(self, state: str) -> str:
        kind = getattr(self.machine.states.get(state), "type", "text")
        return STATE_COLOURS.get(kind, "")

    def show(self, event: Event) -> None:
        if event.kind == "token":
            style = DIM if event.forced else self._state_style(event.state)
            self.out.write(self._paint(event.text, style))
        elif event.kind == "transition":
            self._transition(event)
        elif event.kind == "action_started":
            self.out.flush()
            label = f"running {visible(event.action)}"
            self.spinner = Spinner(self.out, label) if self.colour else None
        elif event.kind == "action_finished":
            self.stop()
        elif event.kind == "injected":
            self.out.write(self._paint(event.text, "\033[32m"))
        elif event.kind == "done":
            self._summary(event.result)
        self.out.flush()

    def _transition(self, event: TransitionEvent) -> None:
        source = self.machine.states.get(event.source)
        by_trigger = getattr(source, "type", "") == "text" and event.trigger != "eos"
        if by_trigger:
            self.fired.append((event.trigger, event.target))
        if self.colour:
            label = f"{event.target} ← {event.trigger!r}" if by_trigger else event.target
            self.out.write(self._paint(f"⟨{label}⟩", DIM))

    def _summary(self, result: Result) -> None:
        s = result.stats
        line = (
            f"\n\n{result.stop_reason}: {result.message}\n"
            f"{s.generated_tokens} tokens ({s.forced_tokens} forced/injected), "
            f"{s.tokens_per_s:.1f} tokens/s, {s.actions} action(s), "
            f"first token {s.time_to_first_token_s:.2f} s, total {s.total_s:.2f} s"
            f"{f', engine {self.engine}' if self.engine else ''}\n"
        )
        if self.fired:
            fired = ", ".join(f"{trigger!r} -> {target}" for trigger, target in self.fired)
            line += f"triggers: {fired}\n"
        self.out.write(self._paint(line, DIM))

    def stop(self) -> None:
        if self.spinner is not None:
            self.spinner.stop()
            self.spinner = None


class Spinner:
    """A one-line spinner on its own thread; erased when stopped."""

    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self, out: TextIO, label: str) -> None:
        self.out = out
        self.label = label
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        i = 0
        while not self._done.wait(0.1):
            self.out.write(f"\r{self.FRAMES[i % len(self.FRAMES)]} {self.label}")
            self.out.flush()
            i += 1

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
        self.out.write("\r\033[K")
        self.out.flush()
