"""inference.py: predictions from the gate checkpoint and for image files; a random
torchvision resnet18 file loaded unchanged predicts exactly as torchvision does; weights of
another architecture, a file that is not an image are one `error:` line."""

import numpy as np
import torch
import torchvision
from inference import main
from PIL import Image


def run(capsys, *argv):
    code = main([str(a) for a in [*argv, "--threads", 1]])
    out = capsys.readouterr()
    return code, out.out, out.err.strip().splitlines()


def test_predicts_the_runs_test_images(gate_run, capsys):
    out, _ = gate_run
    code, text, _ = run(capsys, "--out-dir", out, "--num-samples", 40, "--top-k", 2)
    assert code == 0 and text.count("  2. ") == 40
    correct = int(text.split("top-1 correct: ")[1].split()[0])
    assert correct >= 0.5 * 40  # the gate is at >= 70% on 300; 40 images vary more


def test_image_files_and_not_an_image(gate_run, tmp_path, capsys):
    out, _ = gate_run
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (50, 40, 4), dtype=np.uint8), "RGBA").save(tmp_path / "a.png")  # fmt: skip
    code, text, _ = run(capsys, "--out-dir", out, "--images", tmp_path, "--top-k", 2)
    assert code == 0 and "a.png" in text and "  2. " in text
    (tmp_path / "fake.jpg").write_bytes(b"this is text")
    code, _, err = run(capsys, "--out-dir", out, "--images", tmp_path / "fake.jpg")
    assert code == 1 and err[-1].startswith("error: ") and "is not an image" in err[-1]


def test_torchvision_weights_predict_as_torchvision_does(torchvision_file, tmp_path, capsys):
    """Our preprocessing equals torchvision's ImageNet transform; our logits equal its model's."""
    from data import load_image
    from inference import from_torchvision, predict

    path, ref = torchvision_file
    rgb = np.random.default_rng(1).integers(0, 255, (300, 260, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    model, info = from_torchvision(str(path), "", torch.device("cpu"))
    assert model.config.arch == "resnet18"
    tf = torchvision.transforms.Compose([
        torchvision.transforms.Resize(256), torchvision.transforms.CenterCrop(224),
        torchvision.transforms.ToTensor(), torchvision.transforms.Normalize(info["mean"], info["std"]),
    ])  # fmt: skip
    theirs = tf(Image.open(tmp_path / "x.png").convert("RGB"))[None]
    ours_p = predict(model, info, load_image(tmp_path / "x.png", 256)[None])
    with torch.no_grad():
        p = ref(theirs).softmax(-1)
        torch.testing.assert_close(model(theirs), ref(theirs), rtol=0, atol=0)
    torch.testing.assert_close(ours_p, p, rtol=0, atol=1e-4)  # PIL and torchvision resize alike
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"name{i}" for i in range(1000)))
    code, text, _ = run(capsys, "--init-from", "torchvision", "--weights", path, "--classes", names, "--images", tmp_path / "x.png", "--top-k", 1)  # fmt: skip
    assert code == 0 and f"1. name{p.argmax().item()} " in text


def test_weights_that_are_not_a_resnet_are_one_line(tmp_path, capsys):
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "w.pth")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "x.png")
    code, _, err = run(capsys, "--init-from", "torchvision", "--weights", tmp_path / "w.pth", "--images", tmp_path / "x.png")  # fmt: skip
    assert code == 1 and "is not a torchvision resnet18, resnet34 or resnet50 state dict" in err[-1]
    (tmp_path / "junk.pth").write_bytes(b"junk")
    code, _, err = run(capsys, "--init-from", "torchvision", "--weights", tmp_path / "junk.pth", "--images", tmp_path / "x.png")  # fmt: skip
    assert code == 1 and "not a readable weights file" in err[-1]
