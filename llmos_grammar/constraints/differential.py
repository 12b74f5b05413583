"""Differential checking at the byte level: do the two backends accept the same strings?"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from llmos_grammar.constraints.backend import BackendName, Compiled
from llmos_grammar.constraints.llguidance_backend import CompiledConstraint as LLGuidanceCompiled
from llmos_grammar.constraints.llguidance_backend import LLGuidanceConstraint
from llmos_grammar.constraints.outlines_backend import OutlinesCompiled
from llmos_grammar.constraints.registry import byte_compiled
from llmos_grammar.grammar.translate import bare
from llmos_grammar.ir import GrammarSource

MAX_SAMPLE_BYTES = 160
MAX_COMPARED = 4000  # index states whose masks are compared
MUTATION_BYTES = b'a0 "{}[],:\\-.\n'


@dataclass(frozen=True)
class Disagreement:
    """A string one backend accepts and the other rejects."""

    text: str
    outlines: bool  # whether Outlines accepts it (llguidance says the opposite)


@functools.lru_cache(maxsize=128)
def _compiled(source: GrammarSource, close: str | None, backend: BackendName) -> Compiled:
    """`source` (a `bare` one) compiled by `backend` over bytes, once per process."""
    return byte_compiled(source, close, backend)


@dataclass(frozen=True)
class Divergence:
    """After `prefix` the backends allow different things: `byte` next, or the end (None)."""

    prefix: str
    byte: int | None
    outlines: bool  # whether Outlines allows it (llguidance says the opposite)

    def message(self) -> str:
        what = "the end of the string" if self.byte is None else repr(chr(self.byte))
        yes, no = ("Outlines", "llguidance") if self.outlines else ("llguidance", "Outlines")
        return f"after {self.prefix!r}, {yes} allows {what} and {no} does not"


def divergence(source: GrammarSource, close: str | None) -> Divergence | None:
    """The first state of Outlines' byte index (depth first over shortest-prefix edges, at most
    MAX_COMPARED states) where the bytes allowed next, or acceptance, differ from llguidance's
    after the same prefix. One llguidance matcher walks the tree, rolling back on the way up."""
    outlines = _compiled(bare(source), close, "outlines")
    llguidance = _compiled(bare(source), close, "llguidance")
    if not isinstance(outlines, OutlinesCompiled) or not isinstance(llguidance, LLGuidanceCompiled):
        raise TypeError("divergence compares an Outlines and an llguidance constraint")
    finals = outlines.index.get_final_states()
    theirs = llguidance.new()
    prefix = bytearray()
    for state, edge in _tree_walk(outlines):
        if edge < 0:  # leaving a state: undo the byte that entered it
            theirs.rollback(1)
            prefix.pop()
            continue
        if edge < 256:
            prefix.append(edge)
            if not theirs.consume([edge]):
                return Divergence(_text(bytes(prefix[:-1])), edge, outlines=True)
        found = _compare(outlines, finals, state, theirs, bytes(prefix))
        if found is not None:
            return found
    return None


def _compare(
    outlines: OutlinesCompiled,
    finals: set[int],
    state: int,
    theirs: LLGuidanceConstraint,
    prefix: bytes,
) -> Divergence | None:
    mine = {t for t in outlines.transitions.get(state, {}) if t < 256}
    bits = theirs.matcher.compute_bitmask()
    allowed = {b for b in range(256) if bits[b // 8] >> (b % 8) & 1}
    if allowed != mine:
        byte = min(allowed ^ mine)
        return Divergence(_text(prefix), byte, outlines=byte in mine)
    if (state in finals) != theirs.is_accepting():
        return Divergence(_text(prefix), None, outlines=state in finals)
    return None


def _tree_walk(compiled: OutlinesCompiled) -> Iterator[tuple[int, int]]:
    """(state, byte that entered it) entering each state of a shortest-prefix tree, depth
    first; (state, -1) when leaving it. The root is entered by 256 (no byte)."""
    moves = compiled.transitions
    start = compiled.index.get_initial_state()
    parent = {start: (start, 256)}
    queue = [start]
    for state in queue:
        if len(parent) >= MAX_COMPARED:
            break
        for token, target in sorted(moves.get(state, {}).items()):
            if token < 256 and target not in parent:
                parent[target] = (state, token)
                queue.append(target)
    children: dict[int, list[tuple[int, int]]] = {}
    for child, (up, token) in parent.items():
        if child != start:
            children.setdefault(up, []).append((child, token))
    stack: list[tuple[int, int, bool]] = [(start, 256, False)]
    while stack:
        state, token, leaving = stack.pop()
        if leaving:
            yield state, -1
            continue
        yield state, token
        if state != start:
            stack.append((state, token, True))
        for child, byte in reversed(children.get(state, [])):
            stack.append((child, byte, False))


def _text(data: bytes) -> str:
    return data.decode("utf-8", "backslashreplace")


def accepts(compiled: Compiled, data: bytes) -> bool:
    """Whether the whole of `data` is a string of the compiled constraint (byte tokens)."""
    matcher = compiled.new()
    return matcher.consume(list(data)) and matcher.is_accepting()


def disagreements(
    source: GrammarSource, close: str | None, texts: Iterable[str]
) -> list[Disagreement]:
    """The strings of `texts` (each followed by `close`) the backends judge differently."""
    return list(_disagreements(bare(source), close, tuple(texts)))


@functools.lru_cache(maxsize=256)
def _disagreements(
    source: GrammarSource, close: str | None, texts: tuple[str, ...]
) -> tuple[Disagreement, ...]:
    outlines = _compiled(source, close, "outlines")
    llguidance = _compiled(source, close, "llguidance")
    found = []
    for text in dict.fromkeys(texts):
        data = (text + (close or "")).encode("utf-8")
        verdict = accepts(outlines, data)
        if verdict != accepts(llguidance, data):
            found.append(Disagreement(text, verdict))
    return tuple(found)


def samples(source: GrammarSource, close: str | None, count: int, seed: int = 0) -> list[str]:
    """Up to `count` strings of Outlines' language (random walks over its byte index, `close`
    removed), each followed by a few one-byte mutations: probes for `disagreements`."""
    return list(_samples(bare(source), close, count, seed))


@functools.lru_cache(maxsize=256)
def _samples(source: GrammarSource, close: str | None, count: int, seed: int) -> tuple[str, ...]:
    compiled = _compiled(source, close, "outlines")
    if not isinstance(compiled, OutlinesCompiled):
        raise TypeError("samples come from an Outlines index")
    rng = random.Random(seed)
    found: list[str] = []
    for _ in range(count * 2):
        walked = _walk(compiled, rng)
        if walked is None:
            continue
        text = walked[: len(walked) - len(close or "")]
        found.append(text)
        found += _mutations(text, rng)
        if len(found) >= count * 4:
            break
    return tuple(found)


@functools.lru_cache(maxsize=128)
def _choices(compiled: OutlinesCompiled) -> dict[int, tuple[list[int], list[int]]]:
    """state -> (allowed bytes, the ASCII ones), filled as walks reach states."""
    return {}


def _walk(compiled: OutlinesCompiled, rng: random.Random) -> str | None:
    """One accepted UTF-8 string, or None when the walk ran out of room."""
    index = compiled.index
    moves = compiled.transitions
    finals = index.get_final_states()
    choices = _choices(compiled)
    state = index.get_initial_state()
    out = bytearray()
    while len(out) < MAX_SAMPLE_BYTES:
        if state not in choices:
            every = [t for t in moves.get(state, {}) if t < 256]
            choices[state] = (every, [t for t in every if t < 128])
        allowed, ascii_ = choices[state]
        if state in finals and (not allowed or rng.random() < 0.3):
            try:
                return out.decode("utf-8")
            except UnicodeDecodeError:
                return None
        if not allowed:
            return None
        token = rng.choice(ascii_ if ascii_ and rng.random() < 0.9 else allowed)
        out.append(token)
        state = moves[state][token]
    return None


def _mutations(text: str, rng: random.Random) -> list[str]:
    """`text` with one character dropped, doubled, or one byte inserted."""
    if not text:
        return [chr(rng.choice(MUTATION_BYTES))]
    i = rng.randrange(len(text))
    extra = chr(rng.choice(MUTATION_BYTES))
    return [text[:i] + text[i + 1 :], text[:i] + text[i] + text[i:], text[:i] + extra + text[i:]]
