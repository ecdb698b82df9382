"""The glue behind `make test-all`, `make demo` and `make results`.

Every project folder has its own `model.py`, so one pytest process for all of
them would import the wrong `model`: each folder runs in a process of its own,
from inside the folder, and this script adds the counts up.

    python scripts/monorepo.py test-all            # -> "test-all: N passed, M failed"
    python scripts/monorepo.py demo [FOLDER ...]   # train.py + inference.py, then the table
    python scripts/monorepo.py results [--markdown]

The results table is read from each folder's `runs/metrics.json`, never typed
by hand (CONTRIBUTING.md lists the keys).
"""

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECTS = [
    "backprop",
    "lenet",
    "alexnet",
    "resnet",
    "detection",
    "distillation",
    "rnn",
    "transformer",
    "gpt2",
    "vae",
    "gan",
    "diffusion",
    "stable_diffusion",
]
COUNT_WORDS = {
    "passed": "passed",
    "failed": "failed",
    "error": "failed",
    "errors": "failed",
    "skipped": "skipped",
    "xfailed": "skipped",
    "xpassed": "passed",
}


def existing_projects(root=ROOT):
    """Folders of the learning path that exist yet, in learning-path order."""
    return [p for p in PROJECTS if (root / p).is_dir()]


def parse_pytest_summary(lines):
    """Counts from pytest's closing line, e.g. '3 failed, 40 passed, 2 skipped in 9.1s'.

    >>> parse_pytest_summary(["....", "1 failed, 2 passed, 1 error in 0.5s"])
    {'passed': 2, 'failed': 2, 'skipped': 0}
    """
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for line in reversed(lines):
        found = re.findall(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)\b", line)
        if found and re.search(r"\bin [\d.]+s", line):
            for n, word in found:
                counts[COUNT_WORDS[word]] += int(n)
            break
    return counts


def run_streaming(cmd, cwd):
    """Run cmd in cwd, echo its output as it comes, return (exit code, output lines)."""
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line.rstrip("\n"))
    return proc.wait(), lines


def run_tests(name, cwd, args, stream=True):
    """One pytest process; a non-zero exit with no failure counted counts as one failure.

    With stream=False the output is held and printed whole when the process ends, so that
    folders run side by side do not interleave their lines.
    """
    t0 = time.time()
    if stream:
        print(f"\n=== {name} ===", flush=True)
        code, lines = run_streaming([sys.executable, "-m", "pytest", "-q", *args], cwd)
    else:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        code, lines = proc.returncode, proc.stdout.splitlines()
        print(f"\n=== {name} ===\n" + "\n".join(lines), flush=True)
    counts = parse_pytest_summary(lines)
    if code != 0 and counts["failed"] == 0:
        why = "no tests collected" if code == 5 else f"pytest exited with code {code}"
        print(f"{name}: {why}; counted as a failure")
        counts["failed"] = 1
    print(f"--- {name}: {format_counts(counts)} ({time.time() - t0:.0f} s)", flush=True)
    return counts


def format_counts(counts):
    text = f"{counts['passed']} passed, {counts['failed']} failed"
    return text + (f", {counts['skipped']} skipped" if counts["skipped"] else "")


def default_jobs():
    """Folders tested side by side: one per core (each test process holds one thread)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cores or 1)


def folder_counts(p, root, stream):
    if not (root / p / "tests").is_dir():
        print(f"\n=== {p} ===\n{p}: has no tests/ folder; counted as a failure")
        return {"passed": 0, "failed": 1, "skipped": 0}
    return run_tests(p, root / p, [], stream=stream)


def test_all(root=ROOT, jobs=1):
    folders = existing_projects(root)
    if jobs > 1:
        print(f"test-all: {len(folders)} folders, {jobs} at a time", flush=True)
        with ThreadPoolExecutor(jobs) as pool:
            counts = list(pool.map(lambda p: folder_counts(p, root, False), folders))
    else:
        counts = [folder_counts(p, root, True) for p in folders]
    per_folder = list(zip(folders, counts))
    # the root tests run every folder's scripts in subprocesses: pytest-xdist spreads them
    xdist = ["-n", str(jobs)] if jobs > 1 and importlib.util.find_spec("xdist") else []
    per_folder.append(("root", run_tests("root tests", root, ["tests", *xdist])))
    total = {"passed": 0, "failed": 0, "skipped": 0}
    print("\n=== summary ===")
    for name, c in per_folder:
        print(f"  {name:<18} {format_counts(c)}")
        for k in total:
            total[k] += c[k]
    print(f"test-all: {format_counts(total)}")
    return 0 if total["failed"] == 0 else 1


def read_metrics(folder, root=ROOT):
    path = root / folder / "runs" / "metrics.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def results_table(folders, markdown=False, root=ROOT):
    """One row per folder from runs/metrics.json; each column has one meaning (CONTRIBUTING.md).

    `value` is the headline metric of the model the checkpoint holds, in `unit`;
    `selection` says whether that model is the last step's (final) or the best-so-far.
    """
    header = ["folder", "dataset", "metric", "value", "unit", "selection", "seconds", "device"]
    rows = []
    for p in folders:
        m = read_metrics(p, root)
        if m is None:
            rows.append([p, "-", "(no runs/metrics.json: run make train-" + p + ")", *[""] * 5])
            continue
        value = m.get("value")
        value = f"{value:.4f}" if isinstance(value, float) else str(value)
        arrow = " (higher is better)" if m.get("higher_is_better") else " (lower is better)"
        seconds = m.get("seconds")
        seconds = f"{seconds:.0f}" if isinstance(seconds, (int, float)) else "?"
        rows.append(
            [
                p,
                str(m.get("dataset")),
                str(m.get("metric")) + arrow,
                value,
                str(m.get("unit", "?")),
                str(m.get("selection", "?")),
                seconds,
                str(m.get("device")),
            ]
        )
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        out = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
        out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def demo(folders, root=ROOT):
    failed = []
    for p in folders:
        if not (root / p / "train.py").exists():
            print(
                f"error: '{p}' is not a project folder here (have: {' '.join(existing_projects(root))})"
            )
            return 2
        for script in ("train.py", "inference.py"):
            print(f"\n=== {p}: python {script} ===", flush=True)
            code = subprocess.call([sys.executable, script], cwd=root / p)
            if code != 0:
                failed.append(f"{p}/{script}")
                break
    print("\n=== results (from each folder's runs/metrics.json) ===")
    print(results_table(folders, root=root))
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("test-all", help="run every folder's tests, then the root tests")
    t.add_argument("--jobs", type=int, default=default_jobs(), help="folders tested at once")
    d = sub.add_parser("demo", help="train + infer folders, then print the results table")
    d.add_argument("folders", nargs="*", help="default: every existing folder")
    r = sub.add_parser("results", help="print the results table from runs/metrics.json")
    r.add_argument("--markdown", action="store_true", help="a markdown table for the README")
    args = parser.parse_args(argv)
    if args.command == "test-all":
        return test_all(jobs=max(1, args.jobs))
    if args.command == "demo":
        return demo(args.folders or existing_projects())
    print(results_table(existing_projects(), markdown=args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
