"""train.py: short runs reach a stated mAP@0.5 on the scenes, a resumed run equals an
uninterrupted one bitwise, the schedule's horizon is kept on resume, and bad flags, bad
annotations and a non-finite loss are one `error:` line."""

import json

import pytest
import torch
import train as T
from train import TrainConfig, train

TINY = dict(smoke=True, steps=4, batch_size=4, warmup_steps=0, threads=1)  # smoke: eval every 2


# test mAP@0.5 after the gate's steps (conftest.py: width 16, batch 8, lr 2e-3) on 100 test
# scenes (50 for the slow sliding window). Measured: 0.528, 0.462, 0.163; an untrained or
# broken detector scores 0.00-0.03 (4 steps: 0.000, 0.001, 0.001).
GATES = {"two-stage": 0.35, "one-stage": 0.3, "sliding": 0.08}


def test_gate_two_stage(gate_run):
    out, metrics = gate_run
    assert metrics["value"] >= GATES["two-stage"], metrics
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["value"] == metrics["value"] and saved["metric"] == "test_map50"
    assert 0 <= saved["test_map"] <= saved["value"]  # mAP@[.5:.95] cannot beat mAP@0.5


@pytest.mark.parametrize("detector, n_test", [("one-stage", 100), ("sliding", 50)])
def test_gate_one_stage_and_sliding(detector, n_test, tmp_path):
    from conftest import gate

    metrics = gate(detector, tmp_path, n_test)
    assert metrics["value"] >= GATES[detector], metrics


def state(out):
    return torch.load(out / "checkpoint.pt", weights_only=True)


def assert_same_run(a, b):
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for i, s in a["optimizer"]["state"].items():
        for k in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(s[k], b["optimizer"]["state"][i][k]), (i, k)
    assert a["history"] == b["history"] and a["step"] == b["step"]


@pytest.mark.parametrize("detector", ["two-stage", "sliding"])
def test_resume_equals_uninterrupted(tmp_path, detector):
    """The RPN's and the head's random sampling and the flips depend on the RNG: restored."""
    tiny = {**TINY, "detector": detector}
    full = train(TrainConfig(**tiny, out_dir=str(tmp_path / "full")))
    train(TrainConfig(**{**tiny, "steps": 2}, schedule_steps=4, out_dir=str(tmp_path / "half")))
    resumed = train(TrainConfig(**tiny, resume=True, out_dir=str(tmp_path / "half")), given={"steps", "resume", "out_dir"})  # fmt: skip
    assert_same_run(state(tmp_path / "full"), state(tmp_path / "half"))
    assert resumed["value"] == full["value"]


def test_resume_past_the_horizon_warns_and_other_flags_are_refused(tmp_path, capsys):
    out = str(tmp_path / "run")
    tiny = {**TINY, "detector": "one-stage"}
    train(TrainConfig(**{**tiny, "steps": 2}, out_dir=out))
    train(TrainConfig(**{**tiny, "steps": 3}, resume=True, out_dir=out), given={"steps", "resume"})
    assert "learning rate stays at the schedule's end value" in capsys.readouterr().out
    ckpt = state(tmp_path / "run")
    assert ckpt["train_config"]["schedule_steps"] == 2 and ckpt["step"] == 3
    with pytest.raises(T.harness.UserError, match="--detector two-stage differs"):
        train(TrainConfig(**{**tiny, "steps": 4, "detector": "two-stage"}, resume=True, out_dir=out), given={"detector", "resume"})  # fmt: skip


def test_schedule():
    cfg = TrainConfig(lr=0.1, warmup_steps=10, schedule_steps=110)
    assert T.lr_at(0, cfg) == pytest.approx(0.01) and T.lr_at(9, cfg) == pytest.approx(0.1)
    assert T.lr_at(60, cfg) == pytest.approx(0.1 * (0.01 + 0.99 * 0.5))
    assert T.lr_at(110, cfg) == T.lr_at(500, cfg) == pytest.approx(0.001)


def test_flip_mirrors_the_boxes():
    x = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    x[0, :, 1:3, 0:2] = 255  # a 2 x 2 block at columns 0-1, rows 1-2
    t = [{"boxes": torch.tensor([[0.0, 1, 2, 3]]), "labels": torch.tensor([0])}]
    torch.manual_seed(1)
    while True:  # draw until the coin says mirror
        images, out = T.batch(x, t, torch.tensor([0]), "cpu", flip=True, size=8)
        if images[0, 0, 1, 7] > 0:
            break
    assert out[0]["boxes"].tolist() == [[6.0, 1, 8, 3]] and t[0]["boxes"].tolist() == [[0.0, 1, 2, 3]]  # fmt: skip


def run_main(capsys, *flags):
    code = T.main([str(f) for f in flags])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--detector", "rcnn"], "--detector rcnn: expected one of sliding, two-stage, one-stage"),
        (["--dataset", "kitti"], "--dataset kitti: expected one of"),
        (["--image-size", "60"], "--image-size 60: expected a multiple of 8"),
        (["--lr", "nan"], "--lr nan"),
        (["--download"], "--download applies to --dataset voc only"),
        (["--dataset", "voc", "--data-dir", "/nonexistent"], "no VOC tree at /nonexistent"),
        (["--dataset", "coco-json", "--data-dir", "/nonexistent"], "no COCO JSON at"),
    ],
)
def test_bad_flags_are_one_line(flags, message, tmp_path, capsys):
    code, err = run_main(capsys, *flags, "--smoke", "--out-dir", tmp_path)
    assert code == 1 and err[-1].startswith("error: ") and message in err[-1], err


def test_bad_annotations_are_one_line(tmp_path, capsys):
    (tmp_path / "coco").mkdir()
    images = [{"id": i, "file_name": f"{i}.png", "width": 8, "height": 8} for i in range(3)]
    ann = [{"id": 0, "image_id": 0, "category_id": 1, "bbox": [1, 1, 0, 3]}]
    (tmp_path / "coco" / "annotations.json").write_text(json.dumps({"images": images, "annotations": ann, "categories": [{"id": 1, "name": "x"}]}))  # fmt: skip
    code, err = run_main(capsys, "--dataset", "coco-json", "--data-dir", tmp_path / "coco", "--smoke", "--out-dir", tmp_path)  # fmt: skip
    assert code == 1 and err[-1].startswith("error: ") and "zero area" in err[-1], err


def test_non_finite_loss_stops_keeping_the_last_checkpoint(tmp_path, capsys):
    code, err = run_main(capsys, "--smoke", "--detector", "one-stage", "--lr", "1e30", "--warmup-steps", "0", "--grad-clip", "0", "--out-dir", tmp_path)  # fmt: skip
    assert code == 1 and err[-1].startswith("error: loss is"), err
