"""The whole hostile corpus: the base cases plus every `tests/hostile/cases_*.py` module.

Each such module defines `CASES` (sandboxed actions, run under every sandbox
mode) and/or `PROBES` (attacks on what is not one action: tokenization,
terminal output), so that areas keep their cases in files of their own.
"""

from __future__ import annotations

import importlib
import pathlib

from tests.hostile.cases import CASES as BASE_CASES
from tests.hostile.cases import Case, Probe


def _modules() -> list[str]:
    here = pathlib.Path(__file__).parent
    return sorted(f"tests.hostile.{p.stem}" for p in here.glob("cases_*.py"))


def _collect() -> tuple[tuple[Case, ...], tuple[Probe, ...]]:
    cases: list[Case] = list(BASE_CASES)
    probes: list[Probe] = []
    for name in _modules():
        module = importlib.import_module(name)
        cases += getattr(module, "CASES", ())
        probes += getattr(module, "PROBES", ())
    names = [c.name for c in cases] + [p.name for p in probes]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"hostile corpus: names used twice: {', '.join(repeated)}")
    return tuple(cases), tuple(probes)


CASES, PROBES = _collect()
