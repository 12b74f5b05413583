"""The vllm engine on a real vLLM server (started once from .venv-vllm for the whole session):
the examples answer as on the transformers engine, triggers, action errors, budgets, bad input.

Skipped, with the reason, where vLLM is not installed (`bash setup.sh --vllm`). Set
LLMOS_TEST_VLLM_URL to run them against a server that is already up.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from llmos_grammar.errors import ModelError
from llmos_grammar.ir import DEFAULT_MODEL, Budgets, ModelRef
from llmos_grammar.results import ActionResult
from tests.test_runtime_helpers import FakeRunner

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CALC = EXAMPLES / "calculator" / "spec.yaml"

pytestmark = [pytest.mark.model, pytest.mark.vllm]


def vllm_missing() -> str | None:
    if os.environ.get("LLMOS_TEST_VLLM_URL"):
        return None
    from llmos_grammar.engines.vllm.args import VLLMOptions
    from llmos_grammar.engines.vllm.server import find_python

    try:
        find_python(VLLMOptions())
    except ModelError as exc:
        return str(exc)
    return None


MISSING = vllm_missing()
if MISSING is not None:
    pytestmark.append(pytest.mark.skip(reason=MISSING))


def engine_args() -> dict[str, str]:
    url = os.environ.get("LLMOS_TEST_VLLM_URL")
    return {"url": url} if url else {}


@pytest.fixture(scope="session")
def vllm_lm() -> Iterator[Any]:
    """One vLLM server for every test of the session (its start-up takes a minute here)."""
    from llmos_grammar.engines.vllm import load_vllm

    lm = load_vllm(ModelRef(name=DEFAULT_MODEL), engine_args())
    yield lm
    lm.model.close()


@functools.cache
def transformers_lm() -> Any:
    from llmos_grammar.models import load_model

    return load_model(DEFAULT_MODEL)


def run_both(spec: Path, tasks: list[str], vllm_lm: Any, **kw: Any) -> tuple[list[Any], list[Any]]:
    """Greedy results of `tasks` on vLLM and on transformers, in batches of 8."""
    from llmos_grammar.runtime import Runtime
    from llmos_grammar.spec.loader import load

    machine = load(spec)
    # no wall-clock budget: a busy machine must not cut the slower engine's rows short
    machine = replace(machine, budgets=replace(machine.budgets, wall_s=3600.0))
    out = []
    for lm in (vllm_lm, transformers_lm()):
        with Runtime(machine, lm, **kw) as rt:
            out.append([r[0] for r in rt.run_batch(tasks, batch=8)])
    return out[0], out[1]


def task_lines(name: str, n: int) -> list[dict[str, Any]]:
    lines = (EXAMPLES / name / "tasks.jsonl").read_text().splitlines()[:n]
    return [json.loads(line) for line in lines]


def test_calculator_answers_as_on_transformers(vllm_lm: Any) -> None:
    from llmos_grammar.eval.scorers import answer_matches
    from llmos_grammar.runtime.vote import voted_text
    from llmos_grammar.spec.loader import load

    tasks = task_lines("calculator", 8)
    on_vllm, on_tf = run_both(CALC, [t["task"] for t in tasks], vllm_lm)
    machine = load(CALC)
    for task, a, b in zip(tasks, on_vllm, on_tf, strict=True):
        assert a.stop_reason == b.stop_reason == "final", (a.message, b.message)
        assert [x.input for x in a.actions] == [x.input for x in b.actions]
        assert [x.result.stdout for x in a.actions] == [x.result.stdout for x in b.actions]
        solved = answer_matches(voted_text(a, machine), task["answer"])
        assert solved == answer_matches(voted_text(b, machine), task["answer"]), task


def test_sqlite_qa_answers_as_on_transformers(vllm_lm: Any) -> None:
    tasks = task_lines("sqlite_qa", 4)
    on_vllm, on_tf = run_both(
        EXAMPLES / "sqlite_qa" / "spec.yaml", [t["task"] for t in tasks], vllm_lm
    )
    for a, b in zip(on_vllm, on_tf, strict=True):
        assert a.stop_reason == b.stop_reason == "final", (a.message, b.message)
        assert [x.input for x in a.actions] == [x.input for x in b.actions]
        assert a.text.rsplit("[/ROWS]", 1)[-1] == b.text.rsplit("[/ROWS]", 1)[-1]


def test_extract_gives_the_same_json(vllm_lm: Any) -> None:
    sentences = [
        "Ada Lovelace was 36 years old when she died.",
        "Maria Lopez is 34 years old and lives in Madrid.",
    ]
    on_vllm, on_tf = run_both(EXAMPLES / "extract" / "spec.yaml", sentences, vllm_lm)
    for a, b in zip(on_vllm, on_tf, strict=True):
        assert a.stop_reason == b.stop_reason == "final", (a.message, b.message)
        # grammar-forced text may be tokenized otherwise on vLLM (the model picks among
        # the tokens that spell it), so the layout can differ; the values may not
        bodies = [r.text.removeprefix("[JSON]").removesuffix("[/JSON]") for r in (a, b)]
        assert json.loads(bodies[0]) == json.loads(bodies[1])


def test_a_trigger_split_across_tokens_switches_state(vllm_lm: Any) -> None:
    """Without the prefix the model answers in words: "The answer is ...". The trigger
    "answer is" is several tokens; once " answer" is out, the rest is forced."""
    from llmos_grammar.ir import TextState, Transition
    from llmos_grammar.runtime import Runtime, TransitionEvent
    from llmos_grammar.spec.loader import load

    machine = load(CALC)
    talk = TextState("talk", triggers=(Transition("answer is", "tail"),), max_tokens=40)
    tail = TextState("tail", on_eos="end", max_tokens=20)
    machine = replace(
        machine,
        start="talk",
        states={**machine.states, "talk": talk, "tail": tail},
        prompt=replace(machine.prompt, assistant_prefix=""),
    )
    assert len(vllm_lm.tokenizer.encode(" answer is", add_special_tokens=False)) > 1
    moves, texts = [], []
    for lm in (vllm_lm, transformers_lm()):
        with Runtime(machine, lm, runner=FakeRunner()) as rt:
            events = list(rt.stream("What is 17 times 23?"))
        moves.append([(e.source, e.target) for e in events if isinstance(e, TransitionEvent)])
        result = events[-1].result  # type: ignore[union-attr]
        assert result.stop_reason == "final", result.message
        texts.append(result.text)
    assert moves[0] == [("talk", "tail"), ("tail", "end")]
    assert "answer is" in texts[0]
    assert moves[0] == moves[1] and texts[0] == texts[1]


def test_an_action_error_is_fed_back(vllm_lm: Any) -> None:
    from llmos_grammar.runtime import Runtime
    from llmos_grammar.spec.loader import load

    error = ActionResult(stderr="NameError: name 'x' is not defined\n", exit_code=1)
    runner = FakeRunner(error, ActionResult(stdout="391\n"))
    with Runtime(load(CALC), vllm_lm, runner=runner) as rt:
        result = rt.run("What is 17 times 23?")
    assert result.stop_reason == "final", result.message
    assert len(runner.calls) == 2 and result.actions[0].result.exit_code == 1
    assert "NameError" in result.text and "The code failed. Fixed code:\n[CODE]" in result.text
    assert [a.state for a in result.actions] == ["run", "rerun"]


def test_a_budget_stops_the_run(vllm_lm: Any) -> None:
    from llmos_grammar.runtime import Runtime
    from llmos_grammar.spec.loader import load

    with Runtime(load(CALC), vllm_lm, budgets=Budgets(max_tokens=3)) as rt:
        result = rt.run("What is 17 times 23?")
    assert result.stop_reason == "max_tokens"
    assert result.stats.generated_tokens == 3


def test_cli_runs_on_vllm_and_exits_4_on_a_budget(
    vllm_lm: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmos_grammar.cli.main import main

    url = ["--engine-arg", f"url={vllm_lm.model.url}"]
    base = ["run", str(CALC), "What is 48 times 27?", "--engine", "vllm", "--no-color", *url]
    assert main(base) == 0
    out = capsys.readouterr().out
    assert "1296" in out and "engine vllm" in out
    assert main([*base, "--max-tokens", "2"]) == 4
    assert "token budget exhausted" in capsys.readouterr().out


def test_bad_input_is_one_line_and_exit_1(
    vllm_lm: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    from llmos_grammar.cli.main import main

    base = ["run", str(CALC), "What is 2 + 2?", "--engine", "vllm", "--no-color"]
    # vLLM not where it is said to be
    assert main([*base, "--engine-arg", f"python={sys.executable}"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "vLLM is not installed" in err[0] and "setup.sh --vllm" in err[0]
    # an option the server does not know
    assert main([*base, "--engine-arg", "no_such_option=1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--no-such-option" in err[0] and "does not know" in err[0]
    # a model vLLM cannot load: a known tokenizer with an architecture nobody has
    folder = tmp_path / "model"
    folder.mkdir()
    vllm_lm.tokenizer.save_pretrained(folder)
    config = {"architectures": ["NoSuchForCausalLM"], "model_type": "llama", "vocab_size": 49152}
    (folder / "config.json").write_text(json.dumps(config))
    assert main([*base, "--model", str(folder)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("llmos: the vLLM server did not start:")
