#!/usr/bin/python3
"""fer against PyTorch, whole networks, side by side: a Markdown table of images/s.

    /usr/bin/python3 tools/bench_compare.py --fer build/fer [--repeats 3] [--threads 2]
        [--case "mobilenet_v1 --alpha 0.75 --size 96 --batch 64 --mode train" ...]
        [--json OUT.json]

For every case it runs `fer bench --json`, tools/bench_torch.py --config default and
--config tuned, R times. The runs ALTERNATE (repeat 1: every case's three runs, then
repeat 2, ...; the order of the three rotates each repeat) so that all tools see the same
machine conditions, which on a shared machine matters more than any single run's length.
Each run reports the median of its own timed steps; the table shows the median over the
R runs. Batch-1 rows show ms per batch (latency) instead of images/s. The last column is
fer's speed over tuned PyTorch's (> 1: fer is faster). A case whose networks have
different trainable parameter counts in fer and PyTorch is flagged: the comparison would
not be of the same network.
"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# (flags, timed steps, warm-up steps): steps chosen so each run takes a few seconds.
DEFAULT_CASES = [
    ("cnn3 --size 48 --batch 64 --mode train", 10, 2),
    ("cnn3 --size 48 --batch 64 --mode infer", 20, 3),
    ("cnn3 --size 48 --batch 1 --mode infer", 200, 20),
    ("mobilenet_v1 --alpha 0.75 --size 96 --batch 64 --mode train", 8, 2),
    ("mobilenet_v1 --alpha 0.75 --size 96 --batch 64 --mode infer", 15, 3),
    ("mobilenet_v1 --alpha 0.75 --size 96 --batch 1 --mode infer", 100, 10),
    ("mobilenet_v2 --alpha 1.0 --size 96 --batch 64 --mode train", 6, 2),
    ("mobilenet_v2 --alpha 1.0 --size 96 --batch 64 --mode infer", 10, 2),
]
TOOLS = ["fer", "torch-default", "torch-tuned"]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fer", default=os.path.join(ROOT, "build", "fer"), help="the fer binary")
    p.add_argument("--python", default="/usr/bin/python3", help="python with torch (Debian's)")
    p.add_argument("--repeats", "-R", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--case", action="append", metavar="FLAGS",
                   help="'MODEL [--alpha A] [--size S] --batch B --mode M [--steps N --warmup W]'; "
                        "repeatable (default: the standard cases)")
    p.add_argument("--steps-scale", type=float, default=1.0,
                   help="multiply every case's timed steps (0.2 for a quick look)")
    p.add_argument("--timeout", type=float, default=900, help="seconds per run")
    p.add_argument("--json", metavar="OUT", help="save every run's raw result here")
    a = p.parse_args(argv)
    if a.repeats < 1 or a.threads < 1:
        p.error("--repeats and --threads must be >= 1")
    if not os.access(a.fer, os.X_OK):
        p.error("fer binary not found at %s (build it, or pass --fer)" % a.fer)
    return a


def parse_case(text, default_steps=20, default_warmup=3):
    words = shlex.split(text)
    steps, warmup, flags = default_steps, default_warmup, []
    i = 0
    while i < len(words):
        if words[i] in ("--steps", "--warmup") and i + 1 < len(words):
            if words[i] == "--steps":
                steps = int(words[i + 1])
            else:
                warmup = int(words[i + 1])
            i += 2
            continue
        flags.append(words[i])
        i += 1
    if not flags or flags[0].startswith("-"):
        raise SystemExit("bench_compare.py: a case starts with the model name, got '%s'" % text)
    opts = {}
    for k, v in zip(flags[1::2], flags[2::2]):
        opts[k.lstrip("-")] = v
    return {"text": " ".join(flags), "model": flags[0], "flags": flags[1:], "steps": steps,
            "warmup": warmup, "batch": int(opts.get("batch", 64)), "mode": opts.get("mode", "train")}


def command(tool, case, args):
    steps = max(1, int(round(case["steps"] * args.steps_scale)))
    common = ["--model", case["model"]] + case["flags"] + [
        "--threads", str(args.threads), "--steps", str(steps), "--warmup", str(case["warmup"]), "--json"]
    if tool == "fer":
        return [args.fer, "bench"] + common
    config = tool.split("-", 1)[1]
    return [args.python, os.path.join(HERE, "bench_torch.py")] + common + ["--config", config]


def run_one(tool, case, args):
    cmd = command(tool, case, args)
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(args.threads)
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after %g s" % args.timeout, "command": cmd}
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1], "command": cmd}
    try:
        result = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "no JSON in the output: %r" % p.stdout[-200:], "command": cmd}
    result["wall_s"] = time.time() - t0
    return result


def load_average():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def fmt_value(v, batch):
    if v is None:
        return "failed"
    return ("%.2f ms" % v) if batch == 1 else ("%.0f" % v if v >= 100 else "%.1f" % v)


def main(argv):
    args = parse_args(argv)
    if args.case:
        cases = [parse_case(c) for c in args.case]
    else:
        cases = [parse_case(text, steps, warmup) for text, steps, warmup in DEFAULT_CASES]

    runs = {(ci, tool): [] for ci in range(len(cases)) for tool in TOOLS}
    started = time.time()
    loads = [load_average()]
    for r in range(args.repeats):
        order = TOOLS[r % len(TOOLS):] + TOOLS[:r % len(TOOLS)]
        for ci, case in enumerate(cases):
            for tool in order:
                res = run_one(tool, case, args)
                res["repeat"] = r
                runs[(ci, tool)].append(res)
                shown = ("error: " + res["error"]) if "error" in res else \
                    "%.2f ms/batch, %.1f img/s" % (res["ms_per_batch"], res["images_per_s"])
                sys.stderr.write("[%d/%d] %-62s %-14s %s\n" % (r + 1, args.repeats, case["text"], tool, shown))
        loads.append(load_average())

    # One value per run: images/s, or ms per batch for batch 1 (latency is what matters there).
    def value(res, batch):
        if "error" in res:
            return None
        return res["ms_per_batch"] if batch == 1 else res["images_per_s"]

    def med(ci, tool, batch):
        vals = [value(res, batch) for res in runs[(ci, tool)]]
        vals = [v for v in vals if v is not None]
        return (statistics.median(vals), min(vals), max(vals)) if vals else (None, None, None)

    print("fer vs PyTorch, %d threads, median of %d alternating runs (each the median of its own "
          "timed steps); load average %s; %.0f s in all\n"
          % (args.threads, args.repeats, " -> ".join(loads), time.time() - started))
    print("| case | fer img/s | PyTorch default | PyTorch tuned | fer / tuned |")
    print("| --- | ---: | ---: | ---: | ---: |")
    spread = []
    for ci, case in enumerate(cases):
        b = case["batch"]
        vals = {tool: med(ci, tool, b) for tool in TOOLS}
        f, t = vals["fer"][0], vals["torch-tuned"][0]
        ratio = "n/a" if f is None or t is None else "%.2f" % ((t / f) if b == 1 else (f / t))
        fer_params = {res.get("parameters") for res in runs[(ci, "fer")] if "error" not in res}
        torch_params = {res.get("parameters") for tool in TOOLS[1:] for res in runs[(ci, tool)]
                        if "error" not in res}
        flag = "" if len(fer_params | torch_params) <= 1 else " (parameter counts differ: fer %s, torch %s!)" % (
            sorted(fer_params), sorted(torch_params))
        label = case["text"] + (" (ms/batch)" if b == 1 else "")
        print("| %s%s | %s | %s | %s | %s |" % (label, flag, fmt_value(f, b), fmt_value(vals["torch-default"][0], b),
                                               fmt_value(t, b), ratio))
        spread.append((label, b, vals))
    print("\nSpread over the runs (min - max):\n")
    print("| case | fer | PyTorch default | PyTorch tuned |")
    print("| --- | ---: | ---: | ---: |")
    for label, b, vals in spread:
        cells = ["failed" if vals[t][0] is None else "%s - %s" % (fmt_value(vals[t][1], b), fmt_value(vals[t][2], b))
                 for t in TOOLS]
        print("| %s | %s |" % (label, " | ".join(cells)))
    info = next((res for ci in range(len(cases)) for res in runs[(ci, "torch-tuned")] if "error" not in res), None)
    info_d = next((res for ci in range(len(cases)) for res in runs[(ci, "torch-default")] if "error" not in res), None)
    if info and info_d:
        print("\nPyTorch %s; default: BLAS %s (%s), %s; tuned: BLAS %s (%s), %s, malloc %s"
              % (info["torch_version"], info_d["blas"], info_d["blas_core"], info_d["memory_format"],
                 info["blas"], info["blas_core"], info["memory_format"], info["malloc_env"]))
    if args.json:
        out = {"threads": args.threads, "repeats": args.repeats, "load_average": loads,
               "cases": [{"case": c["text"], "steps": c["steps"], "warmup": c["warmup"],
                          "runs": {tool: runs[(ci, tool)] for tool in TOOLS}} for ci, c in enumerate(cases)]}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        sys.stderr.write("wrote %s\n" % args.json)
    failed = sum("error" in res for lst in runs.values() for res in lst)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
