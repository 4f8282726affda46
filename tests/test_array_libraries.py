"""Every array library the README names trains, or is refused (issue 29.1).

A compiled batch step on numpy, PyTorch or JAX gives the numpy path's losses and weights
over 50 steps; JAX without float64 is refused, naming it; an optimizer whose update
cannot reach immutable arrays is refused rather than silently not training. And the
training step's mean and gradient on each library, at batch 1, 2, 10⁵ and 10⁶, are
PyTorch autograd's at the same weights.

Tolerances: the libraries run the same float64 operations but their matrix products and
means sum in their own orders, so results agree to rounding, not to the bit: 1e-12
relative for 50 steps of losses and weights (seen: 7e-16), and for a gradient 1e-11 of
its largest entry (a sum over up to 10⁶ samples, ~√n ulp of error in each entry).
CuPy needs a GPU and is not installed here: the GPU bench covers it where one is lent.
"""

from __future__ import annotations

import os

import numpy as np
import oracle
import pytest

from nn import MLP, losses
from nn.compiled import compile_batch_step
from nn.data import digits
from nn.optim import SGD, Adam, Optimizer


def jax_numpy():
    """jax.numpy with float64 on; skips without JAX (a failure where CI installed it)."""
    try:
        import jax
    except ImportError:
        if os.environ.get("AUTODIFF_REQUIRE_JAX"):
            pytest.fail("JAX is not installed, and AUTODIFF_REQUIRE_JAX says it must be")
        pytest.skip("JAX is not installed (pip install -e '.[jax]')")
    jax.config.update("jax_enable_x64", True)
    return jax.numpy


def namespaces() -> dict[str, object]:
    return {"numpy": np, "torch": oracle.torch(), "jax": jax_numpy()}


def train(xp, steps: int = 50, n: int = 300, optimizer=Adam):
    xs, ys = digits("train")
    model = MLP(64, [32, 10], seed=0)
    opt = optimizer(model.parameters(), lr=0.01)
    step = compile_batch_step(
        model, lambda x, y: losses.cross_entropy([model(x)], [y]), xs[:n], ys[:n], opt, xp=xp
    )
    return [step() for _ in range(steps)], [p.data for p in model.parameters()]


@pytest.mark.parametrize("name", ["torch", "jax"])
@pytest.mark.parametrize("optimizer", [Adam, SGD])
def test_each_library_trains_as_numpy_does(name, optimizer):
    xp = namespaces()[name]
    ref_losses, ref_weights = train(None, optimizer=optimizer)
    got_losses, got_weights = train(xp, optimizer=optimizer)
    assert ref_losses[-1] < ref_losses[0]  # it trains
    assert got_losses == pytest.approx(ref_losses, rel=1e-12)
    assert got_weights == pytest.approx(ref_weights, rel=1e-12, abs=1e-14)


@pytest.mark.filterwarnings("ignore:Explicitly requested dtype float64")  # JAX's own, expected
def test_jax_without_float64_is_refused_naming_it():
    jax_numpy()  # (skips without JAX)
    import jax

    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(TypeError, match=r"jax.*float32.*jax_enable_x64"):
            train(jax.numpy, steps=1)
    finally:
        jax.config.update("jax_enable_x64", True)


def test_an_optimizer_that_cannot_reach_immutable_arrays_is_refused():
    """An update written in place that returns nothing trains numpy's arrays; on JAX's it
    would change nothing, so the step says so instead of running on."""

    class InPlace(Optimizer):
        def _update(self) -> None:
            for p in self.params:
                p.data -= self.lr * p.grad

        def update(self, values, grads):  # the old contract: in place, returns None
            values -= self.lr * grads

        def _state(self):
            return {}

        def _check_state(self, state):
            return {}

    losses_np, _ = train(None, steps=3, optimizer=InPlace)
    assert losses_np[-1] < losses_np[0]  # numpy: updated in place, trains
    with pytest.raises(TypeError, match=r"returned nothing, and jax\.numpy's arrays cannot"):
        train(jax_numpy(), steps=1, optimizer=InPlace)


def _torch_reference(model: MLP, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """PyTorch autograd's mean cross-entropy and its gradient, in parameters() order."""
    torch = oracle.torch()
    params = []
    for layer in model.layers:
        W = [[w.data for w in n.w] for n in layer.neurons]  # out × in
        params.append(torch.tensor(W, dtype=torch.float64, requires_grad=True))
        params.append(
            torch.tensor([n.b.data for n in layer.neurons], dtype=torch.float64, requires_grad=True)
        )
    W1, b1, W2, b2 = params
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y).long()
    logits = torch.relu(Xt @ W1.T + b1) @ W2.T + b2
    loss = torch.nn.functional.cross_entropy(logits, yt)
    loss.backward()
    flat = []
    for W, b in ((W1, b1), (W2, b2)):
        for j in range(W.shape[0]):  # neuron by neuron: its weights, then its bias
            flat += [*W.grad[j].tolist(), b.grad[j].item()]
    return loss.item(), np.array(flat)


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 2, 10**5, 10**6])
def test_every_library_gives_pytorchs_loss_and_gradient_at_any_batch(batch):
    xs, ys = digits("train")
    model = MLP(64, [32, 10], seed=3)
    step = compile_batch_step(
        model,
        lambda x, y: losses.cross_entropy([model(x)], [y]),
        xs[:4],
        ys[:4],
        Adam(model.parameters()),
    )
    traced = step.traced
    rng = np.random.default_rng(batch)
    X = rng.random((batch, 64))
    y = rng.integers(0, 10, batch).astype(np.float64)
    ref_loss, ref_grad = _torch_reference(model, X, y)
    shared = np.array([p.data for p in model.parameters()])
    scale = float(np.abs(ref_grad).max())
    for name, xp in namespaces().items():
        args = [xp.asarray(a) for a in (shared, X, y)]
        loss, grad = traced.mean_value_and_grad_arrays(args[0], args[1:])
        grad = np.asarray(grad.tolist())
        assert loss == pytest.approx(ref_loss, rel=1e-12), name
        assert np.abs(grad - ref_grad).max() <= 1e-11 * scale, name
        del args, grad


def _steps(xp, lrs, hand=None):
    """Steps with the learning rate of each step (a schedule), a weight set by hand after
    the second step if `hand`; the losses and the weights, or the error and its step."""
    xs, ys = digits("train")
    model = MLP(64, [32, 10], seed=1)
    opt = Adam(model.parameters(), lr=lrs[0])
    step = compile_batch_step(
        model, lambda x, y: losses.cross_entropy([model(x)], [y]), xs[:200], ys[:200], opt, xp=xp
    )
    out = []
    for k, lr in enumerate(lrs):
        opt.lr = lr
        try:
            out.append(step())
        except (OverflowError, ValueError) as e:
            return type(e), k, [p.data for p in model.parameters()]
        if hand is not None and k == 1:
            model.layers[0].neurons[0].w[5].data = hand
    return out, step, [p.data for p in model.parameters()]


def test_under_jax_the_whole_step_is_one_jitted_function_compiled_once():
    """loss, gradient and Adam's update: one jax.jit function, compiled once for all the
    steps -- a learning-rate schedule and a weight set by hand between steps take effect
    (the settings are its arguments, the numbers come home as numpy's do)."""
    lrs = [0.01, 0.01, 0.003, 0.0, 0.02]
    ref, _, ref_w = _steps(None, lrs, hand=0.25)
    got, step, got_w = _steps(jax_numpy(), lrs, hand=0.25)
    assert step.fused is not None and step.fused.traces == 1  # traced once
    jitted = step.fused.jitted  # and compiled once: the arguments keep their placement
    assert not hasattr(jitted, "_cache_size") or jitted._cache_size() == 1
    assert got == pytest.approx(ref, rel=1e-12)
    assert got_w == pytest.approx(ref_w, rel=1e-12, abs=1e-14)
    assert got[4] == got[3] != got[2]  # the step at lr 0.0 moved nothing: the schedule
    # reached the jitted code (a baked-in lr would have moved the weights)


def test_a_jitted_step_that_overflows_raises_as_numpys_and_keeps_nothing():
    """Where the jitted step's numbers are not all finite nothing of it is kept and the
    step is taken op by op: the engine's error, at the same step, with the same weights."""
    lrs = [1e308] * 4
    ref = _steps(None, lrs)
    got = _steps(jax_numpy(), lrs)
    assert ref[0] in (OverflowError, ValueError)
    assert got[:2] == ref[:2]
    assert got[2] == pytest.approx(ref[2], rel=1e-12)


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_a_batched_trace_on_other_libraries_raises_the_engines_errors(name):
    """A batched trace on PyTorch or JAX arrays raises what numpy's raises -- not an inf.
    (jax.numpy's name holds "numpy", and was once taken for numpy, whose floating-point
    errors are raised as they happen: JAX's overflow came back as inf, no error.)"""
    from autodiff import trace

    xp = namespaces()[name]
    t = trace(lambda x: (x[0] * x[1]).exp(), [1.0, 2.0], batched=True)
    ok = t([xp.asarray([1.0, 2.0], dtype=xp.float64), 2.0])
    assert [float(v) for v in ok] == pytest.approx([np.exp(2.0), np.exp(4.0)], rel=1e-15)
    for xs in ([np.array([1.0, 400.0]), 2.0], [xp.asarray([1.0, 400.0], dtype=xp.float64), 2.0]):
        with pytest.raises(OverflowError, match=r"exp\(800\.0\) overflows"):
            t(xs)


_SHARDED = """
import importlib, json, sys
import jax
jax.config.update("jax_enable_x64", True)
import numpy as np
from jax.sharding import Mesh
from nn import MLP, losses
from nn.compiled import compile_batch_step
from nn.data import digits
from nn.optim import Adam

# every layer read as one gathered in × out matrix, as large ones are (MeanCode._by_input)
importlib.import_module("autodiff.trace._layers").BY_INPUT_MIN = 1
xs, ys = digits("train")
out = {"devices": len(jax.devices())}
for n in (None, 1, 2, 4):
    model = MLP(64, [32, 10], seed=0)
    mesh = None if n is None else Mesh(np.array(jax.devices()[:n]), ("batch",))
    step = compile_batch_step(
        model, lambda x, y: losses.cross_entropy([model(x)], [y]), xs[:200], ys[:200],
        Adam(model.parameters(), lr=0.01), xp=jax.numpy, mesh=mesh,
    )
    got = [step() for _ in range(20)]
    out[str(n)] = {"losses": got, "weights": [p.data for p in model.parameters()]}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_the_jitted_step_sharded_over_2_and_4_devices_gives_one_devices_numbers():
    """Data parallel on JAX's engine: the batch sharded over a mesh of 2 or 4 (host CPU)
    devices, the parameters replicated, the gradient reduced by XLA -- one device's
    numbers to 1e-12 (the reductions are split differently: rounding, 20 steps)."""
    import json
    import subprocess
    import sys

    jax_numpy()  # (skips without JAX)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    run = subprocess.run(
        [sys.executable, "-c", _SHARDED], capture_output=True, text=True, env=env, timeout=600
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.splitlines()[-1])
    assert out["devices"] == 4
    one = out["1"]
    assert out["None"]["losses"] == pytest.approx(one["losses"], rel=1e-12)
    for n in ("2", "4"):
        assert out[n]["losses"] == pytest.approx(one["losses"], rel=1e-12), n
        assert out[n]["weights"] == pytest.approx(one["weights"], rel=1e-12, abs=1e-14), n
    assert one["losses"][-1] < one["losses"][0]


def test_a_mesh_needs_jax_and_a_batch_that_splits_evenly():
    jnp = jax_numpy()
    import jax
    from jax.sharding import Mesh

    xs, ys = digits("train")
    model = MLP(64, [4, 10], seed=0)
    loss = lambda x, y: losses.cross_entropy([model(x)], [y])  # noqa: E731
    mesh = Mesh(np.array(jax.devices()[:1]), ("batch",))
    with pytest.raises(ValueError, match="mesh= shards the batch with JAX"):
        compile_batch_step(model, loss, xs[:4], ys[:4], Adam(model.parameters()), mesh=mesh)
    assert compile_batch_step(
        model, loss, xs[:3], ys[:3], Adam(model.parameters()), xp=jnp, mesh=mesh
    )()


def test_the_jitted_step_from_two_threads_takes_whole_steps():
    """Two threads stepping one jitted step share the one array under its lease: 2 × 5
    steps in any interleaving are 10 whole steps -- the numbers of 10 in a row."""
    from threads import run_together

    jnp = jax_numpy()

    def make():
        xs, ys = digits("train")
        model = MLP(64, [8, 10], seed=2)
        opt = Adam(model.parameters(), lr=0.01)
        loss = lambda x, y: losses.cross_entropy([model(x)], [y])  # noqa: E731
        return model, compile_batch_step(model, loss, xs[:100], ys[:100], opt, xp=jnp)

    model, step = make()
    step()  # compiled before the threads start
    assert run_together([lambda: [step() for _ in range(5)]] * 2, switch_interval=1e-6) == []
    alone, step_alone = make()
    for _ in range(11):
        step_alone()
    got = [p.data for p in model.parameters()]
    assert got == pytest.approx([p.data for p in alone.parameters()], rel=1e-12, abs=1e-14)
