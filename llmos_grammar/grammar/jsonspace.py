"""The JSON whitespace policy of a JSON-schema constraint, as each backend takes it.

`compact` allows no whitespace between JSON tokens, `flexible` any JSON whitespace (space,
tab, newline, carriage return), and any other value is a regex of JSON whitespace. Wherever
JSON allows whitespace (after `{` and `[`, around `,` and `:`, before `}` and `]`), the
policy's text may stand once, or nothing: llguidance reads it from the schema's `x-guidance`
options, outlines-core as its `whitespace_pattern`. Before the first token and after the
last one no whitespace is allowed in either.
"""

from __future__ import annotations

from typing import Final

COMPACT: Final = "compact"
FLEXIBLE: Final = "flexible"
NAMES: Final = (COMPACT, FLEXIBLE)
JSON_BLANK: Final = r"[ \t\n\r]"  # one character of JSON whitespace
# where outlines-core puts its whitespace before building the regex; replaced by the
# policy's pattern afterwards (a schema's own text is escaped, so it cannot hold this)
MARK: Final = "(?:LLMOS_JSON_WHITESPACE)"


def llguidance_options(policy: str) -> dict[str, str | bool]:
    """The `x-guidance` options under which llguidance enforces `policy`."""
    options: dict[str, str | bool] = {"item_separator": ",", "key_separator": ":"}
    if policy == COMPACT:
        options["whitespace_flexible"] = False
    elif policy == FLEXIBLE:
        options["whitespace_flexible"] = True
    else:
        options["whitespace_pattern"] = policy
    return options


def outlines_pattern(policy: str) -> str:
    """The regex outlines-core puts wherever JSON allows whitespace (optional, as in
    llguidance, which matches the policy's text at most once there)."""
    if policy == COMPACT:
        return ""
    if policy == FLEXIBLE:
        return f"{JSON_BLANK}*"
    return f"(?:{policy})?"


def place(regex: str, policy: str) -> str:
    """outlines-core's `regex`, built with MARK as its whitespace, with the policy's pattern
    wherever llguidance allows it. outlines-core writes an array's items as
    `item(,MARK item)*`, without whitespace before the comma, and an empty array or object as
    two places of whitespace (`[MARK(items)?MARK]`), where llguidance has one."""
    regex = regex.replace(f"(,{MARK}", f"({MARK},{MARK}")
    for opener, closer in ((r"\[", r"\]"), (r"\{", r"\}")):
        regex = _one_place_when_empty(regex, opener + MARK + "(", "?" + MARK + closer)
    return regex.replace(MARK, outlines_pattern(policy))


def _one_place_when_empty(regex: str, opener: str, tail: str) -> str:
    """`opener(items)tail` rewritten as `opener(items MARK)?closer`: the closing whitespace
    only after items (an empty array or object has the opening one alone)."""
    at = regex.find(opener)
    while at >= 0:
        group = at + len(opener) - 1
        end = _group_end(regex, group)
        if end > 0 and regex.startswith(tail, end):
            closer = tail[len("?" + MARK) :]
            inner = regex[group : end - 1] + MARK + ")?"
            regex = regex[:group] + inner + closer + regex[end + len(tail) :]
        at = regex.find(opener, at + 1)
    return regex


def _group_end(regex: str, start: int) -> int:
    """The index after the group that opens at `regex[start]` (escapes and character classes
    skipped); -1 when it does not close."""
    depth, in_class, i = 0, False, start
    while i < len(regex):
        c = regex[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            i += 1 + regex.startswith("^", i + 1)  # past `[` and `^`
            i += regex.startswith("]", i)  # a `]` first in a class is literal
            continue
        elif c in "()":
            depth += 1 if c == "(" else -1
            if depth == 0:
                return i + 1
        i += 1
    return -1
