"""jsonschema's validator and its errors, as the spec checker reads them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol


class SchemaError(Protocol):
    """jsonschema.ValidationError: the failed keyword, its value, the value at fault, where."""

    @property
    def message(self) -> str: ...

    @property
    def validator(self) -> str: ...  # the keyword that failed ("type", "enum", "oneOf", ...)

    @property
    def validator_value(self) -> object: ...

    @property
    def instance(self) -> object: ...

    @property
    def schema(self) -> Mapping[str, object]: ...

    @property
    def absolute_path(self) -> Sequence[str | int]: ...

    @property
    def relative_path(self) -> Sequence[str | int]: ...

    @property
    def context(self) -> Sequence[SchemaError]: ...


class Validator(Protocol):
    """A jsonschema validator (Draft202012Validator)."""

    def iter_errors(self, instance: object) -> Iterable[SchemaError]: ...
