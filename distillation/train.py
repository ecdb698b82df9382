"""Train a teacher, a student alone, or a student distilled from the teacher (Hinton et al. 2015).

https://arxiv.org/abs/1503.02531, Sections 2 and 3.

    python train.py                        # kd: trains runs/teacher/ if missing, then the student
    python train.py --role student         # the same student on the hard labels alone
    python train.py --role teacher --out-dir runs/teacher
    python train.py --omit-class 3         # Section 3: the student never sees a 3

Roles: `teacher` learns the labels with augmentation and dropout; `student` learns the same
transfer set's hard labels (alpha = 0, no teacher); `kd` learns
alpha * T^2 * KL(p_teacher^T || p_student^T) + (1 - alpha) * CE. The teacher runs in eval()
(no dropout) on the SAME augmented batch the student sees: a table of teacher outputs
precomputed on clean images would teach the student the wrong targets for shifted ones.

Tests: tests/test_train.py (gates on digits, resume equals an uninterrupted run, the teacher is
reused, bad flags are one line); the root tests/test_run_contract.py checks the artefacts.
"""

import argparse
import dataclasses
import math
import time
from contextlib import nullcontext
from pathlib import Path

import harness
import torch
from config import HELP, TrainConfig, validate
from data import DataError, batch_at, load_dataset, random_shift, transfer_indices
from harness import UserError, check
from model import (
    SMOKE,
    STUDENTS,
    TEACHER,
    Classifier,
    best_bias_shift,
    build_config,
    distillation_loss,
    from_config,
    n_params,
)


def lr_at(step, *, lr, schedule_steps):
    """Cosine decay from lr to 0 over schedule_steps; 0 past that horizon."""
    t = min(step, schedule_steps) / schedule_steps
    return lr * 0.5 * (1 + math.cos(math.pi * t))


# ----------------------------------------------------------------------------- teacher


def teacher_dir(c):
    return Path(c.teacher_dir) if c.teacher_dir else Path(c.out_dir) / "teacher"


def load_teacher(path, c, data, device):
    """The teacher from its run folder, checked against this run's data; None if it has none."""
    if not (path / harness.CHECKPOINT).exists():
        return None
    ckpt = harness.load_checkpoint(path / harness.CHECKPOINT, device)
    tc, mc, k, where = ckpt["train_config"], ckpt["model_config"], len(data["classes"]), path
    for ok, why in [
        (tc.get("role") == "teacher", f"is not a teacher's checkpoint (role {tc.get('role')})"),
        (mc["n_classes"] == k, f"was trained for {mc['n_classes']} classes; {c.dataset} has {k}"),
        (tc["dataset"] == c.dataset, f"was trained on {tc['dataset']}, not {c.dataset}"),
        (
            ckpt["step"] >= tc["steps"],
            f"stopped at step {ckpt['step']} of {tc['steps']}: finish it with --role teacher --out-dir {path} --resume",
        ),
        (c.smoke or not tc["smoke"], "is a --smoke teacher: remove it or pass --teacher-dir"),
    ]:
        check(ok, f"teacher {where} {why}")
    teacher = Classifier(from_config(mc)).to(device)
    teacher.load_state_dict(ckpt["model"])
    return teacher.eval()


def ensure_teacher(c, data, device, resuming):
    """Reuse the teacher run in teacher_dir, or train it there first (never on resume)."""
    path = teacher_dir(c)
    teacher = load_teacher(path, c, data, device)
    if teacher is None:
        check(
            not resuming, f"the student in {c.out_dir} needs its teacher {path}, which is missing"
        )
        print(f"no teacher in {path}: training it first")
        steps = c.teacher_steps or c.steps
        tc = dataclasses.replace(
            c,
            role="teacher",
            out_dir=str(path),
            steps=steps,
            schedule_steps=0,
            omit_class=-1,
            label_fraction=1.0,
            resume=False,
        )
        train(tc)
        teacher = load_teacher(path, c, data, device)
    return teacher


# ----------------------------------------------------------------------------- one step


def batch_loss(model, teacher, x, y, c):
    """The loss of one batch x (N, C, H, W), already augmented: the teacher sees the same x."""
    logits = model(x)  # (N, K)
    if c.role != "kd":
        return distillation_loss(logits, None, y, c.temperature, alpha=0.0)
    teacher.eval()  # no dropout: the soft targets are the teacher's best guess
    with torch.no_grad():
        teacher_logits = teacher(x)  # (N, K)
    return distillation_loss(logits, teacher_logits, y, c.temperature, c.alpha)


@torch.no_grad()
def predict(model, x, device, batch=1024):
    was_training = model.training
    model.eval()
    out = torch.cat(
        [model(x[i : i + batch].to(device)).float().cpu() for i in range(0, len(x), batch)]
    )
    model.train(was_training)
    return out  # (N, K) logits


def evaluate(model, split, device):
    """(cross-entropy, accuracy, logits) of the model on (x, y) at T = 1."""
    x, y = split
    logits = predict(model, x, device)
    loss = torch.nn.functional.cross_entropy(logits, y).item()
    return loss, (logits.argmax(1) == y).float().mean().item(), logits


# ----------------------------------------------------------------------------- train


def train(config, given=None):
    """Train config.role into config.out_dir; returns the metrics dict (also metrics.json)."""
    c = config
    if c.smoke:
        c = dataclasses.replace(
            c,
            steps=min(c.steps, 60),
            teacher_steps=min(c.teacher_steps or 60, 60),
            eval_every=min(c.eval_every, 15),
        )
    validate(c)
    threads = harness.set_threads(c.threads)
    device = harness.pick_device(c.device)
    out = harness.prepare_out_dir(c.out_dir)
    ckpt = None
    if c.resume:
        ckpt = harness.load_checkpoint(out / harness.CHECKPOINT, device)
        given = set(f.name for f in dataclasses.fields(c)) if given is None else given
        c = harness.resume_train_config(ckpt["train_config"], c, given)
        validate(c)
    try:
        data = load_dataset(c.dataset, c.data_dir, c.download, c.test_set_only)
    except DataError as e:
        raise UserError(str(e)) from None
    k = len(data["classes"])
    check(c.omit_class < k, f"--omit-class {c.omit_class}: {c.dataset} has classes 0..{k - 1}")
    check(c.omit_class >= -1, f"--omit-class {c.omit_class}: a class 0..{k - 1}, or -1 for none")
    teacher = ensure_teacher(c, data, device, c.resume) if c.role == "kd" else None

    torch.manual_seed(c.seed)
    x_train, y_train = data["train"]
    preset = TEACHER if c.role == "teacher" else STUDENTS[c.student]
    preset = SMOKE if c.smoke and c.role == "teacher" else preset
    mc = build_config(preset, x_train.shape[-1], x_train.shape[1], k)
    model = Classifier(mc).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    horizon = c.schedule_steps or c.steps
    c = dataclasses.replace(c, schedule_steps=horizon)
    history, step = harness.new_history("val_accuracy"), 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step, history = ckpt["step"], ckpt["history"]
        harness.set_rng_state(ckpt["rng"])
        if c.steps > horizon:
            print(
                f"warning: --steps {c.steps} runs past the schedule's horizon {horizon}: the learning rate stays at its end value 0"
            )
    idx = transfer_indices(c, y_train)
    augment = c.role == "teacher" or c.transfer_set != "labelled"
    amp = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(
        "bfloat16" if c.dtype == "auto" and device.type == "cuda" else c.dtype
    )
    autocast = lambda: torch.autocast(device.type, dtype=amp) if amp else nullcontext()  # noqa: E731
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    extras = dict(role=c.role, teacher_dir=str(teacher_dir(c)) if teacher is not None else "")
    save = lambda: harness.save_checkpoint(
        out / harness.CHECKPOINT,
        model=model,
        optimizer=optimizer,
        model_config=mc,
        train_config=c,
        step=step,
        history=history,
        **extras,
    )
    print(
        f"{c.role}: {n_params(model):,} parameters, {len(idx)} training images, {c.steps} steps on {device}"
    )

    # --- the loop: a batch of the transfer set, augmented once, seen by teacher and student alike
    model.train()
    t0 = time.time()
    while step < c.steps:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, lr=c.lr, schedule_steps=horizon)
        b = batch_at(step, idx, c)
        x, y = x_train[b], y_train[b]
        x = (random_shift(x, c.max_shift) if augment else x).to(device)
        with autocast():
            loss = batch_loss(model, teacher, x, y.to(device), c)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        step += 1
        harness.check_finite(loss.item(), step, out)
        history["step"].append(step)
        history["train_loss"].append(loss.item())
        if step % c.eval_every == 0 or step == c.steps:
            val_loss, val_acc, _ = evaluate(model, data["val"], device)
            history["eval_step"].append(step)
            history["val_loss"].append(val_loss)
            history["val_accuracy"].append(val_acc)
            print(
                f"step {step} | loss {loss.item():.4f} | val {val_loss:.4f} | val acc {val_acc:.4f} | {1000 * (time.time() - t0) / step:.1f} ms/step"
            )
            save()
    seconds = time.time() - t0
    return finish(c, model, teacher, data, device, history, out, seconds, threads, step)


def finish(c, model, teacher, data, device, history, out, seconds, threads, step):
    """Test figures of the checkpoint's model (and the omitted-class bias fix), metrics.json, loss.png."""
    _, test_acc, logits = evaluate(model, data["test"], device)
    y, K = data["test"][1], len(data["classes"])
    wrong = logits.argmax(1) != y
    extra = dict(role=c.role, student="" if c.role == "teacher" else c.student)
    extra.update(test_errors=int(wrong.sum()), n_test=len(y))
    extra["class_accuracy"] = [round(1 - wrong[y == k].float().mean().item(), 4) for k in range(K)]
    if teacher is not None:
        _, extra["teacher_test_accuracy"], _ = evaluate(teacher, data["test"], device)
        extra["teacher_n_params"] = n_params(teacher)
    if c.omit_class >= 0 and c.role != "teacher":
        k, val_logits = c.omit_class, evaluate(model, data["val"], device)[2]
        b, _ = best_bias_shift(val_logits, data["val"][1], k, [i / 4 for i in range(61)])
        fixed = logits.clone()
        fixed[:, k] += b  # Section 3: raise the omitted class's output bias by b
        still_wrong = fixed.argmax(1) != y
        extra.update(omitted_class=k, n_omitted_test=int((y == k).sum()), bias_shift=b)
        extra.update(omitted_class_errors=int(wrong[y == k].sum()))
        extra.update(test_errors_corrected=int(still_wrong.sum()))
        extra.update(omitted_class_errors_corrected=int(still_wrong[y == k].sum()))
    metrics = dict(project="distillation", dataset=c.dataset, metric="test_accuracy")
    metrics.update(value=test_acc, unit="fraction", higher_is_better=True, selection="final")
    metrics.update(n_params=n_params(model), steps=step, seconds=round(seconds, 2), seed=c.seed)
    metrics.update(device=device.type, device_name=harness.device_name(device), threads=threads)
    metrics.update(temperature=c.temperature, alpha=c.alpha if c.role == "kd" else 0.0)
    metrics.update(transfer_set=c.transfer_set, label_fraction=c.label_fraction, **extra)
    harness.write_metrics(out / "metrics.json", **metrics)
    harness.plot_loss(history, out / "loss.png", title=f"{c.role} ({c.dataset})")
    print(
        f"{c.role}: test accuracy {test_acc:.4f} ({extra['test_errors']} errors) in {seconds:.1f} s"
    )
    return metrics


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    harness.add_config_flags(p, TrainConfig, HELP)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    given = harness.given_flags(argv)

    def run():
        c = harness.config_from_args(TrainConfig, args)
        if c.role != "kd":  # flags that do not apply to this role are refused, not ignored
            for name in {"temperature", "alpha", "teacher_dir", "teacher_steps"} & given:
                raise UserError(f"--{name.replace('_', '-')} applies to --role kd only")
        if c.role == "teacher":
            for name in {"student", "transfer_set", "omit_class", "label_fraction"} & given:
                raise UserError(
                    f"--{name.replace('_', '-')} is a student flag: --role teacher learns all its labels"
                )
        train(c, given)

    return harness.run_main(run, lambda: args.out_dir)


if __name__ == "__main__":
    raise SystemExit(main())
