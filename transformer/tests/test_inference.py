"""inference.py on checkpoints written by tiny train() runs; bad input gets one clear line."""

import io

import inference
import pytest
import torch
import train as T

TINY = dict(d_model=32, n_head=2, n_layer=1, d_ff=64, dropout=0.0, batch_size=16, plots=False)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    T.train(
        T.TrainConfig(n_train=200, n_test=20, steps=5, eval_every=100, out_dir=str(out), **TINY)
    )
    return out


@pytest.fixture(scope="module")
def classify_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("classify")
    T.train(T.TrainConfig(task="classify", n_train=100, n_test=10, steps=3, out_dir=str(out),
                          pooling="cls", **TINY))  # fmt: skip
    return out


def _error(capsys, argv):
    capsys.readouterr()
    assert inference.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_translate_arguments_greedy_beam_and_sampling(run_dir, capsys):
    d = str(run_dir)
    assert inference.main(["--out-dir", d, "the red cat sees two dogs"]) == 0
    assert inference.main(["--out-dir", d, "--beam-size", "3", "a dog likes the apple"]) == 0
    out = capsys.readouterr().out
    assert out.count("  -> ") == 2 and "the red cat sees two dogs" in out
    sampled = []
    for _ in range(2):  # the same --seed draws the same translation
        inference.main(["--out-dir", d, "--temperature", "1.5", "--seed", "3", "a red cat"])
        sampled.append(capsys.readouterr().out)
    assert sampled[0] == sampled[1]


def test_no_arguments_shows_examples_and_heat_maps(run_dir, capsys):
    assert inference.main(["--out-dir", str(run_dir), "--num-samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 random held-out examples" in out and "ref " in out
    assert (run_dir / "encoder_attention.png").exists()
    assert (run_dir / "cross_attention.png").exists()


def test_stdin(run_dir, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("the cat\n\nmy dog\n"))
    inference.main(["--out-dir", str(run_dir), "-"])
    assert capsys.readouterr().out.count("  -> ") == 2


def test_bad_input_one_clear_line(run_dir, capsys, tmp_path):
    d = str(run_dir)
    assert "outside the vocabulary" in _error(capsys, ["--out-dir", d, "the cat sees #7"])
    assert "empty input" in _error(capsys, ["--out-dir", d, "   "])
    assert "maximum is" in _error(capsys, ["--out-dir", d, "the cat " * 40])
    assert "run train.py first" in _error(capsys, ["--out-dir", str(tmp_path / "nothing")])
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert "corrupt" in _error(capsys, ["--out-dir", str(tmp_path)])
    torch.save(
        {"model": {}, "model_config": {}, "train_config": {}, "step": 1}, tmp_path / "checkpoint.pt"
    )
    assert "corrupt" in _error(capsys, ["--out-dir", str(tmp_path)])


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--num-samples", "-1"], "--num-samples -1: must be at least 1"),
        (["--beam-size", "0"], "--beam-size 0"),
        (["--beam-size", "3", "--alpha", "-1"], "--alpha -1.0"),
        (["--temperature", "-0.5"], "--temperature -0.5"),
        (["--beam-size", "3", "--temperature", "1"], "exclude each other"),
        (["--device", "tpu"], "--device tpu"),
    ],
)
def test_bad_flag_values_one_clear_line(run_dir, capsys, flags, message):
    assert message in _error(capsys, ["--out-dir", str(run_dir), *flags])


def test_unavailable_device_is_one_clear_line(run_dir, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    msg = _error(capsys, ["--out-dir", str(run_dir), "--device", "cuda", "the cat"])
    assert "no CUDA device" in msg


def test_classify_checkpoint_and_refused_flags(classify_dir, capsys):
    d = str(classify_dir)
    assert inference.main(["--out-dir", d, "the football team scored a goal"]) == 0
    out = capsys.readouterr().out
    assert any(name in out for name in ("Technology", "Sports", "Science", "Music", "Food"))
    for flags in (["--beam-size", "4"], ["--temperature", "0.5"], ["--attention", "a goal"]):
        assert "does not apply to a classifier" in _error(
            capsys, ["--out-dir", d, *flags, "a goal"]
        )


def test_classify_from_a_csv_file(tmp_path, capsys):
    rows = (
        ["text,label"]
        + [f"goal match team {i},sport" for i in range(20)]
        + [f"chip code app {i},tech" for i in range(20)]
    )
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    cfg = T.TrainConfig(task="classify", data=str(tmp_path / "d.csv"), steps=3,
                        out_dir=str(tmp_path / "run"), **{**TINY, "batch_size": 8})  # fmt: skip
    metrics = T.train(cfg)
    assert metrics["dataset"] == "csv"
    assert len(torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["examples"]) == 8
    capsys.readouterr()
    inference.main(["--out-dir", str(tmp_path / "run"), "goal match team 3"])
    top = capsys.readouterr().out.split("-> ")[1].split(" ")[0]
    assert top in ("sport", "tech")  # class names come from the CSV
