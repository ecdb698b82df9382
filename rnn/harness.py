"""The run contract (CONTRIBUTING.md) for this NumPy folder: flags, checkpoint, metrics, errors.

Not the lesson: train.py imports it so that its training loop fits on a screen. backprop,
lenet and rnn carry the same copy (a folder copied out alone still runs); the root contract
test (tests/test_run_contract.py) checks what these functions write.

    parser = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_config_flags(parser, TrainConfig, HELP, CHOICES)
    args = parser.parse_args(argv)
    config = config_from_args(TrainConfig, args)
"""

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

CHECKPOINT = "checkpoint.npz"
JSON_KEYS = ("model_config", "train_config", "step", "rng", "history")


class UserError(Exception):
    """A mistake in what the user asked for (a flag, a path, a checkpoint): one line, exit 1."""


class TrainingError(Exception):
    """Training cannot go on (a non-finite loss): one line, exit 1, last good checkpoint kept."""


# ----------------------------------------------------------------------------- flags


def add_config_flags(parser, config_cls, help=None, choices=None, skip=()):
    """One --kebab-case flag per dataclass field, its default taken from the field.

    The default is typed once, in the dataclass; argparse shows it in --help. A tuple field
    takes several values (`--hidden 64 64`).
    """
    help, choices = help or {}, choices or {}
    for f in dataclasses.fields(config_cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        text = help.get(f.name) or f.name.replace("_", " ")
        if isinstance(f.default, bool):
            # default False: a switch (`--smoke`); default True: `--figures/--no-figures`
            action = argparse.BooleanOptionalAction if f.default else "store_true"
            parser.add_argument(flag, dest=f.name, action=action, default=f.default, help=text)
        elif isinstance(f.default, tuple):
            kind = type(f.default[0]) if f.default else int
            parser.add_argument(
                flag, dest=f.name, type=kind, nargs="+", default=f.default, help=text
            )
        else:
            kind = type(f.default)
            parser.add_argument(
                flag,
                dest=f.name,
                type=kind,
                default=f.default,
                choices=choices.get(f.name),
                help=text,
            )


def config_from_dict(config_cls, values):
    """A config from plain data (JSON turns tuples into lists; this turns them back)."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    return config_cls(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names}
    )


def config_from_args(config_cls, args):
    return config_from_dict(config_cls, vars(args))


def given_flags(argv):
    """Field names the user typed on the command line (so --resume can tell them from defaults)."""
    argv = sys.argv[1:] if argv is None else argv
    names = set()
    for a in argv:
        if a.startswith("--"):
            name = a[2:].split("=")[0]
            names.add(name.removeprefix("no-").replace("-", "_"))
    return names


def changed_fields(config):
    """Fields that differ from their defaults: what train(config) treats as typed flags."""
    return {f.name for f in dataclasses.fields(config) if getattr(config, f.name) != f.default}


def check(condition, message):
    """Validate a flag value before any work: one clear line instead of a traceback later."""
    if not condition:
        raise UserError(message)


def blas_threads(n=1):
    """Hold BLAS to n threads (0: the library's default) inside the `with` block.

    The matrices here are small: on a busy 2-core machine idle OpenBLAS workers spinning for
    each small matmul made a step 10-30x slower, while one thread costs little when idle.
    """
    if n == 0 or "OPENBLAS_NUM_THREADS" in os.environ or "OMP_NUM_THREADS" in os.environ:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    return threadpool_limits(n, user_api="blas")


# ----------------------------------------------------------------------------- files


def prepare_out_dir(path, clear_figures=True):
    """Make --out-dir (one line if it cannot be written) and remove an earlier run's PNGs."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UserError(f"cannot write to --out-dir {path}: {e.strerror or e}") from None
    if clear_figures:  # a picture in OUT_DIR is always of the model its checkpoint holds
        for png in path.glob("*.png"):
            png.unlink()
    return path


def atomic_write(path, write):
    """write(tmp_path) into a temp file beside path, then os.replace: never a half file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(obj, path):
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2) + "\n"))


# ----------------------------------------------------------------------------- checkpoint


def save_checkpoint(
    path, *, model, optimizer, model_config, train_config, step, rng, history, **extras
):
    """checkpoint.npz: arrays `model.<name>`, `optimizer.<name>`; one 0-d JSON string each for
    model_config, train_config, step, rng (the Generator's bit_generator.state) and history.

    extras: an array goes in under its dotted name (`state.0.h`), anything else as JSON.
    """
    arrays = {f"model.{k}": v for k, v in model.params.items()}
    arrays |= {f"optimizer.{k}": np.asarray(v) for k, v in optimizer.state_dict().items()}
    plain = {
        "model_config": dataclasses.asdict(model_config),
        "train_config": dataclasses.asdict(train_config),
        "step": int(step),
        "rng": rng.bit_generator.state,
        "history": history,
    }
    for k, v in extras.items():
        if isinstance(v, np.ndarray):
            assert "." in k, f"extra array {k!r} needs a dotted name"
            arrays[k] = v
        else:
            plain[k] = v
    arrays |= {k: np.array(json.dumps(v)) for k, v in plain.items()}

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)


def load_checkpoint(path):
    """-> {"model": {name: array}, "optimizer": {...}, "model_config": dict, ...}.

    np.load with allow_pickle=False; dotted arrays are grouped by their prefix, the 0-d
    strings are JSON. A missing file says "run train.py first", a damaged one "corrupt".
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"no checkpoint at {path}: run train.py first (or pass --out-dir)")
    try:
        ckpt = {"model": {}, "optimizer": {}}
        with np.load(path, allow_pickle=False) as z:
            for k in z.files:
                if "." in k:
                    group, name = k.split(".", 1)
                    ckpt.setdefault(group, {})[name] = z[k]
                else:
                    ckpt[k] = json.loads(str(z[k]))
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise UserError(f"{path} is corrupt or not a checkpoint ({type(e).__name__})") from None
    missing = set(JSON_KEYS) - set(ckpt)
    if missing or not ckpt["model"]:
        raise UserError(f"{path} is not a checkpoint of this folder (lacks {sorted(missing)})")
    return ckpt


def load_params(params, arrays, path):
    """Copy a checkpoint's model arrays into a model's params, in place; one line on mismatch."""
    if set(arrays) != set(params):
        raise UserError(
            f"{path} does not fit the model its config describes (parameter names differ)"
        )
    for k, p in params.items():
        if arrays[k].shape != p.shape:
            raise UserError(
                f"{path} does not fit its config: {k} is {arrays[k].shape}, not {p.shape}"
            )
        p[...] = arrays[k]


def resume_train_config(
    stored, config, given, may_change=("steps", "epochs", "threads", "out_dir", "resume", "figures")
):
    """The stored run's train_config, with only the flags that may change on resume applied.

    A flag the user typed that would change the run (batch size, learning rate, ...) is
    refused in one line rather than silently mixed into a different run.
    """
    merged, defaults = dict(stored), type(config)()
    for name in given:
        if name not in merged:  # a flag newer than the checkpoint: its run had the default
            if getattr(config, name) != getattr(defaults, name):
                flag = "--" + name.replace("_", "-")
                raise UserError(
                    f"{flag} {getattr(config, name)}: the checkpoint predates this flag (its run had {getattr(defaults, name)}): start a new --out-dir"
                )
            continue
        new = getattr(config, name)
        old = tuple(stored[name]) if isinstance(stored[name], list) else stored[name]
        if name in may_change:
            merged[name] = new
        elif new != old:
            flag = "--" + name.replace("_", "-")
            raise UserError(
                f"{flag} {new} differs from the checkpoint's {old}: resume with the run's flags, or start a new --out-dir"
            )
    merged["resume"] = True
    return config_from_dict(type(config), merged)


def warn_past_horizon(total_steps, schedule_steps, schedule):
    """Extending a run past its LR schedule: say once that the rate stays at the end value."""
    if total_steps > schedule_steps and schedule != "constant":
        print(
            f"warning: {total_steps} steps go past the schedule's horizon of {schedule_steps} "
            f"(--schedule-steps of the first run): the learning rate stays at the schedule's end value",
            file=sys.stderr,
        )


# ----------------------------------------------------------------------------- history, metrics


def new_history(*eval_columns):
    """One shape everywhere: train columns by step, eval columns by eval_step."""
    return {
        "step": [],
        "train_loss": [],
        "eval_step": [],
        "val_loss": [],
        **{c: [] for c in eval_columns},
    }


def check_finite(loss, step, out_dir):
    if not math.isfinite(loss):
        ckpt = Path(out_dir) / CHECKPOINT
        kept = (
            f"the last good checkpoint is {ckpt}" if ckpt.exists() else "no checkpoint was written"
        )
        raise TrainingError(f"loss is {loss} at step {step}: stopped; {kept} (try a lower --lr)")


def plot_loss(history, path, title="", eval_label="validation", ylabel="loss"):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    if history["step"]:
        marker = "o" if len(history["step"]) < 3 else None
        ax.plot(history["step"], history["train_loss"], label="train", alpha=0.7, marker=marker)
    if history["eval_step"]:
        ax.plot(history["eval_step"], history["val_loss"], "o-", ms=3, label=eval_label)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


METRIC_KEYS = {
    "project": str,
    "dataset": str,
    "metric": str,
    "value": float,
    "unit": str,
    "higher_is_better": bool,
    "selection": str,
    "n_params": int,
    "steps": int,
    "seconds": float,
    "device": str,
    "device_name": str,
    "seed": int,
}


def write_metrics(path, **metrics):
    """metrics.json: the keys every folder has (METRIC_KEYS), one meaning each, plus extras."""
    metrics = {"device": "cpu", "device_name": "cpu", **metrics}  # NumPy runs on the CPU
    missing = set(METRIC_KEYS) - set(metrics)
    assert not missing, f"metrics.json lacks {sorted(missing)}"
    assert metrics["selection"] in ("final", "best"), metrics["selection"]
    for k, kind in METRIC_KEYS.items():
        metrics[k] = kind(metrics[k])
    write_json(metrics, path)
    return metrics


# ----------------------------------------------------------------------------- main


def run_main(fn, out_dir_of=lambda: None):
    """The one main() shape: user mistakes and stopped runs are one line on stderr.

    fn() returns an exit code (or None for 0). out_dir_of() names the --out-dir for the
    Ctrl-C message once it is known.
    """
    try:
        return fn() or 0
    except (UserError, TrainingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        out = out_dir_of()
        ckpt = Path(out) / CHECKPOINT if out else None
        where = (
            f"the last checkpoint is {ckpt} (continue with --resume)"
            if ckpt and ckpt.exists()
            else "no checkpoint was written"
        )
        print(f"\ninterrupted: {where}", file=sys.stderr)
        return 130
