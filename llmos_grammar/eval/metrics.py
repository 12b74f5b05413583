"""pass@k (the unbiased estimator of Chen et al. 2021) and accuracies over tasks."""

from __future__ import annotations

from collections.abc import Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """The probability that at least one of k samples drawn from n, c of them correct, is correct.

    1 - C(n-c, k) / C(n, k), computed as a product so that large n stays exact
    enough (Chen et al. 2021, "Evaluating Large Language Models Trained on Code").
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    missing = 1.0
    for i in range(n - c + 1, n + 1):
        missing *= 1.0 - k / i
    return 1.0 - missing


def ks_for(n: int) -> list[int]:
    """The k reported for n samples: 1, the powers of two below n, and n."""
    ks = [1]
    while ks[-1] * 2 < n:
        ks.append(ks[-1] * 2)
    if n > 1:
        ks.append(n)
    return ks


def mean_pass_at_k(correct: Sequence[tuple[int, int]], k: int) -> float:
    """pass@k averaged over tasks, each given as (samples, correct samples)."""
    if not correct:
        return 0.0
    return sum(pass_at_k(n, c, k) for n, c in correct) / len(correct)


def accuracy(solved: Sequence[bool]) -> float:
    return sum(solved) / len(solved) if solved else 0.0
