"""Majority vote over the answers of several samples: normalization, the final answer, tables.

Pure text functions (no torch): `normalize_answer` maps "5050", "5,050",
"5050.0" and "The answer is 5050." to one key; `majority` counts keys, the
earliest row breaking ties; `voted_text` picks the text a sample votes with.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from llmos_grammar.ir import GrammarState, Machine, Sampling, TextState

if TYPE_CHECKING:
    from llmos_grammar.runtime.events import Result

# A number as people write it: sign, digits (optionally grouped by commas in
# threes), a fraction, an exponent. Not preceded or followed by a letter, digit
# or another decimal point, so "v2", "x1" and "1.2.3" are not numbers.
NUMBER = re.compile(
    r"(?<![\w.])[-+−]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?"
    r"(?!\w|[.,]\d)"
)
# What introduces the answer in a sentence: "the answer is", "answer:", "=".
MARKER = re.compile(r"\banswer\s*(?:is|:|=)|=|\bresult\s*(?:is|:)|\btotal\s*(?:is|:)")
TRAILING = ".,;:!?…"
QUOTES = "\"'`“”‘’"


def parse_number(text: str) -> Decimal | None:
    """The value of `text` when it is one number as written ("5,050", "-3.5", "1e3"), else None."""
    text = text.strip().replace("−", "-")
    if not NUMBER.fullmatch(text):
        return None
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def number_key(value: Decimal) -> str:
    """One spelling per value: 5050, 5050.0 and 5.05e3 all give "5050"; -0 gives "0"."""
    if abs(value.adjusted()) > 30:  # far too large or small to spell out digit by digit
        return format(value.normalize(), "e")
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def find_numbers(text: str) -> list[tuple[int, Decimal]]:
    """Every number in `text`, with its offset."""
    found = []
    for match in NUMBER.finditer(text):
        value = parse_number(match.group())
        if value is not None:
            found.append((match.start(), value))
    return found


def _clean(text: str) -> str:
    text = " ".join(text.split()).casefold()
    previous = None
    while previous != text:
        previous = text
        text = text.strip().rstrip(TRAILING).strip(QUOTES)
    return text


def normalize_answer(text: str) -> str:
    """The key an answer votes with.

    Whitespace is collapsed, case folded, trailing punctuation and wrapping
    quotes dropped. A text that contains numbers votes with one of them, as a
    number: the first after the last "answer is" / "answer:" / "=" when there
    is one, else the last ("48 times 27 is 1296." -> "1296"). Text without a
    number votes with its cleaned self; an empty text abstains ("").
    """
    cleaned = _clean(text)
    numbers = find_numbers(cleaned)
    if not numbers:
        return cleaned
    markers = [m.end() for m in MARKER.finditer(cleaned)]
    if markers:
        after = [value for offset, value in numbers if offset >= markers[-1]]
        if after:
            return number_key(after[0])
    return number_key(numbers[-1][1])


@dataclass(frozen=True)
class VoteEntry:
    """One distinct answer: the text of its first row, its key, how many rows gave it, which."""

    answer: str
    key: str
    votes: int
    rows: tuple[int, ...]


@dataclass(frozen=True)
class VoteTable:
    """Answers by votes (most first; ties in order of their first row); empty answers abstain."""

    entries: tuple[VoteEntry, ...]
    total: int  # rows that took part, abstentions included

    @property
    def winner(self) -> VoteEntry | None:
        return self.entries[0] if self.entries else None

    @property
    def winning_row(self) -> int:
        """The earliest row that gave the winning answer (row 0 when every row abstained)."""
        return self.entries[0].rows[0] if self.entries else 0

    @property
    def answer(self) -> str:
        return self.entries[0].answer if self.entries else ""


def majority(texts: Sequence[str]) -> VoteTable:
    """Count the normalized answers of `texts` (row i is texts[i])."""
    rows: dict[str, list[int]] = {}
    first_text: dict[str, str] = {}
    for row, text in enumerate(texts):
        key = normalize_answer(text)
        if not key:
            continue
        rows.setdefault(key, []).append(row)
        first_text.setdefault(key, " ".join(text.split()))
    ordered = sorted(rows.items(), key=lambda item: (-len(item[1]), item[1][0]))
    entries = tuple(
        VoteEntry(first_text[key], key, len(found), tuple(found)) for key, found in ordered
    )
    return VoteTable(entries, len(texts))


def final_answer(result: Result) -> str:
    """What the model wrote after the last injected action output; its whole reply when no
    action ran (a conversation may answer without running code)."""
    spans = list(result.transcript)
    last = max((i for i, s in enumerate(spans) if s.source == "injected"), default=None)
    if last is None or not result.actions:
        return "".join(s.text for s in spans if s.source == "model")
    return "".join(s.text for s in spans[last + 1 :] if s.source == "model")


def state_text(result: Result, machine: Machine, name: str) -> str:
    """The text of the last visit of state `name`: its model-written and forced text.

    The assistant prefix (forced in the start state), a grammar state's `open`
    and `close`, and a text state's trigger are dropped: what remains is the
    text the state captured.
    """
    visit: list[str] = []
    inside = opening = False
    for i, segment in enumerate(result.transcript):
        if segment.state == name and segment.source in ("model", "forced"):
            if not inside:
                visit, inside = [], True
                opening = all(s.source == "prompt" for s in result.transcript[:i])
            visit.append(segment.text)
        elif segment.state != name:
            inside = False
    text = "".join(visit)
    if opening and name == machine.start:
        text = text.removeprefix(machine.prompt.assistant_prefix)
    state = machine.states.get(name)
    if isinstance(state, GrammarState):
        text = text.removeprefix(state.open).removesuffix(state.close)
    elif isinstance(state, TextState) and state.triggers:
        cuts = [text.find(t.trigger) for t in state.triggers if t.trigger in text]
        text = text[: min(cuts)] if cuts else text
    return text


def voted_text(result: Result, machine: Machine) -> str:
    """The text a sample votes with: the state `samples.vote` names, else the final answer."""
    vote = machine.samples.vote
    return state_text(result, machine, vote) if vote else final_answer(result)


def samples_sampling(
    machine: Machine, n: int, temperature: float | None = None, seed: int | None = None
) -> Sampling:
    """The sampling of n samples per task: `temperature` when given, else the spec's
    `samples.temperature` when n > 1, else the spec's sampling; `seed` when given."""
    sampling = machine.sampling
    if temperature is not None:
        sampling = replace(sampling, temperature=temperature)
    elif n > 1:
        sampling = replace(sampling, temperature=machine.samples.temperature)
    if seed is not None:
        sampling = replace(sampling, seed=seed)
    return sampling
