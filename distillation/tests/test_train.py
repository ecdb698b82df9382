"""Gates on digits, resume equals an uninterrupted run, the teacher reused, bad input one line."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from harness import CHECKPOINT, UserError
from model import Classifier, build_config, distillation_loss
from train import TrainConfig, batch_loss, main, train, transfer_indices


def test_teacher_gate(teacher_run):
    """300 steps of the teacher CNN on digits: a broken model cannot reach 95% of 359 test digits."""
    _, m = teacher_run
    assert m["value"] >= 0.95, m["value"]
    assert m["role"] == "teacher" and m["n_params"] > 50_000


def test_kd_student_gate(kd_run, teacher_run):
    out, m = kd_run
    assert m["value"] >= 0.85, m["value"]  # 126 labelled images, 300 steps
    assert m["teacher_test_accuracy"] == teacher_run[1]["value"]
    ckpt = torch.load(out / CHECKPOINT, weights_only=True)
    assert ckpt["train_config"]["role"] == "kd" and ckpt["teacher_dir"] == str(teacher_run[0])


def test_teacher_sees_the_same_batch_in_eval_mode():
    torch.manual_seed(0)
    teacher = Classifier(build_config(dict(channels=(4,), hidden=(16,), dropout=0.5), 8, 1, 10))
    student = Classifier(build_config(dict(channels=(), hidden=(8,), dropout=0.0), 8, 1, 10))
    x, y = torch.rand(16, 1, 8, 8), torch.arange(16) % 10
    teacher.train()  # batch_loss must switch off its dropout
    c = TrainConfig(temperature=3.0, alpha=0.7)
    loss = batch_loss(student, teacher, x, y, c)
    with torch.no_grad():
        ref_t = teacher.eval()(x)
    torch.testing.assert_close(loss, distillation_loss(student(x), ref_t, y, 3.0, 0.7))
    alone = batch_loss(student, None, x, y, dataclasses.replace(c, role="student"))
    torch.testing.assert_close(alone, F.cross_entropy(student(x), y))


def test_transfer_set_omits_the_class_and_keeps_the_fraction():
    y = torch.arange(1000) % 10
    c = TrainConfig(omit_class=3, label_fraction=0.2)
    idx = transfer_indices(c, y)
    assert len(idx) == 180 and not (y[idx] == 3).any()
    assert len(transfer_indices(dataclasses.replace(c, transfer_set="unlabelled"), y)) == 900
    assert len(transfer_indices(dataclasses.replace(c, role="teacher"), y)) == 1000


def run_cfg(out, teacher_run, **kw):
    base = dict(
        transfer_set="augmented",
        student="mlp",
        eval_every=10,
        out_dir=str(out),
        teacher_dir=str(teacher_run[0]),
        threads=1,
    )
    return TrainConfig(**(base | kw))


def test_resume_equals_uninterrupted_run(tmp_path, teacher_run, capsys):
    """20 steps + --resume to 40 equals one 40-step run, bitwise (model, Adam, RNG of the shifts)."""
    train(run_cfg(tmp_path / "a", teacher_run, steps=40))
    train(run_cfg(tmp_path / "b", teacher_run, steps=20, schedule_steps=40))
    train(
        run_cfg(tmp_path / "b", teacher_run, steps=40, schedule_steps=40, resume=True),
        given={"steps", "resume"},
    )
    a, b = (torch.load(tmp_path / d / CHECKPOINT, weights_only=True) for d in "ab")
    assert a["step"] == b["step"] == 40
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["history"] == b["history"]
    assert "warning" not in capsys.readouterr().out
    train(run_cfg(tmp_path / "c", teacher_run, steps=10))
    train(run_cfg(tmp_path / "c", teacher_run, steps=20, resume=True), given={"steps"})
    assert "stays at its end value" in capsys.readouterr().out
    with pytest.raises(UserError, match="--alpha"):
        train(
            run_cfg(tmp_path / "c", teacher_run, steps=30, alpha=0.5, resume=True), given={"alpha"}
        )


def test_teacher_is_reused_and_omitted_class_reported(tmp_path, teacher_run, capsys):
    before = (teacher_run[0] / CHECKPOINT).stat().st_mtime_ns
    m = train(run_cfg(tmp_path, teacher_run, steps=20, omit_class=3, label_fraction=1.0))
    assert "training it first" not in capsys.readouterr().out
    assert (teacher_run[0] / CHECKPOINT).stat().st_mtime_ns == before
    assert m["omitted_class"] == 3 and m["n_omitted_test"] > 30 and 0 <= m["bias_shift"] <= 15
    assert m["omitted_class_errors_corrected"] <= m["n_omitted_test"]


def one_line_error(capsys, argv):
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err
    return err[0]


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--temperature", "0"], "--temperature"),
        (["--temperature", "-2"], "--temperature"),
        (["--alpha", "1.5"], "--alpha"),
        (["--alpha", "-0.1"], "--alpha"),
        (["--omit-class", "10"], "0..9"),
        (["--omit-class", "-3"], "--omit-class"),
        (["--transfer-set", "unlabelled"], "--alpha 1"),
        (["--role", "student", "--temperature", "2"], "kd only"),
        (["--dataset", "cifar"], "--dataset"),
    ],
)
def test_bad_flags_are_one_line(tmp_path, capsys, flags, words):
    assert words in one_line_error(capsys, ["--out-dir", str(tmp_path), *flags])


def test_teacher_for_other_classes_or_missing_is_one_line(tmp_path, teacher_run, capsys):
    ckpt = torch.load(teacher_run[0] / CHECKPOINT, weights_only=True)
    ckpt["model_config"]["n_classes"] = 5
    (tmp_path / "t5").mkdir()
    torch.save(ckpt, tmp_path / "t5" / CHECKPOINT)
    err = one_line_error(
        capsys, ["--smoke", "--out-dir", str(tmp_path / "s"), "--teacher-dir", str(tmp_path / "t5")]
    )
    assert "5 classes" in err
    train(run_cfg(tmp_path / "kd", teacher_run, steps=10))
    moved = tmp_path / "gone"
    (teacher_run[0]).rename(moved)
    try:
        err = one_line_error(capsys, ["--resume", "--out-dir", str(tmp_path / "kd")])
        assert "missing" in err
    finally:
        moved.rename(teacher_run[0])
