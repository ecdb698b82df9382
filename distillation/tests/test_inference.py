"""inference.py on the session's kd checkpoint: teacher and student side by side; bad input."""

from inference import main


def test_inference_shows_teacher_and_student(kd_run, capsys):
    out, _ = kd_run
    assert main(["--out-dir", str(out), "--num-samples", "3", "--temperature", "8"]) == 0
    text = capsys.readouterr().out
    assert text.count("teacher says") == 3 and text.count("kd says") == 3
    assert "teacher T=8 soft targets" in text
    assert (out / "soft_targets.png").stat().st_size > 5000


def test_student_without_teacher_and_bad_temperature_are_one_line(kd_run, tmp_path, capsys):
    out, _ = kd_run
    assert main(["--out-dir", str(out), "--temperature", "0"]) == 1
    assert capsys.readouterr().err.startswith("error: --temperature")
    ckpt = out / "checkpoint.pt"
    copy = tmp_path / "student.pt"
    copy.write_bytes(ckpt.read_bytes())
    import torch

    c = torch.load(copy, weights_only=True)
    c["teacher_dir"] = str(tmp_path / "nowhere")
    torch.save(c, copy)
    assert main(["--checkpoint", str(copy), "--out-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no teacher" in err[0]
    assert main(["--out-dir", str(tmp_path / "empty")]) == 1
    assert "run train.py first" in capsys.readouterr().err
