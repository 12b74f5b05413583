"""Where a request's rows come from and where they go: kept rows taken over or copied, kept again.

The first row of a request starts from the kept row sharing most of its prompt:
taken over (cut to what they share) when the prompt continues all of it, copied
from when the prompt parts from it on an engine that copies rows (the kept row
stays for its own continuation), else an empty row; the other rows of `n`
choices copy the first. A finished row is kept, and its reply remembered as the
exact ids that followed its prompt.
"""

from __future__ import annotations

from llmos_grammar.engines import CopiesRows
from llmos_grammar.errors import ModelError
from llmos_grammar.results import Runner
from llmos_grammar.runtime.kv import KVSequence
from llmos_grammar.serve.kept import KeptRow, KeptRows, Replies
from llmos_grammar.serve.models import EngineGroup
from llmos_grammar.serve.render import Continuation
from llmos_grammar.serve.sched_choice import Choice, Job
from llmos_grammar.serve.types import Message


class RowStore:
    """One engine's rows for requests (see the module docstring); the loop's thread only."""

    def __init__(self, group: EngineGroup, kept: KeptRows, replies: Replies) -> None:
        self.group = group
        self.kept = kept
        self.replies = replies

    def rows(self, job: Job, running: int) -> list[tuple[KVSequence, Runner | None]]:
        """The job's rows, holding its prompt ids, and the runner each continues with
        (`running`: ids the running rows hold, for an engine whose rows share a bound)."""
        plan = job.plan
        self.kept.make_room(
            running, (len(plan.prompt.ids) + plan.budgets.max_tokens) * plan.request.n
        )
        engine, ids, served = self.group.engine, plan.prompt.ids, plan.served.info.id
        found = self.kept.best(ids)
        runner: Runner | None = None
        if found is None:
            first = self.open()
            first.append(list(ids))
        else:
            kept, shared = found
            job.cached = min(shared, kept.seq.cached)
            whole = shared == len(kept.seq.ids)
            if whole or not isinstance(engine, CopiesRows):
                self.kept.take(kept)
                first = kept.seq
                first.truncate(shared)
                runner = kept.runner if whole and kept.served == served else None
                if runner is None and kept.runner is not None:
                    kept.runner.close()
            else:
                # touched first: a row opened for the copy on a full engine evicts the least
                # recently used kept row, which must not be the one it copies from
                self.kept.touch(kept)
                first = self.copy(kept.seq, shared)
            first.append(list(ids[shared:]))
        rows = [(first, runner)]
        for _ in range(1, plan.request.n):
            if isinstance(engine, CopiesRows):
                rows.append((self.copy(first, len(ids)), None))
            else:
                other = self.open()
                other.append(list(ids))
                rows.append((other, None))
        return rows

    def open(self) -> KVSequence:
        """A new row; kept rows make room when the engine holds no more."""
        while True:
            try:
                return KVSequence(self.group.lm, self.group.engine)
            except ModelError:
                if not self.kept.evict_one():
                    raise

    def copy(self, source: KVSequence, length: int) -> KVSequence:
        """A new row holding `source`'s first `length` ids, their cache shared."""
        engine = self.group.engine
        if not isinstance(engine, CopiesRows):
            raise TypeError(f"{type(engine).__name__} does not copy rows")
        seq = self.open()
        engine.copy_prefix(source.row, seq.row, length)
        seq.chosen = [0] * len(seq.ids)
        return seq

    def keep(self, choice: Choice) -> None:
        """A finished choice's row is kept (cut at its stop string) and its reply remembered
        as the ids after its prompt."""
        seq, plan = choice.run.seq, choice.job.plan
        if choice.cut is not None:
            seq.truncate(choice.cut)
        prompt, floor, ids = plan.prompt.ids, seq.floor, seq.ids
        served = plan.served.info.id
        if (
            plan.request.prompt is None
            and floor <= len(prompt)
            and ids[:floor] == list(prompt[:floor])
        ):
            reply = Message("assistant", choice.content, tool_calls=tuple(choice.calls))
            how = Continuation(len(prompt) - floor, tuple(ids[floor:]))
            self.replies.put(served, prompt, reply, how)
        runner, choice.host.runner = choice.host.runner, None
        self.kept.put(KeptRow(seq, served, runner))
