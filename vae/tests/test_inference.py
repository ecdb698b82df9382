"""inference.py and visualize.py on a smoke checkpoint: the files they write, the one-line errors."""

import inference
import numpy as np
import pytest
import visualize


def test_inference_writes_samples_reconstructions_interpolations(smoke_run, capsys):
    assert inference.main(["--out-dir", str(smoke_run), "--k", "5", "--num-samples", "16"]) == 0
    for name in ("samples", "reconstructions", "interpolation"):
        assert (smoke_run / f"{name}.png").stat().st_size > 200
    assert "IWAE(k=5) NLL" in capsys.readouterr().out


def test_nll_of_given_images_and_of_an_image_of_the_wrong_size(smoke_run, tmp_path, capsys):
    from PIL import Image

    digit = np.zeros((8, 8), dtype=np.uint8)
    digit[1:7, 3:5] = 255  # a "1"
    Image.fromarray(digit).save(tmp_path / "one.png")
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(tmp_path / "big.png")
    assert inference.main(["--out-dir", str(smoke_run), "--images", str(tmp_path / "one.png"), "--k", "5"]) == 0  # fmt: skip
    line = capsys.readouterr().out.strip()
    nll = float(line.split("NLL ")[1].split()[0])
    assert line.startswith(str(tmp_path / "one.png")) and 0 < nll < 100
    assert inference.main(["--out-dir", str(smoke_run), "--images", str(tmp_path / "big.png")]) == 1
    assert "is 28x28; the checkpoint models 8x8 images" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags,says",
    [(["--k", "0"], "--k 0: the IWAE bound needs at least one sample"), ([], "run train.py first")],
)
def test_bad_input_is_one_line(flags, says, tmp_path, capsys):
    assert inference.main(["--out-dir", str(tmp_path), *flags]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and says in err[0], err


def test_a_corrupt_checkpoint_is_one_line(tmp_path, capsys):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert inference.main(["--out-dir", str(tmp_path)]) == 1
    assert "corrupt" in capsys.readouterr().err


def test_visualize_draws_the_manifold_of_a_2d_latent_and_the_beta_sweep(smoke_run):
    assert visualize.main(["--out-dir", str(smoke_run), "--num-samples", "16"]) == 0
    for name in ("samples", "reconstructions", "encodings", "traversals", "curves", "manifold"):
        assert (smoke_run / f"{name}.png").stat().st_size > 200, name
    assert visualize.main(["--out-dir", str(smoke_run), "--sweep", str(smoke_run)]) == 0
    assert (smoke_run / "beta_sweep.png").stat().st_size > 1000
