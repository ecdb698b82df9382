"""Inference smoke: rebuild the model from the short run's checkpoint, classify test images and
image files (generated offline), draw the pictures; bad input gives one clear line."""

import subprocess
import sys
from pathlib import Path

import numpy as np
from generate_digits import generate
from inference import classify, load_model, main, prepare_image
from PIL import Image

FOLDER = Path(__file__).resolve().parents[1]


def test_random_test_images_and_pictures(trained_run, capsys):
    out, metrics = trained_run
    main(["--out-dir", str(out), "--num-samples", "20"])
    text = capsys.readouterr().out
    assert text.count("(true: ") == 20
    acc = float(text.split("accuracy on these 20 labelled images: ")[1].split()[0])
    assert acc >= 0.8
    assert (out / "c1_filters.png").stat().st_size > 1000 and (
        out / "feature_maps.png"
    ).stat().st_size > 1000


def test_generated_digit_files_with_show(trained_run, tmp_path, capsys):
    out, _ = trained_run
    paths = generate(tmp_path / "gen", n=10, seed=1)
    assert [p.name[0] for p in paths] == [str(d) for d in range(10)]
    img = np.asarray(Image.open(paths[3]))
    assert img.shape == (64, 64) and img[0].mean() > 150  # dark ink on light paper
    main(["--out-dir", str(out), str(paths[3]), str(paths[7]), "--show"])
    text = capsys.readouterr().out
    assert "3_003.png:" in text and "7_007.png:" in text
    assert (out / "prediction_3_003.png").exists() and (out / "prediction_7_007.png").exists()


def test_prepare_image_inverts_and_centres(tmp_path):
    page = np.full((100, 60), 240, dtype=np.uint8)
    page[20:80, 25:35] = 10  # a dark vertical bar on white: a "1"
    Image.fromarray(page).convert("RGB").save(tmp_path / "one.jpg")
    x = prepare_image(tmp_path / "one.jpg", "digits")
    assert x.shape == (32, 32) and x.dtype == np.float32
    assert x[0].max() == 0.0 and x[:, :8].max() < 0.05  # dark background, empty margins
    assert x[16, 15:17].min() > 0.8  # bright ink in the middle
    assert 2 <= np.argwhere(x > 0.5)[:, 0].min() <= 3  # the ink's height is scaled to 28 rows


def test_classify_probabilities(trained_run):
    model, config = load_model(trained_run[0])
    probs = classify(model, config, np.zeros((3, 32, 32), dtype=np.float32))
    assert probs.shape == (3, 10) and np.allclose(probs.sum(axis=1), 1.0)


def test_bad_inputs_are_one_line(trained_run, tmp_path, capsys):
    out, _ = trained_run
    (tmp_path / "notes.png").write_text("this is not an image")
    (tmp_path / "bad_ckpt").mkdir()
    (tmp_path / "bad_ckpt" / "checkpoint.npz").write_bytes(b"garbage")
    cases = [
        (["--out-dir", str(tmp_path / "nothing")], "run train.py first"),
        (["--out-dir", str(tmp_path / "bad_ckpt")], "is corrupt or not a checkpoint"),
        (["--out-dir", str(out), "--num-samples", "0"], "--num-samples must be positive"),
        (["--out-dir", str(out), str(tmp_path / "notes.png")], "not a readable image"),
        (["--out-dir", str(out), str(tmp_path / "missing.png")], "no such file"),
    ]
    for argv, text in cases:
        capsys.readouterr()
        assert main(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and text in err[0], (argv, err)


def test_cli_missing_checkpoint_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "inference.py", "--out-dir", str(tmp_path)],
        cwd=FOLDER, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "run train.py first" in proc.stderr


def test_misclassified_says_no_errors_when_there_are_none(tmp_path):
    from visualize import plot_misclassified

    y = np.arange(10)
    plot_misclassified(np.zeros((10, 1, 32, 32)), y, y, [str(d) for d in y], tmp_path / "m.png")
    assert (tmp_path / "m.png").stat().st_size > 1000


def test_out_of_distribution_images_are_read(trained_run, tmp_path):
    """A 16-bit ramp and a white strip are not digits, yet each gets a class (README, Results)."""
    from generate_digits import out_of_distribution

    model, config = load_model(trained_run[0])
    ramp, strip = out_of_distribution(tmp_path)
    assert Image.open(ramp).mode.startswith("I;16")
    x = np.stack([prepare_image(p, "digits") for p in (ramp, strip)])
    assert x.shape == (2, 32, 32) and x.max() > 0.5  # something is left to classify
    probs = classify(model, config, x)
    assert probs.shape == (2, 10) and np.allclose(probs.sum(axis=1), 1.0)
