"""`llmos serve`'s code path on a tiny random model, for the trace tests: the real scheduler,
app and server, with `llmos serve`'s own flags (`--traces N`, `--traces-details`,
`--api-key`, ...) read by its own parser.

    python -m tests.serve_traces_support --port 0 [--traces N] [--api-key KEY]

Served: `calc`, whose reply is exactly `CODE` (forced by its grammar), run by the default
policy's python action in the real sandbox, its output injected; and `plain`, the tiny
model as plain chat.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace

# The program's output: markup and an entity that must reach a page as text only.
PRINTED = "</script><img src=x onerror=alert(1)>&amp;"
CODE = f"print({PRINTED!r})\n"


def main() -> int:
    from llmos_grammar.cli.serve import KEY_ENV, add_arguments, option_problem, trace_store
    from llmos_grammar.serve.app import protocol_options
    from llmos_grammar.serve.models import served_on
    from llmos_grammar.serve.scheduler import BatchScheduler
    from llmos_grammar.serve.server import Listen, serve
    from tests.serve_sched_support import action_machine
    from tests.test_runtime_batch import varied_model

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args()
    key = args.api_key if args.api_key is not None else os.environ.get(KEY_ENV)
    problem = option_problem(args, key)
    if problem:
        print(f"llmos serve: {problem}", file=sys.stderr)
        return 2
    traces = trace_store(args)
    served = served_on(varied_model(), [action_machine("calc", CODE)], plain="plain")
    scheduler = BatchScheduler(served=served, batch=args.batch, traces=traces)
    options = replace(protocol_options(scheduler.models(), key), traces=traces)
    serve(scheduler, options, Listen(args.host, args.port, args.grace))
    return 0


if __name__ == "__main__":
    sys.exit(main())
