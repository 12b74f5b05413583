"""Frozen dataclasses of the compiled machine: the only form later stages see."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from llmos_grammar.action_policy import ActionPolicy as ActionPolicy
from llmos_grammar.action_policy import Approval as Approval
from llmos_grammar.action_policy import SiteMode as SiteMode
from llmos_grammar.errors import Location

GrammarKind = Literal["lark", "regex", "json_schema"]
# which constraint backend enforces a state: auto = Outlines for regex and JSON schema it
# expresses within bounds, llguidance otherwise (and always for Lark)
BackendChoice = Literal["auto", "outlines", "llguidance"]
# what runs the model: auto (see engines/select.py) or a built-in engine's name (a plugin
# engine registered in engines/registry.py is chosen by name at run time, not in a spec)
EngineChoice = Literal["auto", "transformers", "llamacpp", "vllm"]
# the weights' dtype; auto: float32 on a CPU, bfloat16 on CUDA
Dtype = Literal["auto", "float32", "float16", "bfloat16"]
DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class GrammarSource:
    """A constraint's source text.

    `text` is Lark text (llguidance dialect), a regex, or a JSON schema as
    JSON text. `origin` is the file it was read from (None when inline);
    `location` is where its first character stands, so that a line/column
    inside `text` maps to `location.shifted(line - 1, column)`; for inline
    block scalars `column_offset` is the indentation YAML stripped.
    """

    kind: GrammarKind
    text: str
    location: Location
    origin: str | None = None
    column_offset: int = 0
    # the close delimiter the compiler excluded from the grammar's NO_CLOSE terminals, if any
    excludes: str | None = None
    # a JSON schema's whitespace between JSON tokens: "compact" (none), "flexible" (any JSON
    # whitespace) or a regex of JSON whitespace; both backends enforce the same (grammar/jsonspace)
    json_whitespace: str = "compact"


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None


@dataclass(frozen=True)
class Samples:
    """Several samples per task, voted on: `n` rows of one batch at `temperature`.

    `vote` names the state whose normalized text is voted on; None votes on the
    final answer (the text after the last action output).
    """

    n: int = 1
    temperature: float = 0.7
    vote: str | None = None


@dataclass(frozen=True)
class Transition:
    """Switch to `target` when the model emits `trigger` in a text state.

    `path` is where the trigger is written inside its state: `("on", "[CODE]")` in the mapping
    form, `("on", 0, "when", 1)` in the list form (empty when built in code).
    """

    trigger: str
    target: str
    path: tuple[str | int, ...] = ()


@dataclass(frozen=True)
class TextState:
    """Free (or constrained) text, left when the model writes one of `triggers`.

    When several triggers are written at the same place, the first in `triggers` fires: the
    spellings of one list entry (`when: ["```python", "```py"]`) come longest first, so the
    longer one fires when the model writes it whole.
    """

    name: str
    triggers: tuple[Transition, ...] = ()
    on_eos: str | None = None
    constraint: GrammarSource | None = None
    max_tokens: int | None = None
    sampling: Sampling | None = None  # overrides the machine's while in this state
    backend: BackendChoice = "auto"
    type: Literal["text"] = "text"


@dataclass(frozen=True)
class GrammarState:
    """Output constrained by `constraint`, ended by `close`, then `next`."""

    name: str
    constraint: GrammarSource
    close: str
    next: str
    max_tokens: int | None = None
    open: str = ""  # text forced on entry (after the trigger), e.g. "\n"
    sampling: Sampling | None = None  # overrides the machine's while in this state
    backend: BackendChoice = "auto"
    type: Literal["grammar"] = "grammar"


@dataclass(frozen=True)
class ActionState:
    """Run the policy action `action` on the text of state `input`.

    `output` is a str.format template over the ActionResult fields; `next` is
    the state after a successful run, `on_error` after a failed one.
    """

    name: str
    action: str
    input: str
    output: str
    next: str
    on_error: str | None = None
    error_output: str | None = None
    type: Literal["action"] = "action"


@dataclass(frozen=True)
class FinalState:
    name: str
    type: Literal["final"] = "final"


State = TextState | GrammarState | ActionState | FinalState


@dataclass(frozen=True)
class ModelRef:
    """Which model to run: the embedded default, a hub id, a folder or a GGUF."""

    name: str = DEFAULT_MODEL
    gguf_file: str | None = None
    dtype: Dtype = "auto"
    device: str = "auto"


@dataclass(frozen=True)
class Prompt:
    system: str = ""
    chat_template: bool = True
    # text forced at the start of the assistant's turn (e.g. "[CODE]\n")
    assistant_prefix: str = ""
    # a template for the user turn; "{task}" is replaced by the task
    user: str = "{task}"


@dataclass(frozen=True)
class Budgets:
    max_tokens: int = 1024
    max_actions: int = 8
    wall_s: float = 300.0


@dataclass(frozen=True)
class SessionLimits:
    """An interactive session's context: at most `max_context` tokens (None: the model's)."""

    max_context: int | None = None


@dataclass(frozen=True)
class GrammarTest:
    state: str
    accept: tuple[str, ...] = ()
    reject: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    path: str
    actions: Mapping[str, ActionPolicy]


@dataclass(frozen=True)
class Machine:
    """A compiled spec: states, prompt, model, budgets and the bound policy."""

    name: str
    path: str
    start: str
    states: Mapping[str, State]
    policy: Policy
    model: ModelRef = field(default_factory=ModelRef)
    prompt: Prompt = field(default_factory=Prompt)
    sampling: Sampling = field(default_factory=Sampling)
    budgets: Budgets = field(default_factory=Budgets)
    engine: EngineChoice = "auto"
    samples: Samples = field(default_factory=Samples)
    session: SessionLimits = field(default_factory=SessionLimits)
    tests: tuple[GrammarTest, ...] = ()
    description: str = ""
    # hash of llmos version, spec, policy and grammar texts: names the exact spec a
    # trace (header `spec_key`) or an evaluation came from
    cache_key: str = ""
