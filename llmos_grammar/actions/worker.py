"""sqlite, files and http run in a sandboxed worker process, never in the runtime.

The worker is `sys.executable -I -S -c BOOTSTRAP` under the same sandbox as a
python action (bubblewrap namespaces, uid 65534, rlimits, minimal /etc, the
wall clock that kills its process tree); it imports the handler from the
`llmos_grammar` package folder (bound read-only), reads the action text on
stdin and prints the handler's result as JSON (`worker_child`). Only what the
policy names is bound in: the database file (read-only, or read-write with
`read_only: false`), the `read`/`write` folders, the network with
`network: true`. The runtime opens none of them: it starts the worker (or
takes its warm standby), then merges the worker's JSON, read as untrusted
data with every field checked, with what the sandbox saw (timeout, signal,
memory, CPU) into one ActionResult. A worker that crashes, is killed or
prints no valid result is a failed action, never a runtime error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import re
import stat
import sys
from typing import get_args

from llmos_grammar.actions.registry import standby_key
from llmos_grammar.actions.worker_child import TARGETS, TEXT_FIELDS, capped, policy_to_json
from llmos_grammar.ir import ActionPolicy
from llmos_grammar.results import ActionResult, LimitName
from llmos_grammar.sandbox.probe import NOBODY, Capabilities, probe
from llmos_grammar.sandbox.runner import run_argv, run_child
from llmos_grammar.sandbox.standby import StandbyPool

# The worker's -c program. The package is loaded from its own folder (argv[1]) and that
# folder's parent never joins sys.path: a `json.py` that an action wrote beside the package
# (a checkout's root) would have run in the worker, with the worker's network and files.
# It ends with os._exit: tearing down the interpreter's modules would cost more than the
# action.
BOOTSTRAP = """import os, sys
import importlib.util as iu
try:
    spec = iu.spec_from_file_location("llmos_grammar", os.path.join(sys.argv[1], "__init__.py"),
                                      submodule_search_locations=[sys.argv[1]])
    sys.modules["llmos_grammar"] = package = iu.module_from_spec(spec)
    spec.loader.exec_module(package)
    from llmos_grammar.actions.worker_child import main
except Exception as exc:
    sys.stderr.write(f"worker: cannot import llmos_grammar from {sys.argv[1]}: {exc}\\n")
    sys.stderr.flush()
    os._exit(1)
os._exit(main(sys.argv[2:]))
"""
UID_HINT = (
    f"note: the action runs as uid {NOBODY}; the policy's folders and database must be "
    "readable (and, to write, writable) by that user\n"
)
ACCESS_ERRORS = ("Permission denied", "unable to open database", "readonly database")
ENVELOPE_SLACK = 64 * 1024  # JSON keys, flags and the limits next to the capped texts


def package_folder() -> str:
    """The `llmos_grammar` folder the worker imports from (bound read-only into the sandbox)."""
    return os.path.dirname(os.path.dirname(os.path.realpath(__file__)))  # bound by descriptor


def worker_argv(policy: ActionPolicy) -> list[str]:
    """The worker's command line for `policy` (its handler names what runs inside)."""
    if policy.handler not in TARGETS:
        raise ValueError(f"no worker for handler {policy.handler!r} (known: {', '.join(TARGETS)})")
    _write_bytecode()
    python = [sys.executable, "-I", "-S", "-c", BOOTSTRAP]
    return [*python, package_folder(), policy.handler, policy_to_json(_absolute(policy))]


def _absolute(policy: ActionPolicy) -> ActionPolicy:
    """`policy` with its database path absolute (the worker starts in its own folder)."""
    if not policy.database or os.path.isabs(policy.database):
        return policy
    return dataclasses.replace(policy, database=os.path.abspath(policy.database))


@functools.cache
def _write_bytecode() -> None:
    """Write the missing or stale .pyc files of what the worker imports, once: inside the
    sandbox the package is read-only, and compiling at every cold start costs milliseconds."""
    root = package_folder()
    for folder in (root, os.path.join(root, "actions")):
        for name in os.listdir(folder):
            if name.endswith(".py"):
                _compile(os.path.join(folder, name))


def _compile(source: str) -> None:
    import importlib.util

    cached = importlib.util.cache_from_source(source)
    with contextlib.suppress(OSError):
        if os.stat(cached).st_mtime >= os.stat(source).st_mtime:
            return
    import py_compile

    with contextlib.suppress(OSError, py_compile.PyCompileError):
        py_compile.compile(source, cfile=cached, doraise=True)


def sandbox_policy(policy: ActionPolicy) -> ActionPolicy:
    """The policy the worker's sandbox runs under: the package and database bound in, and
    room on stdout for the JSON result (whose texts the worker caps at `output_bytes`).

    A writable database may grow by `file_size_mb` in one action (RLIMIT_FSIZE
    counts file offsets, so the cap is its current size plus that).
    """
    policy = _absolute(policy)
    read = (*policy.read, package_folder())
    write = policy.write
    file_size_mb = policy.file_size_mb
    if policy.handler == "sqlite" and policy.database:
        if policy.read_only:
            read += (policy.database,)
        else:
            write += (policy.database,)
            file_size_mb += _size_mb(policy.database)
    # each text field is at most output_bytes of UTF-8; JSON's \\u escapes take 6 per byte
    envelope = len(TEXT_FIELDS) * 6 * policy.output_bytes + ENVELOPE_SLACK
    return dataclasses.replace(
        policy, read=read, write=write, output_bytes=envelope, file_size_mb=file_size_mb
    )


def _size_mb(path: str) -> int:
    try:
        return math.ceil(os.stat(path).st_size / (1024 * 1024))
    except OSError:
        return 0


def run_worker(
    text: str,
    policy: ActionPolicy,
    caps: Capabilities | None = None,
    pool: StandbyPool | None = None,
) -> ActionResult:
    """Run one sqlite, files or http action in its sandboxed worker (a warm one from `pool`)."""
    caps = caps or probe()
    usable = worker_caps(caps)
    argv, inner = worker_argv(policy), sandbox_policy(policy)
    stdin = text.encode("utf-8", errors="surrogateescape")
    warm = pool is not None and usable == caps  # a standby was started with `caps`
    child = pool.take(standby_key(policy), argv, inner) if warm and pool is not None else None
    if child is not None:
        sandbox = run_child(child, stdin, warm=True)
    else:
        sandbox = run_argv(argv, inner, stdin=stdin, caps=usable)
    return merge(policy, sandbox)


def worker_caps(caps: Capabilities) -> Capabilities:
    """`caps`, without the uid drop when uid 65534 could not read the package (say, a checkout
    in a mode-700 home without bubblewrap); the result then lists `uid` as unenforced."""
    if _package_readable(outside_too=caps.bwrap is None):
        return caps
    return dataclasses.replace(caps, setpriv=None, plain_uid_drop=False)


@functools.cache
def _package_readable(outside_too: bool) -> bool:
    return nobody_can_read(package_folder(), outside_too)


def nobody_can_read(folder: str, outside_too: bool) -> bool:
    """Whether uid 65534 can read `folder`'s tree of .py files (and, `outside_too`, reach it
    through the folders above it: bubblewrap recreates those that lie in hidden places)."""

    def allows(path: str, bits: int) -> bool:
        try:
            info = os.stat(path)
        except OSError:
            return False
        return info.st_uid == NOBODY or info.st_mode & bits == bits

    if outside_too:
        parent = os.path.dirname(folder)
        while parent != os.path.dirname(parent):
            if not allows(parent, stat.S_IXOTH):
                return False
            parent = os.path.dirname(parent)
    for here, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        if not allows(here, stat.S_IROTH | stat.S_IXOTH):
            return False
        if not all(allows(os.path.join(here, f), stat.S_IROTH) for f in files if f.endswith(".py")):
            return False
    return True


def merge(policy: ActionPolicy, sandbox: ActionResult) -> ActionResult:
    """One result from the worker's JSON (checked) and what the sandbox measured."""
    limits = {
        **sandbox.limits,
        "output_bytes": policy.output_bytes,
        "file_size_mb": policy.file_size_mb,
    }
    if sandbox.refused is not None:
        return dataclasses.replace(sandbox, limits=limits)
    clean = sandbox.exit_code == 0 and not sandbox.timed_out and sandbox.limit_hit is None
    inner = decode(sandbox.stdout, policy) if clean else None
    if inner is None:
        if sandbox.timed_out:
            note = f"{policy.handler}: stopped at the wall clock (timeout_s={policy.timeout_s})\n"
        else:
            why = sandbox.status if not clean else "no valid result"
            note = f"{policy.handler}: the worker ended without a result ({why})\n"
        said = capped(ActionResult(stderr=sandbox.stderr), policy.output_bytes).stderr
        inner = ActionResult(
            stderr=said + note,  # what the worker printed (capped), then what we saw
            exit_code=1 if clean else sandbox.exit_code,
            signal=sandbox.signal,
            timed_out=sandbox.timed_out,
            limit_hit=sandbox.limit_hit,
            truncated=sandbox.truncated,
        )
    layers = limits.get("layers")
    uid_layer = isinstance(layers, list) and "uid" in layers
    if any(m in inner.stderr for m in ACCESS_ERRORS) and uid_layer:
        inner = dataclasses.replace(inner, stderr=inner.stderr + UID_HINT)
    return dataclasses.replace(
        inner,
        duration_s=sandbox.duration_s,
        cpu_s=sandbox.cpu_s,
        peak_memory_mb=sandbox.peak_memory_mb,
        unenforced=sandbox.unenforced,
        limits={**inner.limits, **limits},
    )


_LIMITS = frozenset(get_args(LimitName))
# What a worker that runs our code never prints, so that a worker taken over (by a bug in
# SQLite, say) cannot make the runtime fail: lone surrogates (they cannot be encoded, to a
# tokenizer or a terminal), NaN and Infinity (not JSON to whoever reads our output), exit
# codes past 32 bits, nesting deeper than the recursion limit.
_SURROGATE = re.compile("[\ud800-\udfff]")
_EXIT_CODES = range(-(2**31), 2**31)


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _text_ok(value: object) -> bool:
    return isinstance(value, str) and _SURROGATE.search(value) is None


def decode(raw: str, policy: ActionPolicy) -> ActionResult | None:
    """The worker's result from its JSON, every field type-checked; None when it is not one."""
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    texts = {name: data.get(name, "") for name in TEXT_FIELDS}
    exit_code, refused, limit = data.get("exit_code"), data.get("refused"), data.get("limit_hit")
    flags = {name: data.get(name, False) for name in ("timed_out", "truncated")}
    if not all(_text_ok(v) for v in texts.values()):
        return None
    if not all(isinstance(v, bool) for v in flags.values()):
        return None
    if not (exit_code is None or (type(exit_code) is int and exit_code in _EXIT_CODES)):
        return None
    if not (refused is None or _text_ok(refused)) or not (limit is None or limit in _LIMITS):
        return None
    if isinstance(refused, str):
        refused = refused[: policy.output_bytes]
    result = ActionResult(
        **texts,
        **flags,
        exit_code=exit_code,
        refused=refused,
        limit_hit=limit,
        limits=_plain(data.get("limits")),
    )
    return capped(result, policy.output_bytes)


def _plain(value: object) -> dict[str, object]:
    """The handler's `limits`: only string keys with JSON scalars or lists of them."""
    if not isinstance(value, dict):
        return {}

    def plain(v: object) -> bool:
        return _text_ok(v) if isinstance(v, str) else isinstance(v, (int, float, bool, type(None)))

    return {
        k: v
        for k, v in value.items()
        if _text_ok(k) and (plain(v) or (isinstance(v, list) and all(plain(x) for x in v)))
    }
