"""Inside the sandboxed worker: run one in-process handler on stdin and print its result as JSON.

Started as `python -I -S -c BOOTSTRAP PACKAGE_FOLDER HANDLER POLICY_JSON` (see
`llmos_grammar.actions.worker`). The handler's module is imported before
stdin is read, so a warm standby worker has paid for its imports when the
action arrives. Every outcome, an error inside the handler included, is one
JSON object on stdout with each text field capped at `output_bytes`; the
runtime reads it as untrusted data.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
from collections.abc import Callable

from llmos_grammar.action_policy import ActionPolicy
from llmos_grammar.results import ActionResult

TARGETS: dict[str, str] = {
    "sqlite": "llmos_grammar.actions.sqlite:run_sqlite",
    "files": "llmos_grammar.actions.files:run_files",
    "http": "llmos_grammar.actions.http:run_http",
}
TEXT_FIELDS = ("stdout", "stderr", "rows")
_PRIVATE = ("env", "location")  # not needed inside, and `env` may hold values


def policy_to_json(policy: ActionPolicy) -> str:
    """The policy as one JSON text (without `env` and `location`), for the worker's argv."""
    data = {
        f.name: getattr(policy, f.name)
        for f in dataclasses.fields(ActionPolicy)
        if f.name not in _PRIVATE
    }
    data["options"] = dict(policy.options)
    return json.dumps(data, sort_keys=True, default=str)


def policy_from_json(raw: str) -> ActionPolicy:
    """The policy `policy_to_json` wrote; lists become the tuples ActionPolicy holds."""
    data = json.loads(raw)
    names = {f.name for f in dataclasses.fields(ActionPolicy)} - set(_PRIVATE)
    values: dict[str, object] = {
        key: tuple(value) if isinstance(value, list) and key != "options" else value
        for key, value in data.items()
        if key in names
    }
    build: Callable[..., ActionPolicy] = ActionPolicy  # the values are what policy_to_json wrote
    return build(**values)


def capped(result: ActionResult, cap: int) -> ActionResult:
    """`result` with stdout, stderr and rows each at most `cap` bytes of UTF-8."""
    texts = (result.stdout, result.stderr, result.rows)  # TEXT_FIELDS
    stdout, stderr, rows = (_cap(text, cap) for text in texts)
    if (stdout, stderr, rows) == texts:
        return result
    return dataclasses.replace(result, stdout=stdout, stderr=stderr, rows=rows, truncated=True)


def _cap(text: str, cap: int) -> str:
    data = text.encode("utf-8", errors="surrogateescape")
    return text if len(data) <= cap else data[:cap].decode("utf-8", errors="ignore")


def _function(name: str) -> Callable[[str, ActionPolicy], ActionResult]:
    module, _, attr = TARGETS[name].partition(":")
    function: Callable[[str, ActionPolicy], ActionResult] = getattr(
        importlib.import_module(module), attr
    )
    return function


def _run(name: str, policy: ActionPolicy) -> ActionResult:
    try:
        function = _function(name)
        text = sys.stdin.buffer.read().decode("utf-8", errors="replace")
        return function(text, policy)
    except MemoryError:
        return ActionResult(
            stderr=f"{name}: out of memory (memory_mb={policy.memory_mb})\n",
            exit_code=1,
            limit_hit="memory",
        )
    except Exception as exc:  # a handler bug must still give the model a clear result
        return ActionResult(stderr=f"{name}: {type(exc).__name__}: {exc}\n", exit_code=1)


def main(argv: list[str]) -> int:
    """Run handler `argv[0]` under the policy `argv[1]` (JSON) on stdin; the result on stdout."""
    name, raw = argv
    policy = policy_from_json(raw)
    result = capped(_run(name, policy), policy.output_bytes)
    sys.stdout.buffer.write(json.dumps(dataclasses.asdict(result), default=str).encode())
    sys.stdout.flush()
    return 0
