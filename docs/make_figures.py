"""Regenerate the README's figures: python docs/make_figures.py [--out docs]

* lecture_forward.svg / lecture_backward.svg: the lecture's forward pass u¹ … L
  (L11) for the hand-set network (L6) on the sample x = (1, 0), y = 1, and its
  back-propagation (L12, L13, L16);
* network_backward.svg: the network `python -m nn.xor` trains, neuron by neuron,
  with the gradients of one sample's loss;
* explorer.png: the explorer of the lecture's network at one step of
  back-propagation, as Chromium shows it (needs Chromium and Playwright);
* layers.png: its layer explorer at ∇_W L (L16), one entry opened into its scalar edge;
* xor_decision_boundary.png / xor_feature_space.png: what `python -m nn.xor`
  learns with its defaults;
* training.png: its training page (training.html) part-way through, a hidden unit
  hovered, as Chromium shows it in a window as wide as a README column;
* digits_confusion.png / digits_misclassified.png / digits_class_gradients.png: what
  `python -m nn.digits` writes with its defaults;
* notebook_softplus.png: the notebook's L8-L9 figure (σ, ζ, and ζ's gradient
  not saturating), taken from its committed output (run notebooks/execute.py first).
"""

from __future__ import annotations

import argparse
import base64
import os
import sys

import nbformat

from autodiff.render import backward_graph, explorer, forward_graph, save
from nn import lecture
from nn.draw import layer_explorer
from nn.xor import main as xor_main


def lecture_graphs(out: str) -> list[str]:
    """Draw the lecture's network's loss for x = (1, 0), y = 1: forward and backward."""
    W, c, w, b = lecture.parameters()
    f = lecture.forward([1.0, 0.0], 1, W, c, w, b)
    # top to bottom, so that the whole graph (drawn whole by default) is legible in a
    # README column of 830 px: tests/test_readme.py checks its smallest text
    return [
        save(forward_graph(f.L, "TB"), os.path.join(out, "lecture_forward.svg")),
        save(backward_graph(f.L, "TB"), os.path.join(out, "lecture_backward.svg")),
    ]


def screenshot(page_file: str, path: str, height: int, actions: list[str]) -> str:
    """`page_file` in Chromium, 830 px wide (a README column), after running each of the
    `actions` (JavaScript, or "click SELECTOR"), saved as the PNG `path`; the page is
    removed after."""
    from playwright.sync_api import sync_playwright

    flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    flags += ["--disable-component-update", "--disable-sync", "--no-first-run"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=flags)
        page = browser.new_page(viewport={"width": 830, "height": height})
        page.goto(f"file://{os.path.abspath(page_file)}")
        for action in actions:
            if action.startswith("click "):
                page.click(action[len("click ") :])
            else:
                page.evaluate(action)
        page.screenshot(path=path)
        browser.close()
    os.remove(page_file)
    return path


def explorer_screenshot(out: str, step: int = 36) -> str:
    """The lecture network's explorer at one backward step, laid out top to bottom and
    fitted to a window as wide as a README column (830 px), screenshot in Chromium."""
    W, c, w, b = lecture.parameters()
    f = lecture.forward([1.0, 0.0], 1, W, c, w, b)
    page_file = os.path.join(out, ".explorer.html")
    explorer(f.L, page_file, title="The lecture's network, x = (1, 0), y = 1", rankdir="TB")
    actions = [f"window.explorer.go({step})", "window.explorer.fit(true)"]
    return screenshot(page_file, os.path.join(out, "explorer.png"), 1480, actions)


def layers_screenshot(out: str, step: int = 12) -> str:
    """The lecture network's layer explorer at ∇_W L (L16), one entry opened into its
    scalar edge, in a window as wide as a README column (830 px)."""
    page_file = os.path.join(out, ".layers.html")
    title = "The lecture's network, layer by layer, x = (1, 0), y = 1"
    layer_explorer(lecture.mlp(), [1.0, 0.0], 1, page_file, title=title)
    actions = [f"window.layers.go({step})", "click td[data-key='W1_0_0']"]
    return screenshot(page_file, os.path.join(out, "layers.png"), 570, actions)


def training_screenshot(page_file: str, out: str, step: int = 3, unit: str = "1,2") -> str:
    """The XOR job's training page at its `step`-th recorded step with one hidden unit
    hovered, in a window as wide as a README column (830 px)."""
    from playwright.sync_api import sync_playwright

    flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    flags += ["--disable-component-update", "--disable-sync", "--no-first-run"]
    path = os.path.join(out, "training.png")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=flags)
        page = browser.new_page(viewport={"width": 830, "height": 1000})
        page.goto(f"file://{os.path.abspath(page_file)}")
        page.locator("#slider").fill(str(step))
        page.hover(f'[data-unit="{unit}"]')
        page.screenshot(path=path, full_page=True)
        browser.close()
    return path


def notebook_figure(out: str, marker: str = "softplus ζ(r) ≈ max(0, r)") -> str:
    """The PNG that the notebook cell containing `marker` shows, written to `out`."""
    here = os.path.dirname(os.path.abspath(__file__))
    nb = nbformat.read(os.path.join(here, "..", "notebooks", "lecture.ipynb"), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and marker in cell.source:
            for output in cell.outputs:
                if "image/png" in output.get("data", {}):
                    path = os.path.join(out, "notebook_softplus.png")
                    with open(path, "wb") as f:
                        f.write(base64.b64decode(output["data"]["image/png"]))
                    return path
    raise LookupError(f"no figure after a cell with {marker!r}: run notebooks/execute.py")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    written = [*lecture_graphs(args.out), notebook_figure(args.out), explorer_screenshot(args.out)]
    written.append(layers_screenshot(args.out))
    tmp = os.path.join(args.out, ".xor")
    xor_main(["--out", tmp])
    for name in ("decision_boundary.png", "feature_space.png"):
        target = os.path.join(args.out, f"xor_{name}")
        os.replace(os.path.join(tmp, name), target)
        written.append(target)
    from nn.digits import main as digits_main

    digits_main(["--out", tmp])
    for name in ("confusion.png", "misclassified.png", "class_gradients.png"):
        target = os.path.join(args.out, f"digits_{name}")
        os.replace(os.path.join(tmp, name), target)
        written.append(target)
    written.append(training_screenshot(os.path.join(tmp, "training.html"), args.out))
    target = os.path.join(args.out, "network_backward.svg")
    os.replace(os.path.join(tmp, "network_backward.svg"), target)
    written.append(target)
    for name in os.listdir(tmp):
        os.remove(os.path.join(tmp, name))
    os.rmdir(tmp)
    print("wrote " + ", ".join(written), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
