"""llmos-grammar: a state machine inside the decoder, driven by a YAML spec."""

from __future__ import annotations

__version__ = "0.1.0"
