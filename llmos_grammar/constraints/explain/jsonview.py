"""The JSON view of an explanation (`--format json`): one object, for tools."""

from __future__ import annotations

from llmos_grammar.constraints.explain.caret import char_at, place
from llmos_grammar.constraints.explain.report import Expected, Explanation, TokenWalk


def to_json(e: Explanation) -> dict[str, object]:
    """The explanation as JSON data; texts are decoded from UTF-8 (bad bytes replaced)."""
    refused: dict[str, object] | None = None
    if e.refused is not None:
        line, column = place(e.text, e.refused)
        refused = {
            "byte": e.refused,
            "line": line,
            "column": column,
            "char": char_at(e.text, e.refused),
        }
    return {
        "spec": e.spec,
        "state": e.state,
        "kind": e.kind,
        "backend": e.backend,
        "close": e.close,
        "open": e.open,
        "text": _text(e.text),
        "verdict": e.verdict,
        "whole": e.verdict == "accepted",
        "accepted_bytes": e.taken,
        "accepted_prefix": _text(e.text[: e.taken]),
        "refused": refused,
        "expected": _expected(e.expected) if e.expected else None,
        "ends_at": e.ends_at,
        "ended_by": e.ended_by,
        "then": e.then,
        "triggers": [
            {
                "trigger": h.trigger,
                "target": h.target,
                "start": h.start,
                "end": h.end,
                "fires": h.fires,
                "forced": h.forced,
            }
            for h in e.triggers
        ],
        "schema_errors": [{"path": s.path, "message": s.message} for s in e.schema_errors],
        "notes": list(e.notes),
        "tokens": _tokens(e.tokens) if e.tokens else None,
    }


def _expected(x: Expected) -> dict[str, object]:
    progress = x.in_progress
    return {
        "chars": list(x.chars),
        "starting": list(x.lexemes),
        "starting_by_rule": x.by_rule(),
        "in_progress": None
        if progress is None
        else {
            "start": progress.start,
            "text": _text(progress.text),
            "terminals": list(progress.terminals),
            "complete": list(progress.complete),
        },
        "forced": x.forced,
        "close": x.close,
        "json_path": x.json_path,
        "end": x.end,
    }


def _tokens(walk: TokenWalk) -> dict[str, object]:
    return {
        "model": walk.model,
        "backend": walk.backend,
        "vocab_size": walk.vocab_size,
        "refused": walk.refused,
        "ended": walk.ended,
        "rest": walk.rest,
        "error": walk.error,
        "steps": [
            {
                "id": s.id,
                "start": s.start,
                "text": _text(s.text),
                "allowed": s.allowed,
                "forced": s.forced,
                "mask_size": s.mask_size,
            }
            for s in walk.steps
        ],
    }


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")
