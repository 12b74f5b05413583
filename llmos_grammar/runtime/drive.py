"""Drive one run on the calling thread, with Ctrl-C held back while the engine runs a pass."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from llmos_grammar.engines import Engine, gives_logits
from llmos_grammar.runtime.events import Event
from llmos_grammar.runtime.loop import Run
from llmos_grammar.runtime.requests import ActionCall, Generate, Reply, Step
from llmos_grammar.runtime.step import step_rows


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold SIGINT until the block ends, then raise KeyboardInterrupt.

    A forward pass stopped half-way would leave some cache layers longer than
    others; held back, Ctrl-C lands between passes, where the row can be cut.
    Off the main thread (no signal handlers there) the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def drive(run: Run, engine: Engine) -> Iterator[Event]:
    """The run's events; forward steps and actions happen here, on this thread.

    Actions run on this thread too, so an approval question reads the terminal
    where the caller does. Ctrl-C during an action kills the runner's sandboxes
    (and a persistent interpreter with them); the KeyboardInterrupt goes on.
    """
    rt = run.rt
    logits = gives_logits(engine)  # a Session refuses engines that give segments up front
    gen = run.events()
    reply: Reply = None
    error: BaseException | None = None
    try:
        while True:
            try:
                item = gen.throw(error) if error is not None else gen.send(reply)
            except StopIteration:
                return
            reply, error = None, None
            if isinstance(item, Step):
                with deferred_interrupt():
                    reply = step_rows(logits, rt.masks, rt.mask_worker, [item])[0]
            elif isinstance(item, ActionCall):
                try:
                    reply = rt.call_action(item.action, item.text)
                except KeyboardInterrupt:
                    rt.abort_actions([])
                    raise
                except Exception as exc:  # handed to the run, as a batch does
                    error = exc
            elif isinstance(item, Generate):
                raise TypeError("drive() steps engines that give logits only")
            else:
                yield item
    finally:
        gen.close()
