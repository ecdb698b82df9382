"""inference.py and visualize.py on the gate's checkpoint: detections printed and drawn, image
files from a folder, and the bad inputs (no checkpoint, a corrupt one, a file that is not an
image, a checkpoint whose classes do not fit) as one `error:` line."""

import numpy as np
import torch
from inference import draw, main
from PIL import Image


def run(capsys, *argv, entry=main):
    code = entry([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err.strip().splitlines()


def test_detects_and_draws_the_runs_test_images(gate_run, capsys):
    out, _ = gate_run
    code, text, _ = run(capsys, "--out-dir", out, "--num-samples", 4, "--threads", 1)
    assert code == 0 and text.count("test image") == 4
    found = sum(int(line.split(": ")[1].split()[0]) for line in text.splitlines() if line.startswith("test image"))  # fmt: skip
    assert found >= 4  # the scenes hold 1-4 shapes each; the gate finds some above 0.3
    assert Image.open(out / "detections.png").size == (4 * 64 * 4, 64 * 4)


def test_draw_puts_each_box_in_its_class_colour():
    img = torch.zeros(3, 16, 16, dtype=torch.uint8)
    d = {"boxes": torch.tensor([[2.0, 4, 10, 12]]), "scores": torch.tensor([0.9]), "labels": torch.tensor([1])}  # fmt: skip
    a = np.asarray(draw(img, d, ["a", "b"], scale=4))
    assert a.shape == (64, 64, 3) and tuple(a[30, 8]) == (60, 180, 75)  # left edge, class 1
    assert tuple(a[30, 30]) == (0, 0, 0)  # inside the box: untouched


def test_image_files_from_a_folder(gate_run, tmp_path, capsys):
    out, _ = gate_run
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (50, 40, 4), dtype=np.uint8), "RGBA").save(tmp_path / "a.png")  # fmt: skip
    Image.fromarray(rng.integers(0, 255, (30, 60), dtype=np.uint8), "L").save(tmp_path / "b.jpg")
    (tmp_path / "notes.txt").write_text("not an image suffix: skipped")
    code, text, _ = run(capsys, "--out-dir", out, "--images", tmp_path, "--threads", 1)
    assert code == 0 and "a.png" in text and "b.jpg" in text and "notes.txt" not in text


def test_bad_inputs_are_one_line(gate_run, tmp_path, capsys):
    out, _ = gate_run
    (tmp_path / "fake.jpg").write_bytes(b"this is text")
    code, _, err = run(capsys, "--out-dir", out, "--images", tmp_path / "fake.jpg")
    assert code == 1 and "is not an image" in err[-1]
    (tmp_path / "checkpoint.pt").write_bytes(b"junk")
    code, _, err = run(capsys, "--out-dir", tmp_path)
    assert code == 1 and "is corrupt" in err[-1]
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    ckpt["data"]["classes"] = ["a", "b"]
    torch.save(ckpt, tmp_path / "bad.pt")
    code, _, err = run(capsys, "--checkpoint", tmp_path / "bad.pt", "--out-dir", tmp_path)
    assert code == 1 and "3 classes but the checkpoint names 2" in err[-1]


def test_visualize_writes_its_pictures(gate_run, tmp_path, capsys):
    import shutil

    import visualize

    out, _ = gate_run
    for f in ("checkpoint.pt", "metrics.json"):
        shutil.copy(out / f, tmp_path / f)
    code, text, _ = run(capsys, "--out-dir", tmp_path, "--n-test", 8, "--num-samples", 2, "--compare", tmp_path, "--threads", 1, entry=visualize.main)  # fmt: skip
    assert code == 0 and "| two-stage |" in text
    for name in ("anchors", "proposals", "pr", "compare", "scenes"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000, name
