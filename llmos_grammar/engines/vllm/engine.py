"""`VLLMEngine`: rows of token ids whose segments are requests to a vLLM server."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from llmos_grammar.engines.base import Capabilities, EngineCounters, SegmentOutput, SegmentParams
from llmos_grammar.engines.registry import ENGINES
from llmos_grammar.engines.vllm.protocol import completion_body, read_completion
from llmos_grammar.engines.vllm.server import VLLMServer, http_json

if TYPE_CHECKING:
    from llmos_grammar.models import LoadedModel

IN_FLIGHT = 64  # requests open at once (rows of all batches of a runtime)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class VLLMEngine:
    """A SegmentEngine over one server; rows are independent requests, so batches share it.

    The server keeps no row: each segment sends the row's whole ids, and vLLM's
    prefix cache recomputes only the tail it has not seen. `cached` is the part
    of a row the server has already computed (its last prompt and output).
    Counters: a forward pass per request; tokens fed are prompt tokens beyond
    what the row's previous request held, plus a closed row's kept tail.
    """

    capabilities: Capabilities = ENGINES["vllm"].capabilities

    def __init__(self, server: VLLMServer) -> None:
        self.server = server
        self.timeout = server.options.request_timeout_s
        self.api_key = server.options.api_key
        self.counters = EngineCounters()
        self._rows: dict[int, list[int]] = {}
        self._seen: dict[int, list[int]] = {}  # the ids of the row's last request and its output
        self._sent: dict[int, int] = {}  # how many of _seen were the last request's prompt
        self._row_counters: dict[int, EngineCounters] = {}
        self._next = 0
        self._pool = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="llmos-vllm")

    # ---- rows -------------------------------------------------------------------
    def open_row(self) -> int:
        row = self._next
        self._next += 1
        self._rows[row] = []
        self._seen[row] = []
        self._sent[row] = 0
        self._row_counters[row] = EngineCounters()
        return row

    def append(self, row: int, tokens: Sequence[int]) -> None:
        self._rows[row].extend(int(t) for t in tokens)

    def truncate(self, row: int, length: int) -> None:
        del self._rows[row][length:]

    def ids(self, row: int) -> list[int]:
        return self._rows[row]

    def cached(self, row: int) -> int:
        return common_prefix(self._rows[row], self._seen[row])

    def row_counters(self, row: int) -> EngineCounters:
        return self._row_counters[row]

    def close_row(self, row: int) -> None:
        ids = self._rows.pop(row)
        tail = len(ids) - common_prefix(ids, self._seen[row][: self._sent[row]])
        self._count(row, 0, tail)
        del self._seen[row], self._sent[row], self._row_counters[row]

    def copy_prefix(self, source: int, target: int, length: int) -> None:
        """Empty row `target` starts with `source`'s first `length` ids; the server's prefix
        cache holds what it computed of them."""
        if self._rows[target]:
            raise ValueError("copy_prefix fills an empty row")
        self._rows[target] = self._rows[source][:length]
        self._seen[target] = list(self._seen[source])
        self._sent[target] = self._sent[source]

    def cache_bytes_per_id(self) -> int:
        """Rows here are id lists: the cache is the server's (its prefix cache evicts)."""
        return 0

    def cache_capacity(self) -> int | None:
        return None

    # ---- segments ------------------------------------------------------------------
    def generate(self, row: int, params: SegmentParams) -> Future[SegmentOutput]:
        """Send one segment request for the row's ids; the answer arrives on the future."""
        ids = list(self._rows[row])
        fed = len(ids) - common_prefix(ids, self._seen[row][: self._sent[row]])
        self._count(row, 1, fed)
        self._sent[row] = len(ids)
        self._seen[row] = ids
        future = self._pool.submit(self._request, ids, params)
        future.add_done_callback(lambda f: self._remember(row, ids, f))
        return future

    def _request(self, ids: list[int], params: SegmentParams) -> SegmentOutput:
        body = completion_body(self.server.model, ids, params)
        data = http_json(
            f"{self.server.url}/v1/completions", body, timeout=self.timeout, api_key=self.api_key
        )
        return read_completion(data, params)

    def _remember(self, row: int, ids: list[int], future: Future[SegmentOutput]) -> None:
        if row in self._seen and not future.cancelled() and future.exception() is None:
            self._seen[row] = ids + list(future.result().tokens)

    def _count(self, row: int, passes: int, tokens: int) -> None:
        for counters in (self.counters, self._row_counters[row]):
            counters.forward_passes += passes
            counters.tokens_fed += tokens

    def context_window(self) -> int | None:
        """The server keeps its own limit (`max_model_len`) and refuses a longer row."""
        return None

    def close(self) -> None:
        """Stop taking requests (open ones finish on their threads); the server stays."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def start_engine(lm: LoadedModel, prefix: Sequence[int]) -> VLLMEngine:
    """The registry's starter: a client of the model's server (its prefix cache shares the
    prompt every row starts with, so `prefix` needs nothing here)."""
    if not isinstance(lm.model, VLLMServer):
        raise TypeError(f"the vllm engine talks to a VLLMServer, not {type(lm.model).__name__}")
    return VLLMEngine(lm.model)
