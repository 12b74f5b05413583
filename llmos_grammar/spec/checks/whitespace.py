"""The `json_whitespace` keys of a spec: compact, flexible, or a regex of JSON whitespace."""

from __future__ import annotations

from llmos_grammar.errors import Diagnostic
from llmos_grammar.spec.schemas import crumb
from llmos_grammar.spec.yamldata import YamlMap
from llmos_grammar.spec.yamldoc import Doc, Key

KEY = "json_whitespace"


def whitespace_error(doc: Doc, owner: Key, raw: YamlMap) -> Diagnostic | None:
    """An error at the `json_whitespace` key of `raw` (the spec, or the state at `owner`) when
    its value is not a JSON whitespace policy; None when it is, or when there is no key."""
    from llmos_grammar.grammar.jsonspace_check import whitespace_problem

    value = raw.get(KEY)
    if not isinstance(value, str):
        return None
    found = whitespace_problem(value)
    if found is None:
        return None
    message, hint = found
    path: Key = (*owner, KEY)
    return Diagnostic("error", message, doc.loc(path), crumb(path), "json-whitespace", hint)
