"""`llmos serve SPEC...`: an OpenAI-compatible HTTP server whose actions run inside the decode."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

from llmos_grammar.cli.exits import EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from llmos_grammar.serve.traces import TraceStore

KEY_ENV = "LLMOS_API_KEY"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from llmos_grammar.engines.select import ENGINES

    parser.add_argument(
        "spec",
        nargs="*",
        help="the spec YAML files to serve, one model each (none: the default model, plain chat)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="the port (0: any free one)")
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"the key clients send as Authorization: Bearer KEY (default: ${KEY_ENV})",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="serve on an address other machines reach without an API key",
    )
    parser.add_argument("--batch", type=int, default=8, help="rows decoded together at most")
    parser.add_argument(
        "--engine", choices=ENGINES, help="what runs the models (default: each spec's engine)"
    )
    parser.add_argument(
        "--engine-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an argument of the engine (repeatable), as for llmos run",
    )
    parser.add_argument(
        "--max-queue", type=int, default=64, help="requests waiting for a row at most (then 429)"
    )
    parser.add_argument(
        "--session-ttl",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long an idle conversation's KV cache is kept",
    )
    parser.add_argument(
        "--no-cache-reuse",
        dest="cache_reuse",
        action="store_false",
        help="keep no finished turn's KV cache: every request prefills its whole prompt",
    )
    parser.add_argument(
        "--yes", action="store_true", help="approve actions whose policy asks (confirm: ask)"
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM or Ctrl-C, how long running requests may take before they are cancelled",
    )
    parser.add_argument(
        "--max-body-mb", type=float, default=8.0, help="the largest request body (then 413)"
    )
    parser.add_argument(
        "--traces",
        type=int,
        default=0,
        metavar="N",
        help="keep the traces of the last N request choices, viewable at /traces/ID "
        "(default 0: none recorded)",
    )
    parser.add_argument(
        "--traces-details",
        action="store_true",
        help="the kept traces record each sampled token's probability, alternatives, mask "
        "size and time (the page's hover)",
    )
    parser.add_argument(
        "--traces-mb",
        type=float,
        default=64.0,
        help="the most the kept traces hold together, in MiB (the oldest leave first)",
    )


def run(args: argparse.Namespace) -> int:
    """Check the options, load the models, serve until a signal drains the server."""
    key = args.api_key if args.api_key is not None else os.environ.get(KEY_ENV)
    problem = option_problem(args, key)
    if problem:
        print(f"llmos serve: {problem}", file=sys.stderr)
        return EXIT_USAGE
    from llmos_grammar.engines.vllm.args import parse_engine_args
    from llmos_grammar.serve.app import protocol_options
    from llmos_grammar.serve.scheduler import BatchScheduler
    from llmos_grammar.serve.server import Listen, serve

    traces = trace_store(args)
    scheduler = BatchScheduler(
        args.spec,
        engine=args.engine,
        engine_args=parse_engine_args(args.engine_arg),
        batch=args.batch,
        max_queue=args.max_queue,
        session_ttl=args.session_ttl,
        yes=args.yes,
        reuse=args.cache_reuse,
        traces=traces,
    )
    try:
        options = protocol_options(scheduler.models(), key, int(args.max_body_mb * 1024 * 1024))
        options = replace(options, traces=traces)
    except BaseException:
        scheduler.close()
        raise
    serve(scheduler, options, Listen(args.host, args.port, args.grace))
    return EXIT_OK


def option_problem(args: argparse.Namespace, key: str | None) -> str | None:
    """What is wrong with the options, or None."""
    from llmos_grammar.serve.http_auth import is_loopback

    if key is not None and not key.strip():
        return f"the API key is empty: give --api-key KEY or set {KEY_ENV}"
    if not key and not args.insecure and not is_loopback(args.host):
        return (
            f"--host {args.host} is reachable from other machines and no API key is set: "
            f"give --api-key KEY (or set {KEY_ENV}), or --insecure to serve without one"
        )
    if not 0 <= args.port <= 65535:
        return f"--port {args.port} is not a port (0 to 65535)"
    for name in ("batch", "max_queue"):
        if getattr(args, name) < 1:
            return f"--{name.replace('_', '-')} must be at least 1 (got {getattr(args, name)})"
    for name in ("session_ttl", "grace", "max_body_mb", "traces_mb"):
        if not getattr(args, name) > 0:
            return f"--{name.replace('_', '-')} must be above 0 (got {getattr(args, name)})"
    if args.traces < 0:
        return f"--traces must be 0 (no traces) or more (got {args.traces})"
    if args.traces_details and not args.traces:
        return "--traces-details records details into kept traces: give --traces N too"
    return None


def trace_store(args: argparse.Namespace) -> TraceStore | None:
    """The store of `--traces N` (None for 0: nothing is recorded, nothing is served)."""
    if not args.traces:
        return None
    from llmos_grammar.serve.traces import TraceStore

    limit = int(args.traces_mb * 1024 * 1024)
    return TraceStore(args.traces, max_bytes=limit, details=args.traces_details)
