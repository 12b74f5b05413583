"""`llmos-run SPEC TASK`: stream a run in the terminal, or as JSON lines."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from dataclasses import replace
from typing import Any, TextIO

from llmos_grammar.cli.adapter import add_adapter_argument, load_with_adapter
from llmos_grammar.cli.exits import EXIT_BUDGET, EXIT_OK, EXIT_REFUSED, EXIT_STOPPED, EXIT_USAGE
from llmos_grammar.cli.process import prepare_for_model
from llmos_grammar.engines.select import ENGINES

STATE_COLOURS = {"grammar": "\033[36m", "action": "\033[33m", "text": "", "final": ""}
DIM, RESET, BOLD = "\033[2m", "\033[0m", "\033[1m"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="the spec YAML file")
    parser.add_argument("task", help="the task (fills {task} in the prompt's user template)")
    parser.add_argument("--model", help="override the spec's model (name, hub id, folder, .gguf)")
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        help="what runs the model (default: the spec's engine, auto: llama.cpp for GGUF models)",
    )
    add_adapter_argument(parser)
    parser.add_argument(
        "--engine-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an argument of the vllm engine (repeatable): url=http://HOST:PORT of a running "
        "server, or a vLLM server option such as tensor_parallel_size=2",
    )
    parser.add_argument("--temperature", type=float, help="sampling temperature (0 = greedy)")
    parser.add_argument("--seed", type=int, help="sampling seed")
    parser.add_argument("--max-tokens", type=int, help="total token budget")
    parser.add_argument(
        "--samples", type=int, help="run N samples as rows of one batch and vote (spec's samples.n)"
    )
    parser.add_argument("--yes", action="store_true", help="approve actions whose policy asks")
    parser.add_argument("--json", action="store_true", help="print events as JSON lines")
    parser.add_argument("--trace", metavar="FILE", help="write the full trace as JSONL")
    parser.add_argument("--no-color", action="store_true", help="plain text output")


def exit_code(stop_reason: str, last_refused: bool = False) -> int:
    """0 for a finished run, 3 when an action was refused, 4 when a budget ran out.

    When the run's last action was refused, the refusal is why the run did not
    get what it needed (even if the model then answered, or retried until a
    budget ran out): the exit status is 3.
    """
    if stop_reason == "refused" or last_refused:
        return EXIT_REFUSED
    if stop_reason in ("final", "eos"):
        return EXIT_OK
    return EXIT_BUDGET


def result_exit_code(result: Any) -> int:
    """The exit status of a finished run (see `exit_code`)."""
    actions = result.actions
    return exit_code(result.stop_reason, bool(actions) and actions[-1].result.refused is not None)


def _machine(args: argparse.Namespace) -> Any:
    from llmos_grammar.ir import ModelRef
    from llmos_grammar.spec.loader import load

    machine = load(args.spec)
    if args.model:
        machine = replace(machine, model=ModelRef(name=args.model))
    if args.engine:
        machine = replace(machine, engine=args.engine)
    sampling = machine.sampling
    if args.temperature is not None:
        sampling = replace(sampling, temperature=args.temperature)
    if args.seed is not None:
        sampling = replace(sampling, seed=args.seed)
    budgets = machine.budgets
    if args.max_tokens is not None:
        budgets = replace(budgets, max_tokens=args.max_tokens)
    return replace(machine, sampling=sampling, budgets=budgets)


def run(args: argparse.Namespace) -> int:
    """Load the spec, run the task, stream events; return the exit code."""
    if args.samples is not None and args.samples < 1:
        print(f"llmos-run: --samples must be at least 1 (got {args.samples})", file=sys.stderr)
        return EXIT_USAGE
    machine = _machine(args)
    n = args.samples if args.samples is not None else machine.samples.n
    if n > 1:
        if args.trace:
            print("llmos-run: --trace records one run; use it without samples", file=sys.stderr)
            return EXIT_USAGE
        from llmos_grammar.cli.run_samples import run_samples

        winner = run_samples(args, machine, n)
        return EXIT_STOPPED if winner is None else result_exit_code(winner)
    from llmos_grammar.actions import terminal_approver
    from llmos_grammar.engines.vllm.args import parse_engine_args
    from llmos_grammar.runtime import DoneEvent, Runtime
    from llmos_grammar.trace import TraceWriter

    colour = not args.no_color and not args.json and sys.stdout.isatty()
    view = JsonView(sys.stdout) if args.json else TextView(sys.stdout, machine, colour)
    ask = terminal_approver(yes=args.yes)

    def approve(policy: Any, text: str) -> bool:
        view.stop()  # no spinner over the question
        return ask(policy, text)

    engine_args = parse_engine_args(args.engine_arg)
    header = {"spec": machine.path, "spec_key": machine.cache_key, "task": args.task}
    trace = TraceWriter(args.trace, header) if args.trace else None
    prepare_for_model()
    code = EXIT_STOPPED
    try:
        model = load_with_adapter(machine, args.adapter)
        with Runtime(machine, model, approve=approve, engine_args=engine_args) as runtime:
            if isinstance(view, TextView):
                view.engine = runtime.engine_name
            for event in runtime.stream(args.task):
                if trace is not None:
                    trace.write(event)
                view.show(event)
                if isinstance(event, DoneEvent):
                    code = result_exit_code(event.result)
    finally:
        view.stop()
        if trace is not None:
            trace.close()
    return code


class JsonView:
    """One JSON object per event."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def show(self, event: Any) -> None:
        from llmos_grammar.runtime import event_to_json

        self.out.write(json.dumps(event_to_json(event), ensure_ascii=False) + "\n")
        self.out.flush()

    def stop(self) -> None:
        pass


class TextView:
    """Model text as it streams, state changes, a spinner during actions, a summary."""

    def __init__(self, out: TextIO, machine: Any, colour: bool) -> None:
        self.out = out
        self.machine = machine
        self.colour = colour
        self.spinner: Spinner | None = None
        self.engine = ""  # the engine the run decodes with, named in the summary
        self.fired: list[tuple[str, str]] = []  # (trigger, target) of each trigger that fired

    def _paint(self, text: str, style: str) -> str:
        return f"{style}{text}{RESET}" if self.colour and style else text

    def _state_style(self, state: str) -> str:
        kind = getattr(self.machine.states.get(state), "type", "text")
        return STATE_COLOURS.get(kind, "")

    def show(self, event: Any) -> None:
        kind = event.kind
        if kind == "token":
            style = DIM if event.forced else self._state_style(event.state)
            self.out.write(self._paint(event.text, style))
        elif kind == "transition":
            self._transition(event)
        elif kind == "action_started":
            self.out.flush()
            self.spinner = Spinner(self.out, f"running {event.action}") if self.colour else None
        elif kind == "action_finished":
            self.stop()
        elif kind == "injected":
            self.out.write(self._paint(event.text, "\033[32m"))
        elif kind == "done":
            self._summary(event.result)
        self.out.flush()

    def _transition(self, event: Any) -> None:
        source = self.machine.states.get(event.source)
        by_trigger = getattr(source, "type", "") == "text" and event.trigger != "eos"
        if by_trigger:
            self.fired.append((event.trigger, event.target))
        if self.colour:
            label = f"{event.target} ← {event.trigger!r}" if by_trigger else event.target
            self.out.write(self._paint(f"⟨{label}⟩", DIM))

    def _summary(self, result: Any) -> None:
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
