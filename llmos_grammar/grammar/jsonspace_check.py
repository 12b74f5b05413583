"""Is a `json_whitespace` value `compact`, `flexible`, or a regex of JSON whitespace only?"""

from __future__ import annotations

import difflib
import functools
from typing import TYPE_CHECKING

from llmos_grammar.grammar import jsonspace
from llmos_grammar.grammar.backend import allowed, byte_tokenizer
from llmos_grammar.grammar.translate import lark_regex

if TYPE_CHECKING:
    from llguidance import LLMatcher

EVERY_BYTE = bytes(range(256))
BLANKS = b" \t\n\r"
MAX_WITNESS = 16
HINT = "use compact, flexible, or a regex of JSON whitespace such as '[ ]?' or '[ \\n]*'"


@functools.lru_cache(maxsize=64)
def whitespace_problem(value: str) -> tuple[str, str] | None:
    """(message, hint) when `value` is not a JSON whitespace policy; None when it is."""
    if value in jsonspace.NAMES:
        return None
    near = difflib.get_close_matches(value.lower(), jsonspace.NAMES, n=1, cutoff=0.6)
    hint = f"did you mean {near[0]!r}?" if near else HINT
    if not value:
        return "json_whitespace is empty", HINT
    import llguidance as llg

    # the regex's strings that hold anything but JSON whitespace: none is the proof
    probe = f"start: OTHER\nOTHER: /{lark_regex(value)}/ & ~/{jsonspace.JSON_BLANK}*/\n"
    matcher = llg.LLMatcher(byte_tokenizer(), probe, log_level=0)
    if matcher.is_error():
        lines = matcher.get_error().split("\n")
        why = next((x[len("error: ") :] for x in lines if x.startswith("error: ")), lines[0])
        return f"json_whitespace {value!r} is not a valid regex: {why}", hint
    if not allowed(matcher, EVERY_BYTE) and not matcher.is_accepting():
        return None
    return (
        f"json_whitespace {value!r} is neither compact, flexible, nor a regex of JSON whitespace: "
        f"it matches {_witness(matcher)!r}, and JSON allows only space, tab, newline and "
        "carriage return between tokens",
        hint,
    )


def _witness(matcher: LLMatcher) -> str:
    """A short string the probe accepts, led by bytes other than JSON whitespace."""
    out = bytearray()
    while not matcher.is_accepting() and len(out) < MAX_WITNESS:
        options = allowed(matcher, EVERY_BYTE)
        if not options:
            break
        byte = next((b for b in options if b not in BLANKS), options[0])
        matcher.consume_tokens([byte])
        out.append(byte)
    return out.decode("utf-8", "replace")
