"""The hostile corpus under each sandbox mode: the host is unaffected and the result is clear."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from llmos_grammar.actions import run_action
from llmos_grammar.ir import ActionPolicy
from tests.hostile.cases import SECRET, WARM_HANDLERS, Case, Context, Probe
from tests.hostile.corpus import CASES, PROBES
from tests.hostile.table import modes, probe_outcome

MODES = modes()


@pytest.fixture()
def ctx(monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    monkeypatch.setenv("LLMOS_HOSTILE_SECRET", SECRET)
    context = Context.create()
    yield context
    context.close()


@pytest.mark.sandbox
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_case_is_contained(case: Case, mode: str, ctx: Context) -> None:
    caps, warm = MODES[mode]
    if warm and case.handler not in WARM_HANDLERS:
        pytest.skip(f"{case.handler} actions have no standby sandbox")
    missing = case.missing_layer(case.policy(ctx), caps)
    if missing is not None:
        pytest.skip(f"{mode}: {missing}")
    result = case.run(ctx, caps, warm)
    problem = case.check(result, ctx)
    assert problem is None, f"{case.name} [{mode}]: {problem}"
    assert result.status  # a clear status line for the model
    after = run_action(ActionPolicy(name="ok", handler="python"), "print(6 * 7)\n", caps=caps)
    assert after.ok and after.stdout == "42\n", f"runtime broken after {case.name}: {after}"
    assert os.getppid() > 1 and sys.executable


@pytest.mark.sandbox
@pytest.mark.parametrize("probe", PROBES, ids=[p.name for p in PROBES])
def test_hostile_probe_is_contained(probe: Probe, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOS_HOSTILE_SECRET", SECRET)
    verdict, detail = probe_outcome(probe)
    assert verdict == "held", f"{probe.name}: {detail}"
