"""Ten classes of real handwriting: the shipped data, and the main job `python -m nn.digits`."""

from __future__ import annotations

import collections
import subprocess
import sys

import pytest

from nn.data import DIGITS_SPLIT, digits
from nn.digits import main, parse_args


def test_the_digits_are_shipped_split_and_scaled():
    xs, ys = digits("train")
    xt, yt = digits("test")
    assert (len(xs), len(xt)) == (DIGITS_SPLIT, 1797 - DIGITS_SPLIT) == (1347, 450)
    assert all(len(x) == 64 for x in xs + xt)
    assert min(min(x) for x in xs) == 0.0 and max(max(x) for x in xs) == 1.0
    assert set(ys) == set(yt) == set(range(10))
    counts = collections.Counter(ys + yt)
    assert sum(counts.values()) == 1797 and min(counts.values()) >= 170  # ~180 per digit
    assert digits("train") == (xs, ys)  # fixed: the same split every time
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        digits("validation")


def test_the_data_file_carries_its_source_and_license():
    from importlib import resources

    readme = (resources.files("nn") / "datasets" / "README.md").read_text(encoding="utf-8")
    for fact in ("Optical Recognition of Handwritten Digits", "Alpaydin", "CC BY 4.0", "1,797"):
        assert fact in readme


@pytest.mark.slow
def test_the_main_job_reaches_96_percent_and_writes_its_pictures(digits_job):
    folder, out, _, status = digits_job
    assert status == 0
    last = out.splitlines()[-1]
    assert last.startswith("test accuracy: ")
    assert float(last.split(": ")[1]) >= 0.96
    for name in ("confusion.png", "misclassified.png", "weights.png"):
        assert (folder / "digits-out" / name).stat().st_size > 10_000, name


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--hidden", "0"], "argument --hidden: must be a positive integer, got '0'"),
        (["--steps", "x"], "argument --steps: must be a positive integer, got 'x'"),
        (["--lr", "-1"], "argument --lr: must be a positive, finite number, got '-1'"),
        (["--seed", "1.5"], "argument --seed: must be an integer, got '1.5'"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_arguments_get_one_line_and_status_2(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err == f"python -m nn.digits: error: {message}\n"


def test_an_unwritable_output_gets_one_line_and_status_2(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(SystemExit) as info:
        main(["--out", str(target)])
    assert info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_runs_as_a_command(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "nn.digits", "--steps", "20", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1].startswith("test accuracy: 0.")
    assert "training" in run.stderr  # the progress bar
