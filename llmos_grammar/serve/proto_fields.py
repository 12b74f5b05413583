"""Typed reads of a request's JSON objects, each error located at its field (`messages[2].role`).

A `Fields` reads one object: each key read once, by type and range; `done()` refuses every
key left unread, so no field is ever ignored in silence. Strings count against the
request's character budget and must be text (no unpaired surrogates).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from llmos_grammar.serve.types import BadRequest

MAX_INT = 2**63 - 1


@dataclass(frozen=True)
class Limits:
    """What one request may hold; each limit is a located 400 when passed."""

    max_messages: int = 256
    max_chars: int = 1_000_000  # every string of the request together
    max_string_chars: int = 200_000  # one string
    max_tools: int = 64
    max_n: int = 8
    max_stop: int = 4
    max_stop_chars: int = 256
    max_schema_chars: int = 64_000  # one JSON schema, as compact JSON
    max_schema_depth: int = 32
    max_id_chars: int = 256  # ids, names and other short strings


class Budget:
    """The characters a request's strings have used so far."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.used = 0

    def spend(self, chars: int, param: str) -> None:
        self.used += chars
        if self.used > self.limits.max_chars:
            raise BadRequest(
                f"the request holds more than {self.limits.max_chars} characters of text "
                f"(passed at {param}): send a shorter conversation",
                param=param,
                code="request_too_long",
            )


def kind_of(value: object) -> str:
    """The JSON type of `value`, as a message names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__


def wrong_type(param: str, want: str, value: object) -> BadRequest:
    return BadRequest(f"{param} must be {want}, not {kind_of(value)}", param=param)


def join(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def text_value(value: object, param: str, budget: Budget, max_chars: int | None = None) -> str:
    """A string within its length and the budget, with no unpaired surrogate."""
    if not isinstance(value, str):
        raise wrong_type(param, "a string", value)
    limit = budget.limits.max_string_chars if max_chars is None else max_chars
    if len(value) > limit:
        raise BadRequest(
            f"{param} is {len(value)} characters long; at most {limit} are accepted",
            param=param,
            code="string_too_long",
        )
    budget.spend(len(value), param)
    check_text(value, param)
    return value


def check_text(value: str, param: str) -> None:
    """BadRequest when `value` holds an unpaired surrogate (JSON may spell one, UTF-8 not)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadRequest(
            f"{param} is not valid Unicode text (an unpaired surrogate at character "
            f"{exc.start}): send UTF-8 text",
            param=param,
        ) from None


class Fields:
    """One JSON object of the request at `where`; read its keys, then call `done()`."""

    def __init__(self, value: object, where: str, budget: Budget) -> None:
        if not isinstance(value, dict):
            if not where:
                raise BadRequest(f"the body must be a JSON object, not {kind_of(value)}")
            raise wrong_type(where, "a JSON object", value)
        self.data: Mapping[str, object] = value
        self.where = where
        self.budget = budget
        self.read: set[str] = set()

    def param(self, key: str | int) -> str:
        return join(self.where, key)

    def has(self, key: str) -> bool:
        """Whether `key` is given and not null (null is taken as absent, as OpenAI does)."""
        return self.data.get(key) is not None

    def raw(self, key: str) -> object:
        """The value of `key` (None when absent), marked read."""
        self.read.add(key)
        return self.data.get(key)

    def required(self, key: str) -> object:
        value = self.raw(key)
        if value is None:
            raise BadRequest(f"{self.param(key)} is required", param=self.param(key))
        return value

    def text(self, key: str, *, required: bool = False, max_chars: int | None = None) -> str | None:
        value = self.required(key) if required else self.raw(key)
        if value is None:
            return None
        return text_value(value, self.param(key), self.budget, max_chars)

    def short(self, key: str, *, required: bool = False) -> str | None:
        """A name or an id (at most `max_id_chars`)."""
        return self.text(key, required=required, max_chars=self.budget.limits.max_id_chars)

    def boolean(self, key: str) -> bool | None:
        value = self.raw(key)
        if value is not None and not isinstance(value, bool):
            raise wrong_type(self.param(key), "true or false", value)
        return value

    def integer(self, key: str, low: int, high: int = MAX_INT) -> int | None:
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong_type(self.param(key), "an integer", value)
        if not low <= value <= high:
            top = "" if high == MAX_INT and value >= low else f" and at most {high}"
            raise BadRequest(
                f"{self.param(key)} is {value}; it must be at least {low}{top}",
                param=self.param(key),
            )
        return value

    def number(self, key: str, low: float, high: float, *, open_low: bool = False) -> float | None:
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong_type(self.param(key), "a number", value)
        number = float(value)
        below = number <= low if open_low else number < low
        if below or number > high or not math.isfinite(number):
            side = "above" if open_low else "at least"
            raise BadRequest(
                f"{self.param(key)} is {value}; it must be {side} {low:g} and at most {high:g}",
                param=self.param(key),
            )
        return number

    def obj(self, key: str, *, required: bool = False) -> Fields | None:
        value = self.required(key) if required else self.raw(key)
        return None if value is None else Fields(value, self.param(key), self.budget)

    def items(self, key: str, max_items: int, what: str) -> Iterator[tuple[str, object]]:
        """(param, item) of the array at `key` (absent: none); at most `max_items`."""
        value = self.raw(key)
        if value is None:
            return iter(())
        param = self.param(key)
        if not isinstance(value, list):
            raise wrong_type(param, "an array", value)
        if len(value) > max_items:
            raise BadRequest(
                f"{param} holds {len(value)} {what}; at most {max_items} are accepted",
                param=param,
                code="too_many_items",
            )
        return ((join(param, i), item) for i, item in enumerate(value))

    def done(self, neutral: Mapping[str, tuple[object, ...]] | None = None) -> None:
        """Refuse every key not read; a key of `neutral` is accepted with one of its values
        (the one that asks for nothing: `frequency_penalty: 0`, `logprobs: false`)."""
        for key, value in self.data.items():
            if key in self.read:
                continue
            param = self.param(key)
            if neutral is not None and key in neutral:
                if value is None or any(_same(value, v) for v in neutral[key]):
                    continue
                shown = " or ".join(["null", *(_shown(v) for v in neutral[key])])
                raise BadRequest(
                    f"{param} is not supported here: leave it out (or send {shown})",
                    param=param,
                    code="unsupported_parameter",
                )
            raise BadRequest(
                f"{param} is not a field this server knows or supports; leave it out",
                param=param,
                code="unsupported_parameter",
            )


def _same(value: object, neutral: object) -> bool:
    if isinstance(neutral, bool) or isinstance(value, bool):
        return value is neutral
    return value == neutral


def _shown(value: object) -> str:
    return json.dumps(value)
