"""A request's JSON schemas: checked as `llmos-check` checks a spec's, and written for llguidance.

A schema from a request is checked once (the meta-schema, then llguidance's compiler, which
names unsupported keywords); the verdict is kept by a hash of the schema's canonical text.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping

from llmos_grammar.errors import Location
from llmos_grammar.serve.types import BadRequest, JsonSchema

# how JSON is written in replies and calls: as Python's json.dumps writes it, no other blanks
JSON_STYLE: Mapping[str, str | bool] = {
    "item_separator": ", ",
    "key_separator": ": ",
    "whitespace_flexible": False,
}
OBJECT: JsonSchema = {"type": "object"}


def canonical(schema: JsonSchema) -> str:
    """The schema's text with sorted keys (two equal schemas, one text)."""
    return json.dumps(schema, sort_keys=True, ensure_ascii=True, allow_nan=False)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def check_schema(schema: JsonSchema, param: str) -> None:
    """BadRequest at `param` when `schema` is not a JSON schema the constraint backends
    compile (the meta-schema's verdict, an unsupported keyword, a bad regex, a $ref to
    nowhere)."""
    try:
        text = canonical(schema)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"{param} is not JSON data: {exc}", param=param) from None
    problem = _problem(digest(text), text)
    if problem:
        raise BadRequest(
            f"{param} is not a JSON schema the constraint backends can enforce: {problem}; "
            "fix the schema or leave that keyword out",
            param=param,
        )


@functools.lru_cache(maxsize=512)
def _problem(key: str, text: str) -> str:
    """The first error in a schema's canonical `text` ("" when none); `key` names it."""
    from llmos_grammar.grammar.validate import validate
    from llmos_grammar.ir import GrammarSource

    source = GrammarSource("json_schema", json.dumps(_styled(json.loads(text))), Location(key))
    errors = [d for d in validate(source) if d.severity == "error"]
    return errors[0].message if errors else ""


def _styled(schema: JsonSchema) -> dict[str, object]:
    """The schema with our JSON style as its llguidance options (a request's own
    `x-guidance` is dropped: the server chooses how the backends run)."""
    own = {k: v for k, v in schema.items() if k != "x-guidance"}
    return {**own, "x-guidance": dict(JSON_STYLE)}


def json_body(schema: JsonSchema) -> str:
    """A Lark expression (llguidance's `%json`) for values of `schema` in our JSON style."""
    return "%json " + json.dumps(_styled(schema), ensure_ascii=True)


def lark_literal(text: str) -> str:
    """`text` as a Lark string literal."""
    return json.dumps(text, ensure_ascii=True)
