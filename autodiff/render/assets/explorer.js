// The explorer's stepper: replays the steps computed in Python (autodiff/render/_explorer.py).
// State k = how many steps have been applied; every change redraws from step 0, so going
// back is as exact as going forward. Only the graph scrolls: it is scrolled so that the
// current value is in view (or fitted whole to the window with "fit").
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("data").textContent);
  const steps = data.steps;
  const box = document.getElementById("graph");
  const svg = box.querySelector("svg");
  const nodes = {};
  const edges = {};
  for (const g of svg.querySelectorAll("g.node")) {
    nodes[g.querySelector("title").textContent] = g;
  }
  for (const g of svg.querySelectorAll("g.edge")) {
    edges[g.querySelector("title").textContent] = g;
  }
  const gradText = (id) => {
    const texts = nodes[id].querySelectorAll("text");
    return texts[texts.length - 1];
  };
  // which nodes the forward pass computes (the others are leaves: known from the start)
  const computed = new Set(steps.filter((s) => s.kind === "forward").map((s) => s.node));
  let k = 0;

  function reveal(id) {
    // scroll the graph (never the page) so that the node is inside it, centred if it was out
    const g = nodes[id];
    if (!g || box.classList.contains("fit")) return;
    const r = g.getBoundingClientRect();
    const view = box.getBoundingClientRect();
    const pad = 16;
    if (r.left < view.left + pad || r.right > view.right - pad) {
      box.scrollLeft += (r.left + r.right) / 2 - (view.left + view.right) / 2;
    }
    if (r.top < view.top + pad || r.bottom > view.bottom - pad) {
      box.scrollTop += (r.top + r.bottom) / 2 - (view.top + view.bottom) / 2;
    }
  }

  function draw() {
    for (const [id, g] of Object.entries(nodes)) {
      g.classList.remove("current", "source", "has-grad");
      g.classList.toggle("pending", computed.has(id));
      if (id in data.nodes) gradText(id).textContent = "grad";
    }
    for (const g of Object.values(edges)) g.classList.remove("current");
    for (let i = 0; i < k; i++) {
      const s = steps[i];
      if (s.kind === "forward") {
        nodes[s.node].classList.remove("pending");
      } else {
        gradText(s.node).textContent = "grad " + s.shown_grad;
        nodes[s.node].classList.add("has-grad");
      }
    }
    const panel = document.getElementById("panel");
    const phase = document.getElementById("phase");
    if (k === 0) {
      panel.textContent = "The leaves hold their numbers; nothing is computed yet. Press next.";
      phase.textContent = "";
      phase.className = "";
    } else {
      const s = steps[k - 1];
      panel.textContent = s.text;
      phase.textContent = s.kind === "forward" ? "forward pass" : "back-propagation";
      phase.className = s.kind;
      nodes[s.node].classList.add("current");
      if (s.kind === "forward") {
        if (nodes[s.node + "_op"]) nodes[s.node + "_op"].classList.add("current");
      } else if (s.kind === "backward") {
        nodes[s.child].classList.add("source");
        for (const e of [s.edge, s.out]) if (edges[e]) edges[e].classList.add("current");
      }
      if (k === steps.length) {
        panel.textContent += "\nDone: these are the gradients backward() computes.";
      }
    }
    document.getElementById("counter").textContent = `step ${k} / ${steps.length}`;
    document.getElementById("first").disabled = document.getElementById("prev").disabled = k === 0;
    document.getElementById("next").disabled = document.getElementById("last").disabled =
      k === steps.length;
    document.body.dataset.step = String(k);
  }

  function go(to) {
    k = Math.max(0, Math.min(steps.length, to));
    draw();
    reveal(k === 0 ? data.root : steps[k - 1].node);
  }

  function fit(on) {
    box.classList.toggle("fit", on);
    document.getElementById("fit").setAttribute("aria-pressed", String(on));
    reveal(k === 0 ? data.root : steps[k - 1].node);
  }

  document.getElementById("first").addEventListener("click", () => go(0));
  document.getElementById("prev").addEventListener("click", () => go(k - 1));
  document.getElementById("next").addEventListener("click", () => go(k + 1));
  document.getElementById("last").addEventListener("click", () => go(steps.length));
  document.getElementById("fit").addEventListener("click", () => fit(!box.classList.contains("fit")));
  document.addEventListener("keydown", (e) => {
    if (e.key === "ArrowRight") go(k + 1);
    else if (e.key === "ArrowLeft") go(k - 1);
    else if (e.key === "Home") go(0);
    else if (e.key === "End") go(steps.length);
    else if (e.key === "f" || e.key === "F") fit(!box.classList.contains("fit"));
    else return;
    e.preventDefault();
  });
  // for tests and curious readers: the page's state
  window.explorer = {
    get step() { return k; },
    steps: steps.length,
    grad: (id) => gradText(id).textContent,
    go,
    fit,
  };
  go(0);
})();
