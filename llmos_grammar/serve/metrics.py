"""`GET /metrics`: Prometheus counters, gauges and histograms of one server.

Requests by route and status, queue depth, running rows, tokens/s, time to first token
and time per output token, actions by status, and the KV cache reuse ratio (prompt
tokens served from a kept cache over all prompt tokens). Each server has its own
registry, so two apps in one process never share a series.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from llmos_grammar.serve.types import (
    ChoiceDone,
    RequestDone,
    RequestFailed,
    Scheduler,
    ServeEvent,
)

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# an action's status (results.ActionResult.status) by its first words; bounded label values
_ACTION_LABELS = (
    ("exit ", "failed"),
    ("refused", "refused"),
    ("timed out", "timed_out"),
    ("limit hit", "limit_hit"),
    ("killed", "killed"),
)
CLIENT_CLOSED = 499  # the status recorded for a client that went away (nginx's convention)


class TokenRate:
    """Completion tokens per second over about the last `window_s` seconds."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, total: int) -> None:
        self.samples.append((now, total))
        while len(self.samples) > 2 and self.samples[1][0] <= now - self.window_s:
            self.samples.popleft()  # keep one sample at or before the window's start

    def rate(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.samples[0], self.samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


class Metrics:
    """The series of one server and the hooks that feed them."""

    def __init__(self, scheduler: Scheduler, in_flight: Callable[[], int]) -> None:
        disable_created_metrics()  # no `_created` twin of every series
        self.registry = CollectorRegistry()
        self.rate = TokenRate()
        self.scheduler = scheduler
        self.requests = Counter(
            "llmos_requests",
            "HTTP requests by route and status (499: the client went away)",
            ["route", "status"],
            registry=self.registry,
        )
        self.ttft = Histogram(
            "llmos_time_to_first_token_seconds",
            "from a request's arrival to its first output",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tpot = Histogram(
            "llmos_time_per_output_token_seconds",
            "a request's time after its first output over its other completion tokens",
            buckets=TOKEN_BUCKETS,
            registry=self.registry,
        )
        self.actions = Counter(
            "llmos_actions",
            "actions that served specs ran: ok, failed, refused, timed_out, limit_hit, killed",
            ["status"],
            registry=self.registry,
        )
        self.registry.register(_SchedulerCollector(scheduler, self.rate, in_flight))

    def record_request(self, route: str, status: int) -> None:
        self.requests.labels(route, str(status)).inc()

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    async def observe(
        self, events: AsyncIterator[ServeEvent], started: float
    ) -> AsyncIterator[ServeEvent]:
        """Pass `events` through, timing the first output and the tokens after it."""
        first: float | None = None
        async for event in events:
            now = time.monotonic()
            if first is None and not isinstance(event, RequestDone | RequestFailed):
                first = now
                self.ttft.observe(now - started)
            if isinstance(event, ChoiceDone):
                for record in event.llmos:
                    if record.get("type") == "action":
                        self.actions.labels(action_label(record.get("status"))).inc()
            if isinstance(event, RequestDone):
                tokens = event.usage.completion_tokens
                if first is not None and tokens > 1:
                    self.tpot.observe((now - first) / (tokens - 1))
                self.rate.add(now, self.scheduler.stats().completion_tokens)
            yield event


def action_label(status: object) -> str:
    """An action's status (`exit 0`, `refused: why`, ...) as one of a few label values."""
    text = str(status)
    if text == "exit 0":
        return "ok"
    for prefix, label in _ACTION_LABELS:
        if text.startswith(prefix):
            return label
    return "other"


class _SchedulerCollector:
    """The scheduler's gauges and totals, read at each scrape."""

    def __init__(self, scheduler: Scheduler, rate: TokenRate, in_flight: Callable[[], int]) -> None:
        self.scheduler = scheduler
        self.rate = rate
        self.in_flight = in_flight

    def collect(self) -> Iterable[Metric]:
        stats = self.scheduler.stats()
        self.rate.add(time.monotonic(), stats.completion_tokens)
        ratio = stats.cached_tokens / stats.prompt_tokens if stats.prompt_tokens else 0.0
        gauges = {
            "llmos_queue_depth": ("requests waiting for a row", stats.queued),
            "llmos_running_rows": ("rows of the batch decoding now", stats.running_rows),
            "llmos_requests_in_flight": ("accepted requests not answered yet", self.in_flight()),
            "llmos_kept_rows": ("finished turns whose KV cache is kept", stats.kept_rows),
            "llmos_kept_cache_bytes": ("bytes of the kept KV caches", stats.kept_bytes),
            "llmos_tokens_per_second": ("completion tokens/s over about 10 s", self.rate.rate()),
            "llmos_kv_cache_reuse_ratio": ("cached prompt tokens / prompt tokens", ratio),
        }
        for name, (text, value) in gauges.items():
            yield GaugeMetricFamily(name, text, value=value)
        totals = {
            "llmos_prompt_tokens": ("prompt tokens since start", stats.prompt_tokens),
            "llmos_cached_tokens": ("prompt tokens served from a kept cache", stats.cached_tokens),
            "llmos_completion_tokens": ("completion tokens since start", stats.completion_tokens),
        }
        for name, (text, value) in totals.items():
            yield CounterMetricFamily(name, text, value=value)
