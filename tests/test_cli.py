"""Both main jobs, as a user can break them: one line on stderr and status 2, never a
traceback; Ctrl-C is status 130 and leaves no partial file."""

from __future__ import annotations

import pytest

from nn import digits, xor

JOBS = {"xor": xor.main, "digits": digits.main}


def _one_line(err: str, prog: str) -> str:
    """The job's error line (a progress bar may stand before it), checked to be the only
    one it wrote, with no traceback."""
    assert "Traceback" not in err
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.startswith("python -m")]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"python -m nn.{prog}: ")
    return lines[0]


@pytest.mark.parametrize("job", sorted(JOBS))
def test_a_folder_where_a_file_goes_is_one_line_before_any_work(job, tmp_path, capsys):
    name = {"xor": "decision_boundary.png", "digits": "confusion.png"}[job]
    (tmp_path / name).mkdir()
    assert JOBS[job](["--out", str(tmp_path), "--steps", "2"]) == 2
    captured = capsys.readouterr()
    line = _one_line(captured.err, job)
    assert f"cannot write to '{tmp_path / name}'" in line
    assert captured.out == ""  # refused before training


@pytest.mark.parametrize("job", sorted(JOBS))
def test_a_learning_rate_whose_arithmetic_overflows_is_one_line(job, tmp_path, capsys):
    assert JOBS[job](["--out", str(tmp_path), "--steps", "3", "--lr", "1e308"]) == 2
    line = _one_line(capsys.readouterr().err, job)
    assert "overflow" in line and "try a smaller --lr" in line


@pytest.mark.parametrize("job", sorted(JOBS))
def test_a_network_too_large_for_memory_is_one_line_before_allocating(job, tmp_path, capsys):
    assert JOBS[job](["--out", str(tmp_path), "--hidden", str(10**12)]) == 2
    line = _one_line(capsys.readouterr().err, job)
    assert "not enough memory" in line and "--hidden" in line


@pytest.mark.parametrize("job", sorted(JOBS))
def test_memory_running_out_anyway_is_one_line(job, tmp_path, capsys, monkeypatch):
    from nn import module

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(module.MLP, "__init__", no_memory)
    assert JOBS[job](["--out", str(tmp_path), "--steps", "2"]) == 2
    assert "not enough memory" in _one_line(capsys.readouterr().err, job)


@pytest.mark.parametrize("job", sorted(JOBS))
def test_ctrl_c_while_a_picture_is_written_is_status_130_and_no_partial_file(
    job, tmp_path, capsys, monkeypatch
):
    import matplotlib.figure

    def interrupted(fig, path, **kwargs):
        with open(path, "wb") as f:
            f.write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", interrupted)
    assert JOBS[job](["--out", str(tmp_path), "--steps", "2"]) == 130
    assert "interrupted" in _one_line(capsys.readouterr().err, job)
    pngs = [p.name for p in tmp_path.iterdir() if p.suffix == ".png"]
    assert pngs == []  # the picture being written: absent, not truncated; no temporary file


def test_the_loss_printed_is_that_of_the_model_printed(tmp_path, capsys):
    """After --steps 1 the table is of the updated model: the loss printed last is its loss
    (computed after the update, not the loss the update started from), and "1 step"."""
    import math
    import re

    assert xor.main(["--out", str(tmp_path), "--steps", "1"]) == 1  # not converged: status 1
    out = capsys.readouterr().out
    head = out.splitlines()[0]
    assert "for 1 step:" in head
    first, last = map(float, re.search(r"loss ([\d.]+) -> ([\d.]+)", head).groups())
    assert first != last
    rows = [ln.split("|") for ln in out.splitlines()[2:6]]
    ps = [float(r[2]) for r in rows]
    ys = [int(r[1]) for r in rows]
    table_loss = sum(-math.log(p if y else 1 - p) for p, y in zip(ps, ys)) / 4
    assert abs(table_loss - last) < 2e-3  # (the table shows P to 4 decimals)


@pytest.mark.parametrize("job", sorted(JOBS))
def test_help_shows_every_default(job, capsys):
    with pytest.raises(SystemExit):
        JOBS[job](["--help"])
    options = capsys.readouterr().out.split("options:")[1]
    for option in ("--hidden", "--steps", "--lr", "--seed", "--out"):
        line = next(ln for ln in options.splitlines() if ln.strip().startswith(option))
        assert "(default " in line, line


def test_the_memory_check_refuses_only_what_the_machine_cannot_hold(monkeypatch):
    """The bound is physical memory, not what is free now (free excludes the page cache):
    a default run is never refused on a busy machine."""
    import os

    from nn.cli import check_memory

    real = os.sysconf
    monkeypatch.setattr(os, "sysconf", lambda k: 1 if k == "SC_AVPHYS_PAGES" else real(k))
    check_memory(700 * 2**20, "job")  # more than "free" here, far less than the machine
    with pytest.raises(MemoryError, match="job: about"):
        check_memory(2**60, "job")
