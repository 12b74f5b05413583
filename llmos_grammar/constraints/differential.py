"""Differential checking at the byte level: do the two backends accept the same strings?"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterable
from dataclasses import dataclass

from llmos_grammar.constraints.backend import BackendName, Compiled
from llmos_grammar.constraints.llguidance_backend import CompiledConstraint as LLGuidanceCompiled
from llmos_grammar.constraints.outlines_backend import OutlinesCompiled
from llmos_grammar.constraints.registry import byte_compiled
from llmos_grammar.errors import Location
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
def _compiled(kind: str, text: str, close: str | None, backend: BackendName) -> Compiled:
    source = GrammarSource(kind, text, Location("<check>"))  # type: ignore[arg-type]
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
    """The first state of Outlines' byte index (breadth first, at most MAX_COMPARED) where the
    bytes allowed next, or acceptance, differ from llguidance's after the same prefix."""
    outlines = _compiled(source.kind, source.text, close, "outlines")
    llguidance = _compiled(source.kind, source.text, close, "llguidance")
    if not isinstance(outlines, OutlinesCompiled) or not isinstance(llguidance, LLGuidanceCompiled):
        raise TypeError("divergence compares an Outlines and an llguidance constraint")
    finals = outlines.index.get_final_states()
    for state, prefix in _prefixes(outlines):
        theirs = llguidance.new()
        if not theirs.consume(list(prefix)):
            return Divergence(_text(prefix[:-1]), prefix[-1], outlines=True)
        mine = {t for t in outlines.transitions.get(state, {}) if t < 256}
        bits = theirs.matcher.compute_bitmask()
        allowed = {b for b in range(256) if bits[b // 8] >> (b % 8) & 1}
        if allowed != mine:
            byte = min(allowed ^ mine)
            return Divergence(_text(prefix), byte, outlines=byte in mine)
        if (state in finals) != theirs.is_accepting():
            return Divergence(_text(prefix), None, outlines=state in finals)
    return None


def _prefixes(compiled: OutlinesCompiled) -> list[tuple[int, bytes]]:
    """(state, shortest byte prefix reaching it), breadth first."""
    moves = compiled.transitions
    start = compiled.index.get_initial_state()
    seen = {start: b""}
    queue = [start]
    for state in queue:
        if len(seen) >= MAX_COMPARED:
            break
        for token, target in sorted(moves.get(state, {}).items()):
            if token < 256 and target not in seen:
                seen[target] = seen[state] + bytes([token])
                queue.append(target)
    return list(seen.items())


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
    outlines = _compiled(source.kind, source.text, close, "outlines")
    llguidance = _compiled(source.kind, source.text, close, "llguidance")
    found = []
    for text in dict.fromkeys(texts):
        data = (text + (close or "")).encode("utf-8")
        verdict = accepts(outlines, data)
        if verdict != accepts(llguidance, data):
            found.append(Disagreement(text, verdict))
    return found


def samples(source: GrammarSource, close: str | None, count: int, seed: int = 0) -> list[str]:
    """Up to `count` strings of Outlines' language (random walks over its byte index, `close`
    removed), each followed by a few one-byte mutations: probes for `disagreements`."""
    compiled = _compiled(source.kind, source.text, close, "outlines")
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
    return found


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
