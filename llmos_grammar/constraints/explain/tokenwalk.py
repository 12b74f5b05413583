"""The text token by token, as the decoder sees it: a model's tokenizer, the token table and
constraint the runtime builds for it, and each step's mask from `MaskBuffer.fill`.

Imports torch and transformers (only when called)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from llmos_grammar.constraints.backend import Matcher, MatcherError
from llmos_grammar.constraints.explain.report import TokenStep, TokenWalk
from llmos_grammar.constraints.mask import MaskBuffer
from llmos_grammar.constraints.tokens import TokenTable
from llmos_grammar.ir import GrammarState, ModelRef, TextState
from llmos_grammar.libtypes.hf import Tokenizer
from llmos_grammar.runtime import triggers as runtime_triggers


@dataclass
class _Walk:
    """The state of one token walk."""

    data: bytes
    state: TextState | GrammarState
    matcher: Matcher | None
    table: TokenTable
    pos: int = 0
    steps: list[TokenStep] = field(default_factory=list)
    ended: str = ""
    rest: str = ""


def token_walk(state: TextState | GrammarState, text: str, model: ModelRef) -> TokenWalk:
    """`text` in `state`, token by token with `model`'s tokenizer: the tokens the grammar
    forces are fed as forced, the others are checked against the mask of their step."""
    from llmos_grammar.constraints.choose import compile_constraint

    tokenizer, table = _tokens(model)
    matcher, backend = None, ""
    if state.constraint is not None:
        close = state.close if isinstance(state, GrammarState) else None
        compiled, how = compile_constraint(
            state.constraint, table, close, state.name, state.backend
        )
        matcher, backend = compiled.new(), how.backend
    walk = _Walk(text.encode("utf-8"), state, matcher, table)
    refused, error = _run(walk, tokenizer, MaskBuffer(table.vocab_size))
    steps = tuple(walk.steps)
    return TokenWalk(
        model.name, backend, table.vocab_size, steps, refused, walk.ended, walk.rest, error
    )


@functools.lru_cache(maxsize=2)
def _tokens(model: ModelRef) -> tuple[Tokenizer, TokenTable]:
    """`model`'s tokenizer and the token table the runtime builds for it (once each)."""
    from llmos_grammar.constraints.tokens import build_table
    from llmos_grammar.models import load_tokenizer, quiet_loading

    quiet_loading()
    tokenizer = load_tokenizer(model)
    eos = tokenizer.eos_token_id
    return tokenizer, build_table(tokenizer, len(tokenizer), [eos] if eos is not None else None)


def _run(walk: _Walk, tokenizer: Tokenizer, masks: MaskBuffer) -> tuple[int | None, str]:
    """Feed the text; (index of the refused step or None, the matcher's error or "")."""
    queue = _encode(tokenizer, walk.data[walk.pos :])
    while walk.pos < len(walk.data) and not walk.ended:
        if walk.matcher is not None and _take_forced(walk):
            queue = _encode(tokenizer, walk.data[walk.pos :])
            continue
        if not queue:
            break
        token = queue.pop(0)
        allowed, size, error = _mask(walk.matcher, token, masks)
        if error:
            return None, error
        walk.steps.append(TokenStep(token, walk.pos, _bytes(walk, token), allowed, False, size))
        if not allowed:
            return len(walk.steps) - 1, ""
        if walk.matcher is not None and not walk.matcher.consume([token]):
            return len(walk.steps) - 1, walk.matcher.error
        _advance(walk, [token])
    return None, ""


def _take_forced(walk: _Walk) -> bool:
    """Feed the tokens the grammar forces here when the text goes on with their bytes."""
    assert walk.matcher is not None
    forced = walk.matcher.forced()
    data = walk.table.decode(forced)
    if not forced or not data or not walk.data.startswith(data, walk.pos):
        return False
    if not walk.matcher.consume(forced):
        return False
    for token in forced:
        walk.steps.append(TokenStep(token, walk.pos, _bytes(walk, token), True, True, 0))
        _advance(walk, [token])
    return True


def _mask(matcher: Matcher | None, token: int, masks: MaskBuffer) -> tuple[bool, int, str]:
    """(allowed, how many tokens the mask allows, the matcher's error)."""
    if matcher is None:
        return True, 0, ""
    result = masks.fill([matcher])[0]
    if isinstance(result, MatcherError):
        return False, 0, str(result)
    allowed = token < result.shape[0] and bool(result[token])
    return allowed, int(result.sum()), ""


def _advance(walk: _Walk, tokens: list[int]) -> None:
    """Move past `tokens`; end the walk where the runtime would leave the state."""
    data = walk.table.decode(tokens)
    walk.pos += len(data)
    seen = walk.data[: walk.pos]
    state = walk.state
    if isinstance(state, GrammarState):
        closed = seen.endswith(state.close.encode())
        if closed and walk.matcher is not None and walk.matcher.is_accepting():
            walk.ended = "close"
        return
    hit = runtime_triggers.find(seen, [t.trigger for t in state.triggers], len(data))
    if hit is not None and (walk.matcher is None or hit.complete):
        walk.ended = hit.trigger.decode("utf-8", "replace")
        walk.rest = hit.trigger[hit.matched :].decode("utf-8", "replace")


def _bytes(walk: _Walk, token: int) -> bytes:
    return walk.table.decode([token])


def _encode(tokenizer: Tokenizer, data: bytes) -> list[int]:
    """The ids of the text as plain text (special-token strings split), as the runtime
    encodes model text."""
    from llmos_grammar.runtime.pieces import encode_untrusted

    return encode_untrusted(tokenizer, data.decode("utf-8", "replace"))
