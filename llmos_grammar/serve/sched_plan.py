"""A request made ready for the engine's thread: its machine, prompt ids, budgets, sampling."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from llmos_grammar.constraints import Compiled
from llmos_grammar.errors import LlmosError
from llmos_grammar.ir import Budgets, Machine, Sampling
from llmos_grammar.runtime.engine import compile_states
from llmos_grammar.serve.constrain import RequestMachine, request_machine
from llmos_grammar.serve.kept import Replies
from llmos_grammar.serve.models import Served
from llmos_grammar.serve.render import Rendered, render_chat, render_text
from llmos_grammar.serve.toolcalls import tool_syntax
from llmos_grammar.serve.types import BadRequest, GenerationRequest, Message

COMPILED_KEPT = 64  # request machines whose constraints stay compiled


@dataclass(frozen=True)
class Plan:
    """What the engine's thread needs to run a request's rows."""

    request: GenerationRequest
    served: Served
    shape: RequestMachine  # the request's machine and how to read its reply
    constraints: Mapping[str, Compiled]
    prompt: Rendered
    messages: tuple[Message, ...]  # the conversation rendered (a session's history included)
    budgets: Budgets
    sampling: Sampling
    deadline: float  # time.monotonic() by which the request ends

    @property
    def machine(self) -> Machine:
        return self.shape.machine


class Planner:
    """Plans requests on any thread: constraints compile once per request machine."""

    def __init__(self, replies: Replies, timeout_s: float) -> None:
        self.replies = replies
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._compiled: OrderedDict[str, Mapping[str, Compiled]] = OrderedDict()

    def plan(
        self, served: Served, request: GenerationRequest, history: Sequence[Message] = ()
    ) -> Plan:
        """The plan of `request` on `served` after a session's `history`; BadRequest when
        its schema, tools or messages cannot run there."""
        group = served.group
        syntax = tool_syntax(group.lm.tokenizer)
        shape = request_machine(served.machine, request, syntax=syntax)
        constraints = self._constraints(served, shape.machine, request)
        messages = (*history, *request.messages)
        if request.prompt is not None:
            prompt = render_text(group.lm.tokenizer, request.prompt)
        else:
            prompt = render_chat(
                shape.machine.prompt,
                group.lm.tokenizer,
                messages,
                tools_prompt=shape.tools_prompt,
                syntax=syntax,
                known=self.replies.known(served.info.id),
                eos_ids=group.lm.eos_ids,
            )
        budgets = self._budgets(served, request, len(prompt.ids))
        return Plan(
            request,
            served,
            shape,
            constraints,
            prompt,
            messages,
            budgets,
            _sampling(shape.machine.sampling, request),
            time.monotonic() + self.timeout_s,
        )

    def _constraints(
        self, served: Served, machine: Machine, request: GenerationRequest
    ) -> Mapping[str, Compiled]:
        base = served.machine.states
        if all(base.get(name) is state for name, state in machine.states.items()):
            return served.constraints  # the spec's own states (new ones would be new objects)
        key = machine.cache_key or repr(machine)
        with self._lock:
            found = self._compiled.get(key)
            if found is not None:
                self._compiled.move_to_end(key)
                return found
        try:
            compiled, _ = compile_states(machine, served.group.table)
        except LlmosError as exc:
            field = "tools" if request.tools else "response_format"
            raise BadRequest(f"the request's constraint does not compile: {exc}", field) from None
        with self._lock:
            self._compiled[key] = compiled
            while len(self._compiled) > COMPILED_KEPT:
                self._compiled.popitem(last=False)
        return compiled

    def _budgets(self, served: Served, request: GenerationRequest, prompt: int) -> Budgets:
        """The spec's budgets with max_tokens capped by the spec's (and the context's) and
        the wall clock by the request's time limit."""
        spec = served.machine.budgets
        cap = served.info.max_tokens
        window = served.group.engine.context_window()
        if window is not None:
            if prompt >= window:
                raise BadRequest(
                    f"the prompt is {prompt} tokens and the model holds {window}: "
                    "send fewer or shorter messages",
                    param="messages" if request.prompt is None else "prompt",
                )
            cap = min(cap, window - prompt)
        wanted = request.max_tokens if request.max_tokens is not None else cap
        return replace(
            spec, max_tokens=max(1, min(wanted, cap)), wall_s=min(spec.wall_s, self.timeout_s)
        )


def _sampling(spec: Sampling, request: GenerationRequest) -> Sampling:
    """The request's temperature, top_p and seed over the spec's."""
    asked = request.sampling
    return replace(
        spec,
        temperature=spec.temperature if asked.temperature is None else asked.temperature,
        top_p=spec.top_p if asked.top_p is None else asked.top_p,
        seed=spec.seed if asked.seed is None else asked.seed,
    )
