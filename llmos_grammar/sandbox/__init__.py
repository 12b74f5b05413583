"""Run untrusted programs under an action policy's limits, with every layer the machine has."""

from __future__ import annotations

from llmos_grammar.sandbox.probe import Capabilities, probe, without_bwrap
from llmos_grammar.sandbox.runner import run_argv

__all__ = ["Capabilities", "probe", "run_argv", "without_bwrap"]
