"""The diagnostics reference: every code `llmos-check` reports, each with a small input
that produces it and the checker's own output for that input, computed at build time."""

from __future__ import annotations

import contextlib
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

from llmos_docs.codes import PACKAGE, codes
from llmos_docs.diagnostics_inputs import EXAMPLES, UNREACHED

ROOT = PACKAGE.parent


@dataclass(frozen=True)
class Checked:
    """One example run through `llmos check -q`: its status and what it printed."""

    code: str
    files: dict[str, str]
    status: int
    output: str
    codes: frozenset[str]  # the codes of every diagnostic reported


def check(code: str) -> Checked:
    """Write the example for `code` to a fresh folder and run `llmos check -q` on its first
    file; the folder's path is left out of the output."""
    from llmos_grammar.cli.main import dispatch
    from llmos_grammar.spec.check import check_paths

    files = EXAMPLES[code]
    with tempfile.TemporaryDirectory(prefix="llmos-doc-") as folder:
        for name, text in files.items():
            (Path(folder) / name).write_text(text, encoding="utf-8")
        first = str(Path(folder) / next(iter(files)))
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            status = dispatch(["check", "-q", first], None)
        found = frozenset(d.code for d in check_paths([first])[0].diagnostics)
        text = out.getvalue().replace(folder + "/", "").replace(f"{ROOT}/", "")
    return Checked(code, files, status, text, found)


def _example(checked: Checked, reported_by: str) -> str:
    where = f"`{reported_by}`" if reported_by.endswith(".py") else reported_by
    out = [f"### `{checked.code}`\n", f"Reported by {where}.\n"]
    for name, text in checked.files.items():
        out.append(f'```yaml title="{name}"\n{text.rstrip()}\n```\n')
    out.append(f"```text\n$ llmos-check -q {next(iter(checked.files))}\n{checked.output.rstrip()}")
    out.append(f"exit status {checked.status}\n```\n")
    return "\n".join(out)


def render() -> str:
    found = codes()
    out = []
    for code in sorted(set(found) | {c for c in EXAMPLES if c[0].isupper()}):
        if code in UNREACHED:
            where = found.get(code, "")
            out.append(f"### `{code}`\n\nReported by `{where}`. {UNREACHED[code]}\n")
            continue
        out.append(_example(check(code), found.get(code, "the loader (an error class)")))
    return "\n".join(out)
