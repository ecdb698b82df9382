"""inference.py on a checkpoint written by a tiny train() run; bad input gets one clear line."""

import io

import inference
import pytest
import train as T
from model import TransformerConfig


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    m = TransformerConfig(
        d_model=32, n_head=2, n_enc_layers=1, n_dec_layers=1, d_ff=64, dropout=0.0
    )
    T.train(
        T.TrainConfig(
            n_train=200,
            n_test=20,
            steps=5,
            batch_size=16,
            eval_every=100,
            out_dir=str(out),
            model=m,
            plots=False,
        )
    )
    return out


def _error(capsys, argv):
    with pytest.raises(SystemExit) as e:
        inference.main(argv)
    msg = str(e.value.code)
    assert msg.startswith("error: ") and "\n" not in msg, msg
    return msg


def test_translate_arguments_greedy_and_beam(run_dir, capsys):
    inference.main(["--out-dir", str(run_dir), "the red cat sees two dogs"])
    inference.main(["--out-dir", str(run_dir), "--beam-size", "3", "a dog likes the apple"])
    out = capsys.readouterr().out
    assert out.count("  -> ") == 2 and "the red cat sees two dogs" in out


def test_no_arguments_shows_examples_and_heat_maps(run_dir, capsys):
    inference.main(["--out-dir", str(run_dir), "--n", "2", "--seed", "0"])
    out = capsys.readouterr().out
    assert "2 random held-out examples" in out and "ref " in out
    assert (run_dir / "encoder_attention.png").exists() and (
        run_dir / "cross_attention.png"
    ).exists()


def test_stdin(run_dir, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("the cat\n\nmy dog\n"))
    inference.main(["--out-dir", str(run_dir), "-"])
    assert capsys.readouterr().out.count("  -> ") == 2


def test_bad_input_one_clear_line(run_dir, capsys, tmp_path):
    d = str(run_dir)
    assert "outside the vocabulary" in _error(capsys, ["--out-dir", d, "the cat sees #7"])
    assert "empty input" in _error(capsys, ["--out-dir", d, "   "])
    assert "maximum is" in _error(capsys, ["--out-dir", d, "the cat " * 40])
    assert "run `python train.py` first" in _error(capsys, ["--out-dir", str(tmp_path / "nothing")])
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert "cannot read checkpoint" in _error(capsys, ["--out-dir", str(tmp_path)])


def test_negative_length_penalty_is_refused(run_dir):
    with pytest.raises(SystemExit) as e:
        inference.main(["--out-dir", str(run_dir), "--beam-size", "3", "--alpha", "-1", "a cat"])
    assert e.value.code == 2  # argparse error


def test_unavailable_device_is_one_clear_line(run_dir, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    msg = _error(capsys, ["--out-dir", str(run_dir), "--device", "cuda", "the cat"])
    assert "CUDA is not available" in msg


def test_train_cli_bad_input(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        T.main(["--task", "summarise"])
    assert e.value.code == 2  # argparse: invalid choice
    with pytest.raises(SystemExit) as e:
        T.main(["--dataset", "klingon", "--out-dir", str(tmp_path)])
    assert str(e.value.code).startswith("error: unknown dataset")
    with pytest.raises(SystemExit) as e:
        T.main(["--resume", "--out-dir", str(tmp_path / "empty")])
    assert "no checkpoint" in str(e.value.code)
    with pytest.raises(SystemExit) as e:
        T.main(["--data", str(tmp_path / "missing.zip"), "--out-dir", str(tmp_path)])
    assert "no such file" in str(e.value.code)


def test_classify_checkpoint(tmp_path, capsys):
    m = TransformerConfig(d_model=16, n_head=2, n_enc_layers=1, d_ff=32, dropout=0.0, pooling="cls")
    T.train(
        T.TrainConfig(
            task="classify",
            n_train=100,
            n_test=10,
            steps=3,
            batch_size=16,
            out_dir=str(tmp_path),
            model=m,
            plots=False,
        )
    )
    inference.main(["--out-dir", str(tmp_path), "the football team scored a goal"])
    out = capsys.readouterr().out
    assert any(name in out for name in ("Technology", "Sports", "Science", "Music", "Food"))


def test_resume_with_other_model_flags_is_one_clear_line(run_dir):
    with pytest.raises(SystemExit) as e:
        T.main(
            [
                "--resume",
                "--out-dir",
                str(run_dir),
                "--n-train",
                "200",
                "--n-test",
                "20",
                "--d-model",
                "48",
            ]
        )
    assert str(e.value.code).startswith("error: cannot resume")


def test_classify_from_a_csv_file(tmp_path, capsys):
    rows = (
        ["text,label"]
        + [f"goal match team {i},sport" for i in range(20)]
        + [f"chip code app {i},tech" for i in range(20)]
    )
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    m = TransformerConfig(d_model=16, n_head=2, n_enc_layers=1, d_ff=32)
    cfg = T.TrainConfig(
        task="classify",
        data=str(tmp_path / "d.csv"),
        steps=3,
        batch_size=8,
        out_dir=str(tmp_path / "run"),
        model=m,
        plots=False,
    )
    metrics = T.train(cfg)
    assert metrics["dataset"] == "csv" and metrics["n_test"] == 8  # a fifth of 40 rows held out
    inference.main(["--out-dir", str(tmp_path / "run"), "goal match team 3"])
    top = capsys.readouterr().out.split("-> ")[1].split(" ")[0]
    assert top in ("sport", "tech")  # class names come from the CSV
