"""Can a close delimiter occur inside a grammar's language? A probe with witnesses."""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import TYPE_CHECKING

from llmos_grammar.errors import Diagnostic, GrammarError, Location
from llmos_grammar.grammar.backend import allowed, compile_matcher, consume, matcher
from llmos_grammar.grammar.larktext import (
    LITERAL_TOKEN,
    START_DEF,
    rule_lexemes,
    terminal_text,
    unquote,
)
from llmos_grammar.grammar.translate import bare
from llmos_grammar.ir import GrammarSource

if TYPE_CHECKING:
    from llguidance import LLMatcher

# Method. (1) Language probe: walk the grammar's states breadth-first from the start and from
# prefixes made of the grammar's own string literals, branching on a few representative allowed
# bytes (quotes, brackets, comment signs, blanks, a letter, a digit ...), and at every state ask
# the matcher whether it can consume the bytes of `close`; when it can, complete the string to an
# accepted one (iterative deepening, closing characters first). A completed string is a proof:
# error. A prefix that takes `close` but that no completion was found for is a warning.
# (2) Terminal scan (Lark): intersect each lexeme the rules use with "contains close" in
# llguidance and look for such a lexeme; one found while (1) found no witness is a warning, and
# the lexeme is also fed after every probed state so (1) gets the chance to prove it. A regex or
# JSON schema is probed by (1) alone. None means neither step found a way to produce `close`.
# Bounded search: None is strong evidence, not a proof (the shipped grammars exclude "[/" by
# construction, which is the proof for them).

PROBE_BYTES = b"\"'`#([{</ \n=:,-$\\aA0.;|&"
COMPLETION_BYTES = b"\"')]}`;:0\n,a= "
MAX_COMPLETION_STATES = 400
MAX_PROBE_STATES = 400
MAX_TERMINAL_STATES = 40
MAX_TERMINAL_PROBES = 120
MAX_SEEDS = 200
MAX_PROBE_DEPTH = 8
MAX_COMPLETION = 24
HINT = (
    "exclude {close!r} from the grammar's strings/comments (`& NO_CLOSE`, with a terminal "
    "`NO_CLOSE: ~/(?s:.*)\\[\\/(?s:.*)/` that llmos redefines from `close`), or pick another close"
)


def close_conflict(source: GrammarSource, close: str) -> Diagnostic | None:
    """An error when a string of the grammar's language contains `close` (with that string in the
    message), a warning when only a part of the grammar is seen to admit it, None when clear.

    The verdict depends on the grammar's language and `close` alone: specs that share a grammar
    (the shipped python.lark) are probed once per process; the result carries the location
    of this `source`.
    """
    if not close:
        return None
    found = _conflict(dataclasses.replace(bare(source), origin=source.origin), close)
    return None if found is None else dataclasses.replace(found, location=source.location)


@functools.lru_cache(maxsize=128)
def _conflict(source: GrammarSource, close: str) -> Diagnostic | None:
    try:
        start = matcher(source)
    except GrammarError:
        return None  # validate() reports grammars that do not compile
    seeds = _seed_prefixes(source)
    hints = b"".join(seed[:1] for seed in seeds)
    lexemes = _terminal_witnesses(source, close, hints) if source.kind == "lark" else {}
    needles = [close.encode("utf-8")] + [w for w in lexemes.values() if close.encode() in w]
    found, partial = _probe(start, seeds, needles, hints, MAX_PROBE_STATES)
    if found is not None:
        text = found.decode("utf-8", "replace")
        return Diagnostic(
            "error",
            f"the grammar can produce the close delimiter {close!r}, e.g. in {text!r}",
            source.location,
            code="close-conflict",
            hint=HINT.format(close=close),
        )
    if partial is not None:
        return Diagnostic(
            "warning",
            f"the grammar can produce {partial.decode('utf-8', 'replace')!r}, which holds the "
            f"close delimiter {close!r}; no way to finish that string was found",
            source.location,
            code="close-conflict",
            hint=HINT.format(close=close),
        )
    if lexemes:
        name, lexeme = next(iter(lexemes.items()))
        return Diagnostic(
            "warning",
            f"terminal {name} can match text containing {close!r} (e.g. "
            f"{lexeme.decode('utf-8', 'replace')!r}); no full string of the grammar was found",
            source.location,
            code="close-conflict",
            hint=f"exclude {close!r} from {name} (e.g. `{name}: ... & ~/(?s:.*)<close>(?s:.*)/`)",
        )
    return None


def _seed_prefixes(source: GrammarSource) -> list[bytes]:
    """Prefixes worth probing from: empty, common openings, and the grammar's own literals."""
    seeds = [b"", b'x = "', b"x = '", b"# ", b"-- ", b'{"', b'["', b"echo "]
    if source.kind == "lark":
        for literal in LITERAL_TOKEN.findall(source.text):
            seeds.append(unquote(literal).encode("utf-8"))
    return list(dict.fromkeys(seeds))[:MAX_SEEDS]


def _probe(
    start: LLMatcher, seeds: list[bytes], needles: list[bytes], hints: bytes, limit: int
) -> tuple[bytes | None, bytes | None]:
    """Breadth-first walk over grammar states: (a complete string holding a needle, a prefix
    ending in a needle that could not be completed), each None when not found."""
    partial: bytes | None = None
    queue: list[tuple[bytes, LLMatcher, int]] = []
    for seed in seeds:
        state = start.deep_copy()
        if consume(state, seed):
            queue.append((seed, state, 0))
    seen: set[bytes] = set()
    while queue and len(seen) < limit:
        prefix, state, depth = queue.pop(0)
        if prefix in seen:
            continue
        seen.add(prefix)
        for needle in needles:
            probe = state.deep_copy()
            if consume(probe, needle):
                tail = _complete(probe, hints)
                if tail is not None:
                    return prefix + needle + tail, None
                partial = partial or prefix + needle
        if depth < MAX_PROBE_DEPTH:
            for byte in allowed(state, PROBE_BYTES):
                step = state.deep_copy()
                if consume(step, bytes([byte])):
                    queue.append((prefix + bytes([byte]), step, depth + 1))
    return None, partial


def _complete(state: LLMatcher, hints: bytes = b"") -> bytes | None:
    """Bytes that bring `state` to an accepting one, or None: iterative deepening, trying
    closing characters, then `hints` (first bytes of the grammar's literals), then a few others."""
    alphabet = bytes(dict.fromkeys(COMPLETION_BYTES + hints))
    budget = [0]

    def walk(state: LLMatcher, depth: int) -> bytes | None:
        if state.is_accepting():
            return b""
        if depth <= 0:
            return None
        options = allowed(state, bytes(range(256)))
        preferred = [b for b in alphabet if b in options]
        others = [b for b in options if 32 < b < 127 and b not in preferred][:3]
        for byte in preferred + others:
            budget[0] -= 1
            if budget[0] < 0:
                return None
            step = state.deep_copy()
            if consume(step, bytes([byte])):
                rest = walk(step, depth - 1)
                if rest is not None:
                    return bytes([byte]) + rest
        return None

    for depth in (2, 4, 8, MAX_COMPLETION):
        budget[0] = MAX_COMPLETION_STATES
        found = walk(state, depth)
        if found is not None:
            return found
    return None


def _terminal_witnesses(source: GrammarSource, close: str, hints: bytes) -> dict[str, bytes]:
    """For each lexeme the Lark rules use (named terminal, inline regex or literal, %ignore) that
    can match text containing `close`, one such text."""
    terminals = terminal_text(source.text)
    text = START_DEF.sub(r"\1llmos_original_start\2", source.text)
    contains = "/(?s:.*)" + re.escape(close).replace("/", "\\/") + "(?s:.*)/"
    found: dict[str, bytes] = {}
    for kind, item in rule_lexemes(source.text)[:MAX_TERMINAL_PROBES]:
        if item in found:
            continue
        if kind == "literal":
            value = unquote(item)
            if close in value:
                found[item] = value.encode("utf-8")
            continue
        probe = f"start: LLMOS_PROBE\nLLMOS_PROBE: ({item}) & {contains}\n"
        try:
            state = compile_matcher(_lark(f"{terminals}\n{probe}"))
        except GrammarError:  # the terminals may lean on the rest of the grammar: use all of it
            try:
                state = compile_matcher(_lark(f"{text}\n{probe}"))
            except GrammarError:
                continue
        lexeme, _ = _probe(state, [b""], [close.encode("utf-8")], hints, MAX_TERMINAL_STATES)
        if lexeme is not None:
            found[item] = lexeme
    return found


def _lark(text: str) -> GrammarSource:
    return GrammarSource("lark", text, Location("<probe>"))
