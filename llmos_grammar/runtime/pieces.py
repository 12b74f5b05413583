"""Text as pieces marked trusted (the spec's own) or not, and their token ids.

Only trusted text may become special tokens: a task, a user turn, action output
or model text that spells `<|im_start|>` is tokenized as those characters, so
it cannot open a chat turn or end one. Text with no special-token string in
its untrusted pieces encodes exactly as one ordinary `encode` of the whole.
"""

from __future__ import annotations

import functools
import re
import string
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmos_grammar.libtypes.hf import Tokenizer


@dataclass(frozen=True)
class Piece:
    """A stretch of text; `trusted` (the spec's own text) may spell special tokens."""

    text: str
    trusted: bool = False


Pieces = tuple[Piece, ...]


def trusted(text: str) -> Pieces:
    """The spec's own text (a template, forced text): special-token strings are special."""
    return (Piece(text, True),) if text else ()


def joined(pieces: str | Sequence[Piece]) -> str:
    """The text the pieces spell."""
    return pieces if isinstance(pieces, str) else "".join(p.text for p in pieces)


def without_start(pieces: Pieces, start: str) -> Pieces | None:
    """The pieces less a leading `start` that lies in trusted text; None when they do not
    begin so."""
    if not start or not pieces or not pieces[0].trusted or not pieces[0].text.startswith(start):
        return None
    rest = pieces[0].text[len(start) :]
    return trusted(rest) + pieces[1:]


def format_pieces(template: str, fields: Mapping[str, object]) -> Pieces:
    """`template.format(**fields)` as pieces: the template's text trusted, each value not.

    Raises what `str.format` raises for a bad template (KeyError, IndexError, ValueError).
    """
    fmt = string.Formatter()
    out: list[Piece] = []
    for literal, name, spec, conversion in fmt.parse(template):
        if literal:
            out.append(Piece(literal, True))
        if name is None:
            continue
        if not name or name.isdigit():
            raise IndexError(f"positional field {{{name}}} in an output template")
        value, _ = fmt.get_field(name, (), fields)
        value = fmt.convert_field(value, conversion)
        spec = fmt.vformat(spec, (), fields) if spec else ""
        out.append(Piece(fmt.format_field(value, spec)))
    return tuple(out)


# A fast tokenizer's split mode is one flag on the shared Rust tokenizer, set by each
# `encode` call before it runs: two threads encoding at once in different modes could
# each run in the other's, and untrusted text would parse special tokens. Every encode
# of this module holds this lock.
ENCODE_LOCK = threading.Lock()


# Lone surrogates (bytes that were not UTF-8, read with surrogateescape: a task from argv,
# a task file's "\ud800") cannot be encoded; each becomes U+FFFD, which keeps every offset.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _encodable(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text)


def encode_untrusted(tokenizer: Tokenizer, text: str) -> list[int]:
    """Token ids of `text` with every special-token string split as plain text (no BOS/EOS)."""
    if not text:
        return []
    with ENCODE_LOCK:
        return list(
            tokenizer.encode(_encodable(text), add_special_tokens=False, split_special_tokens=True)
        )


def encode_pieces(tokenizer: Tokenizer, pieces: str | Sequence[Piece]) -> list[int]:
    """Token ids of the pieces; only trusted pieces make special ids (a str is untrusted).

    When every special-token string lies inside trusted text (ordinary text), this
    is one `encode` of the whole, the same ids as always; otherwise the text is cut at
    the trusted special tokens and each stretch between them encoded as plain text.
    """
    if isinstance(pieces, str):
        return encode_untrusted(tokenizer, pieces)
    text = _encodable(joined(pieces))
    specials = _specials(tokenizer)
    found = [m for m in specials.pattern.finditer(text)] if specials.ids else []
    if not found:
        return encode_untrusted(tokenizer, text)
    spans = _trusted_spans(pieces)
    kept = [m for m in found if m.group() in specials.ids and _inside(m.span(), spans)]
    if len(kept) == sum(m.group() in specials.ids for m in found):
        with ENCODE_LOCK:
            ids = list(tokenizer.encode(text, add_special_tokens=False))
        # a tokenizer that normalizes text before matching special tokens (lower case,
        # NFKC) may find one the literal search did not ("<|IM_END|>"): cut instead
        made = set(specials.ids.values())
        if sum(i in made for i in ids) <= len(kept):
            return ids
    return _encode_cut(tokenizer, text, kept, specials)


@dataclass(frozen=True)
class _Specials:
    """A tokenizer's added-token strings (one pattern, longest first) and its special ones."""

    pattern: re.Pattern[str]
    ids: Mapping[str, int]  # special tokens only
    lstrip: frozenset[str]
    rstrip: frozenset[str]


def _content(token: object) -> str:
    """An added token's text (transformers' AddedToken.content)."""
    return str(getattr(token, "content", ""))


@functools.lru_cache(maxsize=16)
def _specials(tokenizer: Tokenizer) -> _Specials:
    added = dict(getattr(tokenizer, "added_tokens_decoder", None) or {})
    ids = {_content(t): int(i) for i, t in added.items() if getattr(t, "special", False)}
    for token in getattr(tokenizer, "all_special_tokens", None) or ():
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token:
            ids.setdefault(str(token), token_id)
    words = {_content(t) for t in added.values()} | set(ids)
    longest = sorted((w for w in words if w), key=len, reverse=True)
    pattern = re.compile("|".join(map(re.escape, longest)) or "(?!)")
    lstrip = frozenset(_content(t) for t in added.values() if getattr(t, "lstrip", False))
    rstrip = frozenset(_content(t) for t in added.values() if getattr(t, "rstrip", False))
    return _Specials(pattern, ids, lstrip, rstrip)


def _trusted_spans(pieces: Sequence[Piece]) -> list[tuple[int, int]]:
    spans, at = [], 0
    for piece in pieces:
        if piece.trusted and piece.text:
            spans.append((at, at + len(piece.text)))
        at += len(piece.text)
    return spans


def _inside(span: tuple[int, int], spans: list[tuple[int, int]]) -> bool:
    return any(start <= span[0] and span[1] <= end for start, end in spans)


def _encode_cut(
    tokenizer: Tokenizer, text: str, kept: list[re.Match[str]], sp: _Specials
) -> list[int]:
    """The text cut at the trusted special tokens in `kept`; the stretches as plain text."""
    ids: list[int] = []
    at = 0
    strip_next = False
    for match in kept:
        stretch = text[at : match.start()]
        stretch = stretch.lstrip() if strip_next else stretch
        stretch = stretch.rstrip() if match.group() in sp.lstrip else stretch
        ids += _encode_stretch(tokenizer, stretch, first=at == 0)
        ids.append(sp.ids[match.group()])
        at, strip_next = match.end(), match.group() in sp.rstrip
    rest = text[at:].lstrip() if strip_next else text[at:]
    return ids + _encode_stretch(tokenizer, rest, first=at == 0)


def _encode_stretch(tokenizer: Tokenizer, text: str, first: bool) -> list[int]:
    """Plain-text ids of a stretch; one after a special token is encoded after a newline
    (then dropped), so that a SentencePiece tokenizer adds no start-of-text space."""
    if first or not text:
        return encode_untrusted(tokenizer, text)
    newline = encode_untrusted(tokenizer, "\n")
    ids = encode_untrusted(tokenizer, "\n" + text)
    if newline and ids[: len(newline)] == newline:
        return ids[len(newline) :]
    return encode_untrusted(tokenizer, text)
