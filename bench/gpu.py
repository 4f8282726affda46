"""The batched moons step on the best device present, against PyTorch's own autograd there.

    python bench/gpu.py [--batch 1000000] [--steps 20]

The step of bench/run.py's batched row -- MLP 2-16-16-1, ReLU, hinge loss + 1e-4·L2,
an SGD update, float64 -- at batch 10⁶ (and 10⁷ on a GPU): autodiff's trace of one
sample's loss run on PyTorch tensors through the array API, with the layers found
(``BatchedTraced.mean_value_and_grad``), beside the same step written in PyTorch.
Both start from the same weights; their losses are checked equal before timing.
Prints the device, ms per step (median) for each, and the ratio. Needs PyTorch; on a
machine without a GPU it runs on the CPU and says so.

    python bench/gpu.py --wide [--batch 1000 10000 100000 1000000]

The compiled training steps on the device: MLP 2-256-256-1, logistic loss, Adam, float64,
batch 10³ to 10⁶ -- ``compile_batch_step(..., xp=torch, device=...)`` (the numpy code on
PyTorch's tensors) beside PyTorch's own eager step, and, where JAX is installed,
``compile_batch_step(..., xp=jax.numpy)`` (the whole step under ``jax.jit``) beside a
hand-written ``jax.jit`` step, on JAX's default device. All start from the same weights and
data, their first losses checked equal. Without a GPU every row says that it measured the
CPU.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable

try:
    import torch
except ImportError:  # pragma: no cover
    sys.exit("bench/gpu.py needs PyTorch: pip install torch==2.13.0")

import array_api_compat
from torch_reference import hinge_sgd_step  # beside this file

import autodiff
from autodiff import Value
from nn import optim
from nn.module import MLP

SIZES = [2, 16, 16, 1]


def moons_tensors(n: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` noisy moons samples (as nn.data.moons draws them, vectorised), labels ±1."""
    g = torch.Generator().manual_seed(0)
    upper = (n + 1) // 2
    t_up = torch.linspace(0, math.pi, upper, dtype=torch.float64)
    t_lo = torch.linspace(0, math.pi, n - upper, dtype=torch.float64)
    x = torch.cat([torch.cos(t_up), 1 - torch.cos(t_lo)])
    y = torch.cat([torch.sin(t_up), 0.5 - torch.sin(t_lo)])
    pts = torch.stack([x, y], 1) + 0.1 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    labels = torch.cat([-torch.ones(upper), torch.ones(n - upper)]).to(torch.float64)
    return pts.to(device), labels.to(device)


def ours(X: torch.Tensor, Y: torch.Tensor) -> tuple[Callable[[], float], MLP]:
    """autodiff: one sample's loss traced once, run on the tensors with the layers found."""
    model = MLP(2, SIZES[1:], activation="relu", output_activation="linear", seed=1)
    opt = optim.SGD(model.parameters(), lr=0.5)
    params = model.parameters()
    n = len(params)

    def sample_loss(v: list[Value]) -> Value:  # the parameters, then x₁, x₂ and y
        with model.bound(v[:n]):
            ps = model.parameters()
            return (1 - v[n + 2] * model(v[n : n + 2])).relu() + 1e-4 * autodiff.dot(ps, ps)

    xp = array_api_compat.array_namespace(X)
    example = [p.data for p in params] + [0.0, 0.0, 1.0]
    traced = autodiff.trace(sample_loss, example, batched=True, xp=xp)
    columns = [X[:, 0].contiguous(), X[:, 1].contiguous(), Y]

    def run() -> float:
        loss, grads = traced.mean_value_and_grad([*(p._data for p in params), *columns])
        for p, g in zip(params, grads[:n]):
            p.grad = g
        opt.step()
        return loss

    return run, model


def timed(fn: Callable[[], float], steps: int, device: str) -> list[float]:
    out = []
    for _ in range(steps):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t)
    return out


def wide_rows(device: str, batches: list[int], steps: int) -> list[str]:
    """The compiled 2-256-256-1 steps on `device` (module docstring), one line per pair."""
    import run  # bench/run.py, beside this file: the same workload and references
    from jax_reference import adam_step as jax_adam_step
    from torch_reference import adam_step as torch_adam_step

    from nn.compiled import compile_batch_step

    try:
        import jax

        jax.config.update("jax_enable_x64", True)
        jax_device = str(jax.devices()[0])
    except ImportError:
        jax = None
    where = (
        "GPU" if device == "cuda" else "CPU: no GPU on this machine, these rows are not GPU rows"
    )
    lines = []
    for n in batches:
        model, xs, ys, loss, opt = run.wide_setup(2, [256, 256, 1], None, n)
        W = [[[nr.w[i].data for nr in ly.neurons] for i in range(ly.nin)] for ly in model.layers]
        b = [[nr.b.data for nr in ly.neurons] for ly in model.layers]
        X = torch.tensor(xs, dtype=torch.float64, device=device)
        Y = torch.tensor(ys, dtype=torch.float64, device=device)
        pairs: list[tuple[str, Callable[[], float], Callable[[], float]]] = []
        on_torch = compile_batch_step(model, loss, xs, ys, opt, xp=torch, device=device)
        pairs.append(("xp=torch", on_torch, torch_adam_step([256, 256, 1], W, b, X, Y, None, 1e-3)))
        if jax is not None:
            model_j, xs_j, ys_j, loss_j, opt_j = run.wide_setup(2, [256, 256, 1], None, n)
            jitted = compile_batch_step(model_j, loss_j, xs_j, ys_j, opt_j, xp=jax.numpy)
            pairs.append(("xp=jax.numpy", jitted, jax_adam_step(W, b, xs, ys, None, 1e-3)))
        for label, mine, theirs in pairs:
            a, r = mine(), theirs()  # the same start: the same first loss
            assert abs(a - r) <= 1e-10 * abs(r), f"{label}, batch {n}: losses {a} vs {r}"
            for _ in range(3):
                mine(), theirs()
            t_mine = statistics.median(timed(mine, steps, device)) * 1e3
            t_theirs = statistics.median(timed(theirs, steps, device)) * 1e3
            peer = "PyTorch eager" if label == "xp=torch" else "hand-written jax.jit"
            on = device if label == "xp=torch" else jax_device
            lines.append(
                f"MLP 2-256-256-1, batch {n:.0e}, Adam, compile_batch_step({label}) on {on} "
                f"({where}): {t_mine:.2f} ms/step, {peer} {t_theirs:.2f}: "
                f"{t_mine / t_theirs:.2f}× its time"
            )
            print(lines[-1])
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="*", default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--wide", action="store_true", help="the compiled training steps")
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.wide:
        wide_rows(device, args.batch or [10**3, 10**4, 10**5, 10**6], args.steps)
        return 0
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU (no GPU on this machine)"
    batches = args.batch or ([10**6, 10**7] if device == "cuda" else [10**6])
    print(f"device: {name}; torch {torch.__version__}; float64; MLP 2-16-16-1, hinge + L2, SGD")
    if device == "cpu":
        print("no GPU here: the same script measures the CPU, and says so")
    for n in batches:
        X, Y = moons_tensors(n, device)
        mine, model = ours(X, Y)
        reference = hinge_sgd_step(model, X, Y, lr=0.5)
        a, b = mine(), reference()  # same start, first step: same loss
        assert abs(a - b) <= 1e-10 * abs(b), f"losses differ: {a} vs {b}"
        for _ in range(3):  # warm up (CUDA kernels, allocators)
            mine(), reference()
        t_ours = statistics.median(timed(mine, args.steps, device)) * 1e3
        t_torch = statistics.median(timed(reference, args.steps, device)) * 1e3
        print(
            f"batch {n:.0e}: autodiff {t_ours:.2f} ms/step, PyTorch autograd {t_torch:.2f} "
            f"ms/step: {t_ours / t_torch:.2f}× PyTorch's time (losses equal: {a:.12g})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
