"""The benchmark's workloads compute the same numbers on both engines (and run at all)."""

from __future__ import annotations

import importlib.util
import pathlib

import oracle
import pytest

pytest.importorskip("micrograd")  # in the dev extra; the bench's peer

SPEC = importlib.util.spec_from_file_location(
    "bench_run", pathlib.Path(__file__).resolve().parent.parent / "bench" / "run.py"
)
bench = importlib.util.module_from_spec(SPEC)  # type: ignore[arg-type]
SPEC.loader.exec_module(bench)  # type: ignore[union-attr]


def test_both_engines_agree_on_the_moons_epoch():
    ours_forward, ours_params = bench.moons_model(bench.Value)
    theirs_forward, theirs_params = bench.moons_model(bench.MgValue)
    ours, theirs = ours_forward(), theirs_forward()
    assert ours.data == pytest.approx(theirs.data, rel=1e-12)
    ours.backward()
    theirs.backward()
    for a, b in zip(ours_params, theirs_params):
        assert a.grad == pytest.approx(b.grad, rel=1e-9, abs=1e-15)
    assert bench.count_nodes(ours) == bench.count_nodes(theirs) == 65818  # as the issue counts


def test_library_steps_and_small_workloads_run():
    ours, theirs = bench.autodiff_library_step(), bench.micrograd_library_step()
    first = ours().data
    assert first == pytest.approx(theirs().data, rel=0.5)  # different inits, same task
    # the compiled and batched paths start from the same model: the same first loss
    assert bench.autodiff_compiled_step()() == pytest.approx(first, rel=1e-12)
    assert bench.autodiff_batched_step()() == pytest.approx(first, rel=1e-12)
    assert bench.library_epoch(bench.batch_setup(100))().data == first
    assert bench.chain(bench.Value, 1000)() == pytest.approx(1.0, rel=1e-3)
    assert bench.wide(bench.Value, 1000, tree=True)() == 2 * (999 % 7)
    built, after, n = bench.bytes_per_node(bench.Value)
    assert n > 60000 and 0 < built <= after


def test_every_timed_path_computes_eagers_gradient():
    worst = bench.check_gradients()  # raises if any path differs by more than 1e-12
    assert worst["compiled"] == 0.0  # the engine's own float operations, in its order
    assert worst["batched"] < 1e-12


def test_the_engine_level_loss_traces_to_the_numbers_of_the_epoch():
    loss, start = bench.engine_loss(2)
    value, grads = bench.trace_and_compile(2)()
    xs = [bench.Value(p) for p in start]
    eager = loss(xs)
    eager.backward()
    assert (value, grads) == (eager.data, [x.grad for x in xs])
    full, _ = bench.engine_loss(100)
    assert bench.count_nodes(full([bench.Value(p) for p in start])) == 65818


def test_the_pytorch_step_computes_the_same_loss_when_torch_is_there():
    oracle.torch()
    ours = bench.autodiff_batched_step(bench.batch_setup(50))
    theirs = bench.torch_batched_step(bench.batch_setup(50))
    for _ in range(3):
        assert ours() == pytest.approx(theirs(), rel=1e-12)


@pytest.mark.parametrize("workload", range(len(bench.WIDE)))
def test_the_wide_workloads_compute_pytorchs_losses(workload):
    oracle.torch()
    _, nin, sizes, classes, _ = bench.WIDE[workload]
    sizes = [min(s, 24) for s in sizes]  # the same code, narrower: fast enough for the suite
    ours, theirs = bench.wide_steps(nin, sizes, classes, n=40)
    for _ in range(3):
        assert ours() == pytest.approx(theirs(), rel=1e-12)


@pytest.mark.parametrize("workload", range(len(bench.WIDE)))
def test_the_hand_written_numpy_step_computes_the_same_losses(workload):
    """The bench's "hand-written numpy" peer is the same training: this project's losses,
    step after step (1e-12: numpy's own sums), and Adam's update as ours rounds it."""
    pytest.importorskip("numpy")
    _, nin, sizes, classes, _ = bench.WIDE[workload]
    sizes = [min(s, 24) for s in sizes]
    model, xs, ys, loss, opt = bench.wide_setup(nin, sizes, classes, 40)
    ours = bench.compile_batch_step(model, loss, xs, ys, opt)
    theirs = bench.numpy_step(nin, sizes, classes, n=40)
    for _ in range(5):
        assert ours() == pytest.approx(theirs(), rel=1e-12)


@pytest.mark.parametrize("workload", range(len(bench.WIDE)))
def test_the_jitted_workloads_compute_the_hand_written_jax_steps_losses(workload):
    """The bench's jax.jit rows compare like with like: this project's jitted step and the
    hand-written one give the same losses, step after step (1e-12: XLA's own reductions)."""
    pytest.importorskip("jax", reason="JAX is not installed: the bench's jax.jit rows say so")
    _, nin, sizes, classes, _ = bench.WIDE[workload]
    sizes = [min(s, 24) for s in sizes]
    pair = bench.jax_steps(nin, sizes, classes, n=40)
    assert pair is not None
    (ours, _), (theirs, _) = pair
    for _ in range(3):
        assert ours() == pytest.approx(theirs(), rel=1e-12)


def test_the_products_alone_row_compares_the_same_products():
    """The row of a workload's matrix products alone times the same products on numpy and
    under jax.jit: a step's, layer by layer (three per layer, two for the first)."""
    pytest.importorskip("jax", reason="JAX is not installed: the bench has no such row")
    import numpy as np

    pair = bench.products_alone(5, [7, 6, 3], n=11)
    assert pair is not None
    on_numpy, on_xla = (f() for f in pair)
    assert [p.shape for p in on_numpy] == [
        (11, 7),
        (7, 5),
        (11, 6),
        (6, 7),
        (11, 7),
        (11, 3),
        (3, 6),
        (11, 6),
    ]
    assert len(on_xla) == len(on_numpy)
    for a, b in zip(on_numpy, on_xla):
        np.testing.assert_allclose(np.asarray(b), a, rtol=1e-12, atol=1e-12)


def test_the_gpu_scripts_compiled_rows_run_here_and_say_they_are_not_gpu_rows(capsys):
    """bench/gpu.py --wide: on a machine without a GPU every row says so (and its steps
    agree with PyTorch's and JAX's own, which it checks before timing)."""
    torch = oracle.torch()
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the rows are GPU rows")
    spec = importlib.util.spec_from_file_location(
        "bench_gpu", pathlib.Path(__file__).resolve().parent.parent / "bench" / "gpu.py"
    )
    gpu = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(gpu)  # type: ignore[union-attr]
    lines = gpu.wide_rows("cpu", [40], steps=2)
    said = "no GPU on this machine, these rows are not GPU rows"
    assert lines and all(said in ln for ln in lines)
    assert any("xp=torch" in ln for ln in lines)


@pytest.mark.skipif(not hasattr(__import__("os"), "sched_setaffinity"), reason="Linux only")
def test_the_bench_pins_itself_and_the_processes_it_starts_to_one_cpu():
    """XLA splits a large product over every CPU it may use, whatever its flags say, so
    the bench pins its run to one CPU (and its new processes inherit that): the pytest
    process itself is left alone (the pinning happens in a new process here)."""
    import os
    import subprocess
    import sys

    code = (
        "import importlib.util, os, subprocess, sys\n"
        f"spec = importlib.util.spec_from_file_location('b', {str(SPEC.origin)!r})\n"
        "b = importlib.util.module_from_spec(spec); spec.loader.exec_module(b)\n"
        "before = len(os.sched_getaffinity(0))\n"
        "cpu = b.pin_one_cpu()\n"
        "child = subprocess.run([sys.executable, '-c', "
        "'import os; print(sorted(os.sched_getaffinity(0)))'], capture_output=True, text=True)\n"
        "print(before, cpu, sorted(os.sched_getaffinity(0)), child.stdout.strip())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split(" ", 2)
    cpu = min(os.sched_getaffinity(0))
    assert out[1] == str(cpu)
    assert out[2].strip() == f"[{cpu}] [{cpu}]"  # the run, and a process it starts
    assert len(os.sched_getaffinity(0)) == int(out[0])  # importing the bench pins nothing


def test_a_ratios_spread_is_of_the_rounds_paired_ratios():
    """The brackets beside a ratio are the quartiles of each round's own ratio (both peers
    timed in that round), not the peers' quartiles divided: ours takes 2 every round while
    the peer alternates 1 and 2, so the rounds' ratios are 2, 1, 2, 1 (quartiles 1.00 and
    2.00; dividing the quartiles would give 2.00 and 1.00). Too few rounds: no brackets."""
    import statistics

    res = {"a": [2.0, 2.0, 2.0, 2.0], "t": [1.0, 2.0, 1.0, 2.0]}
    assert bench.torch_row("x", res, 1, "peer")[3] == "1.33× peer's time (rounds 1.00–2.00)"
    res = {"a": [3.0, 1.0, 2.0, 2.0, 2.0], "t": [1.0, 1.0, 1.0, 1.0, 2.0]}
    q1, _, q3 = statistics.quantiles([3.0, 1.0, 2.0, 2.0, 1.0], n=4)
    assert bench.torch_row("x", res, 1, "peer")[3].endswith(f"(rounds {q1:.2f}–{q3:.2f})")
    assert "rounds" not in bench.torch_row("x", {"a": [1.0], "t": [2.0]}, 1, "peer")[3]
