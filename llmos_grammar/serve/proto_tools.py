"""The system-prompt section that presents a request's tools to the model (Hermes style)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from llmos_grammar.serve.toolcalls import ToolSyntax
from llmos_grammar.serve.types import Tool


def tool_json(tool: Tool) -> str:
    """One tool as OpenAI's `tools` item, on one line."""
    function: dict[str, object] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = tool.parameters
    return json.dumps({"type": "function", "function": function}, ensure_ascii=False)


def tools_prompt(tools: Sequence[Tool], syntax: ToolSyntax) -> str:
    """Every declared tool and how to call one. The same for every tool_choice and
    parallel_tool_calls (the grammar enforces those), so that a client changing them
    between turns keeps the system prompt, and with it the kept cache."""
    example = syntax.call_text_of("<function-name>", "<arguments-json-object>")
    lines = [
        "# Tools",
        "",
        "You may call one or more functions to assist with the user query. "
        "The functions, one JSON object a line:",
        "<tools>",
        *(tool_json(t) for t in tools),
        "</tools>",
        "",
        "For each function call, return a JSON object with the function's name and "
        f"arguments within {syntax.open_tag} tags:",
        example,
    ]
    return "\n".join(lines)
