// The training page (nn/training_page.py): every number comes from the page's data, which
// the scalar engine computed for the model at each recorded step; this script only draws.
(() => {
  "use strict";
  const D = JSON.parse(document.getElementById("data").textContent);
  const SPECIAL = { nan: NaN, inf: Infinity, "-inf": -Infinity };
  const num = (x) => (typeof x === "string" ? SPECIAL[x] : x);
  const SUB = "₀₁₂₃₄₅₆₇₈₉";
  const sub = (n) => String(n).split("").map((d) => SUB[+d]).join("");
  const SVG = "http://www.w3.org/2000/svg";
  const el = (tag, attrs, parent) => {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  };

  // a number in 4 significant digits, as Python's format(x, ".4g") writes it
  const fmt = (x) => {
    x = num(x);
    if (Number.isNaN(x)) return "nan";
    if (!Number.isFinite(x)) return x > 0 ? "inf" : "−inf";
    if (x === 0) return "0";
    const e = Math.floor(Math.log10(Math.abs(x)));
    let s;
    if (e < -4 || e >= 4) {
      const [m, p] = x.toExponential(3).split("e");
      const q = +p;
      s = m.replace(/\.?0+$/, "") + "e" + (q < 0 ? "-" : "+") + String(Math.abs(q)).padStart(2, "0");
    } else {
      s = x.toPrecision(4);
      if (s.includes(".")) s = s.replace(/\.?0+$/, "");
    }
    return s.replace("-", "−");
  };

  // little-endian float32s from base64 (a map's numbers), decoded once
  const cache = new Map();
  const floats = (b64) => {
    if (!cache.has(b64)) {
      const s = atob(b64);
      const u = new Uint8Array(s.length);
      for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i);
      cache.set(b64, new Float32Array(u.buffer));
    }
    return cache.get(b64);
  };

  // one colour convention: blue > 0, red < 0, grey = 0; white: not a number
  const GREY = [208, 208, 208], BLUE = [31, 119, 180], RED = [214, 39, 40];
  const colour = (v, scale) => {
    if (Number.isNaN(v)) return [255, 255, 255];
    if (v === 0) return GREY;
    let t = Number.isFinite(scale) && scale > 0 ? Math.min(1, Math.abs(v) / scale) : 1;
    if (!Number.isFinite(v)) t = 1;
    const end = v > 0 ? BLUE : RED;
    return GREY.map((g, i) => Math.round(g + (end[i] - g) * t));
  };
  const css = (rgb) => `rgb(${rgb.join(",")})`;
  const edgeColour = (w) => (w > 0 ? "#1f77b4" : w < 0 ? "#d62728" : "#8c8c8c");

  const R = D.resolution;
  const [[X0, X1], [Y0, Y1]] = D.bounds;
  const sizes = D.sizes; // inputs, then each layer's units
  const L = sizes.length - 1; // layers
  const S = D.snapshots;
  const inputScale = [Math.max(Math.abs(X0), Math.abs(X1)), Math.max(Math.abs(Y0), Math.abs(Y1))];

  const paint = (canvas, values, scaleOf) => {
    canvas.width = R;
    canvas.height = R;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(R, R);
    for (let p = 0; p < R * R; p++) {
      const c = scaleOf(values[p]);
      img.data.set([c[0], c[1], c[2], 255], 4 * p);
    }
    ctx.putImageData(img, 0, 0);
  };
  // the inputs' maps: the plane's own coordinates (cell centres, as the engine was given them)
  const inputMap = (k) => {
    const out = new Float64Array(R * R);
    for (let j = 0; j < R; j++)
      for (let i = 0; i < R; i++)
        out[j * R + i] = k === 0 ? X0 + ((i + 0.5) * (X1 - X0)) / R : Y1 - ((j + 0.5) * (Y1 - Y0)) / R;
    return out;
  };

  // names: x₁, h₃ (h¹₃ with several hidden layers), z; parameters as the lecture writes them
  const unitName = (k, j) => (k === 0 ? "x" + sub(j + 1) : k === L ? "z" : D.names[k - 1].unit + sub(j + 1));
  const weightName = (k, i, j) => {
    const n = D.names[k - 1].w;
    return k === L ? n + sub(i + 1) : n + sub(i + 1) + "," + sub(j + 1);
  };
  const biasName = (k, j) => (k === L ? D.names[k - 1].b : D.names[k - 1].b + sub(j + 1));

  // -- the network: units placed in columns, edges between them ------------------------
  const net = document.getElementById("network");
  const panel = document.getElementById("panel");
  let units = []; // [k][j] -> {div, canvas}
  let edges = []; // {line, k, i, j}
  let edgeSvg = null;
  let shown = 0;
  let chosen = [L, 0];
  let hovered = null;

  const layout = () => {
    net.textContent = "";
    units = [];
    edges = [];
    const width = net.clientWidth;
    const top = net.getBoundingClientRect().top + window.scrollY;
    const room = Math.max(220, Math.min(640, window.innerHeight - top - 175));
    const most = Math.max(...sizes);
    const cell = Math.min(72, (room - 24) / most);
    const m = Math.max(10, Math.floor(cell * 0.8));
    const height = Math.ceil(24 + most * cell + 8);
    net.style.height = height + "px";
    const margin = 20;
    const gapX = Math.min(320, (width - 2 * margin - m) / Math.max(1, L));
    const left = (width - m - gapX * L) / 2; // the network centred in its box
    edgeSvg = el("svg", { class: "edges", width, height });
    net.appendChild(edgeSvg);
    const pos = [];
    for (let k = 0; k <= L; k++) {
      const x = left + k * gapX;
      const y0 = 24 + ((most - sizes[k]) * cell) / 2 + (cell - m) / 2;
      pos.push(Array.from({ length: sizes[k] }, (_, j) => [x, y0 + j * cell]));
      const head = document.createElement("div");
      head.className = "column";
      head.textContent =
        k === 0 ? "inputs" : k === L ? "output" : L === 2 ? `hidden (${D.names[k - 1].activation})` : `layer ${k} (${D.names[k - 1].activation})`;
      net.appendChild(head);
      head.style.left = Math.max(0, Math.min(width - head.offsetWidth, x + m / 2 - head.offsetWidth / 2)) + "px";
    }
    for (let k = 1; k <= L; k++)
      for (let j = 0; j < sizes[k]; j++)
        for (let i = 0; i < sizes[k - 1]; i++) {
          const [xa, ya] = pos[k - 1][i], [xb, yb] = pos[k][j];
          const line = el("line", { x1: xa + m, y1: ya + m / 2, x2: xb, y2: yb + m / 2 }, edgeSvg);
          el("title", {}, line);
          edges.push({ line, k, i, j });
        }
    for (let k = 0; k <= L; k++) {
      units.push([]);
      for (let j = 0; j < sizes[k]; j++) {
        const div = document.createElement("div");
        div.className = "unit";
        div.dataset.unit = `${k},${j}`;
        const [x, y] = pos[k][j];
        Object.assign(div.style, { left: x + "px", top: y + "px", width: m + "px", height: m + "px" });
        const canvas = document.createElement("canvas");
        div.appendChild(canvas);
        if (m >= 26) {
          const label = document.createElement("span");
          label.className = "name";
          label.textContent = unitName(k, j);
          div.appendChild(label);
        }
        div.title = unitName(k, j);
        div.addEventListener("mouseenter", () => { hovered = [k, j]; describe(); });
        div.addEventListener("mouseleave", () => { hovered = null; describe(); });
        div.addEventListener("click", () => { chosen = [k, j]; describe(); });
        net.appendChild(div);
        units[k].push({ div, canvas });
      }
    }
    for (let j = 0; j < sizes[0]; j++) paint(units[0][j].canvas, inputMap(j), (v) => colour(v, inputScale[j]));
  };

  // -- one recorded step ---------------------------------------------------------------
  const weight = (s, k, i, j) => num(s.weights[k - 1][j][i]);
  const mapOf = (s, k, j) => (k === 0 ? inputMap(j) : k === L ? floats(s.output) : floats(s.maps[k][j]));

  const range = (values) => {
    let lo = Infinity, hi = -Infinity, nan = 0;
    for (const v of values) {
      if (Number.isNaN(v)) nan++;
      else { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    }
    return [lo, hi, nan];
  };

  const point = (x) => `(${x.map(fmt).join(", ")})`;

  const describe = () => {
    const s = S[shown];
    const [k, j] = hovered || chosen;
    for (const row of units) for (const u of row) u.div.classList.remove("chosen");
    units[chosen[0]][chosen[1]].div.classList.add("chosen");
    edgeSvg.classList.toggle("focus", true);
    for (const e of edges) {
      const on = (e.k === k && e.j === j) || (e.k === k + 1 && e.i === j);
      e.line.classList.toggle("on", on);
    }
    const name = unitName(k, j);
    const parts = []; // [class, text]: set as text, never parsed as HTML
    const p = (cls, text) => parts.push([cls, text]);
    if (k === 0) {
      p("formula", `${name}: the ${j === 0 ? "first" : "second"} coordinate of the input`);
      p("", `Its map is the plane itself: from ${fmt(j === 0 ? X0 : Y0)} to ${fmt(j === 0 ? X1 : Y1)}.`);
    } else {
      const act = D.names[k - 1].activation;
      const inputs = sizes[k - 1];
      const inName = (i) => unitName(k - 1, i);
      const terms = inputs <= 4
        ? Array.from({ length: inputs }, (_, i) => `${weightName(k, i, j)}·${inName(i)}`).join(" + ")
        : `Σᵢ ${k === L ? D.names[k - 1].w + "ᵢ" : D.names[k - 1].w + "ᵢ," + sub(j + 1)}·${unitName(k - 1, 0).replace(/₁$/, "ᵢ")}`;
      const sum = `${terms} + ${biasName(k, j)}`;
      p("formula", k === L ? `z = ${sum},  P(y=1|x) = σ(z)` : `${name} = ${act === "linear" ? sum : `${act}(${sum})`}`);
      const ws = Array.from({ length: inputs }, (_, i) => `${weightName(k, i, j)} = ${fmt(weight(s, k, i, j))}`);
      p("num", ws.join(", ") + `;  ${biasName(k, j)} = ${fmt(s.biases[k - 1][j])}`);
    }
    const [lo, hi, nan] = range(mapOf(s, k, j));
    const what = k === L ? "P(y=1|x)" : name;
    p("", `Over the plane (its map): ${what} from ${fmt(lo)} to ${fmt(hi)}` + (nan ? `, ${nan} cells not a number` : "") + ".");
    const n = D.xs.length;
    if (k > 0) {
      const at = (i) => {
        const v = s.samples[i][k][j];
        const extra = k === L ? `, P = ${fmt(s.sampleP[i])}, y = ${D.ys[i]}` : "";
        return `${point(D.xs[i])} → ${fmt(v)}${extra}`;
      };
      if (n <= 8) p("num", `At the samples: ${Array.from({ length: n }, (_, i) => at(i)).join(";  ")}`);
      else {
        const vs = s.samples.map((o) => num(o[k][j]));
        const [a, b] = range(vs);
        p("num", `At the ${n} samples: from ${fmt(a)} to ${fmt(b)}.`);
      }
    }
    panel.textContent = "";
    for (const [cls, text] of parts) {
      const e = document.createElement(cls === "formula" ? "div" : "p");
      if (cls) e.className = cls;
      e.textContent = text;
      panel.appendChild(e);
    }
  };

  const outputCanvas = document.getElementById("output");
  const overlay = document.getElementById("overlay");
  const BOX = 300;
  const px = (x) => ((x - X0) / (X1 - X0)) * BOX;
  const py = (y) => ((Y1 - y) / (Y1 - Y0)) * BOX;

  // the decision boundary P = ½ by marching squares between cell centres
  const boundary = (P) => {
    const segs = [];
    const c = (i) => ((i + 0.5) * BOX) / R;
    for (let j = 0; j + 1 < R; j++)
      for (let i = 0; i + 1 < R; i++) {
        const corners = [[i, j], [i + 1, j], [i + 1, j + 1], [i, j + 1]];
        const v = corners.map(([a, b]) => P[b * R + a] - 0.5);
        if (v.some(Number.isNaN)) continue;
        const cuts = [];
        for (let e = 0; e < 4; e++) {
          const a = v[e], b = v[(e + 1) % 4];
          if ((a < 0) !== (b < 0)) {
            const t = a / (a - b);
            const [ia, ja] = corners[e], [ib, jb] = corners[(e + 1) % 4];
            cuts.push([c(ia + t * (ib - ia)), c(ja + t * (jb - ja))]);
          }
        }
        for (let q = 0; q + 1 < cuts.length; q += 2) segs.push([cuts[q], cuts[q + 1]]);
      }
    return segs;
  };

  const drawOutput = (s) => {
    const P = floats(s.output);
    paint(outputCanvas, P, (v) => colour(2 * v - 1, 1));
    overlay.textContent = "";
    const d = boundary(P).map(([a, b]) => `M${a[0].toFixed(1)},${a[1].toFixed(1)}L${b[0].toFixed(1)},${b[1].toFixed(1)}`).join("");
    if (d) el("path", { d, stroke: "#111", "stroke-width": 2, fill: "none" }, overlay);
    D.xs.forEach((x, i) => {
      const [cx, cy] = [px(x[0]), py(x[1])];
      // the class's colour in a white ring in a black one: seen on either colour of map
      const attrs = { fill: D.ys[i] ? "#1f77b4" : "#d62728", stroke: "white", "stroke-width": 2 };
      const mark = el("g", {}, overlay);
      if (D.ys[i]) {
        el("circle", { cx, cy, r: 7, fill: "#111" }, mark);
        el("circle", { cx, cy, r: 5, ...attrs }, mark);
      } else {
        el("rect", { x: cx - 6.5, y: cy - 6.5, width: 13, height: 13, fill: "#111" }, mark);
        el("rect", { x: cx - 4.5, y: cy - 4.5, width: 9, height: 9, ...attrs }, mark);
      }
      el("title", {}, mark).textContent = `x = ${point(x)}, y = ${D.ys[i]}: P(y=1|x) = ${fmt(s.sampleP[i])}`;
    });
  };

  // -- the loss curve ------------------------------------------------------------------
  const curve = document.getElementById("curve");
  const CW = 300, CH = 130, PAD = { l: 44, r: 8, t: 8, b: 20 };
  const points = D.curve.map(([st, v]) => [st, num(v)]).filter(([, v]) => Number.isFinite(v));
  const lastStep = S[S.length - 1].step;
  const yMax = Math.max(...points.map(([, v]) => v), 0) || 1;
  const yMin = Math.min(...points.map(([, v]) => v), 0);
  const cx = (st) => PAD.l + (lastStep ? (st / lastStep) * (CW - PAD.l - PAD.r) : 0);
  const cy = (v) => PAD.t + ((yMax - v) / (yMax - yMin)) * (CH - PAD.t - PAD.b);
  const drawCurve = () => {
    curve.setAttribute("viewBox", `0 0 ${CW} ${CH}`);
    el("line", { x1: PAD.l, y1: cy(yMin), x2: CW - PAD.r, y2: cy(yMin), stroke: "#999" }, curve);
    el("line", { x1: PAD.l, y1: PAD.t, x2: PAD.l, y2: CH - PAD.b, stroke: "#999" }, curve);
    const text = (x, y, t, anchor) => {
      const e = el("text", { x, y, "font-size": 11, "text-anchor": anchor || "start", fill: "#444" }, curve);
      e.textContent = t;
    };
    text(PAD.l - 4, cy(yMax) + 8, fmt(yMax), "end");
    text(PAD.l - 4, cy(yMin), fmt(yMin), "end");
    text(PAD.l, CH - 5, "0", "middle");
    text(CW - PAD.r, CH - 5, String(lastStep), "end");
    text((PAD.l + CW) / 2, CH - 5, "step", "middle");
    el("polyline", {
      points: points.map(([st, v]) => `${cx(st).toFixed(1)},${cy(v).toFixed(1)}`).join(" "),
      fill: "none", stroke: "#333", "stroke-width": 1.5,
    }, curve);
    el("line", { id: "now", y1: PAD.t, y2: CH - PAD.b, stroke: "#888", "stroke-dasharray": "3,3" }, curve);
    el("circle", { id: "nowDot", r: 4, fill: "#111" }, curve);
  };

  // -- keys ----------------------------------------------------------------------------
  const keys = document.getElementById("keys");
  const GRADIENT = `linear-gradient(to right, ${css(RED)}, ${css(GREY)}, ${css(BLUE)})`;
  const drawKeys = (s) => {
    const scale = num(s.hiddenScale);
    keys.textContent = "";
    const para = (text, bold) => {
      const e = document.createElement("p");
      if (bold) {
        const b = document.createElement("b");
        b.textContent = bold;
        e.appendChild(b);
      }
      e.appendChild(document.createTextNode(text));
      keys.appendChild(e);
      return e;
    };
    const bar = (title, ends) => {
      para(title);
      const b = document.createElement("span");
      b.className = "bar";
      b.style.background = GRADIENT;
      keys.appendChild(b);
      const row = document.createElement("div");
      row.className = "ends";
      for (const t of ends) {
        const e = document.createElement("span");
        e.textContent = t;
        row.appendChild(e);
      }
      keys.appendChild(row);
    };
    para(": blue > 0, red < 0, grey = 0; white: not a number.", "Colours");
    bar("Hidden units' maps, one scale shared by all of them at this step:", [`−${fmt(scale)}`, "0", fmt(scale)]);
    bar("P(y=1|x), this map and the output unit's:", ["0", "½", "1"]);
    para(
      `Inputs' maps: each its own coordinate, x₁ from ${fmt(X0)} to ${fmt(X1)}, x₂ from ${fmt(Y0)} to ${fmt(Y1)} (scale ±${fmt(inputScale[0])}, ±${fmt(inputScale[1])}).`
    );
    para("Black line: P(y=1|x) = ½, the decision boundary. Samples: ● y = 1, ■ y = 0.");
    para(`Edges: colour the sign of the weight, width ∝ |w| (the widest: the largest |w| over all steps, ${fmt(D.maxWeight)}).`);
  };

  // -- showing a step ------------------------------------------------------------------
  const slider = document.getElementById("slider");
  const show = (i) => {
    shown = Math.max(0, Math.min(S.length - 1, i));
    const s = S[shown];
    slider.value = shown;
    document.getElementById("step").textContent =
      `step ${s.step} of ${lastStep}` + (S.length > 1 ? ` (recorded ${shown + 1}/${S.length})` : "");
    document.getElementById("loss").textContent = `loss ${s.lossText}`;
    document.getElementById("loss").title = `the ${D.lossName} loss of the model drawn: ${String(num(s.loss))}`;
    document.getElementById("prev").disabled = shown === 0;
    document.getElementById("next").disabled = shown === S.length - 1;
    const scale = num(s.hiddenScale);
    for (let k = 1; k <= L; k++)
      for (let j = 0; j < sizes[k]; j++)
        paint(units[k][j].canvas, mapOf(s, k, j), k === L ? (v) => colour(2 * v - 1, 1) : (v) => colour(v, scale));
    const top = D.maxWeight > 0 ? D.maxWeight : 1;
    for (const e of edges) {
      const w = weight(s, e.k, e.i, e.j);
      e.line.setAttribute("stroke", edgeColour(w));
      e.line.setAttribute("stroke-width", Number.isFinite(w) ? (0.5 + (5 * Math.abs(w)) / top).toFixed(2) : 2);
      e.line.setAttribute("stroke-dasharray", Number.isNaN(w) ? "4,3" : "");
      e.line.setAttribute("stroke-opacity", 0.6);
      e.line.firstChild.textContent = `${weightName(e.k, e.i, e.j)} = ${fmt(w)}`;
    }
    drawOutput(s);
    drawKeys(s);
    const now = document.getElementById("now");
    now.setAttribute("x1", cx(s.step));
    now.setAttribute("x2", cx(s.step));
    const dot = document.getElementById("nowDot");
    const v = num(s.loss);
    dot.setAttribute("cx", cx(s.step));
    dot.setAttribute("cy", Number.isFinite(v) ? cy(v) : -10);
    describe();
  };

  slider.max = S.length - 1;
  slider.addEventListener("input", () => show(+slider.value));
  document.getElementById("prev").addEventListener("click", () => show(shown - 1));
  document.getElementById("next").addEventListener("click", () => show(shown + 1));
  document.addEventListener("keydown", (e) => {
    if (e.target === slider && (e.key === "ArrowRight" || e.key === "ArrowLeft")) return; // the slider moves itself
    if (e.key === "ArrowRight") show(shown + 1);
    else if (e.key === "ArrowLeft") show(shown - 1);
    else if (e.key === "Home") show(0);
    else if (e.key === "End") show(S.length - 1);
    else return;
    e.preventDefault();
  });
  let timer = null;
  window.addEventListener("resize", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { layout(); show(shown); }, 100);
  });
  drawCurve();
  layout();
  show(0);
})();
