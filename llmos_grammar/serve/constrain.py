"""A request's machine: the served model's machine with `response_format` and `tools` as states.

- `response_format` json_object / json_schema: the answer states (text states that end the
  turn) are constrained to JSON of the schema instead of their own grammar; refused on a
  spec whose reply can end elsewhere or whose answer state also starts other states.
- `tools` (tool_choice auto): every free text state gains the trigger `<tool_call>`, which
  enters a grammar state whose language is the declared calls (the name one of the tools',
  the arguments valid for that tool's schema), closed by `</tool_call>`. With parallel calls
  a newline and `<tool_call>` may follow, else the turn ends: after the calls it always ends.
  `required` and a named function force `<tool_call>` first (a reply that starts with free
  text only); `none` adds nothing.

Machines are kept by a hash of the base machine and of the request's schemas and choices.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from llmos_grammar.errors import Location
from llmos_grammar.ir import (
    Budgets,
    FinalState,
    GrammarSource,
    GrammarState,
    Machine,
    ModelRef,
    Policy,
    State,
    TextState,
    Transition,
)
from llmos_grammar.serve.proto_schema import (
    OBJECT,
    canonical,
    check_schema,
    digest,
    json_body,
    lark_literal,
)
from llmos_grammar.serve.proto_tools import tools_prompt
from llmos_grammar.serve.toolcalls import GENERIC, ReplyReader, ToolSyntax, read_all
from llmos_grammar.serve.types import (
    BadRequest,
    FinishReason,
    GenerationRequest,
    JsonSchema,
    Tool,
    ToolCall,
)

if TYPE_CHECKING:
    from llmos_grammar.runtime.events import Result

MACHINES_KEPT = 256
_WHERE = Location("<request>")
ANY_TEXT = GrammarSource("regex", r"(?s:.*)", _WHERE)


@dataclass(frozen=True)
class RequestMachine:
    """The machine one request runs, and how to read its reply.

    `tools_prompt` presents the callable tools to the model (a section of the system
    prompt; empty without tools). `call_state` is the state a call is written in,
    `tool_states` every state of the calls, `tagged` the states a call may start from,
    `visible` the states whose text is the reply's content (None: all but the tool
    states), `tool_end` the final state after the calls.
    """

    machine: Machine
    tools_prompt: str = ""
    syntax: ToolSyntax = GENERIC
    call_state: str | None = None
    tool_states: frozenset[str] = frozenset()
    tagged: frozenset[str] = frozenset()
    visible: frozenset[str] | None = None
    tool_end: str | None = None

    def reader(self) -> ReplyReader:
        """A reader for one run's text as it streams (state by state)."""
        return ReplyReader(
            self.syntax, self.tool_states, self.tagged, self.call_state, self.visible
        )

    def read(self, result: Result) -> tuple[str, tuple[ToolCall, ...]]:
        """The content and the calls of a finished run (calls get fresh ids each time)."""
        parts = ((s.state, s.text) for s in result.transcript if s.source != "prompt")
        reader = read_all(self.reader(), parts)
        return reader.content, tuple(reader.calls)

    def tool_calls(self, result: Result) -> tuple[ToolCall, ...]:
        """The whole calls of a run, ids `call_` + 24 random characters (new at each read)."""
        return self.read(result)[1]

    def content(self, result: Result) -> str:
        """The run's visible text: no call markup (with response_format, the answer only)."""
        return self.read(result)[0]

    def finish_reason(self, result: Result) -> FinishReason:
        """ "tool_calls" when the run ended after its calls, "length" on a token budget."""
        if self.tool_end is not None and result.final_state == self.tool_end:
            return "tool_calls"
        if result.stop_reason in ("max_tokens", "state_max_tokens"):
            return "length"
        return "stop"


def plain_machine(model: ModelRef, name: str, budgets: Budgets | None = None) -> Machine:
    """The plain base model's machine: free text until the end of the turn."""
    states: dict[str, State] = {"reply": TextState("reply", on_eos="end"), "end": FinalState("end")}
    return Machine(
        name=name,
        path="",
        start="reply",
        states=states,
        policy=Policy("", {}),
        model=model,
        budgets=budgets or Budgets(),
        description="the base model, without a spec",
        cache_key="plain:" + digest(f"{name}\0{model}"),
    )


def request_machine(
    base: Machine, request: GenerationRequest, *, syntax: ToolSyntax = GENERIC
) -> RequestMachine:
    """The machine for `request` on the served machine `base` (kept by a hash); BadRequest
    with the field when a schema does not compile or the combination makes no sense."""
    key = _key(base, request, syntax)
    with _LOCK:
        found = _MACHINES.get(key)
        if found is not None:
            _MACHINES.move_to_end(key)
            return found
    made = _build(base, request, syntax, key)
    with _LOCK:
        _MACHINES[key] = made
        while len(_MACHINES) > MACHINES_KEPT:
            _MACHINES.popitem(last=False)
    return made


_MACHINES: OrderedDict[str, RequestMachine] = OrderedDict()
_LOCK = threading.Lock()


def _key(base: Machine, request: GenerationRequest, syntax: ToolSyntax) -> str:
    fmt = request.response_format
    active = _active(request)
    parts = [
        base.cache_key or repr(base),
        repr(syntax),
        fmt.kind,
        canonical(fmt.schema) if fmt.schema is not None else "",
        request.tool_choice.mode if active else "none",
        request.tool_choice.name or "",
        str(request.parallel_tool_calls),
        *(canonical(_tool_data(t)) for t in (active or ())),
    ]
    return digest("\0".join(parts))


def _tool_data(tool: Tool) -> JsonSchema:
    return {"name": tool.name, "description": tool.description, "parameters": tool.parameters}


def _active(request: GenerationRequest) -> tuple[Tool, ...]:
    """The tools the model may call: none for tool_choice none, one for a named function."""
    choice = request.tool_choice
    if choice.mode == "none" or not request.tools:
        return ()
    if choice.mode == "function":
        named = tuple(t for t in request.tools if t.name == choice.name)
        if not named:
            raise BadRequest(
                f"tool_choice names the function {choice.name!r}, which is not among the "
                "request's tools: declare it in tools or name a declared one",
                param="tool_choice.function.name",
            )
        return named
    return request.tools


def _build(
    base: Machine, request: GenerationRequest, syntax: ToolSyntax, key: str
) -> RequestMachine:
    _check_schemas(request)
    states: dict[str, State] = dict(base.states)
    fmt = request.response_format
    active = _active(request)
    answers = _answer_states(base) if fmt.kind != "text" else ()
    schema = (fmt.schema or OBJECT) if fmt.kind == "json_schema" else OBJECT
    auto = request.tool_choice.mode == "auto"
    for name in answers:
        body = "start: " + json_body(schema)
        if active and auto:
            body += " | " + lark_literal(syntax.open_tag)
        states[name] = replace(_text(states[name]), constraint=_lark(body), backend="llguidance")
    visible = frozenset(answers) if answers else None
    machine = replace(base, states=states, cache_key="request:" + key)
    if not active:
        listed = tools_prompt(request.tools, syntax) if request.tools else ""
        return RequestMachine(machine, listed, syntax=syntax, visible=visible)
    return _with_tools(base, machine, active, request, syntax, answers, visible)


def _with_tools(
    base: Machine,
    machine: Machine,
    tools: Sequence[Tool],
    request: GenerationRequest,
    syntax: ToolSyntax,
    answers: Sequence[str],
    visible: frozenset[str] | None,
) -> RequestMachine:
    states = dict(machine.states)
    taken = set(states)
    call, end, more = (_fresh(n, taken) for n in ("tool_call", "tool_end", "tool_more"))
    parallel = request.parallel_tool_calls
    states[call] = GrammarState(
        call,
        _lark(_calls_grammar(tools, syntax)),
        close=syntax.close,
        next=more if parallel else end,
        open=syntax.open,
        backend="llguidance",
    )
    if parallel:
        again = lark_literal(syntax.separator + syntax.open_tag)
        states[more] = TextState(
            more,
            triggers=(Transition(syntax.open_tag, call),),
            on_eos=end,
            constraint=_lark(f"start: ({again})?"),
            backend="llguidance",
        )
    states[end] = FinalState(end)
    tagged: frozenset[str] = frozenset()
    prompt, start = machine.prompt, machine.start
    if request.tool_choice.mode == "auto":
        tagged = _add_trigger(states, base, answers, syntax.open_tag, call)
    else:
        _check_call_first(base, answers, request.tool_choice.mode)
        prompt, start = replace(prompt, assistant_prefix=syntax.open_tag), call
    tool_states = frozenset({call, more} if parallel else {call})
    return RequestMachine(
        replace(machine, states=states, prompt=prompt, start=start),
        tools_prompt(request.tools, syntax),
        syntax,
        call,
        tool_states,
        tagged,
        visible,
        end,
    )


def _calls_grammar(tools: Sequence[Tool], syntax: ToolSyntax) -> str:
    """Lark for one call's JSON: the name one of `tools`', the arguments that tool's."""
    lines = ["start: " + " | ".join(f"call_{i}" for i in range(len(tools)))]
    for i, tool in enumerate(tools):
        lines.append(f'call_{i}: {lark_literal(syntax.head(tool.name))} args_{i} "}}"')
        lines.append(f"args_{i}: {json_body(tool.parameters)}")
    return "\n".join(lines) + "\n"


def _add_trigger(
    states: dict[str, State], base: Machine, answers: Sequence[str], tag: str, call: str
) -> frozenset[str]:
    """The call's trigger on every free text state (and the JSON answer states); their names."""
    tagged = []
    for name, state in base.states.items():
        if not isinstance(state, TextState) or (
            state.constraint is not None and name not in answers
        ):
            continue
        for t in state.triggers:
            if t.trigger.startswith(tag) or tag.startswith(t.trigger):
                raise BadRequest(
                    f"model {base.name!r} already uses the trigger {t.trigger!r} in state "
                    f"{name!r}, which clashes with tool calls ({tag}): use the base model",
                    param="tools",
                )
        current = _text(states[name])
        tagged_state = replace(current, triggers=(*current.triggers, Transition(tag, call)))
        if current.constraint is None and not current.triggers:
            # any text, so that only the whole tag starts a call: a started trigger fires in
            # an unconstrained state, and `<t` of `<table>` would become a call
            tagged_state = replace(tagged_state, constraint=ANY_TEXT, backend="llguidance")
        states[name] = tagged_state
        tagged.append(name)
    if not tagged:
        raise BadRequest(
            f"model {base.name!r} has no free text state where a tool call could start "
            "(every state of its reply is a grammar or an action): use the base model for tools",
            param="tools",
        )
    return frozenset(tagged)


def _check_call_first(base: Machine, answers: Sequence[str], mode: str) -> None:
    """tool_choice required or a named function: the reply must be able to start with a call."""
    start = base.states[base.start]
    free = isinstance(start, TextState) and (start.constraint is None or base.start in answers)
    if free and not base.prompt.assistant_prefix:
        return
    choice = "required" if mode == "required" else "a named function"
    how = "after forced text" if free else "(a grammar or an action, not free text)"
    raise BadRequest(
        f"tool_choice {choice} makes the reply start with a call, but model {base.name!r} "
        f"starts its reply in state {base.start!r} {how}: use tool_choice auto, or the base model",
        param="tool_choice",
    )


def _answer_states(base: Machine) -> tuple[str, ...]:
    """The text states that end the turn (their own grammar, if any, gives way to the
    JSON); BadRequest when one also starts other states or the reply may end elsewhere
    (then no answer could be held to the schema)."""
    finals = {n for n, s in base.states.items() if isinstance(s, FinalState)}
    answers: list[str] = []
    for name, state in base.states.items():
        if isinstance(state, TextState) and state.on_eos in finals:
            if state.triggers:
                shown = ", ".join(repr(t.trigger) for t in state.triggers)
                raise _no_answer(
                    base, f"its answer state {name!r} also starts other states ({shown})"
                )
            answers.append(name)
        elif _ends_turn(state, finals):
            raise _no_answer(base, f"its reply can end in state {name!r} without an answer")
    if not answers:
        raise _no_answer(base, "it has no text state that ends the reply")
    return tuple(answers)


def _ends_turn(state: State, finals: set[str]) -> bool:
    if isinstance(state, TextState):
        return any(t.target in finals for t in state.triggers)
    if isinstance(state, GrammarState):
        return state.next in finals
    if isinstance(state, FinalState):
        return False
    return state.next in finals or state.on_error in finals


def _no_answer(base: Machine, why: str) -> BadRequest:
    return BadRequest(
        f"response_format cannot hold model {base.name!r} to JSON: {why}; "
        "use the base model, or a spec whose reply ends in a text answer",
        param="response_format",
    )


def _check_schemas(request: GenerationRequest) -> None:
    fmt = request.response_format
    if fmt.kind == "json_schema" and fmt.schema is not None:
        check_schema(fmt.schema, "response_format.json_schema")
    for i, tool in enumerate(request.tools):
        check_schema(tool.parameters, f"tools[{i}].function.parameters")


def _text(state: State) -> TextState:
    if not isinstance(state, TextState):
        raise TypeError(f"state {state.name!r} is not a text state")
    return state


def _lark(text: str) -> GrammarSource:
    return GrammarSource("lark", text, _WHERE)


def _fresh(name: str, taken: set[str]) -> str:
    """`name`, or `name_2`, `name_3`... when a state of that name exists; now taken."""
    found, n = name, 1
    while found in taken:
        n += 1
        found = f"{name}_{n}"
    taken.add(found)
    return found
