"""inference.py: predictions from the gate checkpoint, torchvision-layout weights loaded as they
are, and the bad inputs (not an image, RGBA/grayscale, weights that are not AlexNet's, a
checkpoint whose class count does not fit) as one `error:` line."""

import numpy as np
import pytest
import torch
import torchvision
from inference import main, predict
from PIL import Image


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err.strip().splitlines()


def test_predicts_the_runs_test_images(gate_run, capsys):
    out, metrics = gate_run
    code, text, _ = run(capsys, "--out-dir", out, "--num-samples", 40, "--top-k", 3)
    assert code == 0 and text.count("  3. ") == 40
    # over the whole test split it must count what train.py measured there, exactly: the same
    # weights and the same preprocessing (a bar like ">= 8 of 40" failed correct runs by chance)
    code, text, _ = run(capsys, "--out-dir", out, "--num-samples", 10**6, "--top-k", 1)
    correct, _, n = text.split("top-1 correct: ")[1].split()[:3]
    assert code == 0 and int(n) == 2000 and int(correct) == round(metrics["value"] * int(n))


def test_image_files_rgba_and_grayscale_are_converted(gate_run, tmp_path, capsys):
    out, _ = gate_run
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (50, 40, 4), dtype=np.uint8), "RGBA").save(tmp_path / "a.png")  # fmt: skip
    Image.fromarray(rng.integers(0, 255, (30, 60), dtype=np.uint8), "L").save(tmp_path / "b.jpg")
    (tmp_path / "notes.txt").write_text("not listed: a folder yields image suffixes only")
    code, text, _ = run(capsys, "--out-dir", out, "--images", tmp_path, "--top-k", 2)
    assert code == 0 and "a.png" in text and "b.jpg" in text and "notes.txt" not in text


def test_not_an_image_is_one_line(gate_run, tmp_path, capsys):
    out, _ = gate_run
    (tmp_path / "fake.jpg").write_bytes(b"this is text")
    code, _, err = run(capsys, "--out-dir", out, "--images", tmp_path / "fake.jpg")
    assert code == 1 and err[-1].startswith("error: ") and "is not an image" in err[-1]


def test_checkpoint_with_a_wrong_class_count_is_one_line(gate_run, tmp_path, capsys):
    out, _ = gate_run
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    ckpt["model_config"]["num_classes"] = 7
    torch.save(ckpt, tmp_path / "bad.pt")
    code, _, err = run(capsys, "--checkpoint", tmp_path / "bad.pt")
    assert code == 1 and "7 classes but the checkpoint names 10" in err[-1]
    ckpt["data"]["classes"] = ckpt["data"]["classes"][:7]  # names agree, weights do not
    torch.save(ckpt, tmp_path / "bad.pt")
    code, _, err = run(capsys, "--checkpoint", tmp_path / "bad.pt")
    assert code == 1 and "weights do not fit model_config" in err[-1]


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory):
    """A random-init torchvision AlexNet saved the way the official file is: a plain state dict."""
    path = tmp_path_factory.mktemp("tv") / "alexnet-owt-7be5be79.pth"
    torch.manual_seed(0)
    ref = torchvision.models.alexnet(weights=None).eval()
    torch.save(ref.state_dict(), path)
    return path, ref


def test_torchvision_weights_predict_as_torchvision_does(torchvision_file, tmp_path, capsys):
    """Our preprocessing equals torchvision's ImageNet transform; our logits equal its model's."""
    from data import load_image
    from inference import from_torchvision

    path, ref = torchvision_file
    rgb = np.random.default_rng(1).integers(0, 255, (300, 260, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    model, info = from_torchvision(str(path), False, torch.device("cpu"))
    tf = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.transforms()
    theirs = tf(Image.open(tmp_path / "x.png"))[None]  # resize 256, centre crop 224, normalise
    ours = (load_image(tmp_path / "x.png", 256).float() / 255 - torch.tensor(info["mean"])[:, None, None]) / torch.tensor(info["std"])[:, None, None]  # fmt: skip
    torch.testing.assert_close(ours[None, :, 16:240, 16:240], theirs, rtol=0, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(model(theirs), ref(theirs), rtol=0, atol=0)
        p = ref(theirs).softmax(-1)
    code, text, _ = run(capsys, "--init-from", "torchvision", "--weights", path, "--images", tmp_path / "x.png", "--top-k", 1)  # fmt: skip
    name = info["classes"][p.argmax().item()]
    assert code == 0 and f"1. {name}" in text and "tench" in info["classes"][0]


def test_predict_ten_crop_shapes(torchvision_file):
    from inference import from_torchvision

    model, info = from_torchvision(str(torchvision_file[0]), False, torch.device("cpu"))
    x = torch.randint(0, 255, (2, 3, 256, 256), dtype=torch.uint8)
    probs = predict(model, info, x, ten_crop=True)
    assert probs.shape == (2, 1000)
    torch.testing.assert_close(probs.sum(1), torch.ones(2))


def test_weights_that_are_not_alexnets_are_one_line(tmp_path, capsys):
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "w.pth")
    code, _, err = run(capsys, "--init-from", "torchvision", "--weights", tmp_path / "w.pth", "--images", tmp_path)  # fmt: skip
    assert code == 1 and "is not torchvision AlexNet's state dict" in err[-1]
    (tmp_path / "junk.pth").write_bytes(b"junk")
    code, _, err = run(capsys, "--init-from", "torchvision", "--weights", tmp_path / "junk.pth", "--images", tmp_path)  # fmt: skip
    assert code == 1 and "not a readable weights file" in err[-1]
