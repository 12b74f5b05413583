"""Warm standby children: the next action's sandbox is started while the model is decoding.

A standby is the very process the action will be (bubblewrap, uid drop,
rlimits, its own cgroups and fresh working directory), started ahead of time
from a fresh interpreter that never saw the runtime's memory, and blocked
reading its program from stdin. Taking one costs no start-up; the pool then
starts the next. Guarantees are those of a cold start: one process tree per
action, killed and cleaned up when the action ends.

Children are started by the pool's own thread, so that starting one never
waits on the caller; they are forked by `lifeline.popen`'s long-lived thread,
since a parent-death signal follows the thread that forked (see
`llmos_grammar.sandbox.lifeline`), and die with the runtime like any sandbox.
"""

from __future__ import annotations

import atexit
import queue
import threading
from dataclasses import dataclass, field

from llmos_grammar.ir import ActionPolicy
from llmos_grammar.sandbox.plan import make_plan
from llmos_grammar.sandbox.probe import Capabilities, probe
from llmos_grammar.sandbox.runner import Child


@dataclass
class _Order:
    argv: list[str]
    policy: ActionPolicy
    done: threading.Event = field(default_factory=threading.Event)
    child: Child | None = None


class StandbyPool:
    """At most one ready child per key (an action), started by the pool's own thread."""

    def __init__(self, caps: Capabilities | None = None) -> None:
        self.caps = caps or probe()
        self._orders: dict[str, _Order] = {}
        self._queue: queue.Queue[_Order | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._closed = False
        atexit.register(self.close)  # a forgotten runner must not leave sandboxes behind

    def _work(self) -> None:
        while True:
            order = self._queue.get()
            if order is None:
                return
            try:
                plan = make_plan(order.policy, self.caps, warm=True)
                order.child = Child(order.argv, order.policy, plan)
            except Exception:  # the action then starts cold
                order.child = None
            order.done.set()

    def prepare(self, key: str, argv: list[str], policy: ActionPolicy) -> None:
        """Start a standby child for `key` now, if none is ordered yet."""
        if key not in self._orders and not self._closed:
            self.take(key, argv, policy)

    def take(self, key: str, argv: list[str], policy: ActionPolicy) -> Child | None:
        """The ready child for `key` (None the first time), and order the next one."""
        if self._closed:
            return None
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="llmos-standby", daemon=True)
            self._thread.start()
        previous = self._orders.pop(key, None)
        order = _Order(argv, policy)
        self._orders[key] = order
        if previous is None:
            self._queue.put(order)
            return None
        previous.done.wait()
        self._queue.put(order)
        if previous.argv != argv or previous.policy != policy:
            if previous.child is not None:
                previous.child.finish()
            return None
        return previous.child

    def close(self) -> None:
        """Stop every standby child and the thread that started them."""
        atexit.unregister(self.close)
        self._closed = True
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join()
        for order in self._orders.values():
            if order.child is not None:
                order.child.finish()
        self._orders.clear()
