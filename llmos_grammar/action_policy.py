"""The limits one action runs under (`ActionPolicy`), importable alone by a sandboxed worker.

`llmos_grammar.ir` re-exports everything here; this module imports nothing of
the package at run time, so the sqlite, files and http worker
(`llmos_grammar.actions.worker_child`) does not pay for the compiled
machine's dataclasses, `errors` and `pathlib` at every cold start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from llmos_grammar.errors import Location

Approval = Literal["never", "ask", "always"]
# python: how much of the interpreter's `site` runs (see llmos_grammar.actions.interpreter)
SiteMode = Literal["minimal", "full", "none"]


@dataclass(frozen=True)
class ActionPolicy:
    """The limits one action runs under. Defaults are the safe ones."""

    name: str
    handler: str  # python | shell | sqlite | files | http | module:function
    timeout_s: float = 5.0
    cpu_s: float = 5.0
    memory_mb: int = 256
    output_bytes: int = 8192
    processes: int = 16
    open_files: int = 64
    file_size_mb: int = 16
    disk_mb: int = 64
    network: bool = False
    workdir: str = "temporary"  # "temporary" or a folder path
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    database: str | None = None
    read_only: bool = True
    max_rows: int = 200
    urls: tuple[str, ...] = ()
    methods: tuple[str, ...] = ("GET",)
    commands: tuple[str, ...] | None = None  # shell allow-list; None = any
    persistent: bool = False  # python: keep variables between actions of a run
    confirm: Approval = "never"
    strict: bool = False
    site: SiteMode = "minimal"  # python: how the interpreter starts
    body_bytes: int = 1 << 20  # http: cap on a JSON body read to select `json_fields`
    json_fields: tuple[str, ...] = ()  # http: show these dotted fields of a JSON body
    cgroup: bool = False  # sandbox: per-action cgroups even where other layers suffice
    options: Mapping[str, object] = field(default_factory=dict)  # plugin handlers only
    location: Location | None = None
