"""Paired before/after statistics: exact McNemar, the bootstrap interval, the table."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from llmos_grammar.errors import Location
from llmos_grammar.eval.runner import Evaluation, Sample, TaskResult
from llmos_grammar.eval.scorers import Score
from llmos_grammar.eval.tasks import Task
from llmos_grammar.runtime.vote import majority
from llmos_grammar.train.stats import (
    bootstrap_interval,
    mcnemar_p,
    paired,
    paired_evaluations,
    table,
)


def pairs(both: int, lost: int, gained: int, neither: int) -> tuple[list[bool], list[bool]]:
    """Before/after lists with the given counts of each (before, after) combination."""
    kinds = [(True, True)] * both + [(True, False)] * lost
    kinds += [(False, True)] * gained + [(False, False)] * neither
    random.Random(1).shuffle(kinds)
    return [b for b, _ in kinds], [a for _, a in kinds]


@pytest.mark.parametrize(
    ("lost", "gained", "expected"),
    [
        (0, 0, 1.0),
        (3, 3, 1.0),
        (0, 5, 2 / 32),  # 2 * P(X = 0), X ~ Bin(5, 1/2)
        (1, 9, 2 * 11 / 1024),  # 2 * (C(10,0) + C(10,1)) / 2^10 = 0.021484375
        (2, 8, 2 * 56 / 1024),  # 2 * (1 + 10 + 45) / 2^10 = 0.109375
        (4, 5, 1.0),  # the tail reaches past the middle: capped at 1
        (10, 0, 2 / 1024),
    ],
)
def test_mcnemar_matches_hand_computed_binomial_tails(
    lost: int, gained: int, expected: float
) -> None:
    assert mcnemar_p(lost, gained) == pytest.approx(expected, rel=1e-12)
    assert mcnemar_p(gained, lost) == mcnemar_p(lost, gained)  # two-sided: symmetric


def test_mcnemar_is_the_two_sided_binomial_test_by_enumeration() -> None:
    # the definition: the probability of every count at most as likely as the one seen
    for trials in range(1, 40):
        probabilities = [math.comb(trials, k) / 2**trials for k in range(trials + 1)]
        for lost in range(trials + 1):
            seen = probabilities[lost]
            expected = sum(p for p in probabilities if p <= seen * (1 + 1e-12))
            assert mcnemar_p(lost, trials - lost) == pytest.approx(min(1.0, expected), rel=1e-9)


def test_mcnemar_agrees_with_scipy_where_installed() -> None:
    stats = pytest.importorskip("scipy.stats")
    for lost, gained in [(12, 42), (30, 31), (0, 17), (100, 140), (7, 1)]:
        expected = stats.binomtest(lost, lost + gained, 0.5).pvalue
        assert mcnemar_p(lost, gained) == pytest.approx(expected, rel=1e-9)


def test_mcnemar_stays_exact_far_in_the_tail() -> None:
    # 0 lost, 200 gained: 2 / 2^200, far below what a float sum of terms near 1 would keep
    assert mcnemar_p(0, 200) == pytest.approx(2.0**-199, rel=1e-12)
    with pytest.raises(ValueError, match="negative"):
        mcnemar_p(-1, 3)


def test_paired_counts_and_the_ten_point_example() -> None:
    before, after = pairs(both=150, lost=12, gained=42, neither=96)
    row = paired("held-out", before, after)
    assert (row.n, row.solved_before, row.solved_after) == (300, 162, 192)
    assert (row.lost, row.gained) == (12, 42)
    assert row.change == pytest.approx(0.10)
    assert row.p == pytest.approx(mcnemar_p(12, 42)) and row.p < 1e-4
    assert row.low < row.change < row.high
    assert row.low > 0  # a ten-point gain with 12 losses is resolved by 300 tasks


def test_bootstrap_interval_is_fixed_by_its_seed_and_moves_with_it() -> None:
    before, after = pairs(both=100, lost=50, gained=90, neither=60)
    first = bootstrap_interval(before, after, seed=0, resamples=200)
    assert bootstrap_interval(before, after, seed=0, resamples=200) == first
    assert bootstrap_interval(before, after, seed=1, resamples=200) != first


def test_bootstrap_interval_matches_resampling_task_indices() -> None:
    # the multinomial draw is the index bootstrap: compare with a plain one, 4,000 resamples
    before, after = pairs(both=140, lost=20, gained=35, neither=105)
    n, rng = len(before), random.Random(0)
    diffs = [int(a) - int(b) for b, a in zip(before, after, strict=True)]
    changes = sorted(sum(rng.choices(diffs, k=n)) / n for _ in range(4000))
    plain = (changes[int(0.025 * 3999)], changes[int(0.975 * 3999)])
    low, high = bootstrap_interval(before, after)
    assert low == pytest.approx(plain[0], abs=0.01)
    assert high == pytest.approx(plain[1], abs=0.01)
    # and both match the normal approximation of a paired difference of proportions
    change = 15 / n
    sd = math.sqrt(((20 + 35) / n - change**2) / n)
    assert low == pytest.approx(change - 1.96 * sd, abs=0.01)
    assert high == pytest.approx(change + 1.96 * sd, abs=0.01)


def test_no_discordant_task_is_no_change() -> None:
    before, after = pairs(both=7, lost=0, gained=0, neither=23)
    row = paired("hand-written", before, after)
    assert (row.change, row.p, row.low, row.high) == (0.0, 1.0, 0.0, 0.0)


def test_lists_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="same non-empty task list"):
        paired("x", [True, False], [True])
    with pytest.raises(ValueError, match="same non-empty task list"):
        paired("x", [], [])


def test_table_has_one_row_per_set_with_every_column() -> None:
    rows = [
        paired("calculator held-out", *pairs(150, 12, 42, 96)),
        paired("calculator hand-written", *pairs(14, 2, 3, 11)),
    ]
    text = table(rows)
    lines = text.splitlines()
    assert lines[0].split()[:6] == ["set", "n", "before", "after", "change", "b/c"]
    held = next(line for line in lines if line.startswith("calculator held-out"))
    assert "162 (54.0%)" in held and "192 (64.0%)" in held and "+10.0" in held
    assert "12/42" in held and f"{rows[0].p:.1e}" in held
    assert f"[{100 * rows[0].low:+.1f}, {100 * rows[0].high:+.1f}]" in held
    hand = next(line for line in lines if line.startswith("calculator hand-written"))
    assert "+3.3" in hand and "2/3" in hand and "1.000" in hand
    markdown = table(rows, markdown=True).splitlines()
    assert markdown[0].startswith("| set |") and markdown[1].startswith("|---")
    assert len(markdown) == 4


def test_to_json_carries_the_statistics() -> None:
    row = paired("s", *pairs(1, 1, 4, 4))
    data = row.to_json()
    assert data["lost"] == 1 and data["gained"] == 4 and data["tasks"] == 10
    assert data["p_mcnemar"] == pytest.approx(mcnemar_p(1, 4))
    assert data["change_95"] == [row.low, row.high]


def evaluation(solved: list[bool], tasks: list[Task], label: str) -> Evaluation:
    results = [
        TaskResult(task, (Sample(Score(ok, "solved" if ok else "wrong", "")),), majority([""]))
        for task, ok in zip(tasks, solved, strict=True)
    ]
    return Evaluation(label, len(tasks), 1, results)


def test_paired_evaluations_pairs_by_task_and_skips_unfinished_ones() -> None:
    tasks = [Task(f"t{i}", "answer", Location("f.jsonl", i + 1), answer=i) for i in range(6)]
    before = evaluation([True, False, False, True, False, True], tasks, "before")
    after = evaluation([True, True, False, False, True], tasks[:5], "after")  # interrupted
    row = paired_evaluations("s", before, after)
    assert (row.n, row.lost, row.gained) == (5, 1, 2)
    empty = evaluation([], [], "after")
    with pytest.raises(ValueError, match="share no finished task"):
        paired_evaluations("s", before, empty)


def test_transfer_comparison_refuses_unknown_sets_and_bad_budgets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmos_grammar.errors import LlmosError
    from llmos_grammar.eval.compare import TRANSFER, compare_adapter, main

    assert TRANSFER == ("chat", "sqlite_qa", "humaneval")
    with pytest.raises(LlmosError, match="unknown task set"):
        compare_adapter(str(tmp_path / "a.gguf"), ["chat", "poetry"])
    assert main([str(tmp_path), "--limit", "0"]) == 2
    assert main([str(tmp_path / "missing.gguf"), "--sets", "chat"]) == 1
    assert "no such adapter file" in capsys.readouterr().err
