"""ablation.py: each variant is train.py's recipe with exactly its fields changed, the table
and figure are written, steps to 25% training error are read off the history, bad
--variants / --seeds are one line; train.py's train_accuracy column lines up with eval_step."""

import json

import ablation as A
import torch


def test_train_accuracy_lines_up_with_eval_step(gate_run):
    out, _ = gate_run
    h = torch.load(out / "checkpoint.pt", weights_only=True)["history"]
    assert len(h["train_accuracy"]) == len(h["eval_step"]) == 2
    assert all(0 <= a <= 1 for a in h["train_accuracy"])
    assert h["train_accuracy"][-1] > 0.2  # steps 101-200 (0.26 measured); chance is 0.1


def test_steps_to_reads_the_first_interval_under_the_threshold():
    h = {"eval_step": [10, 20, 30, 40], "train_accuracy": [0.5, 0.74, 0.76, 0.9]}
    assert A.steps_to(h) == 30
    assert A.steps_to(h, error=0.05) is None


def test_smoke_runs_each_variant_with_only_its_change(tmp_path, monkeypatch):
    seen = []
    real = A.T.train
    monkeypatch.setattr(A.T, "train", lambda cfg: seen.append(cfg) or real(cfg))
    fig = tmp_path / "abl.png"
    argv = ["--smoke", "--threads", "1", "--seeds", "3", "--variants", "tanh,no-augment"]
    rc = A.main(argv + ["--out-dir", str(tmp_path / "abl"), "--figure", str(fig)])
    assert rc == 0 and fig.stat().st_size > 0
    assert [(c.activation, c.augment, c.fancy_pca, c.seed) for c in seen] == [
        ("tanh", True, 0.1, 3), ("relu", False, 0, 3),
    ]  # fmt: skip
    assert all(c.dropout == 0.5 and c.lrn and c.pool_kernel == 3 for c in seen)
    results = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    assert list(results) == ["tanh", "no-augment"] and results["tanh"][0]["seed"] == 3
    md = (tmp_path / "abl" / "ablation.md").read_text()
    assert md.count("\n") == 4 and "tanh instead of ReLU" in md


def test_bad_variants_and_seeds_are_one_line(tmp_path, capsys):
    assert A.main(["--variants", "full,nope", "--out-dir", str(tmp_path)]) == 1
    assert A.main(["--seeds", "0,x", "--out-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("error: ") for e in err), err
