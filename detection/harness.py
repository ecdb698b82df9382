"""The run contract (CONTRIBUTING.md) for this folder: flags, checkpoint, metrics, errors.

Not the lesson: train.py imports it so that its training loop fits on a screen. Every
folder carries its own copy (a folder copied out alone still runs); the root contract test
(tests/test_contract.py) checks what these functions write.

    parser = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_config_flags(parser, TrainConfig, HELP)
    args = parser.parse_args(argv)
    config = config_from_args(TrainConfig, args)
"""

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

CHECKPOINT = "checkpoint.pt"


class UserError(Exception):
    """A mistake in what the user asked for (a flag, a path, a checkpoint): one line, exit 1."""


class TrainingError(Exception):
    """Training cannot go on (a non-finite loss): one line, exit 1, last good checkpoint kept."""


# ----------------------------------------------------------------------------- flags


def add_config_flags(parser, config_cls, help=None, skip=()):
    """One --kebab-case flag per dataclass field, its default taken from the field.

    The default is typed once, in the dataclass; argparse shows it in --help.
    """
    help = help or {}
    for f in dataclasses.fields(config_cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        text = help.get(f.name) or f.name.replace("_", " ")
        if isinstance(f.default, bool):
            # default False: a switch (`--smoke`); default True: `--figures/--no-figures`
            action = argparse.BooleanOptionalAction if f.default else "store_true"
            parser.add_argument(flag, dest=f.name, action=action, default=f.default, help=text)
        else:
            kind = type(f.default)
            parser.add_argument(flag, dest=f.name, type=kind, default=f.default, help=text)


def config_from_args(config_cls, args):
    return config_cls(
        **{
            f.name: getattr(args, f.name)
            for f in dataclasses.fields(config_cls)
            if hasattr(args, f.name)
        }
    )


def given_flags(argv):
    """Field names the user typed on the command line (so --resume can tell them from defaults)."""
    argv = sys.argv[1:] if argv is None else argv
    names = set()
    for a in argv:
        if a.startswith("--"):
            name = a[2:].split("=")[0]
            names.add(name.removeprefix("no-").replace("-", "_"))
    return names


def check(condition, message):
    """Validate a flag value before any work: one clear line instead of a traceback later."""
    if not condition:
        raise UserError(message)


# ----------------------------------------------------------------------------- device, threads


def pick_device(name):
    """--device auto|cpu|cuda|mps -> torch.device; auto prefers cuda, then mps, then cpu."""
    if name == "auto":
        name = (
            "cuda"
            if torch.cuda.is_available()
            else "mps"
            if torch.backends.mps.is_available()
            else "cpu"
        )
    elif name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device here (use --device auto or cpu)")
    elif name == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps: no MPS device here (use --device auto or cpu)")
    elif name not in ("cpu", "cuda", "mps"):
        raise UserError(f"--device {name}: expected auto, cpu, cuda or mps")
    return torch.device(name)


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type


def set_threads(n):
    """--threads 0 (auto) uses half the cores this process may run on, at least one.

    PyTorch's intra-op threads spin while they wait for each other: on a machine with
    other work running, as many threads as cores made small models 10x slower, while
    half the cores costs little when the machine is idle (measured in the READMEs).
    """
    if n == 0:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        n = max(1, (cores or 1) // 2)
    torch.set_num_threads(n)
    return n


# ----------------------------------------------------------------------------- files


def prepare_out_dir(path):
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UserError(f"cannot write to --out-dir {path}: {e.strerror or e}") from None
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


# ----------------------------------------------------------------------------- RNG, checkpoint


def rng_state():
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    # plain data for weights_only=True: tuples and NumPy arrays become lists and tensors
    state["python"] = [state["python"][0], list(state["python"][1]), state["python"][2]]
    n = state["numpy"]
    state["numpy"] = [n[0], torch.from_numpy(n[1].astype(np.int64)), n[2], n[3], n[4]]
    return state


def set_rng_state(state):
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path, *, model, optimizer, model_config, train_config, step, history, **extras):
    """The contract's keys, plain data only, written atomically. extras: ema, scaler, ..."""
    ckpt = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "model_config": dataclasses.asdict(model_config),
        "train_config": dataclasses.asdict(train_config),
        "step": step,
        "rng": rng_state(),
        "history": history,
        **extras,
    }
    atomic_write(path, lambda tmp: torch.save(ckpt, tmp))


def load_checkpoint(path, device="cpu"):
    path = Path(path)
    if not path.exists():
        raise UserError(f"no checkpoint at {path}: run train.py first (or pass --out-dir)")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # torch raises many kinds for a damaged file
        raise UserError(f"{path} is corrupt or not a checkpoint ({type(e).__name__})") from None
    missing = {"model", "model_config", "train_config", "step"} - set(ckpt)
    if missing:
        raise UserError(f"{path} is not a checkpoint of this folder (lacks {sorted(missing)})")
    return ckpt


def resume_train_config(
    stored, config, given, may_change=("steps", "epochs", "device", "threads", "out_dir", "resume")
):
    """The stored run's train_config, with only the flags that may change on resume applied.

    A flag the user typed that would change the run (batch size, learning rate, ...) is
    refused in one line rather than silently mixed into a different run.
    """
    merged = dict(stored)
    for name in given:
        if name not in merged:
            continue
        new = getattr(config, name)
        if name in may_change:
            merged[name] = new
        elif new != stored[name]:
            flag = "--" + name.replace("_", "-")
            raise UserError(
                f"{flag} {new} differs from the checkpoint's {stored[name]}: resume with the run's flags, or start a new --out-dir"
            )
    return type(config)(**merged)


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


def plot_loss(history, path, title=""):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    if history["step"]:
        marker = "o" if len(history["step"]) < 3 else None
        ax.plot(history["step"], history["train_loss"], label="train", alpha=0.7, marker=marker)
    if history["eval_step"]:
        ax.plot(history["eval_step"], history["val_loss"], "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
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
    missing = set(METRIC_KEYS) - set(metrics)
    assert not missing, f"metrics.json lacks {sorted(missing)}"
    assert metrics["device"] in ("cpu", "cuda", "mps"), metrics["device"]
    assert metrics["selection"] in ("final", "best"), metrics["selection"]
    write_json(metrics, path)


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
