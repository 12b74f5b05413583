"""Two attacks on the sandbox plan, reproduced and closed.

A policy folder (or database) that another action replaced with a symbolic link was
bound where the link points, since bubblewrap binds by path; folders are now bound by a
descriptor opened without following links (`llmos_grammar.sandbox.binds`). And the
RLIMIT_NPROC base counted `nobody`'s processes while the kernel counts its threads, so
one session's threads used up another action's share; the base now counts threads.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from llmos_grammar.sandbox.probe import probe
from tests.hostile.cases_plan import link_swap, make_root, thread_starvation

CAPS = probe()


@pytest.fixture()
def root() -> Iterator[str]:
    top = make_root()
    yield top
    shutil.rmtree(top, ignore_errors=True)


@pytest.mark.sandbox
@pytest.mark.skipif(CAPS.bwrap is None, reason="needs bubblewrap")
def test_policy_folder_swapped_for_a_link(root: str) -> None:
    assert link_swap(root) is None


@pytest.mark.sandbox
@pytest.mark.skipif(not CAPS.root, reason="the uid drop to nobody needs root")
def test_threads_of_a_session_starve_another_action() -> None:
    assert thread_starvation() is None
