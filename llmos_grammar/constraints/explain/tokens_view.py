"""The text view of a token walk: each token, what the mask said, the refused one marked."""

from __future__ import annotations

from llmos_grammar.constraints.explain.caret import caret_lines
from llmos_grammar.constraints.explain.report import TokenWalk
from llmos_grammar.visible import visible

SHOWN = 40  # tokens listed before the refused one (or the last ones)


def token_lines(text: bytes, walk: TokenWalk, refused_byte: int | None) -> list[str]:
    """Lines on `walk` of `text`; `refused_byte` is the byte walk's refusal, if any."""
    mask = f"masks by {walk.backend}" if walk.backend else "no constraint"
    out = [f"tokens ({walk.model} tokenizer, {walk.vocab_size} ids; {mask}):"]
    steps = list(enumerate(walk.steps))
    if len(steps) > SHOWN:
        out.append(f"  ... {len(steps) - SHOWN} earlier tokens allowed")
        steps = steps[-SHOWN:]
    for index, step in steps:
        if step.forced:
            verdict = "forced by the grammar"
        elif not step.allowed:
            verdict = f"REFUSED: the mask allows {step.mask_size} of {walk.vocab_size} here"
        elif step.mask_size:
            verdict = f"allowed ({step.mask_size} of {walk.vocab_size})"
        else:
            verdict = "allowed"
        shown = visible(repr(step.text.decode("utf-8", "replace")))
        out.append(f"  #{index} id {step.id} {shown} at byte {step.start}: {verdict}")
    out += _refusal(text, walk, refused_byte)
    if walk.ended:
        by = "its close" if walk.ended == "close" else f"the trigger {visible(repr(walk.ended))}"
        rest = f", its rest {visible(repr(walk.rest))} forced" if walk.rest else ""
        out.append(f"  the state ends at {by} after token #{len(walk.steps) - 1}{rest}")
    if walk.error:
        out.append(f"  the matcher stopped: {visible(walk.error)}")
    return out


def _refusal(text: bytes, walk: TokenWalk, refused_byte: int | None) -> list[str]:
    if walk.refused is None:
        return []
    step = walk.steps[walk.refused]
    end = step.start + len(step.text)
    shown, mark = caret_lines(text, step.start, end)
    out = [f"  {shown}", f"  {mark}"]
    if refused_byte is not None and step.start < refused_byte < end:
        out.append(
            f"  the token begins at byte {step.start}, inside the text the grammar allows; "
            f"its byte {refused_byte} is the one refused (the text is split mid-token)"
        )
    return out
