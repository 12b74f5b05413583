"""What `llmos-check --explain` found: frozen data that the text and JSON views print."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from llmos_grammar.constraints.explain.jsontext import SchemaError
from llmos_grammar.constraints.explain.lexemes import Lexeme
from llmos_grammar.constraints.explain.triggers import TriggerHit

Verdict = Literal["accepted", "prefix", "rejected"]


@dataclass(frozen=True)
class Expected:
    """What the constraint allows at one place of the text."""

    chars: tuple[str, ...]  # the bytes allowed next, as character classes
    # lexemes that may start here (Lark), in the grammar's names, with the rule using each
    starting: tuple[tuple[str, str], ...] = ()
    in_progress: Lexeme | None = None  # the lexeme the place is inside, and what it may become
    forced: str = ""  # text the grammar forces next
    close: bool | None = None  # whether the state's close may follow here (grammar states)
    json_path: str | None = None  # where in the JSON value the place is (JSON schema)
    end: bool = False  # whether the text may end here (the grammar accepts it whole)
    unnamed: str = ""  # why a Lark grammar's lexemes are not named here, when they are not

    @property
    def lexemes(self) -> tuple[str, ...]:
        """The lexemes that may start here, each once."""
        return tuple(dict.fromkeys(lexeme for lexeme, _ in self.starting))

    def by_rule(self) -> dict[str, list[str]]:
        """rule -> the lexemes that may start here in it (in the grammar's order)."""
        rules: dict[str, list[str]] = {}
        for lexeme, rule in self.starting:
            rules.setdefault(rule, []).append(lexeme)
        return rules


@dataclass(frozen=True)
class TokenStep:
    """One token of the text as the decoder feeds it."""

    id: int
    start: int  # byte offset in the text
    text: bytes
    allowed: bool  # whether the mask allowed it
    forced: bool  # fed as forced by the grammar (not sampled)
    mask_size: int  # tokens the mask allowed at this step (0 for forced steps)


@dataclass(frozen=True)
class TokenWalk:
    """The text token by token with a model's tokenizer, through the state's constraint
    compiled for that tokenizer (as the runtime compiles it)."""

    model: str
    backend: str
    vocab_size: int
    steps: tuple[TokenStep, ...]
    refused: int | None  # index of the step the mask refused
    ended: str = ""  # how the state ended inside the text ("close", a trigger), if it did
    rest: str = ""  # the rest of a begun trigger, which the runtime forces
    error: str = ""  # the matcher's error, when it entered its error state


@dataclass(frozen=True)
class Explanation:
    """A text run through one state's constraint, byte by byte."""

    spec: str
    state: str
    kind: str  # "lark", "regex", "json_schema", or "text" (free text)
    backend: str  # the backend that enforces it ("" for free text)
    close: str
    open: str  # text the runtime forces on entering the state, before the constraint
    text: bytes
    verdict: Verdict
    taken: int  # the longest prefix the constraint accepted, in bytes
    refused: int | None  # the byte the constraint refused (None when it took all it saw)
    expected: Expected | None  # at the refused byte, or after the text
    ends_at: int | None = None  # where the state ends inside the text (a close or a trigger)
    ended_by: str = ""  # "close" or the trigger that fired
    then: str = ""  # the state the decoder moves to there
    triggers: tuple[TriggerHit, ...] = ()
    schema_errors: tuple[SchemaError, ...] = ()
    notes: tuple[str, ...] = ()
    tokens: TokenWalk | None = None
