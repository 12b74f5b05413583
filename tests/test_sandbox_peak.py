"""An action's peak memory is its own, not the runtime's that started it."""

from __future__ import annotations

import dataclasses

from llmos_grammar.actions import run_action
from llmos_grammar.ir import ActionPolicy
from llmos_grammar.sandbox.probe import probe


def test_a_small_action_from_a_large_runtime_reports_no_borrowed_peak() -> None:
    held = bytearray(300 * 1024 * 1024)  # the runtime holds 300 MB, touched
    for i in range(0, len(held), 4096):
        held[i] = 1
    caps = dataclasses.replace(probe(), memory_cgroup=None)  # peak from wait4 only
    policy = ActionPolicy(name="small", handler="python", memory_mb=128, timeout_s=30.0)
    result = run_action(policy, "print(1)\n", caps=caps)
    assert result.ok, result
    assert result.peak_memory_mb <= 128, f"reported the runtime's {result.peak_memory_mb} MB"
    del held
