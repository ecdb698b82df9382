"""experiments.py: a finished run is read back only for the same flags; the copying measure."""

import argparse
import math

import torch
from experiments import copying, run


def test_finished_run_is_reused_only_for_the_same_flags(tmp_path, capsys):
    args = argparse.Namespace(
        dataset="digits",
        data_dir="data",
        test_set_only=False,
        max_shift=1,
        smoke=False,
        threads=1,
        steps=20,
        out_dir=str(tmp_path),
    )
    first = run(args, "alone", 0, role="student")
    ckpt = tmp_path / "alone_s0" / "checkpoint.pt"
    written = ckpt.stat().st_mtime_ns
    again = run(args, "alone", 0, role="student")  # seed 0 again: read, not retrained
    assert again == first and ckpt.stat().st_mtime_ns == written
    assert capsys.readouterr().out.count("reused") == 1
    other = run(args, "alone", 0, role="student", label_fraction=0.2)  # same folder, new flags
    assert other["label_fraction"] == 0.2 and ckpt.stat().st_mtime_ns != written


def test_copying_counts_agreement_and_repeated_teacher_errors():
    y = torch.tensor([0, 1, 2, 3])
    teacher = torch.eye(4)[[0, 1, 0, 0]] * 5  # right on 0 and 1, wrong (says 0) on 2 and 3
    student = torch.eye(4)[[0, 2, 0, 0]] * 5  # copies the teacher on images 0, 2 and 3
    assert copying(student, teacher, y) == (0.75, 1.0)  # 3 of 4 agree; both errors copied
    assert copying(teacher, teacher, y) == (1.0, 1.0)
    assert math.isnan(copying(student, torch.eye(4)[y], y)[1])  # a perfect teacher: nothing to copy
