"""Answer normalization, majority vote with ties, and the text each sample votes with."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from llmos_grammar.ir import Samples, Sampling
from llmos_grammar.runtime.events import Span
from llmos_grammar.runtime.vote import (
    final_answer,
    majority,
    normalize_answer,
    samples_sampling,
    state_text,
    voted_text,
)
from llmos_grammar.spec import load
from tests.fake_batch import calc_result, text_result
from tests.specs import write


@pytest.mark.parametrize(
    "text",
    ["5050", "5,050", "5050.0", " 5050. ", "The answer is 5050.", "5.05e3", "+5050", "5050!"],
)
def test_one_number_many_spellings(text: str) -> None:
    assert normalize_answer(text) == "5050"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("48 times 27 is 1296.", "1296"),  # no marker: the last number
        ("The answer is 5050 (the sum of 100 numbers)", "5050"),  # first after the marker
        ("x = 3 + 4 = 7", "7"),  # after the last "="
        ("Answer: -3.50", "-3.5"),
        ("It costs $12.", "12"),
        ("50%", "50"),
        ("-0", "0"),
        ("1,2,3", "3"),  # not a grouped number: three numbers
        ("v2 of the API", "v2 of the api"),  # a digit inside a word is no number
        ("version 1.2.3", "version 1.2.3"),  # nor is a dotted version
        ("0.1", "0.1"),
        ("1e400", "1e+400"),
    ],
)
def test_numbers_in_sentences(text: str, key: str) -> None:
    assert normalize_answer(text) == key


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("  Ada   Lovelace. ", "ada lovelace"),
        ('"Paris"', "paris"),
        ("PARIS!?", "paris"),
        ("`monitor`.", "monitor"),
        ("", ""),
        ("  \n ", ""),
    ],
)
def test_text_answers(text: str, key: str) -> None:
    assert normalize_answer(text) == key


def test_majority_counts_numbers_as_numbers() -> None:
    table = majority(["5,050", "The answer is 5049.", "5050.0", "5049", "5050"])
    assert table.winner is not None and table.winner.key == "5050"
    assert (table.winner.votes, table.winner.rows, table.winning_row) == (3, (0, 2, 4), 0)
    assert table.winner.answer == "5,050"  # shown as its first row wrote it
    assert [(e.key, e.votes, e.rows) for e in table.entries][1] == ("5049", 2, (1, 3))


def test_tie_goes_to_the_earliest_row() -> None:
    table = majority(["no", "7", "yes", "7.0", "yes"])
    assert [e.key for e in table.entries] == ["7", "yes", "no"]
    assert table.winning_row == 1
    assert majority(["b", "a"]).answer == "b"


def test_empty_answers_abstain() -> None:
    table = majority(["", "12", " ", "13", "13"])
    assert table.answer == "13" and table.winning_row == 3 and table.total == 5
    nobody = majority(["", ""])
    assert nobody.winner is None and nobody.winning_row == 0 and nobody.answer == ""


def test_final_answer_is_the_text_after_the_last_action_output() -> None:
    result = calc_result("print(5050)\n", " 5050.\n", stdout="5050\n")
    assert final_answer(result) == " 5050.\n"
    assert final_answer(text_result("5050")) == "5050"  # no action ran: the whole reply


def test_state_text_drops_prefix_open_close_and_triggers() -> None:
    machine = load("examples/calculator/spec.yaml")  # assistant_prefix "[CODE]", open "\n"
    result = calc_result("print(2 + 2)\n", " 4.\n")
    assert state_text(result, machine, "code") == "print(2 + 2)\n"
    assert state_text(result, machine, "answer") == " 4.\n"
    assert state_text(result, machine, "retry") == ""


def test_state_text_is_the_last_visit(tmp_path: Path) -> None:
    machine = load(write(tmp_path))
    result = replace(
        text_result(""),
        transcript=(
            Span("talk", "model", "first [CODE]"),
            Span("code", "model", "1+1\n[/CODE]"),
            Span("run", "injected", "[OUTPUT]2[/OUTPUT]"),
            Span("talk", "model", "so 2"),
            Span("talk", "forced", "."),
        ),
    )
    assert state_text(result, machine, "talk") == "so 2."
    assert state_text(result, machine, "code") == "1+1\n"


def test_voted_text_follows_samples_vote() -> None:
    machine = load("examples/calculator/spec.yaml")
    result = calc_result("print(7)\n", " 7.\n", stdout="7\n")
    assert voted_text(result, machine) == " 7.\n"
    by_code = replace(machine, samples=Samples(n=3, vote="code"))
    assert voted_text(result, by_code) == "print(7)\n"


def test_samples_sampling() -> None:
    machine = load("examples/calculator/spec.yaml")
    machine = replace(machine, samples=Samples(n=4, temperature=0.6))
    assert samples_sampling(machine, 1) == machine.sampling  # one sample: the spec's
    assert samples_sampling(machine, 4).temperature == 0.6
    assert samples_sampling(machine, 4, temperature=1.1, seed=9) == replace(
        machine.sampling, temperature=1.1, seed=9
    )
    assert isinstance(samples_sampling(machine, 1, temperature=0.3), Sampling)


def test_vote_never_imports_torch() -> None:
    code = (
        "import sys; import llmos_grammar.runtime.vote, llmos_grammar.eval; "
        "sys.exit(1 if 'torch' in sys.modules or 'transformers' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
