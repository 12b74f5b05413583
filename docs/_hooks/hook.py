"""mkdocs hook: fills each `<!-- generated: NAME -->` marker of a page from the code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from llmos_docs.render import fill  # noqa: E402


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return fill(markdown, page.file.src_uri)
