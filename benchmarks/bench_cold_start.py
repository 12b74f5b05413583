"""Cold start: `llmos-run` start to the first model token, first run and then with a warm cache.

    python benchmarks/bench_cold_start.py [--runs 3] [--engines transformers,llamacpp]
The first run may convert the default GGUF (or cache its tokenizer); the targets
(<= 5 s on transformers, <= 3 s on llama.cpp, 2 cores) are for runs after that.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "calculator" / "spec.yaml"
TARGETS = {"transformers": 5.0, "llamacpp": 3.0}


def first_token_s(task: str, engine: str) -> float:
    exe = shutil.which("llmos-run")
    cmd = [exe] if exe else [sys.executable, "-m", "llmos_grammar.cli.main", "run"]
    cmd += [str(SPEC), task, "--json", "--max-tokens", "8", "--engine", engine]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    found = float("nan")
    for line in proc.stdout:
        event = json.loads(line)
        # the first token the model chose: forced text (the assistant prefix, a grammar's
        # only way on) is shown before the prompt's forward pass
        if event.get("kind") == "token" and not event.get("forced"):
            found = time.perf_counter() - started
            break
    proc.kill()
    proc.wait()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engines", default="transformers,llamacpp")
    args = parser.parse_args()
    for engine in args.engines.split(","):
        times = [first_token_s("What is 2 + 2?", engine) for _ in range(args.runs)]
        for i, value in enumerate(times, 1):
            print(f"{engine} run {i}: first model token after {value:.2f} s")
        warm = min(times[1:]) if len(times) > 1 else times[0]
        target = TARGETS.get(engine, 5.0)
        print(f"{engine}: cold start with a warm cache {warm:.2f} s (target <= {target:g} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
