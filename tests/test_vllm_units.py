"""The vllm engine without vLLM: arguments, request and answer, Lark for the server, and the
segment loop against a scripted segment engine that behaves as vLLM's completions do."""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import pytest

from llmos_grammar.engines import (
    ENGINES,
    EngineCounters,
    SegmentEngine,
    SegmentOutput,
    SegmentParams,
)
from llmos_grammar.engines.vllm.args import (
    parse_engine_args,
    server_command,
    vllm_options,
)
from llmos_grammar.engines.vllm.grammar import lark_for_vllm
from llmos_grammar.engines.vllm.protocol import completion_body, error_message, read_completion
from llmos_grammar.errors import Location, ModelError
from llmos_grammar.ir import (
    Budgets,
    FinalState,
    GrammarSource,
    Prompt,
    TextState,
    Transition,
)
from llmos_grammar.results import ActionResult
from llmos_grammar.runtime import DoneEvent, Runtime, TransitionEvent
from llmos_grammar.runtime.triggers import stop_strings
from tests.test_runtime import calc_machine
from tests.test_runtime import run as run_transformers
from tests.test_runtime_helpers import FakeRunner, machine, tiny_model, tokenizer

# ---- engine arguments ----------------------------------------------------------------------


def test_engine_args_parse_and_split() -> None:
    args = parse_engine_args(
        ["tensor-parallel-size=2", "url=http://h:8000/", "--max_model_len=4096"]
    )
    assert args == {"tensor_parallel_size": "2", "url": "http://h:8000/", "max_model_len": "4096"}
    with pytest.raises(ModelError, match="KEY=VALUE"):
        parse_engine_args(["tensor_parallel_size"])
    with pytest.raises(ModelError, match="configure a server llmos starts"):
        vllm_options(args)
    assert vllm_options({"url": "http://h:8000/"}).url == "http://h:8000"
    with pytest.raises(ModelError, match="http://host:port"):
        vllm_options({"url": "h:8000"})
    with pytest.raises(ModelError, match="startup_timeout_s"):
        vllm_options({"startup_timeout_s": "soon"})


def test_server_command_maps_options_to_flags() -> None:
    options = vllm_options(
        {"tensor_parallel_size": "2", "enable_prefix_caching": "false", "enforce_eager": "false"}
    )
    command = server_command("/py", "/m", 8123, options, "float32")
    assert command[:5] == ["/py", "-m", "vllm.entrypoints.openai.api_server", "--model", "/m"]
    assert command[command.index("--port") + 1] == "8123"
    assert command[command.index("--tensor-parallel-size") + 1] == "2"
    assert "--no-enable-prefix-caching" in command and "--no-enforce-eager" in command
    assert "--enforce-eager" not in command
    assert command[command.index("--dtype") + 1] == "float32"
    backend = json.loads(command[command.index("--structured-outputs-config") + 1])
    assert backend == {"backend": "guidance"}


# ---- one request and its answer -------------------------------------------------------------

X = GrammarSource("lark", 'start: "x"\n', Location("<t>", 1, 1))
PARAMS = SegmentParams(max_tokens=9, stop=("[CODE]",), stop_ids=(2,), constraint=X, close="]")


def test_completion_body_sends_ids_and_asks_for_ids() -> None:
    body = completion_body("llmos", [1, 5, 7], PARAMS)
    assert body["prompt"] == [1, 5, 7] and body["return_token_ids"] is True
    assert body["stop"] == ["[CODE]"] and body["stop_token_ids"] == [2]
    assert body["structured_outputs"] == {"grammar": lark_for_vllm(X, "]")}  # Lark, close last
    assert "seed" not in body and "top_k" not in body
    seeded = completion_body("m", [], SegmentParams(max_tokens=1, top_k=5, seed=3))
    assert seeded["seed"] == 3 and seeded["top_k"] == 5 and "structured_outputs" not in seeded


def answer(tokens: list[int], finish: str, stop_reason: Any = None) -> dict[str, Any]:
    choice = {"token_ids": tokens, "finish_reason": finish, "stop_reason": stop_reason}
    return {"choices": [choice]}


def test_read_completion_keeps_the_end_of_sequence() -> None:
    assert read_completion(answer([4, 5], "length"), PARAMS) == SegmentOutput((4, 5), "length")
    # the model's EOS: in token_ids already, or added when the server left it out
    assert read_completion(answer([4, 2], "stop"), PARAMS).tokens == (4, 2)
    assert read_completion(answer([4], "stop"), PARAMS).tokens == (4, 2)
    assert read_completion(answer([4], "stop", 2), PARAMS).tokens == (4, 2)
    # a stop string: the token that completed it is the last one, nothing added
    assert read_completion(answer([4, 9], "stop", "[CODE]"), PARAMS).tokens == (4, 9)
    with pytest.raises(ModelError, match="token ids"):
        read_completion({"choices": [{"text": "hi"}]}, PARAMS)
    with pytest.raises(ModelError, match="abort"):
        read_completion(answer([], "abort"), PARAMS)


def test_error_message_is_one_line() -> None:
    payload = json.dumps({"error": {"message": "bad grammar\nat line 2"}})
    assert error_message(400, payload) == "vLLM server error 400: bad grammar at line 2"
    assert error_message(502, "Bad Gateway\n") == "vLLM server error 502: Bad Gateway"


# ---- the constraint as Lark text --------------------------------------------------------------


def source(kind: str, text: str) -> GrammarSource:
    return GrammarSource(kind, text, Location("<t>", 1, 1))  # type: ignore[arg-type]


def test_a_recursive_start_and_the_word_start_need_no_renaming() -> None:
    # the body is a nested grammar of its own: its `start` rule stays as written
    text = 'start: "(" start ")" | "start" item // start here\nitem: /start|x/\n'
    lark = lark_for_vllm(source("lark", text), "[/CODE]")
    assert text in lark
    good, bad = "((startx))[/CODE]", "((startx)[/CODE]"
    assert vllm_accepts(lark, good) and not vllm_accepts(lark, bad)


def vllm_accepts(lark: str, text: str) -> bool:
    """Whether the grammar vLLM's guidance backend builds from `lark` (as its request
    validation does: llguidance.grammar_from("grammar", ...)) accepts the whole of `text`."""
    import llguidance as llg

    from llmos_grammar.grammar.backend import byte_tokenizer

    matcher = llg.LLMatcher(byte_tokenizer(), llg.grammar_from("grammar", lark), log_level=0)
    assert not matcher.is_error(), matcher.get_error()
    ok = matcher.consume_tokens(list(text.encode())) and not matcher.is_error()
    return bool(ok and matcher.is_accepting())


@pytest.mark.parametrize(
    ("src", "good", "bad"),
    [
        (source("lark", 'start: "print(" NUM ")"\nNUM: /[0-9]+/\n'), "print(12)", "print(x)"),
        (source("lark", '?start: "a" | "b"\n'), "a", "c"),  # no line `start:`: still Lark
        (source("regex", "[a-z]+/[0-9]{2}"), "ab/12", "ab/1"),
        (source("regex", r"a\/b"), "a/b", "a\\/b"),
        (
            source("json_schema", '{"type": "object", "properties": {"a": {"type": "integer"}}}'),
            '{"a":3}',
            '{"a": 3}',  # compact JSON by default
        ),
    ],
)
@pytest.mark.parametrize("close", ["[/CODE]", None])
def test_vllm_gets_the_grammar_our_matcher_compiles(
    src: GrammarSource, good: str, bad: str, close: str | None
) -> None:
    from llmos_grammar.constraints import CompiledConstraint, byte_table
    from llmos_grammar.constraints.differential import accepts

    lark = lark_for_vllm(src, close)
    ours = CompiledConstraint(src, byte_table(), close, "s")
    assert lark == ours.grammar  # one translation: the server enforces what the replay checks
    tail = close or ""
    for text in (good + tail, bad + tail, good + "[/CODE]x"):
        assert vllm_accepts(lark, text) == accepts(ours, text.encode()), text
    assert vllm_accepts(lark, good + tail) and not vllm_accepts(lark, bad + tail)


def test_stop_strings_cover_started_triggers() -> None:
    assert stop_strings(["[CODE]"], started=False) == ("[CODE]",)
    # a trigger started in an earlier segment: its rest ends the next one
    assert stop_strings(["[CODE]"], started=False, before=b"x [CO") == ("DE]",)  # in "[CODE]" too
    # every started prefix of two bytes or more may fire; the shortest covers the longer ones
    assert stop_strings(["[CODE]", "ab"], started=True) == ("[C", "ab")
    assert stop_strings(["[CODE]", "[CALC]"], started=True, before=b"[C") == (
        "ALC]",
        "ODE]",
        "[C",
    )


# ---- the segment loop against a scripted engine ---------------------------------------------


class ScriptedSegments:
    """A SegmentEngine whose 'model' emits `pieces` in order, ending segments as vLLM does:
    at a stop id, at a stop string in the segment's text, at max_tokens, and with EOS once
    the text ends with a grammar's close delimiter."""

    capabilities = ENGINES["vllm"].capabilities

    def __init__(self, pieces: Sequence[str], closes: Sequence[str] = ("[/CODE]",)) -> None:
        tok = tokenizer()
        self.queue = [t for p in pieces for t in tok.encode(p, add_special_tokens=False)]
        self.closes = tuple(closes)
        self.eos = int(tok.eos_token_id)
        self.requests: list[SegmentParams] = []
        self.counters = EngineCounters()
        self.rows: dict[int, list[int]] = {}

    def open_row(self) -> int:
        self.rows[len(self.rows)] = []
        return len(self.rows) - 1

    def append(self, row: int, tokens: Sequence[int]) -> None:
        self.rows[row].extend(tokens)

    def truncate(self, row: int, length: int) -> None:
        del self.rows[row][length:]

    def ids(self, row: int) -> list[int]:
        return self.rows[row]

    def cached(self, row: int) -> int:
        return len(self.rows[row])

    def row_counters(self, row: int) -> EngineCounters:
        return self.counters

    def close_row(self, row: int) -> None:
        pass

    def context_window(self) -> int | None:
        return None

    def close(self) -> None:
        pass

    def generate(self, row: int, params: SegmentParams) -> Future[SegmentOutput]:
        self.requests.append(params)
        out: list[int] = []
        end = "length"
        while self.queue and len(out) < params.max_tokens:
            out.append(self.queue.pop(0))
            text = tokenizer().decode(out)
            if out[-1] in params.stop_ids or any(s in text for s in params.stop):
                end = "stop"
                break
            if params.constraint is not None and text.endswith(self.closes):
                out.append(self.eos)
                end = "stop"
                break
        future: Future[SegmentOutput] = Future()
        future.set_result(SegmentOutput(tuple(out), end))  # type: ignore[arg-type]
        return future


def run_segments(m: Any, engine: ScriptedSegments, runner: FakeRunner) -> tuple[Any, list[Any]]:
    rt = Runtime(m, tiny_model(), runner=runner)
    rt.engine = lambda: engine  # type: ignore[method-assign]
    assert isinstance(engine, SegmentEngine)
    events = list(rt.stream("task"))
    done = events[-1]
    assert isinstance(done, DoneEvent)
    return done.result, events


def test_split_trigger_grammar_action_as_on_the_token_loop() -> None:
    pieces = ["Sure", " [", "CO", "print(", "4", "2", ")\n[/CODE]", " Done", ".", "<|im_end|>"]
    runner = FakeRunner(ActionResult(stdout="42\n"))
    result, events = run_segments(calc_machine(), ScriptedSegments(pieces), runner)
    token_pieces = ["Sure", " [", "CO", "4", "2", ")", " Done", "."]
    reference, ref_events, _ = run_transformers(
        calc_machine(), token_pieces, FakeRunner(ActionResult(stdout="42\n"))
    )
    assert result.stop_reason == reference.stop_reason == "final"
    assert result.text == reference.text
    assert runner.calls == [("python", "print(42)\n")]
    moves = [(e.source, e.target) for e in events if isinstance(e, TransitionEvent)]
    ref_moves = [(e.source, e.target) for e in ref_events if isinstance(e, TransitionEvent)]
    assert moves == ref_moves
    assert result.completion_ids == reference.completion_ids
    assert result.stats.generated_tokens >= 1 and result.stats.actions == 1


def test_an_ambiguous_started_trigger_takes_another_segment() -> None:
    states = {
        "talk": TextState(
            "talk",
            triggers=(Transition("[CODE]", "end"), Transition("[CALC]", "end")),
            on_eos="end",
            max_tokens=30,
        ),
        "end": FinalState("end"),
    }
    m = machine(states, "talk", prompt=Prompt(system="sys"))
    engine = ScriptedSegments(["Hi", " [", "C", "O", "DE", "]", " tail"])
    result, _ = run_segments(m, engine, FakeRunner())
    assert result.stop_reason == "final"
    assert result.text == "Hi [CODE]"
    assert len(engine.requests) == 2  # "[C" is shared by both triggers: the first stop waits
    assert engine.queue  # " tail" was never asked for


def test_budgets_bound_each_segment_and_stop_the_run() -> None:
    states = {"talk": TextState("talk", on_eos="end", max_tokens=50), "end": FinalState("end")}
    m = machine(states, "talk", prompt=Prompt(system="sys"), budgets=Budgets(max_tokens=6))
    engine = ScriptedSegments([" one"] * 20)
    result, _ = run_segments(m, engine, FakeRunner())
    assert result.stop_reason == "max_tokens"
    assert engine.requests[0].max_tokens == 6
    assert result.stats.generated_tokens == 6


def test_engine_choice_and_its_arguments() -> None:
    from llmos_grammar.engines.select import ENGINES, choose
    from llmos_grammar.ir import ModelRef

    ref = ModelRef(name="smollm2-135m-instruct")
    assert "vllm" in ENGINES
    assert choose("vllm", ref, engine_args={"tensor_parallel_size": "2"}) == "vllm"
    with pytest.raises(ModelError, match="for --engine vllm only"):
        choose("transformers", ref, engine_args={"tensor_parallel_size": "2"})
    with pytest.raises(ModelError, match="LoRA"):
        choose("vllm", ref, adapter=True)


def test_no_vllm_python_is_one_clear_error() -> None:
    import sys

    from llmos_grammar.engines.vllm.server import find_python

    with pytest.raises(ModelError, match=r"setup\.sh --vllm"):
        find_python(vllm_options({"python": sys.executable}))  # this Python has no vllm
