"""The one translation of a grammar source into each backend's grammar: one Lark text for
llguidance (our own matchers and vLLM's guidance backend take the same text) and the regex
outlines-core indexes.

A constraint ended by a close delimiter nests its body under a top-level rule, so that the
body keeps its own lexemes and `%ignore` (llguidance compiles a nested grammar separately):

    %llguidance {}
    start: llmos_body "[/CODE]"
    llmos_body: %lark { ...the Lark text... }        a regex: %lark { start: /.../ }
    llmos_body: %json { ...the schema, with its JSON whitespace policy as x-guidance... }

The first line marks the text as llguidance's Lark (vLLM reads a grammar without a line
`start:` as GBNF, e.g. one whose start rule is `?start:`).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

from llmos_grammar.errors import BackendError, GrammarError, Location
from llmos_grammar.grammar import jsonspace
from llmos_grammar.grammar.schema_regex import schema_regex
from llmos_grammar.ir import GrammarSource

BODY = "llmos_body"
HEADER = "%llguidance {}\n"
_NOWHERE = Location("<grammar>")


def lark_text(source: GrammarSource, close: str | None = None) -> str:
    """Lark text (llguidance's dialect) for `source` followed by the literal `close` (when
    given). Without a close a Lark source is its own text after HEADER. GrammarError when a
    JSON schema is not a JSON object."""
    if not close:
        return HEADER + (source.text if source.kind == "lark" else f"start: {_body(source)}\n")
    return f"{HEADER}start: {BODY} {json.dumps(close)}\n{BODY}: {_body(source)}\n"


def _body(source: GrammarSource) -> str:
    """`source` as a Lark expression that is a grammar of its own."""
    if source.kind == "lark":
        return "%lark {\n" + source.text + "\n}"
    if source.kind == "regex":
        return "%lark {\nstart: /" + lark_regex(source.text) + "/\n}"
    if source.kind == "json_schema":
        return "%json " + json.dumps(json_schema(source))
    raise GrammarError(f"unknown grammar kind {source.kind!r}", source.location)


def lark_regex(regex: str) -> str:
    """`regex` written to stand between the slashes of a Lark `/.../` (as llguidance's own
    grammar_from_regex writes it: no change of meaning, `/` and newlines escaped)."""
    import llguidance as llg

    return str(llg.regex_to_lark(regex, ""))


def json_schema(source: GrammarSource) -> dict[str, object]:
    """The schema of a JSON-schema source with its whitespace policy as `x-guidance` options
    (replacing the schema's own whitespace options, if any)."""
    try:
        schema = json.loads(source.text)
    except json.JSONDecodeError as exc:
        raise GrammarError(f"JSON schema is not JSON: {exc.msg}", source.location) from None
    if not isinstance(schema, dict):
        raise GrammarError("a JSON schema constraint must be a JSON object", source.location)
    own = schema.get("x-guidance")
    options = dict(own) if isinstance(own, dict) else {}
    for key in ("whitespace_flexible", "whitespace_pattern"):
        options.pop(key, None)
    options.update(jsonspace.llguidance_options(source.json_whitespace))
    return {**schema, "x-guidance": options}


def outlines_regex(source: GrammarSource, close: str | None = None) -> str:
    """The regex outlines-core indexes for `source` followed by the literal `close`;
    BackendError with the reason when outlines-core cannot express `source` exactly."""
    if source.kind == "lark":
        raise BackendError("Lark grammars are enforced by llguidance (as in Outlines itself)")
    if source.kind == "regex":
        body = source.text
    else:
        body = schema_regex(source.text, source.json_whitespace)
    return f"(?:{body}){re.escape(close)}" if close else body


def bare(source: GrammarSource) -> GrammarSource:
    """`source` without where it was written: the key of caches that depend on its language
    alone (two specs that share a grammar share its compiled forms)."""
    return replace(source, location=_NOWHERE, origin=None, column_offset=0)
