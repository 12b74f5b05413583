"""The inputs of the diagnostics reference: for each code, the smallest files that make
`llmos-check` report it (the first file is the one checked)."""

from __future__ import annotations

SPEC = "spec.yaml"
POLICY = "policy.yaml"

# A spec whose `code` state is given by `{code}` and whose action state by `{run}`.
CODE_SPEC = """\
llmos: 1
start: talk
states:
  talk:
    type: text
    on: {{"[CODE]": code}}
    eos: end
  code:
    type: grammar
{code}
    close: "[/CODE]"
    next: run
  run:
    type: action
    action: python
    input: code
{run}
    next: talk
  end: {{type: final}}
"""
DIGITS = '    lark: |\n      start: "print(" /[0-9]+/ ")\\n"'
OUTPUT = '    output: "[OUTPUT]{stdout}[/OUTPUT]"'


def code_spec(code: str = DIGITS, run: str = OUTPUT, extra: str = "") -> dict[str, str]:
    return {SPEC: CODE_SPEC.format(code=code, run=run) + extra}


def one_state(text: str) -> dict[str, str]:
    """A spec that starts in state `talk`, given as `text`, with a final state `end`."""
    return {SPEC: f"llmos: 1\nstart: talk\nstates:\n{text}  end: {{type: final}}\n"}


def policy(action: str) -> dict[str, str]:
    return {POLICY: f"llmos-policy: 1\nactions:\n  act:\n{action}"}


EXAMPLES: dict[str, dict[str, str]] = {
    "schema": one_state("  talk: {type: text, eos: end, colour: red}\n"),
    "kind": {SPEC: "hello: world\n"},
    "SpecError": {SPEC: "llmos: 1\nstart: [talk\n"},
    "unknown-state": one_state("  talk: {type: text, eos: ned}\n"),
    "no-final": {SPEC: "llmos: 1\nstart: talk\nstates:\n  talk: {type: text}\n"},
    "unreachable-state": one_state(
        "  talk: {type: text, eos: end}\n  notes: {type: text, eos: end}\n"
    ),
    "dead-end": one_state(
        '  talk: {type: text, eos: end, on: {"[LOOP]": loop}}\n  loop: {type: text}\n'
    ),
    "empty-trigger": one_state('  talk: {type: text, eos: end, on: {"": end}}\n'),
    "duplicate-trigger": one_state(
        "  talk:\n    type: text\n    eos: end\n    on:\n"
        '      - {when: "[DONE]", to: end}\n      - {when: "[DONE]", to: end}\n'
    ),
    "trigger-prefix": one_state('  talk: {type: text, eos: end, on: {"[C": end, "[CODE]": end}}\n'),
    "unknown-action": {SPEC: code_spec()[SPEC].replace("action: python", "action: pyhton")},
    "bad-template": code_spec(run='    output: "[OUTPUT]{stdot}[/OUTPUT]"'),
    "bad-input": {SPEC: code_spec()[SPEC].replace("input: code", "input: end")},
    "input-mismatch": {
        SPEC: code_spec(
            extra="  again:\n    type: grammar\n    regex: '[0-9]+'\n"
            '    close: "[/CODE]"\n    next: run\n'
        )[SPEC].replace('{"[CODE]": code}', '{"[CODE]": code, "[AGAIN]": again}')
    },
    "session-context": {
        SPEC: one_state("  talk: {type: text, eos: end}\n")[SPEC]
        + "limits: {max_tokens: 512}\nsession: {max_context: 256}\n"
    },
    "no-task": {
        SPEC: one_state("  talk: {type: text, eos: end}\n")[SPEC] + 'prompt: {user: "Hi"}\n'
    },
    "constraint": code_spec(code=DIGITS + "\n    regex: '[0-9]+'"),
    "grammar": code_spec(code='    lark: |\n      start: "print(" (NUMBER\n'),
    "grammar-test": code_spec(extra='tests:\n  code:\n    accept: ["print(x)\\n"]\n'),
    "backend-disagreement": code_spec(
        code="    json_schema: {type: string, format: email}\n    backend: outlines"
    ),
    "close-conflict": code_spec(code="    regex: '[^\\n]+'"),
    "json-whitespace": code_spec(
        code='    json_schema: {type: array, items: {type: integer}}\n    json_whitespace: "x"'
    ),
    "policy": {
        SPEC: one_state("  talk: {type: text, eos: end}\n")[SPEC] + "policy: nowhere.yaml\n"
    },
    "missing-handler": policy("    handler: my_tools.actions:run\n"),
    "no-database": policy("    handler: sqlite\n"),
    "http-no-network": policy("    handler: http\n    urls: [https://example.org/api/]\n"),
    "http-no-urls": policy("    handler: http\n    network: true\n"),
    "missing-folder": policy("    handler: files\n    read: [notes]\n"),
    "ignored": policy("    handler: python\n    commands: [ls]\n"),
    "builtin-options": policy("    handler: python\n    options: {site: full}\n"),
}

# Codes with no example, and why.
UNREACHED: dict[str, str] = {
    "backend": "An Outlines or llguidance error while drawing the sample strings of the "
    "differential check, for a constraint that compiled under both backends: a fault of a "
    "backend, not of the spec; no input is known to produce it.",
    "grammar-warning": "A warning llguidance gives about a grammar it still compiles; no "
    "small grammar is known to make the llguidance release in use warn.",
}
