"""Request machines for `llmos serve`: response_format and client tools enforced by the grammar.

Model-free checks of the machines and their grammars first, then real decoding through the
public runtime API: the tiny random model at temperature 1 over many seeds (it writes
whatever the mask allows, so only the grammar can keep it valid), and the default model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from llmos_grammar.constraints.registry import byte_compiled
from llmos_grammar.ir import (
    Budgets,
    FinalState,
    GrammarState,
    Machine,
    ModelRef,
    Sampling,
    TextState,
    Transition,
)
from llmos_grammar.runtime import DoneEvent, Result, Runtime, TokenEvent
from llmos_grammar.serve.constrain import RequestMachine, plain_machine, request_machine
from llmos_grammar.serve.toolcalls import GENERIC, NATIVE, assistant_text, read_call, tool_syntax
from llmos_grammar.serve.types import (
    BadRequest,
    GenerationRequest,
    Message,
    ResponseFormat,
    Tool,
    ToolCall,
    ToolChoice,
)
from tests.test_runtime_helpers import tiny_model, token_id

ROOT = Path(__file__).resolve().parents[1]
WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "enum": ["Paris", "Rome", "Oslo"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "days"],
    "additionalProperties": False,
}
TIME = {
    "type": "object",
    "properties": {
        "zone": {"type": "string", "enum": ["UTC", "CET"]},
        "exact": {"type": "boolean"},
    },
    "required": ["zone"],
    "additionalProperties": False,
}
TOOLS = (Tool("get_weather", "The weather of a city", WEATHER), Tool("get_time", "The time", TIME))
SCHEMAS = {t.name: t.parameters for t in TOOLS}
ANSWER = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "enum": ["Ada", "Alan"]},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "tags": {"type": "array", "items": {"type": "boolean"}, "maxItems": 3},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}
BASE = plain_machine(ModelRef(), "base", Budgets(max_tokens=120))


def request(**fields: Any) -> GenerationRequest:
    return GenerationRequest(model="base", messages=(Message("user", "Hi"),), **fields)


def with_tools(
    mode: str = "auto", name: str | None = None, parallel: bool = True
) -> RequestMachine:
    choice = ToolChoice(mode, name)  # type: ignore[arg-type]
    return request_machine(
        BASE, request(tools=TOOLS, tool_choice=choice, parallel_tool_calls=parallel)
    )


def call_text(name: str, arguments: str) -> str:
    return GENERIC.call_text(ToolCall("call_x", name, arguments))


# ---- the machines ---------------------------------------------------------------------


def test_auto_tools_add_a_trigger_into_a_call_grammar_and_end_the_turn() -> None:
    rm = with_tools()
    states = rm.machine.states
    reply = states["reply"]
    assert isinstance(reply, TextState) and [t.trigger for t in reply.triggers] == ["<tool_call>"]
    call = states[rm.call_state or ""]
    assert isinstance(call, GrammarState) and call.close == "\n</tool_call>" and call.open == "\n"
    more = states[call.next]
    assert isinstance(more, TextState) and more.on_eos == rm.tool_end
    assert isinstance(states[rm.tool_end or ""], FinalState)
    assert rm.machine.start == "reply" and rm.machine.prompt.assistant_prefix == ""
    assert rm.tagged == {"reply"} and rm.tool_states == {call.name, more.name}
    assert reply.constraint is not None and reply.constraint.text == "(?s:.*)"  # whole tags only
    for tool in TOOLS:
        assert json.dumps(tool.parameters) in rm.tools_prompt and tool.name in rm.tools_prompt
    assert "<tool_call>" in rm.tools_prompt
    assert rm.machine.cache_key != BASE.cache_key


def test_required_and_named_start_with_a_call_none_adds_nothing() -> None:
    for rm in (with_tools("required"), with_tools("function", "get_time")):
        assert rm.machine.start == rm.call_state
        assert rm.machine.prompt.assistant_prefix == "<tool_call>"
        assert rm.tagged == frozenset()
    none = with_tools("none")
    assert dict(none.machine.states) == dict(BASE.states)
    assert none.call_state is None and none.tool_states == frozenset()


CHOICES = (("auto", None), ("required", None), ("none", None), ("function", "get_time"))


def test_the_tools_prompt_is_the_same_for_every_choice() -> None:
    """The grammar enforces tool_choice and parallel_tool_calls; the system prompt lists
    every declared tool alike, so a client changing them between turns keeps its cache."""
    prompts = {
        with_tools(mode, name, parallel=parallel).tools_prompt
        for mode, name in (
            ("auto", None),
            ("required", None),
            ("none", None),
            ("function", "get_time"),
        )
        for parallel in (True, False)
    }
    assert len(prompts) == 1
    (prompt,) = prompts
    assert "get_weather" in prompt and "get_time" in prompt


def test_parallel_false_ends_the_turn_after_one_call() -> None:
    rm = with_tools(parallel=False)
    call = rm.machine.states[rm.call_state or ""]
    assert isinstance(call, GrammarState) and call.next == rm.tool_end
    assert rm.tool_states == {rm.call_state}


def test_machines_are_kept_by_a_hash_of_the_request() -> None:
    assert with_tools() is with_tools()
    other = request_machine(
        BASE, request(tools=(replace(TOOLS[0], parameters=TIME),), tool_choice=ToolChoice())
    )
    assert other is not with_tools() and other.machine.cache_key != with_tools().machine.cache_key
    fmt = ResponseFormat("json_schema", ANSWER, "a")
    assert request_machine(BASE, request(response_format=fmt)) is request_machine(
        BASE, request(response_format=replace(fmt, schema=json.loads(json.dumps(ANSWER))))
    )


def test_a_schema_that_does_not_compile_is_a_located_400_at_request_time() -> None:
    fmt = ResponseFormat("json_schema", {"type": "array", "uniqueItems": True}, "a")
    with pytest.raises(BadRequest, match="uniqueItems") as caught:
        request_machine(BASE, request(response_format=fmt))
    assert caught.value.param == "response_format.json_schema"
    bad = replace(TOOLS[1], parameters={"type": "string", "pattern": "(?<=x)y"})
    with pytest.raises(BadRequest, match="look-around") as caught:
        request_machine(BASE, request(tools=(TOOLS[0], bad)))
    assert caught.value.param == "tools[1].function.parameters"
    with pytest.raises(BadRequest) as caught:
        request_machine(BASE, request(tools=TOOLS, tool_choice=ToolChoice("function", "nope")))
    assert caught.value.param == "tool_choice.function.name"


def test_the_call_grammar_admits_exactly_the_declared_calls() -> None:
    def accepts(rm: RequestMachine, text: str) -> bool:
        state = rm.machine.states[rm.call_state or ""]
        assert isinstance(state, GrammarState)
        matcher = byte_compiled(state.constraint, state.close, "llguidance").new()
        return matcher.consume(list(text.encode())) and matcher.is_accepting()

    rm = with_tools()
    good = [
        ("get_weather", '{"city": "Rome", "days": 3}'),
        ("get_time", '{"zone": "UTC"}'),
        ("get_time", '{"zone": "CET", "exact": false}'),
    ]
    for name, arguments in good:
        body = call_text(name, arguments).removeprefix("<tool_call>\n")
        assert accepts(rm, body), body
    bad = [
        ("get_news", "{}"),  # not declared
        ("get_weather", '{"city": "Rome"}'),  # a required argument missing
        ("get_weather", '{"city": "Lima", "days": 3}'),  # not in the enum
        ("get_weather", '{"city": "Rome", "days": 9}'),  # above the maximum
        ("get_time", '{"zone": "UTC", "x": 1}'),  # additionalProperties false
        ("get_time", '{"zone":"UTC"}'),  # not our JSON style (the rendering must match)
        ("get_time", '{"exact": true, "zone": "UTC"}'),  # properties in another order
    ]
    for name, arguments in bad:
        assert not accepts(rm, call_text(name, arguments).removeprefix("<tool_call>\n"))
    assert not accepts(rm, '{"name": "get_time", "arguments": {"zone": "UTC"}}</tool_call>')
    named = with_tools("function", "get_time")
    assert accepts(named, call_text("get_time", '{"zone": "UTC"}').removeprefix("<tool_call>\n"))
    weather = call_text("get_weather", '{"city": "Rome", "days": 3}').removeprefix("<tool_call>\n")
    assert not accepts(named, weather)


def test_json_answers_and_tools_share_the_answer_state() -> None:
    fmt = ResponseFormat("json_schema", ANSWER, "a")
    rm = request_machine(BASE, request(response_format=fmt, tools=TOOLS))
    reply = rm.machine.states["reply"]
    assert isinstance(reply, TextState) and reply.constraint is not None
    matcher = byte_compiled(reply.constraint, None, "llguidance")
    for text, ok in [
        ('{"name": "Ada", "age": 36}', True),
        ("<tool_call>", True),
        ('{"name": "Ada"}', False),
        ("Hello", False),
    ]:
        m = matcher.new()
        assert (m.consume(list(text.encode())) and m.is_accepting()) is ok, text
    assert rm.visible == {"reply"} and rm.tagged == {"reply"}


def load(example: str) -> Machine:
    from llmos_grammar.spec.loader import load as load_spec

    return load_spec(ROOT / "examples" / example / "spec.yaml")


def test_specs_take_what_fits_and_refuse_the_rest_with_a_clear_400() -> None:
    fmt = ResponseFormat("json_schema", ANSWER, "a")
    calculator, chat, extract = load("calculator"), load("chat"), load("extract")
    prefixed = replace(BASE, prompt=replace(BASE.prompt, assistant_prefix="Sure:"), cache_key="p")
    # the calculator answers in a text state after its action: JSON goes there, in place
    # of the answer's own one-line grammar
    rm = request_machine(calculator, request(response_format=fmt))
    answer, own = rm.machine.states["answer"], calculator.states["answer"]
    assert isinstance(answer, TextState) and isinstance(own, TextState)
    assert answer.constraint is not None and own.constraint is not None
    assert "%json" in answer.constraint.text and answer.constraint != own.constraint
    assert rm.visible == {"answer"} and rm.machine.states["code"] == calculator.states["code"]
    # tools: every free text state may start a call; the spec's own states stay
    rm = request_machine(chat, request(tools=TOOLS))
    assert rm.tagged == {"talk"}
    talk = rm.machine.states["talk"]
    assert isinstance(talk, TextState) and talk.triggers[-1].trigger == "<tool_call>"
    assert talk.triggers[:-1] == chat.states["talk"].triggers  # type: ignore[union-attr]
    refused: list[tuple[Machine, GenerationRequest, str, str]] = [
        (chat, request(response_format=fmt), "response_format", "starts other states"),
        (extract, request(response_format=fmt), "response_format", "without an answer"),
        (extract, request(tools=TOOLS), "tools", "no free text state"),
        (
            calculator,
            request(tools=TOOLS, tool_choice=ToolChoice("required")),
            "tool_choice",
            "starts its reply in state 'code' \\(a grammar",
        ),
        (
            prefixed,
            request(tools=TOOLS, tool_choice=ToolChoice("function", "get_time")),
            "tool_choice",
            "after forced text",
        ),
    ]
    for machine, req, param, why in refused:
        with pytest.raises(BadRequest, match=why) as caught:
            request_machine(machine, req)
        assert caught.value.param == param and machine.name in caught.value.message


def test_a_spec_trigger_that_clashes_with_the_call_tag_is_refused() -> None:
    reply = TextState("reply", triggers=(Transition("<tool", "end"),), on_eos="end")
    clash = replace(BASE, states={**BASE.states, "reply": reply}, cache_key="clash")
    with pytest.raises(BadRequest, match="clashes") as caught:
        request_machine(clash, request(tools=TOOLS))
    assert caught.value.param == "tools"


# ---- reading a run back ------------------------------------------------------------------


def test_the_reader_holds_back_a_tag_until_it_is_clear() -> None:
    rm = with_tools()
    reader = rm.reader()
    shown = [reader.feed("reply", "Let me check <")[0]]
    shown.append(reader.feed("reply", "b> and <")[0])  # not a tag: released
    shown.append(reader.feed("reply", "tool")[0])
    shown.append(reader.feed("reply", "_call>")[0])
    text, calls = reader.feed(rm.call_state or "", "\n" + '{"name": "get_time", "arguments": ')
    assert (text, calls) == ("", ())
    text, calls = reader.feed(rm.call_state or "", '{"zone": "UTC"}}\n</tool_call>')
    assert [(c.name, c.arguments) for c in calls] == [("get_time", '{"zone": "UTC"}')]
    assert calls[0].id.startswith("call_") and len(calls[0].id) == 29
    assert calls[0].id[5:].isalnum()
    reader.feed("tool_more", "\n<tool_call>")
    reader.feed(rm.call_state or "", '\n{"name": "get_weather", "arguments": {"ci')  # cut off
    assert reader.finish() == ("", ())
    assert "".join(shown) == "Let me check <b> and " == reader.content
    assert len(reader.calls) == 1


def test_the_reader_releases_held_text_at_the_end_and_on_other_states() -> None:
    rm = with_tools()
    reader = rm.reader()
    assert reader.feed("reply", "a <tool")[0] == "a "
    assert reader.finish()[0] == "<tool"
    assert reader.content == "a <tool"
    reader = request_machine(load("chat"), request(tools=TOOLS)).reader()
    reader.feed("talk", "x <tool")
    assert reader.feed("code", "print(1)")[0] == "<toolprint(1)"  # held text first


def test_read_call_needs_the_whole_call() -> None:
    text = call_text("get_time", '{"zone": "UTC"}')
    assert read_call(text) == ("get_time", '{"zone": "UTC"}')
    assert read_call(text.removeprefix("<tool_call>")) == ("get_time", '{"zone": "UTC"}')
    assert read_call(text[:-1]) is None
    assert read_call(text.replace('"name": ', '"name":')) is None
    assert read_call("<tool_call>\n[1]\n</tool_call>") is None


def test_assistant_text_writes_calls_as_the_grammar_has_them() -> None:
    calls = (ToolCall("a", "get_time", '{"zone": "UTC"}'), ToolCall("b", "f", "{}"))
    text = assistant_text(Message("assistant", "Sure.", calls))
    assert text == (
        'Sure.<tool_call>\n{"name": "get_time", "arguments": {"zone": "UTC"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>'
    )


def test_tool_syntax_follows_the_chat_template() -> None:
    class Hermes:
        chat_template = "{% for m in messages %}<tool_call>{% endfor %}"

    class Plain:
        chat_template = "{{ messages }}"

    assert tool_syntax(Hermes()) is NATIVE and tool_syntax(Plain()) is GENERIC
    assert tool_syntax(object()) is GENERIC
    assert NATIVE.tool_role == "tool" and GENERIC.tool_role == "user"


def test_finish_reasons() -> None:
    rm = with_tools()

    def result(final: str, stop: Any) -> Result:
        return Result("", final, stop, "", (), ())

    assert rm.finish_reason(result(rm.tool_end or "", "final")) == "tool_calls"
    assert rm.finish_reason(result("end", "final")) == "stop"
    assert rm.finish_reason(result(rm.call_state or "", "max_tokens")) == "length"
    assert rm.finish_reason(result("reply", "state_max_tokens")) == "length"
    assert rm.finish_reason(result("reply", "eos")) == "stop"


# ---- real decoding: the tiny random model at temperature 1 --------------------------------

SAMPLES = 24


@pytest.fixture(scope="module")
def tiny() -> Any:
    return tiny_model()


def sampled(
    rm: RequestMachine, lm: Any, seed: int, samples: int = SAMPLES, **kw: Any
) -> list[Result]:
    """`samples` runs at temperature 1; the tools section is the system prompt."""
    machine = replace(rm.machine, prompt=replace(rm.machine.prompt, system=rm.tools_prompt))
    with Runtime(machine, lm, **kw) as rt:
        sampling = Sampling(temperature=1.0, seed=seed)
        return rt.run_batch(["What is the weather in Rome?"], samples, 8, sampling)[0]


def valid_calls(rm: RequestMachine, result: Result, names: set[str]) -> list[ToolCall]:
    content, calls = rm.read(result)
    for call in calls:
        assert call.name in names, call
        jsonschema.validate(json.loads(call.arguments), SCHEMAS[call.name])
    if rm.finish_reason(result) == "tool_calls":
        assert calls and assistant_text(Message("assistant", content, calls)) == result.text
    return list(calls)


def test_required_calls_only_declared_tools_with_valid_arguments(tiny: Any) -> None:
    rm = with_tools("required")
    results = sampled(rm, tiny, seed=11)
    finished = [r for r in results if rm.finish_reason(r) == "tool_calls"]
    assert len(finished) >= SAMPLES // 2, [r.text for r in results]
    names: set[str] = set()
    for result in results:
        assert result.text.startswith("<tool_call>\n")
        assert rm.content(result) == ""
        names |= {c.name for c in valid_calls(rm, result, {"get_weather", "get_time"})}
    assert names == {"get_weather", "get_time"}  # the grammar allows both, sampling finds both
    assert any(len(rm.tool_calls(r)) > 1 for r in finished)  # parallel calls happen


def test_a_named_function_is_the_only_one_called(tiny: Any) -> None:
    rm = with_tools("function", "get_time")
    for result in sampled(rm, tiny, seed=12):
        calls = valid_calls(rm, result, {"get_time"})
        assert rm.finish_reason(result) != "tool_calls" or calls


def test_parallel_false_makes_at_most_one_call(tiny: Any) -> None:
    rm = with_tools("required", parallel=False)
    results = sampled(rm, tiny, seed=13)
    for result in results:
        assert len(valid_calls(rm, result, {"get_weather", "get_time"})) <= 1
        if rm.finish_reason(result) == "tool_calls":
            assert result.text.endswith("</tool_call>") and result.text.count("<tool_call>") == 1
    assert sum(rm.finish_reason(r) == "tool_calls" for r in results) >= SAMPLES // 2


def test_tool_choice_none_never_calls(tiny: Any) -> None:
    rm = with_tools("none")
    for result in sampled(rm, tiny, seed=14, samples=8, budgets=Budgets(max_tokens=24)):
        assert rm.tool_calls(result) == () and rm.finish_reason(result) != "tool_calls"
        assert rm.content(result) == result.text
        assert {s.state for s in result.transcript} <= {"reply"}


TAG = ["<", "tool", "_", "call", ">"]  # `<tool_call>`, one token a piece


class Lead:
    """Steers the reply state to write `pieces` (one token each) and leaves the rest free."""

    def __init__(self, pieces: list[str]) -> None:
        self.ids = [token_id(p) for p in pieces]

    def __call__(self, state: str, text: str, logits: Any) -> None:
        if state != "reply":
            return
        step = sum(1 for _ in _prefixes(text, self.ids))
        if step < len(self.ids):
            logits[self.ids[step]] += 1e4


def _prefixes(text: str, ids: list[int]) -> Iterator[int]:
    from tests.test_runtime_helpers import tokenizer

    written = ""
    for token in ids:
        piece = tokenizer().decode([token])
        if not text.startswith(written + piece):
            return
        written += piece
        yield token


def test_auto_text_then_a_call_through_the_trigger(tiny: Any) -> None:
    rm = with_tools("auto")
    lead = Lead(["Let", " me", " check", " ", *TAG])
    results = sampled(rm, tiny, seed=15, logits_processors=[lead])
    finished = 0
    for result in results:
        calls = valid_calls(rm, result, {"get_weather", "get_time"})
        assert rm.content(result) == "Let me check "
        assert result.text.startswith("Let me check <tool_call>\n")
        finished += rm.finish_reason(result) == "tool_calls"
        assert calls or rm.finish_reason(result) == "length"
    assert finished >= SAMPLES // 2


def test_only_the_whole_tag_starts_a_call(tiny: Any) -> None:
    """`<t` of `<table>` stays text: the free reply state is held to any text, where only a
    whole trigger fires (a started one would force the rest of the tag)."""
    rm = with_tools("auto")
    lead = Lead(["Hi", " <", "t", "able", ">"])
    budgets = Budgets(max_tokens=16)
    for result in sampled(rm, tiny, seed=19, samples=4, logits_processors=[lead], budgets=budgets):
        assert result.text.startswith("Hi <table>") and rm.tool_calls(result) == ()
        assert rm.content(result) == result.text and rm.finish_reason(result) != "tool_calls"


def test_streamed_text_reads_as_the_finished_run(tiny: Any) -> None:
    rm = with_tools("auto")
    lead = Lead(["Sure", ".", *TAG])
    machine = replace(rm.machine, prompt=replace(rm.machine.prompt, system=rm.tools_prompt))
    with Runtime(machine, tiny, logits_processors=[lead], sampling=Sampling(1.0, seed=3)) as rt:
        reader, shown, streamed, result = rm.reader(), "", [], None
        for event in rt.stream("Weather?"):
            if isinstance(event, TokenEvent):
                text, calls = reader.feed(event.state, event.text)
                shown, streamed = shown + text, streamed + list(calls)
            elif isinstance(event, DoneEvent):
                result = event.result
        text, calls = reader.finish()
        shown, streamed = shown + text, streamed + list(calls)
    assert result is not None
    content, calls = rm.read(result)
    assert shown == content == reader.content == "Sure."
    assert [(c.name, c.arguments) for c in streamed] == [(c.name, c.arguments) for c in calls]


def test_json_schema_answers_parse_and_validate(tiny: Any) -> None:
    fmt = ResponseFormat("json_schema", ANSWER, "person", strict=True)
    rm = request_machine(BASE, request(response_format=fmt))
    results = sampled(rm, tiny, seed=16, budgets=Budgets(max_tokens=60))
    done = [r for r in results if rm.finish_reason(r) == "stop"]
    assert len(done) >= SAMPLES // 2
    for result in done:
        jsonschema.validate(json.loads(rm.content(result)), ANSWER)
        assert rm.content(result) == result.text
    obj = request_machine(BASE, request(response_format=ResponseFormat("json_object")))
    for result in sampled(obj, tiny, seed=17, samples=8, budgets=Budgets(max_tokens=40)):
        if obj.finish_reason(result) == "stop":
            assert isinstance(json.loads(result.text), dict)


def test_json_answer_or_a_call(tiny: Any) -> None:
    fmt = ResponseFormat("json_schema", ANSWER, "person")
    rm = request_machine(BASE, request(response_format=fmt, tools=TOOLS))
    for result in sampled(rm, tiny, seed=18):
        calls = valid_calls(rm, result, {"get_weather", "get_time"})
        reason = rm.finish_reason(result)
        if reason == "stop":
            jsonschema.validate(json.loads(rm.content(result)), ANSWER)
        elif reason == "tool_calls":
            assert calls and rm.content(result) == ""


# ---- the default model -------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_lm() -> Iterator[Any]:
    from llmos_grammar.engines.select import load_for

    lm = load_for("transformers", ModelRef(), None)
    yield lm
    lm.close()


def chat_machine(rm: RequestMachine, system: str = "") -> Machine:
    text = "\n\n".join(p for p in (system, rm.tools_prompt) if p)
    return replace(rm.machine, prompt=replace(rm.machine.prompt, system=text))


@pytest.mark.model
def test_default_model_json_schema(default_lm: Any) -> None:
    fmt = ResponseFormat("json_schema", ANSWER, "person")
    rm = request_machine(BASE, request(response_format=fmt))
    machine = chat_machine(rm, "Extract the person's name and age as JSON.")
    tasks = ["Ada is 36 years old.", "Alan turned 41 last week.", "Ada, aged 7, plays chess."]
    with Runtime(machine, default_lm) as rt:
        for sampling in (Sampling(), Sampling(temperature=1.0, seed=5)):
            for result in rt.run_batch(tasks, 2, 6, sampling):
                for one in result:
                    assert rm.finish_reason(one) == "stop", one.text
                    jsonschema.validate(json.loads(rm.content(one)), ANSWER)


@pytest.mark.model
def test_default_model_tool_calls(default_lm: Any) -> None:
    tasks = ["What is the weather in Oslo for the next 3 days?", "What time is it in UTC?"]
    cases = [("required", None, True, 80), ("function", "get_weather", False, 40)]
    cases.append(("auto", None, True, 30))  # this model answers in text: the calls it makes hold
    for mode, name, parallel, budget in cases:
        rm = with_tools(mode, name, parallel)
        with Runtime(chat_machine(rm), default_lm, budgets=Budgets(max_tokens=budget)) as rt:
            runs = rt.run_batch(tasks, 1, 2, Sampling(temperature=1.0, seed=8))
        allowed = {name} if name else {"get_weather", "get_time"}
        for result in (r for per_task in runs for r in per_task):
            calls = valid_calls(rm, result, allowed)
            if mode != "auto":
                assert result.text.startswith("<tool_call>\n{"), result.text
                assert calls and rm.content(result) == ""
            if not parallel:
                assert rm.finish_reason(result) == "tool_calls" and len(calls) == 1
