"""Benchmark autodiff against micrograd, side by side in one process.

    pip install -e ".[bench]" && python bench/run.py [--quick] [--no-readme]

Workloads (micrograd's own demo, "the moons epoch": MLP 2-16-16-1, ReLU hidden,
linear output, 100 moons samples, SVM hinge loss + 1e-4·L2, one full-batch
forward + backward + SGD step):

* engine level: the same model code run on each engine's ``Value``, with the
  garbage collector at its defaults and with it disabled for both;
* library level: ``nn.MLP`` + ``nn.losses`` + ``nn.optim`` as a user writes it,
  against micrograd's demo loop with its ``micrograd.nn.MLP``;
* a deep chain (10³ … 10⁶ steps) and a wide sum (10⁵ products);
* bytes per node (tracemalloc) and memory over 1,000 library training steps;
* trace + compile of the engine-level moons loss (65,818 nodes) against one eager
  epoch of the same loss, and its cost per node from 10³ to 10⁵ nodes;
* the batched step with the layers found, against PyTorch's batched autograd at
  batch 10², 10⁴ and 10⁵ (when torch is installed), timed in blocks of steps (the
  steady state of a training loop), and a width-256 MLP;
* wide networks with Adam (MLP 2-256-256-1 logistic, 64-512-10, 784-256-256-10,
  64-2048-10 and 64-32-10 cross-entropy at batch 1,000; 64-32-10 at batch 32 and
  2-16-16-1 at batch 10), every peer side by side in one alternating run from the same
  weights and data, float64, one thread each: this project's numpy step, the same step
  written by hand in numpy (numpy's own ceiling), PyTorch eager, torch.compile, a
  hand-written jax.jit step and this project's step under jax.jit,
  first steps (compiles) included; then PyTorch's step and ours each alone in a new
  process, with the keep_memory allocator setting off and on;
* the whole ``python -m nn.digits`` main job, as a new process.

With the collector disabled, micrograd's graph (reference cycles) is freed only by a
collection: that row times one collection at the end of each epoch, for both engines.
micrograd's recursive sort fails at Python's default recursion limit, and the deep
chain rows say so.

Before anything is timed, every path's gradient is checked equal to eager's on
the same model (``check_gradients``): a row that computes something else fails.

Rounds alternate between the engines and garbage is collected between them, so
that no engine pays for another's. Medians and minimums are reported with the
ratio micrograd / autodiff of the medians. Results go to stdout, to
bench/RESULTS.md, and (unless --no-readme) to the README's results table.
"""

from __future__ import annotations

import os

# one thread each: numpy's BLAS and PyTorch alike (set before either is imported), and
# JAX's XLA on the CPU (before it is imported). XLA's CPU runtime still splits a large
# matrix product over a pool of its own, sized from the CPUs it may use (measured here: a
# 1000×784 @ 784×256 product, 4.6 ms of wall time for 8.5 ms of CPU time on 2 cores), so
# main() pins the whole run -- the new processes it starts too -- to one CPU (pin_one_cpu):
# every peer then gets the same one core, as the table was measured.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

import argparse
import functools
import gc
import importlib.util
import itertools
import pathlib
import platform
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import autodiff
from autodiff import Value
from autodiff.files import write_file
from nn import losses, optim
from nn.data import moons
from nn.module import MLP
from nn.train import compile_batch_step, compile_step

try:
    import micrograd
    from micrograd.engine import Value as MgValue
    from micrograd.nn import MLP as MgMLP
except ImportError:  # pragma: no cover
    sys.exit('micrograd is needed: pip install -e ".[bench]"')

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT / "bench") not in sys.path:  # torch_reference.py, beside this file, when imported
    sys.path.insert(0, str(ROOT / "bench"))
SIZES = [2, 16, 16, 1]
#: What a row shows for an engine whose recursive sort fails (Python's limit is 1,000).
RECURSION = "RecursionError at Python's default recursion limit"


def data() -> tuple[list[list[float]], list[int]]:
    """100 moons samples, labels ±1 (hinge)."""
    xs, ys = moons(100, noise=0.1, seed=0)
    return xs, [2 * y - 1 for y in ys]


# -- engine level: one model code, either engine's Value ---------------------------------


def moons_layers(ps: list[Any]) -> list[tuple[list[list[Any]], list[Any], bool]]:
    """Cut a flat parameter list into layers (weights by row, then biases, layer by layer):
    (W, B, relu?) for each layer of SIZES."""
    it = iter(ps)
    layers = []
    for i in range(len(SIZES) - 1):
        W = [[next(it) for _ in range(SIZES[i])] for _ in range(SIZES[i + 1])]
        B = [next(it) for _ in range(SIZES[i + 1])]
        layers.append((W, B, i < len(SIZES) - 2))
    return layers


def moons_loss(V: Any, ps: list[Any], xs: list[list[float]], ys: list[int]) -> Any:
    """The moons loss written once against a Value class: mean hinge loss of the MLP whose
    parameters are `ps`, plus an L2 penalty."""
    layers = moons_layers(ps)
    scores = []
    for x in xs:
        h = [V(x[0]), V(x[1])]
        for W, B, relu in layers:
            h = [sum((w * hi for w, hi in zip(row, h)), b) for row, b in zip(W, B)]
            if relu:
                h = [v.relu() for v in h]
        scores.append(h[0])
    data_loss = sum((1 + -y * s).relu() for y, s in zip(ys, scores)) * (1.0 / len(ys))
    return data_loss + 1e-4 * sum(p * p for p in ps)


def moons_model(V: Any, seed: int = 1) -> tuple[Callable[[], Any], list[Any]]:
    """The moons model on either engine: (forward → total loss, params); weights uniform in
    [-1, 1], biases 0."""
    rng = random.Random(seed)
    params = [
        p
        for a, b in itertools.pairwise(SIZES)
        for p in [*(V(rng.uniform(-1, 1)) for _ in range(a * b)), *(V(0.0) for _ in range(b))]
    ]
    xs, ys = data()
    return (lambda: moons_loss(V, params, xs, ys)), params


def engine_epoch(V: Any) -> Callable[[], Any]:
    """One moons epoch on either engine: forward, backward, SGD step."""
    forward, params = moons_model(V)

    def epoch() -> Any:
        total = forward()
        for p in params:
            p.grad = 0.0
        total.backward()
        for p in params:
            p.data -= 0.5 * p.grad
        return total

    return epoch


def count_nodes(root: Any) -> int:
    """Nodes in a graph of either engine (iteratively)."""
    seen = {id(root)}
    stack = [root]
    while stack:
        node = stack.pop()
        kids = node.parents if isinstance(node, Value) else node._prev
        for p in kids:
            if id(p) not in seen:
                seen.add(id(p))
                stack.append(p)
    return len(seen)


# -- library level ---------------------------------------------------------------------------


def library_setup() -> tuple[MLP, list[Value], optim.SGD, list[list[float]], list[int]]:
    """The library workload's model, its parameters, SGD, and the data (labels ±1)."""
    model = MLP(2, SIZES[1:], activation="relu", output_activation="linear", seed=1)
    params = model.parameters()
    return model, params, optim.SGD(params, lr=0.5), *data()


def autodiff_library_step() -> Callable[[], Value]:
    """nn.MLP + nn.losses.hinge + nn.optim.SGD, the way a user writes it."""
    model, params, opt, xs, ys = library_setup()

    def closure() -> Value:
        loss = losses.hinge([model(x) for x in xs], ys) + 1e-4 * autodiff.dot(params, params)
        opt.zero_grad()
        loss.backward()
        return loss

    return lambda: opt.step(closure)  # type: ignore[return-value]


def library_loss(model: MLP, xs: list[list[float]], ys: list[int]) -> Value:
    """The library workload's loss: hinge + 1e-4·L2, the parameters read from the model.

    (Reading them from `model` -- not from a list made before -- is what lets a trace
    see them as its inputs: a list captured from outside would be baked in.)
    """
    ps = model.parameters()
    return losses.hinge([model(x) for x in xs], ys) + 1e-4 * autodiff.dot(ps, ps)


Setup = tuple[MLP, list[Value], optim.SGD, list[list[float]], list[int]]


def autodiff_compiled_step(setup: Setup | None = None) -> Callable[[], float]:
    """The same model, loss and optimizer, the loss and gradient traced once (nn.train)."""
    model, _params, opt, xs, ys = setup or library_setup()
    return compile_step(model, lambda: library_loss(model, xs, ys), opt)


def sample_loss(model: MLP) -> Callable[[list[Value], Value], Value]:
    """One sample's hinge loss with the whole L2 term: its batch mean is library_loss."""

    def loss(x: list[Value], y: Value) -> Value:
        ps = model.parameters()
        return (1 - y * model(x)).relu() + 1e-4 * autodiff.dot(ps, ps)

    return loss


def autodiff_batched_step(setup: Setup | None = None, xp: Any = None) -> Callable[[], float]:
    """The same again: one sample's loss traced, run on the batch at once, layers as matmuls."""
    model, _params, opt, xs, ys = setup or library_setup()
    return compile_batch_step(model, sample_loss(model), xs, ys, opt, xp=xp)


def check_gradients() -> dict[str, float]:
    """Each timed path's gradient against eager's at the same start: the worst relative error.

    The compiled path computes the engine's own float operations; the batched one sums in
    another order (matrix products): both within 1e-12, or the bench stops.
    """
    model, params, _, xs, ys = library_setup()
    library_loss(model, xs, ys).backward()
    eager = [p.grad for p in params]
    worst = {}
    for name, make in (("compiled", autodiff_compiled_step), ("batched", autodiff_batched_step)):
        setup = library_setup()  # the same model, at the same start
        make(setup)()  # sets every .grad from its own code, then steps
        # (model.parameters(): the batched step keeps the numbers in an array until then)
        errors = [
            abs(p.grad - e) / max(abs(e), 1e-12) for p, e in zip(setup[0].parameters(), eager)
        ]
        worst[name] = max(errors)
        assert worst[name] < 1e-12, f"{name}: gradient differs from eager by {worst[name]:.2e}"
    return worst


def micrograd_library_step() -> Callable[[], Any]:
    """micrograd's demo loop: its MLP, its loss function, zero_grad, backward, update."""
    random.seed(1)
    model = MgMLP(2, SIZES[1:])
    xs, ys = data()

    def step() -> Any:
        inputs = [list(map(MgValue, x)) for x in xs]
        scores = list(map(model, inputs))
        data_loss = sum((1 + -y * s).relu() for y, s in zip(ys, scores)) * (1.0 / len(ys))
        total = data_loss + 1e-4 * sum(p * p for p in model.parameters())
        model.zero_grad()
        total.backward()
        for p in model.parameters():
            p.data -= 0.5 * p.grad
        return total

    return step


# -- trace, compile, batch ----------------------------------------------------------------------


def engine_loss(n_samples: int) -> tuple[Callable[[list[Value]], Value], list[float]]:
    """The engine-level moons loss over the first `n_samples`, as a function of the parameters
    (the epoch's workload, built from `ps` so that a trace sees them as inputs)."""
    xs, ys = data()
    xs, ys = xs[:n_samples], ys[:n_samples]
    rng = random.Random(1)
    start = [
        rng.uniform(-1, 1) for _ in range(sum((a + 1) * b for a, b in itertools.pairwise(SIZES)))
    ]

    def loss(ps: list[Value]) -> Value:
        return moons_loss(Value, ps, xs, ys)

    return loss, start


def trace_and_compile(n_samples: int) -> Callable[[], Any]:
    """Trace the engine-level loss, then compile and run its value_and_grad once."""
    loss, start = engine_loss(n_samples)

    def run() -> Any:
        traced = autodiff.trace(loss, start)
        return traced.value_and_grad(start)

    return run


def torch_batched_step(setup: Setup) -> Callable[[], float] | None:
    """PyTorch's batched autograd on the same model, loss and SGD step (None without torch)."""
    try:
        import torch
    except ImportError:
        return None
    from torch_reference import hinge_sgd_step

    model, _params, opt, xs, ys = setup
    X = torch.tensor(xs, dtype=torch.float64)
    Y = torch.tensor(ys, dtype=torch.float64)
    return hinge_sgd_step(model, X, Y, opt.lr)


def batch_setup(n: int, sizes: list[int] = SIZES) -> Setup:
    """The library model (seed 1) with `n` moons samples, labels ±1."""
    xs, ys = moons(n, noise=0.1, seed=0)
    model = MLP(2, sizes[1:], activation="relu", output_activation="linear", seed=1)
    params = model.parameters()
    return model, params, optim.SGD(params, lr=0.5), xs, [2 * y - 1 for y in ys]


def library_epoch(setup: Setup) -> Callable[[], Any]:
    """The eager library step on a given setup."""
    model, _params, opt, xs, ys = setup

    def closure() -> Value:
        loss = library_loss(model, xs, ys)
        opt.zero_grad()
        loss.backward()
        return loss

    return lambda: opt.step(closure)


# the wide networks: Adam, float64, one thread each, the same weights and data for every
# peer -- (label, inputs, layer sizes, classes (None: the logistic loss), batch)
WIDE = [
    ("MLP 2-256-256-1, logistic", 2, [256, 256, 1], None, 1000),
    ("MLP 64-512-10, cross-entropy", 64, [512, 10], 10, 1000),
    ("MLP 784-256-256-10, cross-entropy", 784, [256, 256, 10], 10, 1000),
    ("MLP 64-2048-10, cross-entropy", 64, [2048, 10], 10, 1000),
    ("MLP 64-32-10, cross-entropy (the digits job's)", 64, [32, 10], 10, 1000),
    ("MLP 64-32-10, cross-entropy", 64, [32, 10], 10, 32),
    ("MLP 2-16-16-1, logistic", 2, [16, 16, 1], None, 10),
]


def wide_setup(
    nin: int, sizes: list[int], classes: int | None, n: int = 1000, seed: int = 0
) -> tuple[MLP, list[list[float]], list[int], Callable[..., Value], optim.Adam]:
    """A wide workload: the model, the data, its sample loss and its optimizer."""
    rng = random.Random(seed)
    xs = [[rng.uniform(-1, 1) for _ in range(nin)] for _ in range(n)]
    ys = [rng.randrange(classes or 2) for _ in range(n)]
    model = MLP(nin, sizes, seed=seed)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    if classes is None:
        loss = lambda x, y: losses.logistic([model(x)], [y])  # noqa: E731
    else:
        loss = lambda x, y: losses.cross_entropy([model(x)], [y])  # noqa: E731
    return model, xs, ys, loss, opt


def wide_steps(
    nin: int,
    sizes: list[int],
    classes: int | None,
    n: int = 1000,
    seed: int = 0,
    compiled: bool = False,
    keep_memory: bool = True,
) -> tuple[Callable[[], float], Callable[[], float] | None]:
    """(autodiff's compiled batch step, PyTorch's step or None) for one wide workload,
    from the same weights and data; PyTorch's under ``torch.compile`` with `compiled`."""
    model, xs, ys, loss, opt = wide_setup(nin, sizes, classes, n, seed)
    W = [
        [[nr.w[i].data for nr in layer.neurons] for i in range(layer.nin)] for layer in model.layers
    ]
    b = [[nr.b.data for nr in layer.neurons] for layer in model.layers]
    ours = compile_batch_step(model, loss, xs, ys, opt, keep_memory=keep_memory)
    try:
        import torch
    except ImportError:
        return ours, None
    from torch_reference import adam_step

    torch.set_num_threads(1)
    X = torch.tensor(xs, dtype=torch.float64)
    Y = torch.tensor(ys, dtype=torch.float64 if classes is None else torch.int64)
    return ours, adam_step(sizes, W, b, X, Y, classes, 1e-3, compiled=compiled)


def jax_steps(
    nin: int,
    sizes: list[int],
    classes: int | None,
    n: int = 1000,
    seed: int = 0,
    keep_memory: bool = True,
) -> tuple[tuple[Callable[[], float], float], tuple[Callable[[], float], float]] | None:
    """(this project's step under jax.jit, its first step's time), and the same for a
    hand-written jax.jit step, from the same weights and data; None without JAX. Their
    first losses are checked equal (1e-12) before anything is timed."""
    try:
        import jax
    except ImportError:
        return None
    from jax_reference import adam_step as jax_adam_step

    jax.config.update("jax_enable_x64", True)
    model, xs, ys, loss, opt = wide_setup(nin, sizes, classes, n, seed)
    W = [
        [[nr.w[i].data for nr in layer.neurons] for i in range(layer.nin)] for layer in model.layers
    ]
    b = [[nr.b.data for nr in layer.neurons] for layer in model.layers]
    t = time.perf_counter()
    ours = compile_batch_step(model, loss, xs, ys, opt, xp=jax.numpy, keep_memory=keep_memory)
    first = ours()
    ours_cold = time.perf_counter() - t
    t = time.perf_counter()
    theirs = jax_adam_step(W, b, xs, ys, classes, 1e-3)
    their_first = theirs()
    theirs_cold = time.perf_counter() - t
    assert abs(first - their_first) <= 1e-12 * abs(first), "under jax.jit: a different loss"
    return (ours, ours_cold), (theirs, theirs_cold)


def numpy_step(
    nin: int, sizes: list[int], classes: int | None, n: int = 1000, seed: int = 0
) -> Callable[[], float]:
    """The wide workload's step written by hand in numpy (bench/numpy_reference.py), from
    the same weights and data as this project's: what numpy alone does on this machine."""
    from numpy_reference import adam_step as numpy_adam_step

    model, xs, ys, _, _ = wide_setup(nin, sizes, classes, n, seed)
    W = [
        [[nr.w[i].data for nr in layer.neurons] for i in range(layer.nin)] for layer in model.layers
    ]
    b = [[nr.b.data for nr in layer.neurons] for layer in model.layers]
    return numpy_adam_step(W, b, xs, ys, classes, 1e-3)


def products_alone(
    nin: int, sizes: list[int], n: int = 1000, seed: int = 0
) -> tuple[Callable[[], Any], Callable[[], Any]] | None:
    """A wide workload's matrix products alone, as a training step makes them -- per layer
    A @ W, the weights' gradient gUᵀ @ A and (past the first) the inputs' gU @ Wᵀ, at the
    step's shapes (a layer of one neuron's gU @ Wᵀ is an outer product, which the steps make
    elementwise: left out) -- by numpy (its BLAS) and under jax.jit (XLA), every product
    returned: how far apart the two libraries' products are, before any elementwise pass.
    None without JAX."""
    try:
        import jax
    except ImportError:
        return None
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(seed)
    dims = [nin, *sizes]
    A = [rng.standard_normal((n, d)) for d in dims[:-1]]
    W = [rng.standard_normal((d, e)) for d, e in itertools.pairwise(dims)]
    G = [rng.standard_normal((n, e)) for e in dims[1:]]

    def products(A: list[Any], W: list[Any], G: list[Any]) -> list[Any]:
        out = []
        for layer, (a, w, g) in enumerate(zip(A, W, G)):
            out += [a @ w, g.T @ a] + ([g @ w.T] if layer and w.shape[1] > 1 else [])
        return out

    on_numpy = functools.partial(products, A, W, G)
    jitted = jax.jit(products)
    args = [[jax.numpy.asarray(x) for x in xs] for xs in (A, W, G)]

    def on_xla() -> Any:
        return jax.block_until_ready(jitted(*args))

    on_xla()  # (compiled here, not timed)
    return on_numpy, on_xla


def wide_compile(nin: int, sizes: list[int], classes: int | None) -> Callable[[], float]:
    """Trace + compile + the first step of a wide workload (the model and data made before)."""
    model, xs, ys, loss, opt = wide_setup(nin, sizes, classes)
    return lambda: compile_batch_step(model, loss, xs, ys, opt)()


def torch_row(
    label: str, res: dict[str, Any], k: int, peer: str = "torch", ours: str = "a", theirs: str = "t"
) -> tuple[str, ...]:
    """A row of autodiff (`ours`, "a") beside a peer (`theirs`, "t": PyTorch unless `peer`
    says): per-step medians (minimums) of blocks of `k` steps, in ms, and the ratio of
    the medians -- with the middle half of the rounds' own ratios (each round times both
    in turn, so a round's ratio is a paired measurement: a ratio whose middle half
    straddles a target is not known to be either side of it on this machine)."""
    a, t = res[ours], res[theirs]
    a_med, t_med = statistics.median(a) / k, statistics.median(t) / k
    spread = ""
    if len(a) == len(t) >= 4:
        q1, _, q3 = statistics.quantiles([x / y for x, y in zip(a, t)], n=4)
        spread = f" (rounds {q1:.2f}–{q3:.2f})"
    return (
        label,
        f"{a_med * 1e3:.2f} ({min(a) / k * 1e3:.2f})",
        f"{t_med * 1e3:.2f} ({min(t) / k * 1e3:.2f}) {peer}",
        f"{a_med / t_med:.2f}× {peer}'s time{spread}",
        "ms",
    )


def in_blocks(step: Callable[[], Any], k: int) -> Callable[[], None]:
    """`k` steps in a row, timed as one: the steady state of a training loop, where one
    alternated step would also time the page faults and the order of the runs."""

    def run() -> None:
        for _ in range(k):
            step()

    return run


def torch_compiled_steps(
    nin: int, sizes: list[int], classes: int | None, n: int
) -> tuple[Callable[[], float], float, float] | None:
    """PyTorch's step under torch.compile for one wide workload, its first step's time (the
    compile included) and loss; None without PyTorch, or where it cannot compile here."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    _, theirs = wide_steps(nin, sizes, classes, n, compiled=True)
    assert theirs is not None
    t = time.perf_counter()
    try:
        loss = theirs()
    except Exception as e:
        print(f"torch.compile failed: {type(e).__name__}: {e}", file=sys.stderr)
        return None
    return theirs, time.perf_counter() - t, loss


def wide_table(
    rows: list[tuple[str, ...]], notes: list[str], rounds: int, quick: bool = False
) -> None:
    """The wide workloads (WIDE), each with every peer side by side in one alternating
    run: this project's numpy step, the same step written by hand in numpy, PyTorch eager,
    torch.compile, a hand-written jax.jit step and this project's step under jax.jit --
    all from the same weights and data, their first losses checked equal first."""
    for name, nin, sizes, classes, n in WIDE:
        start = len(rows)
        ours, theirs = wide_steps(nin, sizes, classes, n)
        t = time.perf_counter()
        first = ours()
        cold = time.perf_counter() - t  # (the trace and compile: the first step)
        t = time.perf_counter()
        ours()
        once = time.perf_counter() - t  # one step, for the size of a timed block
        cases: dict[str, Callable[[], float]] = {"a": ours, "n": numpy_step(nin, sizes, classes, n)}
        assert abs(first - cases["n"]()) <= 1e-12 * abs(first), f"{name}: numpy's loss"
        if theirs is not None:
            assert abs(first - theirs()) <= 1e-12 * abs(first), f"{name}: a different loss"
            cases["t"] = theirs
        pair = jax_steps(nin, sizes, classes, n)
        if pair is not None:
            (ours_j, ours_cold), (theirs_j, theirs_cold) = pair
            cases["aj"], cases["j"] = ours_j, theirs_j
        alone = products_alone(nin, sizes, n)
        if alone is not None:
            cases["pn"], cases["pj"] = alone
        compiled = None if quick else torch_compiled_steps(nin, sizes, classes, n)
        if compiled is not None:
            assert abs(first - compiled[2]) <= 1e-12 * abs(first), f"{name}: torch.compile's loss"
            cases["tc"] = compiled[0]
        k = max(3, min(100, round(0.03 / max(once, 1e-5))))  # steps per block: ~30 ms
        wall, cpu = time.perf_counter(), time.process_time()
        # three times the rounds of the other rows: on a shared machine one slow round in
        # nine moves a median by 10-20 %
        res = side_by_side({key: in_blocks(f, k) for key, f in cases.items()}, 3 * rounds)
        busy = (time.process_time() - cpu) / (time.perf_counter() - wall)  # cores kept busy
        core = "1 core" if PINNED is not None else "not pinned"
        head = (
            f"{name}, batch {n}, Adam (CPU, float64, 1 thread, {core}: CPU/wall time "
            f"{busy:.2f}, blocks of {k})"
        )
        if "t" in res:
            rows.append(torch_row(f"{head}: numpy step vs PyTorch eager", res, k, "PyTorch eager"))
        else:
            rows.append((f"{head}: numpy step (PyTorch not installed)", "—", "—", "—", "ms"))
        rows.append(torch_row("  numpy step vs hand-written numpy", res, k, "numpy", "a", "n"))
        if "j" in res:
            rows.append(
                torch_row("  numpy step vs hand-written jax.jit", res, k, "jax.jit", "a", "j")
            )
            rows.append(
                torch_row(
                    "  hand-written numpy vs hand-written jax.jit", res, k, "jax.jit", "n", "j"
                )
            )
        if "tc" in res:
            rows.append(
                torch_row("  numpy step vs torch.compile", res, k, "torch.compile", "a", "tc")
            )
        if "j" in res:
            rows.append(
                torch_row(
                    "  our step under jax.jit vs hand-written jax.jit", res, k, "jax.jit", "aj", "j"
                )
            )
        if "pj" in res:
            rows.append(
                torch_row(
                    "  the step's matrix products alone: numpy vs jax.jit",
                    res,
                    k,
                    "jax.jit",
                    "pn",
                    "pj",
                )
            )
        colds = [("hand-written jax.jit", theirs_cold)] if pair is not None else []
        colds += [("torch.compile", compiled[1])] if compiled is not None else []
        rows.append(
            (
                "  first step, compile included (cold): ours on numpy / under jax.jit",
                f"{cold * 1e3:.0f} / {ours_cold * 1e3:.0f}"
                if pair is not None
                else f"{cold * 1e3:.0f}",
                " / ".join(f"{t * 1e3:.0f} {who}" for who, t in colds) or "—",
                "—",
                "ms",
            )
        )
        for row in rows[start:]:
            print(row)
    notes.append(
        f"Wide rows: every peer of a workload is timed in the same alternating run ({3 * rounds} "
        "rounds of a block of steps each), from the "
        "same weights and data, float64, one thread (OpenBLAS, MKL, XLA), the whole run "
        "pinned to one CPU (sched_setaffinity: XLA's CPU runtime otherwise splits a large "
        "matrix product over every core it may use, whatever its flags say -- on this 2-core "
        "machine that took a 1000×784 @ 784×256 product from 7.8 to 4.6 ms); CPU/wall time in each "
        "heading is the process's CPU time over the wall time of the timed rounds, 1.00 for "
        "one busy core. PyTorch and JAX run in "
        "this process, where compile_batch_step has set keep_memory (a process-wide "
        "allocator setting, which acts on their arrays too -- XLA's temporaries above all: "
        "see the keep_memory rows). Beside each ratio of medians, in brackets, the middle "
        "half (quartiles) of the rounds' own ratios: each round times every peer in turn, so "
        "one round's ratio is a paired measurement, and a target inside the brackets is not "
        "met or missed beyond this machine's noise."
    )
    notes.append(
        "The row of a step's matrix products alone times, in the same alternation, only the "
        "products a step makes (per layer A @ W, gUᵀ @ A and gU @ Wᵀ, at the step's shapes) "
        "by numpy's BLAS and under jax.jit: the part of a numpy-vs-jax.jit ratio that is the "
        "libraries' products; the rest is the elementwise passes (biases, relu and its "
        "mask, the loss, Adam), which XLA fuses and numpy makes one by one."
    )
    notes.append(gpu_note())
    if not quick:
        keep_memory_rows(rows, notes, rounds)


def gpu_note() -> str:
    """What this run says of the GPU rows (bench/gpu.py --wide, run where a GPU is)."""
    try:
        import torch

        gpu = torch.cuda.is_available()
    except ImportError:
        gpu = False
    if gpu:
        return "GPU rows: this machine has a GPU; `python bench/gpu.py --wide` measures them."
    return (
        "GPU rows (`python bench/gpu.py --wide`: the compiled steps on PyTorch's and JAX's "
        "device beside their own, batch 10³–10⁶): not measured -- no GPU on this machine."
    )


# the keep_memory rows: a peer's step and ours, each alone in a new process
_ALONE = """
import sys, statistics, time
sys.path[:0] = [{bench!r}]
import run
name, nin, sizes, classes, n = run.WIDE[{w}]
# (our compiled step makes the setting, or not: it is made for both steps alike)
if {who!r} in ("ours", "torch"):
    ours, theirs = run.wide_steps(nin, sizes, classes, n, keep_memory={keep})
else:
    (ours, _), (theirs, _) = run.jax_steps(nin, sizes, classes, n, keep_memory={keep})
step = ours if {who!r} in ("ours", "ours_jit") else theirs
k = 10
for _ in range(3):
    step()
times = []
for _ in range({rounds}):
    t = time.perf_counter()
    for _ in range(k):
        step()
    times.append((time.perf_counter() - t) / k)
print(statistics.median(times))
"""


def alone(w: int, who: str, keep: bool, rounds: int) -> float:
    """The median step time of `who` ("ours", "torch"; under JAX "ours_jit", "jax") on
    WIDE[w] in a new process, with the allocator setting kept or not."""
    import subprocess

    code = _ALONE.format(bench=str(ROOT / "bench"), w=w, keep=keep, who=who, rounds=rounds)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return float(out.stdout.split()[-1])


def keep_memory_rows(rows: list[tuple[str, ...]], notes: list[str], rounds: int) -> None:
    """PyTorch's step and ours on two wide rows, and under JAX the jitted steps on the
    widest layer, each alone in its own process, with the keep_memory allocator setting off
    and on -- alternated process by process."""
    labels = {
        "ours": "this project's numpy step",
        "torch": "PyTorch eager",
        "ours_jit": "this project's step under jax.jit",
        "jax": "hand-written jax.jit",
    }
    pairs = []
    if importlib.util.find_spec("torch") is not None:
        pairs += [(0, ("ours", "torch")), (1, ("ours", "torch"))]
    if importlib.util.find_spec("jax") is not None:
        pairs.append((3, ("ours_jit", "jax")))
    if not pairs:
        return  # (no peer installed: no rows, and no note about them)
    for w, peers in pairs:
        name, _, _, _, n = WIDE[w]
        got: dict[tuple[str, bool], list[float]] = {}
        for r in range(3):
            for who in peers:
                for keep in (False, True) if r % 2 == 0 else (True, False):
                    got.setdefault((who, keep), []).append(alone(w, who, keep, rounds))
        for who in peers:
            off = statistics.median(got[(who, False)])
            on = statistics.median(got[(who, True)])
            rows.append(
                (
                    f"{name}, batch {n}: {labels[who]} alone in a new process, keep_memory on vs off",
                    f"{on * 1e3:.2f}",
                    f"{off * 1e3:.2f} off",
                    f"{on / off:.2f}× its time with it off",
                    "ms",
                )
            )
            print(rows[-1])
    notes.append(
        "keep_memory rows: each number the median of 3 new processes (alternated), each timing "
        "its step alone; the setting (glibc mallopt: every block from the heap, freed memory "
        "kept for reuse; process-wide, kept until the process ends) is what "
        "compile_batch_step(..., keep_memory=True), the default, makes. The hand-written "
        "jax.jit step is JAX's own: 'on' is it in a process where our step made the setting."
    )


def digits_run() -> Callable[[], None]:
    """The whole `python -m nn.digits` main job, pictures included, as a new process."""
    import subprocess
    import tempfile

    def run() -> None:
        with tempfile.TemporaryDirectory() as out:
            subprocess.run(
                [sys.executable, "-m", "nn.digits", "--out", out],
                check=True,
                capture_output=True,
                cwd=ROOT,
            )

    return run


# -- measuring ------------------------------------------------------------------------------


def timed(fn: Callable[[], Any], gc_enabled: bool, collect: bool = False) -> float | str:
    """Seconds for one call, the result dropped inside the timing (freeing is a cost too);
    with `collect`, a full collection too, inside the timing: with the collector disabled,
    that is what frees a graph made of reference cycles (micrograd's)."""
    gc.collect()
    was = gc.isenabled()
    if gc_enabled:
        gc.enable()
    else:
        gc.disable()
    try:
        t = time.perf_counter()
        out = fn()
        del out
        if collect:
            gc.collect()
        return time.perf_counter() - t
    except RecursionError:
        return RECURSION
    finally:
        if was:
            gc.enable()
        else:
            gc.disable()
        gc.collect()


def side_by_side(
    cases: dict[str, Callable[[], Any]],
    rounds: int,
    gc_enabled: bool = True,
    collect: bool = False,
) -> dict[str, list[float] | str]:
    """Alternate the cases round by round; per case, its times (or the error it raised)."""
    results: dict[str, list[float] | str] = {name: [] for name in cases}
    names = list(cases)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            if isinstance(results[name], str):
                continue
            t = timed(cases[name], gc_enabled, collect)
            if isinstance(t, str):
                results[name] = t
            else:
                results[name].append(t)  # type: ignore[union-attr]
    return results


def summary(times: list[float] | str, per: float = 1.0) -> tuple[str, str, float | None]:
    """(median, minimum, median value) in ms per `per` units, or the error (once)."""
    if isinstance(times, str):
        return times, "", None
    med, low = statistics.median(times) / per, min(times) / per
    return f"{med * 1e3:.1f}", f"{low * 1e3:.1f}", med


def ratio(slow: float | None, fast: float | None) -> str:
    return f"{slow / fast:.1f}×" if slow and fast else "—"


def bytes_per_node(V: Any) -> tuple[float, float, int]:
    """tracemalloc bytes per node of a moons-epoch graph: built, and after backward."""
    forward, params = moons_model(V)
    gc.collect()
    gc.disable()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    total = forward()
    built = tracemalloc.get_traced_memory()[0] - base
    total.backward()
    after = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    n = count_nodes(total) - len(params)  # the nodes this epoch made
    del total
    gc.enable()
    gc.collect()
    return built / n, after / n, n


def rss_kib() -> int:
    """Resident memory of this process (Linux), in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def chain(V: Any, n: int) -> Callable[[], Any]:
    def run() -> Any:
        c = V(1.0000001)
        x = V(0.5)
        y = x
        for i in range(n):
            y = y * c if i % 2 else y + c
        y.backward()
        return x.grad

    return run


def wide(V: Any, n: int, tree: bool) -> Callable[[], Any]:
    def run() -> Any:
        xs = [V(float(i % 7)) for i in range(n)]
        terms = [x * x for x in xs]
        if tree:  # pairwise: depth log₂ n, so that a recursive sort copes
            while len(terms) > 1:
                terms = [a + b for a, b in zip(terms[::2], terms[1::2])] + terms[
                    len(terms) - len(terms) % 2 :
                ]
            total = terms[0]
        else:
            total = sum(terms)
        total.backward()
        return xs[-1].grad

    return run


# -- the run -----------------------------------------------------------------------------------


PINNED: int | None = None  # the CPU this run is pinned to, once main() has pinned it


def pin_one_cpu() -> int | None:
    """Pin this process (and the processes it starts) to one CPU, the lowest it may use;
    the CPU, or None where the platform cannot pin (not Linux)."""
    global PINNED
    if hasattr(os, "sched_setaffinity"):
        PINNED = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {PINNED})
    return PINNED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="autodiff vs micrograd, side by side")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (for a smoke run)")
    parser.add_argument("--no-readme", action="store_true", help="do not update README.md")
    parser.add_argument("--out", default=str(ROOT / "bench" / "RESULTS.md"))
    args = parser.parse_args(argv)
    pin_one_cpu()
    rounds = 3 if args.quick else 9
    steps_flat = 100 if args.quick else 1000
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []

    def report(
        section: str,
        ours: list[float] | str,
        theirs: list[float] | str,
        per: float = 1.0,
        unit: str = "ms",
    ) -> None:
        a_med, a_min, a = summary(ours, per)
        m_med, m_min, m = summary(theirs, per)
        cells = [f"{v} ({low})" if low else v for v, low in ((a_med, a_min), (m_med, m_min))]
        rows.append((section, *cells, ratio(m, a), unit))
        print(
            f"{section:<48} autodiff {a_med:>9} (min {a_min:>8})   micrograd {m_med:>14} "
            f"(min {m_min:>8})   ratio {ratio(m, a)}",
            flush=True,
        )

    checked = check_gradients()
    notes.append(
        "Every compiled and batched row computes what eager computes: before timing, their "
        f"gradients were checked against eager's (worst relative difference: compiled "
        f"{checked['compiled']:.1e}, batched {checked['batched']:.1e})."
    )
    print(notes[-1])
    ours_epoch = engine_epoch(Value)
    theirs_epoch = engine_epoch(MgValue)
    n_nodes = count_nodes(ours_epoch())
    print(f"moons epoch: {n_nodes} nodes per graph")
    for gc_on in (True, False):
        # with the GC disabled, one collection at the end of each epoch is timed too: it is
        # what frees micrograd's graph (reference cycles); autodiff's is freed by counting
        res = side_by_side(
            {"a": ours_epoch, "m": theirs_epoch}, rounds, gc_enabled=gc_on, collect=not gc_on
        )
        label = "engine: moons epoch, GC " + (
            "at defaults" if gc_on else "off, graph freeing counted (one collection)"
        )
        report(label, res["a"], res["m"])

    mg_step = micrograd_library_step()
    res = side_by_side({"a": autodiff_library_step(), "m": mg_step}, rounds)
    report("library: nn.MLP+losses+optim vs micrograd demo loop", res["a"], res["m"])

    traces = side_by_side({"a": autodiff_compiled_step}, max(3, rounds // 3))
    res = side_by_side({"a": autodiff_compiled_step(), "m": mg_step}, rounds)
    report("library, compiled (nn.train.compile_step) vs demo loop", res["a"], res["m"])
    report("  its one-time trace + compile (not in the row above)", traces["a"], "—")

    traces = side_by_side({"a": lambda: autodiff_batched_step()()}, max(3, rounds // 3))
    res = side_by_side({"a": autodiff_batched_step(), "m": mg_step}, rounds)
    report("library, batched trace (numpy) vs demo loop", res["a"], res["m"])
    report("  its one-time trace + compile + first step (not above)", traces["a"], "—")

    # trace + compile of the engine-level loss (65,818 nodes), beside one eager epoch of it
    res = side_by_side({"t": trace_and_compile(100), "e": ours_epoch}, rounds)
    t_med, e_med = statistics.median(res["t"]), statistics.median(res["e"])  # type: ignore[arg-type]
    rows.append(
        (
            "trace + compile of the 65,818-node moons loss (eager epoch of it)",
            f"{t_med * 1e3:.0f} ({min(res['t']) * 1e3:.0f})",  # type: ignore[arg-type]
            f"{e_med * 1e3:.0f} ({min(res['e']) * 1e3:.0f})",  # type: ignore[arg-type]
            f"{t_med / e_med:.1f} epochs",
            "ms",
        )
    )
    notes.append(
        f"Trace + compile of the engine-level moons loss: {t_med * 1e3:.0f} ms by median, "
        f"{t_med / e_med:.1f}× one eager epoch of the same loss ({e_med * 1e3:.0f} ms, GC at "
        "defaults), measured alternately in this run."
    )
    print(notes[-1])
    sizes = {1: None, 10: None, 150: None}
    for n in sizes:
        loss, start = engine_loss(n)
        nodes = autodiff.trace(loss, start).n_nodes
        res = side_by_side({"t": trace_and_compile(n)}, max(3, rounds // 2))
        sizes[n] = statistics.median(res["t"]) / nodes  # type: ignore[arg-type,assignment]
        rows.append(
            (
                f"  trace + compile per node, {nodes:,} nodes ({n} sample{'s' if n > 1 else ''})",
                f"{sizes[n] * 1e6:.2f}",  # type: ignore[operator]
                "—",
                "—",
                "µs/node",
            )
        )
        print(rows[-1])
    notes.append(
        "Trace + compile cost per node at ~10⁵ nodes over that at ~10³: "
        f"{sizes[150] / sizes[1]:.2f}× (linear: no function grows with the graph)."  # type: ignore[operator]
    )
    print(notes[-1])

    # the batched step with the layers found, against PyTorch's batched autograd
    for n in (10**2, 10**4, 10**5):
        setup = batch_setup(n)
        k = {10**2: 20, 10**4: 5, 10**5: 3}[n]  # steps per timed block
        ours_b = in_blocks(autodiff_batched_step(setup), k)
        theirs = torch_batched_step(batch_setup(n))
        r = rounds if n < 10**5 else max(5, rounds // 2)
        if theirs is None:
            res = side_by_side({"a": ours_b}, r)
            report(f"batched step, batch {n:.0e} (PyTorch not installed)", res["a"], "—", per=k)
            continue
        res = side_by_side({"a": ours_b, "t": in_blocks(theirs, k)}, r)
        label = f"batched step, batch {n:.0e}: autodiff vs PyTorch autograd (CPU, float64"
        rows.append(torch_row(f"{label}, blocks of {k} steps)", res, k))
        print(rows[-1])

    # wide networks, Adam: every peer side by side in one run (wide_table)
    wide_table(rows, notes, rounds, quick=args.quick)

    # the digits main job, whole (a new process: imports, data, trace, 200 steps, pictures)
    res = side_by_side({"d": digits_run()}, 3)
    d_med = statistics.median(res["d"])  # type: ignore[arg-type]
    rows.append(
        (
            "python -m nn.digits, the whole run (64-32-10, 200 steps, pictures included)",
            f"{d_med:.1f} ({min(res['d']):.1f})",  # type: ignore[arg-type]
            "—",
            "—",
            "s",
        )
    )
    print(rows[-1])

    # a wide MLP: batched trace compiles quickly, and beats eager
    wide_setup = batch_setup(20, [2, 256, 256, 1])
    compile_times = side_by_side(
        {"c": lambda: autodiff_batched_step(batch_setup(20, [2, 256, 256, 1]))()}, 3
    )
    res = side_by_side(
        {
            "a": autodiff_batched_step(wide_setup),
            "e": library_epoch(batch_setup(20, [2, 256, 256, 1])),
        },
        3,
    )
    a_med, e_med = statistics.median(res["a"]), statistics.median(res["e"])  # type: ignore[arg-type]
    rows.append(
        (
            "MLP 2-256-256-1, 20 samples: batched step vs eager step",
            f"{a_med * 1e3:.1f} ({min(res['a']) * 1e3:.1f})",  # type: ignore[arg-type]
            f"{e_med * 1e3:.1f} ({min(res['e']) * 1e3:.1f}) eager",  # type: ignore[arg-type]
            f"{e_med / a_med:.0f}× faster",
            "ms",
        )
    )
    c_med = statistics.median(compile_times["c"])  # type: ignore[arg-type]
    rows.append(("  its trace + compile + first step", f"{c_med * 1e3:.0f}", "—", "—", "ms"))
    print(rows[-2:])

    per_node: dict[bool, dict[int, float]] = {True: {}, False: {}}
    mg_chain = side_by_side({"m": chain(MgValue, 10**3)}, 1)["m"]  # fails at once
    for gc_on in (True, False):
        for n in (10**3, 10**4, 10**5, 10**6):
            r = max(3, rounds // (1 if n < 10**5 else 3))
            res = side_by_side({"a": chain(Value, n)}, r, gc_enabled=gc_on)
            gc_state = "GC at defaults" if gc_on else "GC disabled"
            report(
                f"deep chain, {n:.0e} steps, {gc_state}".replace("e+0", "e"),
                res["a"],
                mg_chain,
                per=n / 1e3,
                unit="µs/node",
            )
            per_node[gc_on][n] = statistics.median(res["a"]) / n  # type: ignore[arg-type]
    growth = {g: per_node[g][10**6] / per_node[g][10**3] for g in (True, False)}
    notes.append(
        f"Deep chain, per-node cost at 10⁶ steps over that at 10³: "
        f"{growth[False]:.2f}× with the GC disabled (the engine's own cost), "
        f"{growth[True]:.2f}× with the GC at its defaults (the collector re-walks "
        f"the growing graph as it is built)."
    )
    print(notes[-1])
    res = side_by_side(
        {"a": wide(Value, 10**5, tree=True), "m": wide(MgValue, 10**5, tree=True)}, rounds
    )
    report("wide sum of 1e5 products (pairwise tree)", res["a"], res["m"])
    res = side_by_side(
        {"a": wide(Value, 10**5, tree=False), "m": wide(MgValue, 10**5, tree=False)}, rounds
    )
    report("wide sum of 1e5 products (sum(), a 1e5 chain)", res["a"], res["m"])

    ab, aa, n = bytes_per_node(Value)
    mb, ma, _ = bytes_per_node(MgValue)
    rows.append(
        (
            "bytes per node, graph built (after backward)",
            f"{ab:.0f} ({aa:.0f})",
            f"{mb:.0f} ({ma:.0f})",
            f"{mb / ab:.1f}×",
            "bytes",
        )
    )
    print(
        f"bytes per node: autodiff {ab:.0f} built, {aa:.0f} after backward; "
        f"micrograd {mb:.0f}, {ma:.0f}  ({n} nodes)"
    )

    step = autodiff_library_step()
    gc.collect()
    samples = []
    for k in range(1, steps_flat + 1):
        step()
        if k in (1, steps_flat // 10, steps_flat // 2, steps_flat):
            samples.append((k, rss_kib()))
    flat = ", ".join(f"step {k}: {kib / 1024:.1f} MiB" for k, kib in samples)
    notes.append(
        f"Resident memory over {steps_flat} library training steps (GC paused inside "
        f"each `opt.step(closure)`): {flat}."
    )
    print(notes[-1])

    write_results(args.out, rows, notes, n_nodes, rounds)
    if not args.no_readme:
        update_readme(rows, notes)
    return 0


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = f"{names[0]} × {len(names)}" if names else cpu
    except OSError:
        pass
    mg = getattr(micrograd, "__version__", "0.1.0")
    py = f"Python {platform.python_version()} ({platform.python_implementation()})"
    return f"{cpu}; {platform.system()} {platform.release()}; {py}; autodiff {autodiff.__version__}, micrograd {mg}"


def table(rows: list[tuple[str, ...]]) -> str:
    lines = [
        "| workload | autodiff median (min) | micrograd median (min) | micrograd/autodiff | unit |",
        "|---|---:|---:|---:|---|",
    ]
    lines += [f"| {' | '.join(r)} |" for r in rows]
    return "\n".join(lines)


def write_results(
    path: str, rows: list[tuple[str, ...]], notes: list[str], n_nodes: int, rounds: int
) -> None:
    text = f"""# Benchmark results

Command: `pip install -e ".[bench]" && python bench/run.py` ({time.strftime("%Y-%m-%d")}).
Machine: {machine()}.

The moons epoch builds {n_nodes} nodes per graph. {rounds} rounds per workload, alternating
engines, garbage collected between them; times in ms unless the unit says otherwise.
A RecursionError entry is micrograd's recursive topological sort failing.

{table(rows)}

{chr(10).join(notes)}
"""
    write_file(path, text)  # whole or not at all (a temporary name, then a rename)


def update_readme(rows: list[tuple[str, ...]], notes: list[str]) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start not in text or end not in text:
        return
    when = time.strftime("%Y-%m-%d")
    block = f"{start}\n`python bench/run.py` on {machine()}, {when}:\n\n{table(rows)}\n\n"
    block += "\n".join(notes) + f"\n{end}"
    head, rest = text.split(start, 1)
    write_file(readme, head + block + rest.split(end, 1)[1])


if __name__ == "__main__":
    sys.exit(main())
