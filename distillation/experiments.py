"""The paper's experiments at CPU scale, one command each, each a markdown table and/or a PNG.

Hinton, Vinyals, Dean 2015, https://arxiv.org/abs/1503.02531.

    python experiments.py headline      # teacher / student alone / student + KD over seeds
                                        # (their inference latency: bench.py)
    python experiments.py temperature   # accuracy vs T (1, 2, 4, 8, 20) and vs alpha
    python experiments.py omit          # Section 3: the student never sees a 3; the bias fix
    python experiments.py lowdata       # the speech result in miniature: few labels, soft targets
    python experiments.py dark          # the teacher's soft targets at T = 1, 4, 20
    python experiments.py agreement     # seed 0: how closely each student copies the teacher

Every run is train.train() with the flags shown in the table, one teacher per seed (trained
once under OUT_DIR/teacher_s{seed}/ and reused by every experiment). A run folder that holds
a finished run of the same flags is read, not retrained, so `--seeds 3` after `--seeds 2`
trains the third seed only. Tables go to OUT_DIR/NAME.md, pictures to OUT_DIR/NAME*.png.
"""

import argparse
import contextlib
import dataclasses
import io
import math
import statistics
import time
from pathlib import Path

import harness
import torch
from data import labelled_subset, load_dataset
from model import Classifier, from_config, softmax_t
from train import TrainConfig, train
from visualize import plot_similarity, plot_soft_targets, plot_sweep

EXPERIMENTS = ("headline", "temperature", "omit", "lowdata", "dark", "agreement")


def run(args, name, seed, **flags):
    """One train() into OUT_DIR/name_s{seed} with the seed's teacher; its metrics."""
    base = dict(
        dataset=args.dataset,
        data_dir=args.data_dir,
        test_set_only=args.test_set_only,
        max_shift=args.max_shift,
        smoke=args.smoke,
        threads=args.threads,
    )
    if args.steps:
        base["steps"] = args.steps
    c = TrainConfig(
        **(base | flags),
        seed=seed,
        out_dir=str(Path(args.out_dir) / f"{name}_s{seed}"),
        teacher_dir=str(Path(args.out_dir) / f"teacher_s{seed}"),
    )
    if c.role == "teacher":
        c.out_dir, c.teacher_dir = c.teacher_dir, ""
        if (Path(c.out_dir) / "metrics.json").exists():  # written when the teacher finished
            return harness_metrics(c.out_dir)
    m, note = finished(c), "reused"
    if m is None:
        with contextlib.redirect_stdout(io.StringIO()):
            m, note = train(c), "trained"
    print(
        f"  {name} seed {seed}: test accuracy {m['value']:.4f} ({m['seconds']:.0f} s, {note})",
        flush=True,
    )
    return m


# flags that change where or how fast a run goes, not what it learns
NOT_THE_RUN = {"device", "threads", "resume", "out_dir", "data_dir"}


def finished(c):
    """The metrics of a finished run of exactly config c in c.out_dir, or None: add seeds cheaply."""
    out = Path(c.out_dir)
    if c.smoke or not (out / "metrics.json").exists() or not (out / harness.CHECKPOINT).exists():
        return None
    ckpt = harness.load_checkpoint(out / harness.CHECKPOINT)
    stored, want = ckpt["train_config"], dataclasses.asdict(c)
    want["schedule_steps"] = c.schedule_steps or c.steps  # train() stores the resolved horizon
    same = all(stored.get(k) == v for k, v in want.items() if k not in NOT_THE_RUN)
    return harness_metrics(out) if same and ckpt["step"] >= c.steps else None


def harness_metrics(out_dir):
    import json

    return json.loads((Path(out_dir) / "metrics.json").read_text())


def over_seeds(args, name, key="value", **flags):
    ms = [run(args, name, s, **flags) for s in range(args.seeds)]
    vals = [m[key] for m in ms]
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return statistics.mean(vals), sd, ms


def pct(mean, sd):
    return f"{100 * mean:.2f} ± {100 * sd:.2f}"


def headline(args, out):
    rows = [("teacher", dict(role="teacher"))]
    for student in ("cnn", "mlp"):
        rows += [
            (f"{student} alone", dict(role="student", student=student)),
            (f"{student} + KD", dict(role="kd", student=student)),
        ]
    lines = [
        f"| model | parameters | test accuracy (%), mean ± std over {args.seeds} seeds | test errors per seed |",
        "|---|---|---|---|",
    ]
    for label, flags in rows:
        name = (
            "teacher" if flags["role"] == "teacher" else label.replace(" + ", "_").replace(" ", "_")
        )
        mean, sd, ms = over_seeds(args, name, **flags)
        errors = ", ".join(str(m["test_errors"]) for m in ms)
        lines.append(
            f"| {label} | {ms[0]['n_params']:,} | {pct(mean, sd)} | {errors} (of {ms[0]['n_test']}) |"
        )
    return lines


def temperature(args, out):
    Ts, alphas = [1.0, 2.0, 4.0, 8.0, 20.0], [0.0, 0.25, 0.5, 0.75, 0.9, 1.0]
    lines = ["| T (alpha 0.9) | test accuracy (%) |", "|---|---|"]
    by_t = []
    for T in Ts:
        mean, sd, _ = over_seeds(args, f"T{T:g}", temperature=T)
        by_t.append((mean, sd))
        lines.append(f"| {T:g} | {pct(mean, sd)} |")
    lines += ["", "| alpha (T 4) | test accuracy (%) |", "|---|---|"]
    by_a = []
    for a in alphas:
        mean, sd, _ = over_seeds(args, f"alpha{a:g}", alpha=a)
        by_a.append((mean, sd))
        lines.append(f"| {a:g} | {pct(mean, sd)} |")
    plot_sweep(
        Ts,
        {"student + KD (alpha 0.9)": tuple(zip(*by_t))},
        "temperature T",
        out / "temperature.png",
        f"{args.dataset}: accuracy vs T",
        log_x=True,
    )
    plot_sweep(
        alphas,
        {"student + KD (T 4)": tuple(zip(*by_a))},
        "alpha (weight of the soft term)",
        out / "alpha.png",
        f"{args.dataset}: accuracy vs alpha",
    )
    return lines


def omit(args, out, k=3):
    lines = [
        f"| student (all labels but no {k}s) | test errors | errors on {k}s | after the bias fix: errors | on {k}s | bias shift (chosen on val) |",
        "|---|---|---|---|---|---|",
    ]
    for label, flags in [("alone", dict(role="student")), ("+ KD", dict(role="kd"))]:
        ms = [
            run(args, f"omit{k}_{flags['role']}", s, omit_class=k, label_fraction=1.0, **flags)
            for s in range(args.seeds)
        ]
        col = lambda key, ms=ms: " / ".join(str(m[key]) for m in ms)  # noqa: E731
        lines.append(
            f"| {label} | {col('test_errors')} (of {ms[0]['n_test']}) | {col('omitted_class_errors')} (of {ms[0]['n_omitted_test']}) | {col('test_errors_corrected')} | {col('omitted_class_errors_corrected')} | {col('bias_shift')} |"
        )
    lines.append(
        "| paper (MNIST, 3 omitted) | 206 (of 10,000) | 133 (of 1,010) | 109 | 14 | 3.5 (on test) |"
    )
    return lines


def lowdata(args, out):
    fractions = [0.05, 0.1, 0.25, 1.0]
    kinds = [
        ("alone: hard labels of the fraction", dict(role="student")),
        ("+ KD on the same images", dict(role="kd")),
        (
            "+ KD, all images unlabelled (alpha 1)",
            dict(role="kd", transfer_set="unlabelled", alpha=1.0),
        ),
    ]
    lines = [
        "| labelled fraction | " + " | ".join(k for k, _ in kinds) + " |",
        "|---" * (len(kinds) + 1) + "|",
    ]
    series = {k: ([], []) for k, _ in kinds}
    unlabelled = over_seeds(args, "low_unlabelled", **kinds[2][1])  # the same at every fraction
    for f in fractions:
        cells = []
        for label, flags in kinds:
            if flags.get("transfer_set") == "unlabelled":
                mean, sd, _ = unlabelled
            else:
                mean, sd, _ = over_seeds(args, f"low{f:g}_{len(cells)}", label_fraction=f, **flags)
            series[label][0].append(mean)
            series[label][1].append(sd)
            cells.append(pct(mean, sd))
        lines.append(f"| {f:g} | " + " | ".join(cells) + " |")
    plot_sweep(
        fractions,
        series,
        "fraction of training labels the student has",
        out / "lowdata.png",
        f"{args.dataset}: small CNN student",
        log_x=True,
    )
    return lines


def dark(args, out):
    run(args, "teacher", 0, role="teacher")
    ckpt = harness.load_checkpoint(Path(args.out_dir) / "teacher_s0" / harness.CHECKPOINT)
    teacher = Classifier(from_config(ckpt["model_config"])).eval()
    teacher.load_state_dict(ckpt["model"])
    data = load_dataset(args.dataset, args.data_dir, False, args.test_set_only)
    x, y = data["test"]
    with torch.no_grad():
        logits = teacher(x)
    # the images whose runner-up class the teacher rates highest: where dark knowledge is large
    p1 = softmax_t(logits, 1.0)
    runner_up = p1.topk(2).values[:, 1]
    pick = runner_up.argsort(descending=True)[:4]
    rows = [(f"teacher T={T:g}", softmax_t(logits[pick], T)) for T in (1.0, 4.0, 20.0)]
    plot_soft_targets(
        x[pick, 0].numpy(),
        [f"label {data['classes'][c]}" for c in y[pick]],
        rows,
        data["classes"],
        out / "dark_knowledge.png",
    )
    p4 = softmax_t(logits, 4.0)
    k = len(data["classes"])
    sim = torch.stack([p4[y == i].mean(0) for i in range(k)])  # (K, K)
    plot_similarity(
        sim.numpy(),
        data["classes"],
        out / "similarity.png",
        f"teacher's soft targets at T=4 ({args.dataset})",
    )
    lines = ["| true class | the teacher's next most likely classes at T = 4 |", "|---|---|"]
    for i in range(k):
        row = sim[i].clone()
        row[i] = -1
        top = row.topk(2)
        lines.append(
            f"| {data['classes'][i]} | "
            + ", ".join(f"{data['classes'][j]} ({v:.3f})" for v, j in zip(top.values, top.indices))
            + " |"
        )
    return lines


def copying(student_logits, teacher_logits, y):
    """(agreement, repeated): how often the student's answer is the teacher's, on all images
    and on the images the teacher gets wrong (where copying the teacher means a wrong answer)."""
    s, t = student_logits.argmax(1), teacher_logits.argmax(1)
    wrong = t != y
    agree = (s == t).float().mean().item()
    repeated = (s[wrong] == t[wrong]).float().mean().item() if wrong.any() else float("nan")
    return agree, repeated


def load_model(out_dir):
    ckpt = harness.load_checkpoint(Path(out_dir) / harness.CHECKPOINT)
    model = Classifier(from_config(ckpt["model_config"])).eval()
    model.load_state_dict(ckpt["model"])
    return model


def agreement(args, out):
    """Seed 0 of the headline's CNN rows: does the student copy the teacher, mistakes and all?"""
    runs = {"alone": ("cnn_alone", dict(role="student")), "+ KD": ("cnn_KD", dict(role="kd"))}
    metrics = {k: run(args, name, 0, **flags) for k, (name, flags) in runs.items()}
    root = Path(args.out_dir)
    data = load_dataset(args.dataset, args.data_dir, False, args.test_set_only)
    (x_tr, y_tr), (x, y) = data["train"], data["test"]
    labelled = labelled_subset(y_tr, TrainConfig.label_fraction)  # the students' images
    with torch.no_grad():
        teacher = load_model(root / "teacher_s0")
        t_test, t_labelled = teacher(x), teacher(x_tr[labelled])
        off = 1 - softmax_t(t_labelled, 4.0)[torch.arange(len(labelled)), y_tr[labelled]]
        lines = [
            f"teacher: {(t_test.argmax(1) == y).float().mean().item():.2%} right on the test set, "
            f"{(t_labelled.argmax(1) == y_tr[labelled]).float().mean().item():.2%} on the "
            f"{len(labelled):,} labelled training images the students learn from; its T = 4 soft "
            f"targets put {off.mean().item():.3f} of their mass off the label there",
            "",
            "| cnn student (seed 0) | test accuracy | agrees with the teacher | repeats the teacher's test errors |",
            "|---|---|---|---|",
        ]
        for label, (name, _) in runs.items():
            agree, repeated = copying(load_model(root / f"{name}_s0")(x), t_test, y)
            m = metrics[label]
            copied = "no teacher errors" if math.isnan(repeated) else f"{repeated:.2%}"
            lines.append(f"| {label} | {m['value']:.2%} | {agree:.2%} | {copied} |")
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("experiment", choices=EXPERIMENTS + ("all",))
    p.add_argument("--seeds", type=int, default=3, help="seeds per configuration")
    p.add_argument("--dataset", default="digits", help="digits | mnist | fashion-mnist")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--test-set-only", action="store_true", help="mnist from its 10,000 test images")
    p.add_argument("--max-shift", type=int, default=1, help="augmentation shift (pixels)")
    p.add_argument(
        "--steps", type=int, default=0, help="steps of every run (0: train.py's default)"
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: half the cores)")
    p.add_argument("--out-dir", default="runs/experiments")
    p.add_argument("--smoke", action="store_true", help="1 seed, tiny runs: checks the plumbing")
    args = p.parse_args(argv)

    def go():
        harness.check(args.seeds > 0, f"--seeds {args.seeds}: must be > 0")
        if args.smoke:
            args.seeds = 1
        out = harness.prepare_out_dir(args.out_dir)
        names = EXPERIMENTS if args.experiment == "all" else (args.experiment,)
        for name in names:
            t0 = time.time()
            print(f"{name}:", flush=True)
            run(args, "teacher", 0, role="teacher")
            for s in range(1, args.seeds):
                run(args, "teacher", s, role="teacher")
            lines = globals()[name](args, out)
            text = "\n".join(lines) + "\n"
            (out / f"{name}.md").write_text(text)
            print(text + f"({name}: {time.time() - t0:.0f} s, wrote {out / name}.md)", flush=True)

    return harness.run_main(go)


if __name__ == "__main__":
    raise SystemExit(main())
