"""Warm standby children: the next action's sandbox is started while the model is decoding.

A standby is the very process the action will be (bubblewrap, uid drop,
rlimits, its own cgroups and fresh working directory), started ahead of time
from a fresh interpreter that never saw the runtime's memory, and blocked
reading its program from stdin. Taking one costs no start-up; the pool then
starts the next in a background thread. Guarantees are those of a cold start:
one process tree per action, killed and cleaned up when the action ends.
"""

from __future__ import annotations

import threading

from llmos_grammar.ir import ActionPolicy
from llmos_grammar.sandbox.plan import make_plan
from llmos_grammar.sandbox.probe import Capabilities, probe
from llmos_grammar.sandbox.runner import Child


class StandbyPool:
    """At most one ready child per key (an action); thread-safe enough for one runtime."""

    def __init__(self, caps: Capabilities | None = None) -> None:
        self.caps = caps or probe()
        self._pending: dict[str, tuple[threading.Thread, list[Child | BaseException]]] = {}
        self._lock = threading.Lock()

    def _spawn(self, key: str, argv: list[str], policy: ActionPolicy) -> None:
        box: list[Child | BaseException] = []

        def start() -> None:
            try:
                box.append(Child(argv, policy, make_plan(policy, self.caps, warm=True)))
            except BaseException as exc:  # reported when the child is taken
                box.append(exc)

        thread = threading.Thread(target=start, name=f"llmos-standby-{key}", daemon=True)
        thread.start()
        self._pending[key] = (thread, box)

    def take(self, key: str, argv: list[str], policy: ActionPolicy) -> Child | None:
        """The ready child for `key` (None the first time), and start the next one."""
        with self._lock:
            entry = self._pending.pop(key, None)
            self._spawn(key, argv, policy)
        if entry is None:
            return None
        thread, box = entry
        thread.join()
        found = box[0] if box else None
        return found if isinstance(found, Child) else None

    def close(self) -> None:
        """Stop every standby child and clean up after it."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for thread, box in pending.values():
            thread.join()
            for item in box:
                if isinstance(item, Child):
                    item.finish()
