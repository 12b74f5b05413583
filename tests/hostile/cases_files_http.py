"""files and http handlers: link races, FIFOs, bad paths, URL escapes, bad ports, slow servers."""

from __future__ import annotations

import ctypes
import http.server
import os
import posixpath
import re
import shutil
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

from llmos_grammar.actions import run_action
from llmos_grammar.ir import ActionPolicy
from llmos_grammar.results import ActionResult
from tests.hostile.cases import SECRET, Case, Context, Probe

RENAME_EXCHANGE = 2
AT_FDCWD = -100
DRIP_S = 0.25  # seconds between two bytes of a dripping response


# --- the rename-exchange race (issue case 2) -------------------------------------------------


@dataclass
class RaceTally:
    """What a race run saw: how many actions, and how many of each outcome."""

    swaps: int = 0
    reads: int = 0
    inside: int = 0  # reads that returned the file inside the allowed folder
    refused: int = 0  # actions that failed (a link on the way, most often)
    leaked: int = 0  # reads that returned the file outside
    writes_outside: list[str] = field(default_factory=list)


def _renameat2() -> Callable[[bytes, bytes], int] | None:
    libc = ctypes.CDLL(None, use_errno=True)
    function = getattr(libc, "renameat2", None)
    if function is None:
        return None
    return lambda a, b: int(function(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE))


def race_folders(root: str) -> tuple[str, str]:
    """(allowed, outside) under `root`: allowed/d/f is "inside", allowed/l links to outside/."""
    allowed, outside = os.path.join(root, "allowed"), os.path.join(root, "outside")
    os.makedirs(os.path.join(allowed, "d"))
    os.mkdir(outside)
    for folder, text in ((os.path.join(allowed, "d"), "inside\n"), (outside, SECRET)):
        with open(os.path.join(folder, "f"), "w") as fh:
            fh.write(text)
    os.symlink(outside, os.path.join(allowed, "l"))
    for path in (root, allowed, os.path.join(allowed, "d")):
        os.chmod(path, 0o777)
    return allowed, outside


def exchange_race(
    run: Callable[[str], ActionResult],
    allowed: str,
    outside: str,
    seconds: float,
    max_actions: int,
) -> RaceTally | None:
    """Swap allowed/d and allowed/l with renameat2(RENAME_EXCHANGE) while `run` reads d/f and
    writes d/w<i>; None where renameat2 is missing. Bounded by `seconds` and `max_actions`."""
    exchange = _renameat2()
    if exchange is None:
        return None
    tally, stop = RaceTally(), threading.Event()
    a, b = os.fsencode(os.path.join(allowed, "d")), os.fsencode(os.path.join(allowed, "l"))

    def swap() -> None:
        while not stop.is_set():
            tally.swaps += exchange(a, b) == 0

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    deadline = time.monotonic() + seconds
    try:
        for i in range(max_actions):
            if time.monotonic() > deadline:
                break
            if i % 8 == 7:
                run(f"write d/w{i}\nx")
                continue
            _count(run("read d/f"), tally)
    finally:
        stop.set()
        swapper.join(5)
    tally.writes_outside = sorted(n for n in os.listdir(outside) if n != "f")
    return tally


def _count(result: ActionResult, tally: RaceTally) -> None:
    tally.reads += 1
    if SECRET in result.stdout:
        tally.leaked += 1
    elif result.ok and result.stdout == "inside\n":
        tally.inside += 1
    else:
        tally.refused += 1


def race_problem(tally: RaceTally | None) -> str | None:
    """What the race achieved, or None when it was contained."""
    if tally is None:
        return None  # renameat2 is missing: the attack cannot be made here
    if tally.leaked or tally.writes_outside:
        return (
            f"{tally.leaked} of {tally.reads} reads returned the file outside;"
            f" written outside: {tally.writes_outside}"
        )
    return None


def _race_probe() -> str | None:
    root = tempfile.mkdtemp(prefix="llmos-race-")
    try:
        allowed, outside = race_folders(root)
        policy = ActionPolicy(name="race", handler="files", read=(allowed,), write=(allowed,))
        tally = exchange_race(lambda text: run_action(policy, text), allowed, outside, 2.0, 400)
        return race_problem(tally)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- a careless server: it resolves what it gets, so an escape that is sent is an escape -----


class Sloppy(http.server.BaseHTTPRequestHandler):
    """Decodes the path until it is stable, reads "\\" as "/", drops ";params" and removes dot
    segments, as careless servers and proxies do; /secret.txt lies outside /api."""

    seen: list[str] = []  # every raw path that reached a server

    def do_GET(self) -> None:  # noqa: N802
        Sloppy.seen.append(self.path)
        route = ROUTES.get(self.path)
        if route is not None:
            route(self)
            return
        where = sloppy_path(self.path)
        if where == "/secret.txt":
            self.reply(200, SECRET.encode())
        elif where == "/api" or where.startswith("/api/"):
            self.reply(200, f"api: {where}".encode())
        else:
            self.reply(404, b"no such page")

    def reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str) -> None:
        self.reply(302, b"", {"Location": location})

    def drip(self, headers_too: bool, every: float = DRIP_S) -> None:
        body = b"x" * 40
        head = b"HTTP/1.0 200 OK\r\nContent-Length: 40\r\n\r\n"
        if not headers_too:
            self.wfile.write(head)
        for byte in (head if headers_too else b"") + body:
            try:
                self.wfile.write(bytes([byte]))
            except OSError:
                return  # the client gave up
            time.sleep(every)

    def log_message(self, *args: object) -> None:
        pass


def sloppy_path(raw: str) -> str:
    path = raw.partition("?")[0]
    for _ in range(3):
        path = urllib.parse.unquote(path)
    path = re.sub(r";[^/]*", "", path.replace("\\", "/"))
    return posixpath.normpath(path)


ROUTES: dict[str, Callable[[Sloppy], None]] = {
    "/api/redirect/port-abc": lambda h: h.redirect("http://127.0.0.1:abc/api/x"),
    "/api/redirect/port-big": lambda h: h.redirect("http://127.0.0.1:99999/api/x"),
    "/api/redirect/dotdot": lambda h: h.redirect("/api/%2e%2e/secret.txt"),
    "/api/redirect/relative": lambda h: h.redirect("../../secret.txt"),
    "/api/drip": lambda h: h.drip(headers_too=True),
    "/api/drip-body": lambda h: h.drip(headers_too=False),
    "/api/drip-slow": lambda h: h.drip(headers_too=True, every=0.7),
    "/api/redirect/inside": lambda h: h.redirect("x/../landed"),
    "/api/redirect/loop": lambda h: h.redirect("/api/redirect/loop"),
    "/api/deep": lambda h: h.reply(200, b"[" * 200_000),
}
_servers: dict[str, str] = {}
_lock = threading.Lock()


def server_url(host: str = "127.0.0.1") -> str:
    """The base URL of the careless server on `host`, started once for the process."""
    with _lock:
        if host not in _servers:
            family = http.server.ThreadingHTTPServer
            server_class = type("Server", (family,), {"address_family": _family(host)})
            server = server_class((host, 0), Sloppy)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            shown = f"[{host}]" if ":" in host else host
            _servers[host] = f"http://{shown}:{server.server_address[1]}"
        return _servers[host]


def _family(host: str) -> int:
    import socket

    return socket.AF_INET6 if ":" in host else socket.AF_INET


# --- the cases -------------------------------------------------------------------------------


def _api(ctx: Context) -> tuple[str, ...]:
    return (f"{server_url()}/api",)


HTTP = {"network": True, "urls": _api}


def _escape(name: str, path: str) -> Case:
    """GET base+path (under /api as text) must be refused before anything is sent."""

    def check(r: ActionResult, _: Context) -> str | None:
        if SECRET in r.stdout:
            return f"the secret outside /api was fetched: {r.status}"
        if path in Sloppy.seen:
            return f"{path} reached the server"
        return None if r.refused is not None else f"expected a refusal, got {r.status}"

    def text(_: Context) -> str:
        # `seen` is shared by everything that talks to the server (tests/test_http_handler.py
        # sends these escapes on purpose): the check reads only what this case sent
        Sloppy.seen.clear()
        return f"GET {server_url()}{path}"

    return Case(
        name,
        "http",
        text,
        check,
        overrides=HTTP,
        expect=f"refused before sending (urls: [.../api]): {path}",
    )


def _refused_with(word: str) -> Callable[[ActionResult, Context], str | None]:
    def check(r: ActionResult, _: Context) -> str | None:
        if SECRET in r.stdout:
            return f"the secret was fetched: {r.status}"
        if r.refused is None or word not in r.refused:
            return f"expected a refusal naming the {word}, got {r.status}"
        return None

    return check


def _make_fifo(ctx: Context) -> str:
    path = os.path.join(ctx.allowed, "pipe")
    if not os.path.exists(path):
        os.mkfifo(path)
        os.chmod(path, 0o666)  # a sandboxed worker runs as another user
    return path


def _quick_failure(within: float, *words: str) -> Callable[[ActionResult, Context], str | None]:
    def check(r: ActionResult, _: Context) -> str | None:
        if r.ok or r.timed_out or not any(word in r.stderr for word in words):
            return f"expected an error naming {words} at once, got {r.status}: {r.stderr!r}"
        return None if r.duration_s < within else f"took {r.duration_s:.2f}s"

    return check


def _timed_out_by(limit: float) -> Callable[[ActionResult, Context], str | None]:
    def check(r: ActionResult, _: Context) -> str | None:
        if not r.timed_out or r.limit_hit != "timeout":
            return f"expected a timeout, got {r.status}"
        return None if r.duration_s < limit else f"held {r.duration_s:.2f}s past one deadline"

    return check


FOLDERS = {"read": lambda ctx: (ctx.allowed,), "write": lambda ctx: (ctx.allowed,)}

CASES: tuple[Case, ...] = (
    Case(
        "files_fifo_write",
        "files",
        lambda ctx: f"write {os.path.basename(_make_fifo(ctx))}\nx",
        _quick_failure(0.9, "FIFO"),
        overrides=FOLDERS,
        expect="error at once: a FIFO is not a regular file (no block)",
    ),
    Case(
        "files_fifo_read",
        "files",
        lambda ctx: f"read {os.path.basename(_make_fifo(ctx))}",
        _quick_failure(0.9, "FIFO"),
        overrides=FOLDERS,
        expect="error at once: a FIFO is not a regular file (no block)",
    ),
    Case(
        "files_device_read",
        "files",
        lambda ctx: "read zero",
        # a worker that binds /dev without device access is refused the open itself
        _quick_failure(0.9, "device", "Permission denied"),
        overrides={"read": lambda ctx: ("/dev",)},
        expect="error at once: /dev/zero is a device, not a regular file (or not openable)",
    ),
    Case(
        "files_nul_path",
        "files",
        lambda ctx: "read note.txt\0../outside/secret.txt",
        _quick_failure(0.9, "NUL"),
        overrides=FOLDERS,
        expect="error result naming the NUL byte (no exception)",
    ),
    _escape("http_dotdot", "/api/../secret.txt"),
    _escape("http_pct_dotdot", "/api/%2e%2e/secret.txt"),
    _escape("http_pct_slash", "/api/..%2fsecret.txt"),
    _escape("http_backslash", "/api/..\\secret.txt"),
    _escape("http_semicolon", "/api/..;/secret.txt"),
    _escape("http_double_encoded", "/api/%252e%252e/secret.txt"),
    Case(
        "http_port_abc",
        "http",
        lambda ctx: "GET http://127.0.0.1:abc/api/x",
        _refused_with("port"),
        overrides=HTTP,
        expect="refused: port 'abc' is not a number (no exception)",
    ),
    Case(
        "http_port_big",
        "http",
        lambda ctx: "GET http://127.0.0.1:99999/api/x",
        _refused_with("port"),
        overrides=HTTP,
        expect="refused: port 99999 is out of range (no exception)",
    ),
    Case(
        "http_redirect_port",
        "http",
        lambda ctx: f"GET {server_url()}/api/redirect/port-abc",
        _refused_with("port"),
        overrides=HTTP,
        expect="refused: a redirect to port 'abc' (no exception)",
    ),
    Case(
        "http_redirect_big_port",
        "http",
        lambda ctx: f"GET {server_url()}/api/redirect/port-big",
        _refused_with("port"),
        overrides=HTTP,
        expect="refused: a redirect to port 99999 (no exception)",
    ),
    Case(
        "http_redirect_dotdot",
        "http",
        lambda ctx: f"GET {server_url()}/api/redirect/dotdot",
        _refused_with("dot segment"),
        overrides=HTTP,
        expect="refused: a redirect to /api/%2e%2e/secret.txt",
    ),
    Case(
        "http_drip",
        "http",
        lambda ctx: f"GET {server_url()}/api/drip",
        _timed_out_by(1.6),
        overrides=HTTP,
        expect="timed out at timeout_s=1 though the server sends a byte every 0.25 s",
    ),
)

PROBES: tuple[Probe, ...] = (
    Probe(
        "files_exchange_race",
        _race_probe,
        "no read returns the file outside, no write lands outside (2 s of swaps)",
    ),
)
