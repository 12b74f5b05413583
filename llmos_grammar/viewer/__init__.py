"""The HTML trace viewer: one self-contained page per run (`run_html`) or evaluation."""

from __future__ import annotations

from llmos_grammar.viewer.header import run_header
from llmos_grammar.viewer.run_page import run_html, trace_graph

__all__ = ["run_header", "run_html", "trace_graph"]
