"""The figure and benchmark scripts run end to end on tiny settings (outputs into tmp_path)."""

import json

import bench
import compare
import gating
import pytest


def test_compare_writes_table_and_figure(tmp_path, capsys):
    text = tmp_path / "names.txt"
    text.write_text("".join(f"{n}\n" for n in ["anna", "bob", "carla", "dan", "eve"] * 40))
    fig = tmp_path / "cmp.png"
    compare.main(["--data", str(text), "--steps", "6", "--eval-every", "3", "--lstm-hidden", "8",
                  "--batch-size", "4", "--seq-len", "8", "--n-embd", "6", "--weight-decay", "0.1",
                  "--out-dir", str(tmp_path / "runs"), "--figure", str(fig)])  # fmt: skip
    table = (tmp_path / "runs" / "compare.md").read_text()
    assert all(f"| {c} |" in table for c in ("rnn", "lstm", "gru")) and fig.stat().st_size > 1000
    assert "weight decay 0.1" in table
    rows = json.loads((tmp_path / "runs" / "compare.json").read_text())["rows"]
    assert rows[1][2] == compare.n_params("lstm", 11, 6, 8, 1)  # the LSTM got --n-embd 6


def test_gating_writes_both_figures(tmp_path):
    gating.main(["--lags", "3,4", "--steps", "3", "--seeds", "1", "--out-dir", str(tmp_path)])
    assert (tmp_path / "recall_vs_lag.png").exists() and (tmp_path / "gradient_reach.png").exists()


def test_bench_prints_ratios(capsys):
    bench.main(["--seq-len", "3", "--n-in", "4", "--n-hidden", "5", "--repeats", "1"])
    out = capsys.readouterr().out
    assert out.count("x |") == 3


def test_script_flags_checked_in_one_line(capsys):
    cases = [
        (gating.main, ["--lags", "3,x"], "--lags"),
        (gating.main, ["--lags", "0,5"], "at least 1"),
        (bench.main, ["--cells", "lstm,cnn"], "--cells"),
        (compare.main, ["--steps", "0"], "--steps must be at least 1"),
        (compare.main, ["--lr", "0"], "--lr must be positive"),
        (compare.main, ["--weight-decay", "-1"], "--weight-decay must be >= 0"),
    ]
    for fn, argv, words in cases:
        with pytest.raises(SystemExit) as e:
            fn(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and words in err and "Traceback" not in err, (argv, err)
