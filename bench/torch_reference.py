"""The bench's PyTorch reference: the batched moons step written in PyTorch.

Shared by ``bench/run.py`` (CPU rows) and ``bench/gpu.py`` (the best device present), so that
both compare autodiff with the same PyTorch code: the model's layers as float64 tensors, ReLU,
mean hinge loss + 1e-4·L2 over every weight and bias, ``torch.autograd.grad``, an SGD update.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from nn.module import MLP


def mlp(params: list[torch.Tensor], X: torch.Tensor) -> torch.Tensor:
    """The scores of an MLP whose `params` are [W₁, b₁, W₂, b₂, …] (W as in × out), ReLU
    between layers."""
    h = X
    for i in range(0, len(params), 2):
        h = h @ params[i] + params[i + 1]
        if i + 2 < len(params):
            h = torch.relu(h)
    return h


def hinge_sgd_step(model: MLP, X: torch.Tensor, Y: torch.Tensor, lr: float) -> Callable[[], float]:
    """One full-batch step on (X, Y) from `model`'s current weights, on X's device; returns the
    loss before the update, as the engine's steps do."""
    tensors = []
    for layer in model.layers:
        W = torch.tensor([[w.data for w in n.w] for n in layer.neurons], dtype=torch.float64)
        b = torch.tensor([n.b.data for n in layer.neurons], dtype=torch.float64)
        tensors += [W.T.contiguous().to(X.device).requires_grad_(), b.to(X.device).requires_grad_()]

    def step() -> float:
        h = mlp(tensors, X)
        l2 = sum((t * t).sum() for t in tensors)
        loss = torch.relu(1 - Y * h[:, 0]).mean() + 1e-4 * l2
        grads = torch.autograd.grad(loss, tensors)
        with torch.no_grad():
            for t, g in zip(tensors, grads):
                t -= lr * g
        return float(loss.detach())

    return step


def adam_step(
    sizes: list[int],
    W: list[list[list[float]]],
    b: list[list[float]],
    X: torch.Tensor,
    Y: torch.Tensor,
    classes: int | None,
    lr: float,
    compiled: bool = False,
) -> Callable[[], float]:
    """The wide-network workloads in PyTorch: an MLP with the given weights (W[k] as
    in × out, b[k]), ReLU hidden layers, full-batch Adam on the logistic loss ζ((1−2y)z)
    (classes None) or the softmax cross-entropy; returns the loss before the update.
    With `compiled`, the loss under ``torch.compile`` (its backward compiled with it, by
    AOTAutograd) and Adam's step too -- what PyTorch's tutorial on compiling an
    optimizer does; the first call compiles."""
    params = []
    for Wk, bk in zip(W, b):
        params += [
            torch.tensor(Wk, dtype=torch.float64, device=X.device).requires_grad_(),
            torch.tensor(bk, dtype=torch.float64, device=X.device).requires_grad_(),
        ]
    opt = torch.optim.Adam(params, lr=lr)
    F = torch.nn.functional

    def loss_of() -> torch.Tensor:
        h = mlp(params, X)
        if classes is None:
            return F.softplus((1 - 2 * Y) * h[:, 0]).mean()
        return F.cross_entropy(h, Y)

    forward, update = (
        (torch.compile(loss_of), torch.compile(opt.step)) if compiled else (loss_of, opt.step)
    )

    def step() -> float:
        loss = forward()
        opt.zero_grad()
        loss.backward()
        update()
        return float(loss.detach())

    return step
