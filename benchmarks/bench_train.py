"""Training speed and memory: today's trainer (TRL's GRPOTrainer) beside the new one, in one run.

1. seconds per completion in a GRPO step, both trainers on the same tasks, sizes and
   machine (target: the new one >= 3x lower), CPU seconds beside the wall clock; the
   new trainer's training pass on the same examples with the system prompt fed with
   each example and fed once (what the prompt costs per step);
2. peak RSS of a GRPO step with 64 completions (target < 4 GB), each measurement in a
   child process of its own (model loading included);
3. one RFT round over the training tasks: sampling, scoring and fine-tuning (target
   < 20 minutes for the 240 tasks).

"Today's trainer" is the code path of commit 3fe5f53 (`llmos_grammar.train.pipeline`,
`rollout`, `rewards`, `steplog`: unchanged since but for a docstring).

    python benchmarks/bench_train.py                       # the full measurement
    python benchmarks/bench_train.py --steps 1 --completions 4 --group 2 \\
        --rss-completions 8 --rft-tasks 4 --rft-samples 2   # a quick check of the script
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
SPEC = ROOT / "examples" / "calculator" / "spec.yaml"
TASKS = ROOT / "examples" / "calculator" / "train_tasks.jsonl"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="GRPO steps per trainer (3)")
    parser.add_argument("--completions", type=int, default=16, help="per GRPO step (16)")
    parser.add_argument("--group", type=int, default=8, help="GRPO group (8)")
    parser.add_argument("--rows", type=int, default=16, help="new trainer: rows decoded together")
    parser.add_argument(
        "--step-tasks",
        type=int,
        default=0,
        help="GRPO speed: both trainers draw from the first N training tasks (0: completions / "
        "group, so that every step of both samples the same tasks)",
    )
    parser.add_argument("--rss-completions", type=int, default=64, help="the RSS step (64)")
    parser.add_argument(
        "--baseline-rss", action="store_true", help="also today's trainer at --rss-completions"
    )
    parser.add_argument("--rft-tasks", type=int, default=240, help="tasks of the RFT round")
    parser.add_argument("--rft-samples", type=int, default=4, help="runs per task (4)")
    parser.add_argument("--skip", action="append", default=[], choices=("old", "new", "rss", "rft"))
    parser.add_argument("--wall-s", type=float, default=3600.0, help="per run (a loaded machine)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--prompt-cost", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(run_child(args.child, args)), flush=True)
        return 0
    return report(args)


def child(kind: str, args: argparse.Namespace, *flags: str, **sizes: int) -> dict[str, Any]:
    """Run one measurement in a fresh process; its result (and its own peak RSS)."""
    argv = [sys.executable, __file__, "--child", kind, "--wall-s", str(args.wall_s),
            "--group", str(args.group), "--rows", str(args.rows), *flags]  # fmt: skip
    for key, value in sizes.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    print(f"... {kind} {sizes}", file=sys.stderr, flush=True)
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        tail = "\n".join(done.stderr.splitlines()[-15:])
        raise SystemExit(f"bench_train: the {kind} child failed ({done.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    return result


def report(args: argparse.Namespace) -> int:
    results: dict[str, Any] = {"machine": machine_info(), "args": vars(args)}
    tasks = args.step_tasks or max(1, args.completions // args.group)
    step = {"steps": args.steps, "completions": args.completions, "step_tasks": tasks}
    if "old" not in args.skip:
        results["grpo_old"] = child("grpo-old", args, **step)
    if "new" not in args.skip:
        results["grpo_new"] = child("grpo-new", args, "--prompt-cost", **step)
    if "rss" not in args.skip:
        results["rss_new"] = child("grpo-new", args, steps=1, completions=args.rss_completions)
        if args.baseline_rss:
            results["rss_old"] = child("grpo-old", args, steps=1, completions=args.rss_completions)
    if "rft" not in args.skip:
        results["rft"] = child("rft", args, rft_tasks=args.rft_tasks, rft_samples=args.rft_samples)
    results["machine_after"] = machine_info()
    print(table(results, args))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


def machine_info() -> dict[str, Any]:
    from host import cpu_name

    return {"cpu": cpu_name(), "cores": os.cpu_count(), "load": list(os.getloadavg()),
            "time": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip


# ---- the children: one measurement each ---------------------------------------------


def run_child(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    import resource
    from dataclasses import replace

    from llmos_grammar.eval import load_tasks
    from llmos_grammar.models import load_model, set_threads
    from llmos_grammar.spec import load

    set_threads()
    machine = load(SPEC)
    machine = replace(machine, budgets=replace(machine.budgets, wall_s=args.wall_s))
    lm = load_model(machine.model)
    tasks = load_tasks(str(TASKS)).tasks
    if kind.startswith("grpo") and args.step_tasks:
        tasks = tasks[: args.step_tasks]
    measure = {"grpo-old": grpo_old, "grpo-new": grpo_new, "rft": rft_round_once}[kind]
    result = measure(machine, lm, tasks, args)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def grpo_old(machine: Any, lm: Any, tasks: Any, args: argparse.Namespace) -> dict[str, Any]:
    """TRL's GRPOTrainer over the rollout function and rewards of commit 3fe5f53."""
    from transformers import set_seed

    from llmos_grammar.eval import Scorer
    from llmos_grammar.train.pipeline import TrainConfig, build_trainer
    from llmos_grammar.train.rewards import RewardLog, reward_functions
    from llmos_grammar.train.rollout import Rollout
    from llmos_grammar.train.steplog import StepLog

    set_seed(0)
    config = TrainConfig(steps=args.steps, group=args.group, batch=args.completions)
    scorer, log = Scorer(machine), RewardLog()
    rollout = Rollout(machine, batch=config.batch, temperature=config.temperature, seed=0)
    out = Path(tempfile.mkdtemp(prefix="bench_train_"))
    steplog = StepLog(out / "log.jsonl", config.steps, log, progress=False, rollout=rollout)
    rewards = reward_functions(config.terms, scorer, tasks, log)
    trainer = build_trainer(lm, tasks, config, out, rollout, rewards, [steplog.callback()])
    cpu = time.process_time()
    trainer.train()
    cpu = time.process_time() - cpu
    rollout.close()
    scorer.close()
    steps = [{"seconds": r.seconds, "sample_seconds": r.rollout_seconds or 0.0,
              "solved_rate": r.metric("reward_mean")} for r in steplog.records]  # fmt: skip
    return {"completions": args.completions, "steps": steps, "cpu_seconds": round(cpu, 1)}


def new_context(machine: Any, lm: Any, tasks: Any, settings: Any) -> Any:
    from llmos_grammar.actions import ActionRunner
    from llmos_grammar.eval import Scorer
    from llmos_grammar.train.loop import Context, make_optimizer
    from llmos_grammar.train.policy import Policy

    policy = Policy(lm, settings.lora_r)
    optimizer = make_optimizer(policy, settings.learning_rate)
    runner = ActionRunner(machine.policy)
    return Context(machine, policy, Scorer(machine), runner, tasks, settings, optimizer, False)


def grpo_new(machine: Any, lm: Any, tasks: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The new GRPO: steps as `llmos-train --method grpo` runs them, then the prompt's cost."""
    from llmos_grammar.train.grpo import grpo_step
    from llmos_grammar.train.settings import TrainSettings

    settings = TrainSettings(method="grpo", steps=args.steps, group=args.group,
                             batch=args.completions, rows=args.rows)  # fmt: skip
    ctx = new_context(machine, lm, tasks, settings)
    steps, cpu = [], time.process_time()
    record = None
    for index in range(1, args.steps + 1):
        record = grpo_step(ctx, index)
        steps.append({"seconds": record.sampled.seconds + record.fit.seconds,
                      "sample_seconds": record.sampled.seconds, "train_seconds": record.fit.seconds,
                      "solved_rate": record.solved_rate, "signal": record.signal})  # fmt: skip
    cpu = time.process_time() - cpu
    result = {"completions": args.completions, "steps": steps, "cpu_seconds": round(cpu, 1)}
    if record is not None and args.prompt_cost:
        result["prompt_cost"] = prompt_cost(ctx, record)
    return result


def prompt_cost(ctx: Any, record: Any) -> dict[str, Any]:
    """One training pass over a step's runs (weight 1), the system prompt fed with every
    example and fed once; the gradients are dropped."""
    from llmos_grammar.train.examples import eos_id_of, example
    from llmos_grammar.train.lean_pass import backward_pass

    lm = ctx.policy.lm
    examples = [example(r.result, eos_id_of(lm.tokenizer), lm.eos_ids)
                for r in record.sampled.runs if r.result is not None]  # fmt: skip
    out: dict[str, Any] = {"examples": len(examples)}
    for name, share in (("each", False), ("once", True)):
        cpu = time.process_time()
        stats = backward_pass(ctx.policy.model, examples, tokens=ctx.settings.micro_tokens,
                              share_prefix=share)  # fmt: skip
        ctx.optimizer.zero_grad(set_to_none=True)
        out[name] = {"seconds": round(stats.seconds, 2), "cpu_seconds":
                     round(time.process_time() - cpu, 2), "fed_tokens": stats.fed,
                     "prefix_tokens": stats.prefix}  # fmt: skip
    return out


def rft_round_once(machine: Any, lm: Any, tasks: Any, args: argparse.Namespace) -> dict[str, Any]:
    """One RFT round over the first --rft-tasks tasks, as `llmos-train --method rft` runs it."""
    from llmos_grammar.train.rft import rft_round
    from llmos_grammar.train.settings import TrainSettings

    settings = TrainSettings(rounds=1, samples=args.rft_samples, rows=args.rows)
    ctx = new_context(machine, lm, tasks[: args.rft_tasks], settings)
    cpu = time.process_time()
    record = rft_round(ctx, 1)
    return {"tasks": len(ctx.tasks), "samples": settings.samples, "line": record.line(),
            **record.to_json(), "cpu_seconds": round(time.process_time() - cpu, 1)}  # fmt: skip


# ---- the table ------------------------------------------------------------------------


def per_completion(result: dict[str, Any] | None) -> tuple[float, float, float] | None:
    """Seconds per completion: every step, the steps after the first, and their sampling."""
    if not result or not result["steps"]:
        return None
    n, steps = result["completions"], result["steps"]
    later = steps[1:] or steps
    mean = sum(s["seconds"] for s in steps) / len(steps) / n
    steady = sum(s["seconds"] for s in later) / len(later) / n
    sampling = sum(s["sample_seconds"] for s in later) / len(later) / n
    return mean, steady, sampling


def table(results: dict[str, Any], args: argparse.Namespace) -> str:
    rows = [("measurement", "today's (TRL)", "new", "ratio", "target")]
    old, new = per_completion(results.get("grpo_old")), per_completion(results.get("grpo_new"))
    label = f"GRPO s/completion ({args.completions} a step, group {args.group})"
    for i, name in enumerate((label, "  the same, steps after the first", "  of it sampling")):
        a = f"{old[i]:.2f}" if old else "-"
        b = f"{new[i]:.2f}" if new else "-"
        ratio = f"{old[i] / new[i]:.2f}x" if old and new and new[i] else "-"
        rows.append((name, a, b, ratio, ">= 3x" if i == 1 else ""))
    cpu = [results.get(k, {}).get("cpu_seconds") for k in ("grpo_old", "grpo_new")]
    per_step = [f"{c / args.steps:.1f}" if c else "-" for c in cpu]
    rows.append(("  CPU s per step (this process)", *per_step,
                 f"{cpu[0] / cpu[1]:.2f}x" if all(cpu) else "-", ""))  # fmt: skip
    cost = (results.get("grpo_new") or {}).get("prompt_cost")
    if cost and new and cost["examples"]:
        full = new[2] + cost["once"]["seconds"] / cost["examples"]
        ratio = f"{old[1] / full:.2f}x" if old else "-"
        rows.append(("  new, had every group signal", "", f"{full:.2f}", ratio, ">= 3x"))
    if cost:
        each, once = cost["each"], cost["once"]
        rows.append((f"training pass, {cost['examples']} runs: prompt with each / once",
                     f"{each['seconds']:.1f} s ({each['fed_tokens']} tok)",
                     f"{once['seconds']:.1f} s ({once['fed_tokens']}+{once['prefix_tokens']})",
                     f"{each['seconds'] / once['seconds']:.2f}x" if once["seconds"] else "-",
                     ""))  # fmt: skip
    for key, who in (("rss_old", 1), ("rss_new", 2)):
        if key in results:
            gb = results[key]["peak_rss_mb"] / 1024
            cells = ["-", "-"]
            cells[who - 1] = f"{gb:.2f} GB"
            rows.append((f"peak RSS, GRPO step of {results[key]['completions']}", *cells, "",
                         "< 4 GB"))  # fmt: skip
    rft = results.get("rft")
    if rft:
        total = rft["sample_seconds"] + rft["train_seconds"]
        rows.append((f"RFT round, {rft['tasks']} tasks x {rft['samples']}", "-",
                     f"{total / 60:.1f} min", "", "< 20 min"))  # fmt: skip
        rows.append(
            (
                "  sampling+scoring / fine-tuning",
                "",
                f"{rft['sample_seconds']:.0f} s / {rft['train_seconds']:.0f} s",
                "",
                "",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    m, after = results["machine"], results["machine_after"]
    lines.append(f"machine: {m['cpu']}, {m['cores']} cores; load {m['load'][0]:.1f} at the "
                 f"start, {after['load'][0]:.1f} at the end")  # fmt: skip
    if rft:
        lines.append("RFT: " + rft["line"])
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
