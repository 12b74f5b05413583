"""The text view of an explanation: verdict, the line with a caret, what was allowed."""

from __future__ import annotations

from llmos_grammar.constraints.explain.caret import caret_lines, char_at, place
from llmos_grammar.constraints.explain.charset import char
from llmos_grammar.constraints.explain.report import Expected, Explanation
from llmos_grammar.constraints.explain.tokens_view import token_lines
from llmos_grammar.visible import visible

SHOWN = 60  # characters of a long text shown (its end)
KINDS = {"lark": "Lark", "regex": "regex", "json_schema": "JSON schema", "text": "free text"}


def render(e: Explanation) -> str:
    """Every line of the text view."""
    lines = [_header(e), *_verdict(e)]
    if e.expected is not None:
        lines += _expected(e.expected, "here" if e.refused is not None else "next")
    lines += [f"  schema: {err.path}: {visible(err.message)}" for err in e.schema_errors]
    lines += _triggers(e)
    if e.tokens is not None:
        lines += token_lines(e.text, e.tokens, e.refused)
    lines += [f"note: {visible(n)}" for n in e.notes]
    return "\n".join(lines)


def _header(e: Explanation) -> str:
    how = KINDS.get(e.kind, e.kind) + (f", enforced by {e.backend}" if e.backend else "")
    close = f"; close {visible(repr(e.close))}" if e.close else ""
    return f"{e.spec}: state {e.state!r} ({how}{close})"


def _verdict(e: Explanation) -> list[str]:
    n = len(e.text)
    if e.refused is not None:
        line, column = place(e.text, e.refused)
        shown, mark = caret_lines(e.text, e.refused)
        byte = char(e.text[e.refused])
        if e.text[e.refused] >= 0x80:
            byte = f"{visible(repr(char_at(e.text, e.refused)))} (its byte {byte})"
        return [
            f"rejected at byte {e.refused} (line {line}, column {column}): {byte} is not allowed",
            f"  {shown}",
            f"  {mark}",
            f"  accepted prefix ({e.taken} bytes): {_quoted(e.text[: e.taken])}",
        ]
    if e.ends_at is not None:
        by = "its close" if e.ended_by == "close" else f"the trigger {visible(repr(e.ended_by))}"
        return [f"accepted: the state ends after byte {e.ends_at - 1}, at {by} (-> {e.then})"]
    if e.verdict == "accepted":
        more = ""
        if e.close and not e.text.endswith(e.close.encode()):
            more = f": a complete text, which the close {visible(repr(e.close))} may follow"
        return [f"accepted as a whole ({n} bytes){more}"]
    return [f"accepted as a prefix: the {n} bytes are not a complete text; what may follow:"]


def _expected(x: Expected, where: str) -> list[str]:
    out: list[str] = []
    if x.json_path:
        out.append(f"  in the JSON value at: {x.json_path}")
    if x.in_progress is not None:
        p = x.in_progress
        head = f"  in progress: {_quoted(p.text)} from byte {p.start}:"
        if p.complete:
            out.append(f"{head} a whole {' or '.join(p.complete)}, which may go on")
        else:
            out.append(f"{head} not a whole {' or '.join(p.terminals)}, only its start")
    if x.starting:
        rules = [f"{', '.join(names)} in {rule}" for rule, names in x.by_rule().items()]
        out.append(f"  may start {where}: {visible('; '.join(rules))}")
    if x.unnamed:
        out.append(f"  ({x.unnamed})")
    chars = ", ".join(x.chars) if x.chars else "nothing"
    out.append(f"  characters allowed {where}: {visible(chars)}")
    if x.forced:
        out.append(f"  forced {where}: {_quoted(x.forced.encode())}")
    if x.close is not None:
        may = "may" if x.close else "may not"
        out.append(f"  the close {may} follow {where}")
    elif x.end:
        out.append(f"  the text may end {where}")
    return out


def _triggers(e: Explanation) -> list[str]:
    if not e.triggers:
        return []
    out = ["triggers:"]
    fired = next((h for h in e.triggers if h.fires), None)
    for hit in e.triggers:
        line, column = place(e.text, hit.start)
        what = "fires" if hit.fires else "after the state ended"
        if not hit.fires and fired is not None and hit.start == fired.start:
            what = "at the same place (see the note)" if hit.rank < fired.rank else "never"
        if hit.forced:
            what = f"begun at the end; fires, the rest {visible(repr(hit.forced))} forced"
        trigger = visible(repr(hit.trigger))
        at = f"byte {hit.start} (line {line}, column {column})"
        out.append(f"  {trigger} at {at} -> {hit.target}: {what}")
    return out


def _quoted(data: bytes, keep: int = SHOWN) -> str:
    """`data` as a quoted string; a long one keeps its last `keep` characters."""
    text = data.decode("utf-8", "replace")
    cut = "..." if len(text) > keep else ""
    return cut + visible(repr(text[-keep:]))
