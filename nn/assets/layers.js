// The layer explorer's stepper (nn/layer_page.py computes every step and number).
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("data").textContent);
  const steps = data.steps;
  const net = document.getElementById("network");
  // two drawings of the network: values (forward steps) and gradients (backward steps)
  const views = {};
  for (const svg of net.querySelectorAll("svg[data-kind]")) {
    const nodes = {};
    const edges = [];
    for (const g of svg.querySelectorAll("g.node")) nodes[g.querySelector("title").textContent] = g;
    for (const g of svg.querySelectorAll("g.edge")) {
      const [a, b] = g.querySelector("title").textContent.split("->");
      edges.push([a, b, g]);
    }
    views[svg.dataset.kind] = { svg, nodes, edges };
  }
  const column = (id) => Number(id.slice(1).split("_")[0]);
  let k = 0;

  function table(block) {
    const box = document.createElement("div");
    box.className = "block";
    const h = document.createElement("h2");
    h.textContent = block.name;
    box.appendChild(h);
    const scroll = document.createElement("div");
    scroll.className = "scroll";
    const t = document.createElement("table");
    for (const row of block.rows) {
      const tr = document.createElement("tr");
      for (const cell of row) {
        const td = document.createElement("td");
        td.textContent = cell.s;
        td.title = cell.x;  // the whole number
        if (cell.k && data.scalar[cell.k]) {
          td.className = "key";
          td.dataset.key = cell.k;
          td.tabIndex = 0;
          td.addEventListener("click", () => choose(td));
          td.addEventListener("keydown", (e) => { if (e.key === "Enter") choose(td); });
        }
        tr.appendChild(td);
      }
      t.appendChild(tr);
    }
    scroll.appendChild(t);
    box.appendChild(scroll);
    return box;
  }

  function choose(td) {
    for (const c of document.querySelectorAll("td.chosen")) c.classList.remove("chosen");
    td.classList.add("chosen");
    document.getElementById("scalar").textContent = data.scalar[td.dataset.key].join("\n");
  }

  function draw() {
    const s = steps[k];
    document.getElementById("claim").textContent = s.claim;
    document.getElementById("formula").textContent = s.rule;
    document.getElementById("note").textContent = s.note;
    const blocks = document.getElementById("blocks");
    blocks.replaceChildren(...s.blocks.map(table));
    document.getElementById("scalar").textContent =
      "Click an entry of a gradient (underlined) to see the scalar edges it sums.";
    const phase = document.getElementById("phase");
    phase.textContent = s.kind === "forward" ? "forward pass" : "back-propagation";
    phase.className = s.kind;
    // the drawing of what this step computes; its layer: the columns it reads and writes,
    // and the weights between them
    net.classList.add("stepping");
    const view = views[s.kind];
    for (const v of Object.values(views)) v.svg.style.display = v === view ? "" : "none";
    for (const [id, g] of Object.entries(view.nodes)) {
      const c = column(id);
      g.classList.toggle("on", c === s.layer || c === s.layer - 1);
    }
    for (const [a, b, g] of view.edges) {
      g.classList.toggle("on", column(a) === s.layer - 1 && column(b) === s.layer);
    }
    const first = Object.entries(view.nodes).find(([id]) => column(id) === s.layer);
    if (first) reveal(first[1]);
    document.getElementById("counter").textContent = `step ${k + 1} / ${steps.length}`;
    document.getElementById("first").disabled = document.getElementById("prev").disabled = k === 0;
    document.getElementById("next").disabled = document.getElementById("last").disabled =
      k === steps.length - 1;
    document.body.dataset.step = String(k + 1);
  }

  function reveal(g) {
    const r = g.getBoundingClientRect();
    const view = net.getBoundingClientRect();
    if (r.left < view.left || r.right > view.right) {
      net.scrollLeft += (r.left + r.right) / 2 - (view.left + view.right) / 2;
    }
  }

  function go(to) {
    k = Math.max(0, Math.min(steps.length - 1, to));
    draw();
  }

  document.getElementById("first").addEventListener("click", () => go(0));
  document.getElementById("prev").addEventListener("click", () => go(k - 1));
  document.getElementById("next").addEventListener("click", () => go(k + 1));
  document.getElementById("last").addEventListener("click", () => go(steps.length - 1));
  document.addEventListener("keydown", (e) => {
    if (e.key === "ArrowRight") go(k + 1);
    else if (e.key === "ArrowLeft") go(k - 1);
    else if (e.key === "Home") go(0);
    else if (e.key === "End") go(steps.length - 1);
    else return;
    e.preventDefault();
  });
  window.layers = { get step() { return k + 1; }, steps: steps.length, go: (n) => go(n - 1) };
  go(0);
})();
