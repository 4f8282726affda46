"""A real browser for the tests: Debian's Chromium, driven by Playwright.

Tests that need it call :func:`page`; where Chromium or Playwright is absent they
skip, saying why -- except under CI=true, where ``.ci/run`` installs both and a
missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def _missing() -> str | None:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        return "Chromium is not installed (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install playwright)"
    return None


@contextmanager
def page(width: int = 1600, height: int = 1000) -> Iterator[Any]:
    """A fresh page in headless Chromium; console errors are collected in ``page.errors``."""
    why = _missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"{why}: .ci/run installs it, so CI must have it")
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    executable = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=FLAGS)
        try:
            pg = browser.new_page(viewport={"width": width, "height": height})
            pg.errors = []
            pg.on("console", lambda m: m.type == "error" and pg.errors.append(m.text))
            pg.on("pageerror", lambda e: pg.errors.append(str(e)))
            yield pg
        finally:
            browser.close()


# How far an edge's end point may be from its node's border, in points. Graphviz pulls
# an arrowhead's tip point back so that its *stroke* reaches the node: the miter of a
# 1 pt stroke at the tip (half-angle atan(0.35) = 19.3°) sticks out ½ / sin(19.3°) =
# 1.51 pt; half of the node's own stroke (1 or 2 pt wide) adds 0.5 or 1 pt. Edges that
# missed their boxes (the old HTML-table nodes) missed by 10 pt and more.
MITER = 1.6

# The geometry check, run inside the page on every SVG drawn by graphviz.
GEOMETRY_JS = """
() => {
  const MITER = %MITER%;
  const problems = [];
  const shapeOf = (g) => g.querySelector('polygon, ellipse, path');
  const border = (shape, x, y) => {
    // distance from (x, y) to the border of a node's shape (box or circle)
    if (shape.tagName === 'ellipse') {
      const cx = +shape.getAttribute('cx'), cy = +shape.getAttribute('cy');
      const rx = +shape.getAttribute('rx');
      return Math.abs(Math.hypot(x - cx, y - cy) - rx);
    }
    const b = shape.getBBox();
    const inside = x >= b.x && x <= b.x + b.width && y >= b.y && y <= b.y + b.height;
    const dx = Math.max(b.x - x, 0, x - (b.x + b.width));
    const dy = Math.max(b.y - y, 0, y - (b.y + b.height));
    if (!inside) return Math.hypot(dx, dy);
    return Math.min(x - b.x, b.x + b.width - x, y - b.y, b.y + b.height - y);
  };
  const nodes = {};
  let texts = 0;
  for (const g of document.querySelectorAll('g.node')) {
    const name = g.querySelector('title').textContent;
    const shape = shapeOf(g);
    nodes[name] = shape;
    const b = shape.getBBox();
    for (const t of g.querySelectorAll('text')) {
      if (!t.textContent.trim()) continue;
      texts += 1;
      const r = t.getBBox();
      const pad = 0.5;
      if (r.x < b.x - pad || r.y < b.y - pad || r.x + r.width > b.x + b.width + pad ||
          r.y + r.height > b.y + b.height + pad) {
        const box = (q) => `${q.x.toFixed(1)},${q.y.toFixed(1)} ` +
          `${q.width.toFixed(1)}x${q.height.toFixed(1)}`;
        problems.push(`text "${t.textContent}" of ${name} leaves its shape: ` +
          `text ${box(r)}, shape ${box(b)}`);
      }
    }
  }
  let edges = 0;
  for (const g of document.querySelectorAll('g.edge')) {
    edges += 1;
    const [tail, head] = g.querySelector('title').textContent.split('->');
    const path = g.querySelector('path');
    const total = path.getTotalLength();
    const ends = [path.getPointAtLength(0), path.getPointAtLength(total)];
    for (const poly of g.querySelectorAll('polygon')) {
      for (const p of poly.points) ends.push(p);
    }
    for (const name of [tail, head]) {
      const shape = nodes[name];
      const d = Math.min(...ends.map((p) => border(shape, p.x, p.y)));
      const stroke = +(shape.getAttribute('stroke-width') || 1);
      if (d > MITER + stroke / 2) {
        problems.push(`edge ${tail}->${head} ends ${d.toFixed(1)} from ${name}`);
      }
    }
  }
  const svg = document.querySelector('svg');
  return {problems, texts, edges, nodes: Object.keys(nodes).length,
          width: svg.width.baseVal.value, height: svg.height.baseVal.value};
}
""".replace("%MITER%", str(MITER))


def check_svg(svg_text: str, pg: Any) -> dict[str, Any]:
    """Load an SVG into the page and return the geometry check's findings."""
    pg.set_content(
        "<html><body style='margin:0'>" + svg_text[svg_text.index("<svg") :] + "</body></html>"
    )
    return pg.evaluate(GEOMETRY_JS)  # type: ignore[no-any-return]
