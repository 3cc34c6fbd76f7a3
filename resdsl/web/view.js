// The interactive view of a resdsl network (resdsl render --format html).
//
// The page embeds the diagram model of backends/diagram.py at all three levels
// (stage, block, op) and how they nest. This script keeps which stages and
// blocks are expanded, lays out the units that are visible as a column (main
// path straight down, shortcuts beside it), and draws them as SVG. Text from
// the model is only ever set as text (textContent), never parsed as markup.
"use strict";

(function () {
  const model = JSON.parse(document.getElementById("model").textContent);
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.getElementById("canvas");
  const scene = document.getElementById("scene");
  const tooltip = document.getElementById("tooltip");
  const shortcutKinds = new Set(model.shortcutKinds);

  // Layout constants, in SVG units (pixels at zoom 1).
  const LINE = 16; // text line pitch
  const PAD_X = 10;
  const PAD_Y = 6;
  const GAP = 34; // between ranks, where the edge labels go
  const BAND = 24; // a frame's title band
  const FRAME_PAD = 10;
  const LANE_GAP = 46; // from the main path's widest box to a shortcut lane
  const FONT = "13px Arial, 'Liberation Sans', Helvetica, sans-serif";

  // -- the model ---------------------------------------------------------------
  const units = new Map();
  const children = new Map();
  for (const unit of model.units) {
    unit.key = Number(unit.id.slice(2)); // walk index of its first op: the same order at every level
    units.set(unit.id, unit);
  }
  for (const unit of model.units) {
    if (unit.parent) {
      if (!children.has(unit.parent)) children.set(unit.parent, []);
      children.get(unit.parent).push(unit.id);
    }
  }
  const byKey = (a, b) => units.get(a).key - units.get(b).key;
  for (const list of children.values()) list.sort(byKey);
  const stages = model.units.filter((u) => u.level === 0).sort((a, b) => a.key - b.key);
  const groups = new Map(); // block-level group -> its block-level units
  for (const unit of model.units) {
    if (unit.level !== 1) continue;
    if (!groups.has(unit.group)) groups.set(unit.group, []);
    groups.get(unit.group).push(unit);
  }
  const kids = (unit) => children.get(unit.id) || [];
  const stageOf = (unit) => (unit.level === 0 ? unit : stageOf(units.get(unit.parent)));
  const blockOf = (unit) => (unit.level === 2 ? units.get(unit.parent) : unit);
  const canExpand = (unit) =>
    unit.level === 0 ? kids(unit).length > 1 : unit.level === 1 && groups.get(unit.group).some((u) => kids(u).length > 1);
  const OUTPUT = { id: "output", kind: "output", level: 0, title: "", rows: ["output"], note: "", key: Infinity };

  const expandedStages = new Set();
  const expandedGroups = new Set();

  function visibleOf(unit) {
    const stage = stageOf(unit);
    if (!expandedStages.has(stage.id)) return stage;
    const block = blockOf(unit);
    if (unit.level === 2 && expandedGroups.has(block.group) && canExpand(block)) return unit;
    return unit.level === 0 ? unit : block;
  }

  // The rule of diagram.edge_style, on the units now visible.
  function edgeStyle(tail, head, identity) {
    if (shortcutKinds.has(head.kind)) return head.kind;
    if (shortcutKinds.has(tail.kind)) return tail.kind;
    return identity ? "identity" : "main";
  }

  function visibleGraph() {
    const nodes = [];
    for (const stage of stages) {
      if (!expandedStages.has(stage.id)) {
        nodes.push(stage);
        continue;
      }
      for (const id of kids(stage)) {
        const block = units.get(id);
        if (expandedGroups.has(block.group) && canExpand(block)) nodes.push(...kids(block).map((k) => units.get(k)));
        else nodes.push(block);
      }
    }
    if (model.output) nodes.push(OUTPUT); // named outputs (`return p2, p3`) are units of their own
    const edges = [];
    const seen = new Set();
    for (const [t, h, identity] of model.edges) {
      const tail = visibleOf(units.get(t));
      const head = visibleOf(units.get(h));
      if (tail === head || seen.has(tail.id + ">" + head.id)) continue;
      seen.add(tail.id + ">" + head.id);
      edges.push({ tail, head, shape: units.get(t).output, style: edgeStyle(tail, head, identity) });
    }
    if (model.output) {
      const last = units.get(model.output);
      edges.push({ tail: visibleOf(last), head: OUTPUT, shape: last.output, style: "main" });
    }
    return { nodes, edges };
  }

  // -- layout --------------------------------------------------------------------
  const measure = document.createElement("canvas").getContext("2d");
  function textWidth(text, font) {
    measure.font = font || FONT;
    return measure.measureText(text).width;
  }

  function lines(unit) {
    const out = [];
    if (unit.title) out.push({ text: unit.title, cls: "title", extra: unit.kind === "body" ? unit.note : "" });
    unit.rows.forEach((row, i) => out.push({ text: row, cls: unit.level === 2 && i > 0 ? "path" : "" }));
    if (unit.note && unit.kind !== "body") out.push({ text: unit.note, cls: "note" });
    return out;
  }

  function size(unit) {
    const font = (cls) => (cls === "title" ? "bold " + FONT : cls ? "11px Arial, sans-serif" : FONT);
    unit.lines = lines(unit);
    const widest = Math.max(
      ...unit.lines.map((l) => textWidth(l.text, font(l.cls)) + (l.extra ? textWidth(" " + l.extra) : 0))
    );
    unit.w = Math.ceil(widest + 2 * PAD_X + (unit.kind === "add" ? 12 : 0));
    unit.h = unit.kind === "add" ? 26 : unit.lines.length * LINE + 2 * PAD_Y;
  }

  function layout(graph) {
    const { nodes, edges } = graph;
    nodes.forEach(size);
    // Ranks: the longest path from the input, in a topological order (Kahn's, smallest key first).
    const succ = new Map(nodes.map((n) => [n.id, []]));
    const waiting = new Map(nodes.map((n) => [n.id, 0]));
    for (const e of edges) {
      succ.get(e.tail.id).push(e.head);
      waiting.set(e.head.id, waiting.get(e.head.id) + 1);
    }
    const rank = new Map(nodes.map((n) => [n.id, 0]));
    let ready = nodes.filter((n) => waiting.get(n.id) === 0);
    while (ready.length) {
      ready.sort((a, b) => a.key - b.key);
      const node = ready.shift();
      for (const next of succ.get(node.id)) {
        rank.set(next.id, Math.max(rank.get(next.id), rank.get(node.id) + 1));
        waiting.set(next.id, waiting.get(next.id) - 1);
        if (waiting.get(next.id) === 0) ready.push(next);
      }
    }
    nodes.forEach((n) => {
      n.rank = rank.get(n.id);
      n.lane = shortcutKinds.has(n.kind) ? 1 : 0;
    });
    const ranks = 1 + Math.max(...nodes.map((n) => n.rank));

    // Frames: an expanded stage around what it shows, an expanded block around its ops, and
    // inside that a frame around the ops of each block it calls (or `seq` it holds).
    // `depth` counts frames from the outside: a frame holds the deeper frames whose members it holds.
    const frames = [];
    for (const stage of stages) {
      if (!expandedStages.has(stage.id)) continue;
      const members = nodes.filter((n) => n !== OUTPUT && n.level > 0 && stageOf(n) === stage);
      for (const id of kids(stage)) {
        const block = units.get(id);
        if (!expandedGroups.has(block.group) || !canExpand(block) || block !== groups.get(block.group)[0]) continue;
        const inner = members.filter((n) => n.level === 2 && blockOf(n).group === block.group);
        const body = groups.get(block.group).find((u) => u.kind === "body");
        const title = block.group.startsWith("block:") ? block.group.slice(6) : block.path;
        frames.push({ kind: "block", depth: 1, group: block.group, members: inner, title, detail: body ? body.note : "" });
        const nested = new Map(); // path -> its frame, outermost first
        for (const n of inner) {
          n.nest.forEach(([path, template], i) => {
            if (!nested.has(path)) nested.set(path, { kind: "inner", depth: 2 + i, members: [], title: path, detail: template });
            nested.get(path).members.push(n);
          });
        }
        frames.push(...nested.values());
      }
      const detail = stage.kind === "stage" ? stage.rows[0].split(" · ")[0] : ""; // `bottleneck ×36`
      frames.push({ kind: "stage", depth: 0, stage, members, title: stage.title || stage.path, detail });
    }
    const starts = new Array(ranks + 1).fill(0);
    const ends = new Array(ranks + 1).fill(0);
    for (const f of frames) {
      f.first = Math.min(...f.members.map((n) => n.rank));
      f.last = Math.max(...f.members.map((n) => n.rank));
      starts[f.first] += 1;
      ends[f.last] += 1;
    }

    // Vertical: each rank as tall as its tallest node; between ranks the labels, then frame bands.
    const height = new Array(ranks).fill(0);
    nodes.forEach((n) => (height[n.rank] = Math.max(height[n.rank], n.h)));
    const top = new Array(ranks).fill(0);
    const labelY = new Array(ranks).fill(0); // where the labels of edges into rank r sit
    let y = BAND * starts[0];
    for (let r = 0; r < ranks; r++) {
      if (r > 0) {
        y += FRAME_PAD * ends[r - 1];
        labelY[r] = y + GAP / 2 + 4;
        y += GAP + BAND * starts[r];
      }
      top[r] = y;
      y += height[r];
    }
    nodes.forEach((n) => (n.y = top[n.rank] + height[n.rank] / 2));

    // Horizontal: the main path on x = 0; shortcut lanes right of the main path's widest box near them.
    const half = new Array(ranks).fill(0);
    nodes.forEach((n) => {
      if (n.lane === 0) half[n.rank] = Math.max(half[n.rank], n.w / 2);
    });
    const widest = (from, to) => {
      let w = 0;
      for (let r = Math.max(0, from); r <= Math.min(ranks - 1, to); r++) w = Math.max(w, half[r]);
      return w;
    };
    nodes.forEach((n) => (n.x = 0));
    const laneNodes = nodes.filter((n) => n.lane === 1).sort((a, b) => a.rank - b.rank);
    const runs = []; // consecutive shortcut units of one chain share one lane
    const runOf = new Map();
    for (const n of laneNodes) {
      const before = edges.find((e) => e.head === n && runOf.has(e.tail.id));
      const run = before ? runOf.get(before.tail.id) : [];
      if (!before) runs.push(run);
      run.push(n);
      runOf.set(n.id, run);
    }
    for (const run of runs) {
      const w = Math.max(...run.map((n) => n.w));
      const x = widest(run[0].rank - 1, run[run.length - 1].rank + 1) + LANE_GAP + w / 2;
      run.forEach((n) => (n.x = x));
    }

    // Edges.
    const right = (n) => n.x + n.w / 2;
    const bottom = (n) => n.y + n.h / 2;
    const topOf = (n) => n.y - n.h / 2;
    const mainRanks = new Array(ranks + 1).fill(0); // how many ranks before r hold a main-path node
    for (let r = 0; r < ranks; r++) mainRanks[r + 1] = mainRanks[r] + (half[r] > 0 ? 1 : 0);
    for (const e of edges) {
      const { tail, head } = e;
      const between = mainRanks[head.rank] - mainRanks[tail.rank + 1] > 0;
      if (tail.lane === 0 && head.lane === 0 && (e.style === "identity" || between)) {
        const x = widest(tail.rank + 1, head.rank - 1) + LANE_GAP / 2;
        const y0 = tail.y;
        const y1 = head.y;
        const x0 = right(tail);
        const x1 = right(head);
        e.path = `M${x0},${y0} C${x},${y0} ${x},${y0} ${x},${y0 + 18} L${x},${y1 - 18} C${x},${y1} ${x},${y1} ${x1},${y1}`;
        e.label = { x: x + 6, y: labelY[tail.rank + 1], anchor: "start" };
        e.side = true; // runs beside the main path, past the ranks between its ends
      } else if (tail.lane === 0 && head.lane === 0) {
        e.path = `M0,${bottom(tail)} L0,${topOf(head)}`;
        e.label = { x: -6, y: labelY[head.rank], anchor: "end" };
      } else if (tail.lane === 0) {
        const x0 = right(tail);
        const x1 = head.x;
        const y1 = topOf(head);
        e.path = `M${x0},${tail.y} C${x1},${tail.y} ${x1},${tail.y} ${x1},${y1}`;
        e.label = { x: x1 + 6, y: labelY[head.rank], anchor: "start" };
      } else if (head.lane === 1) {
        e.path = `M${tail.x},${bottom(tail)} L${head.x},${topOf(head)}`;
        e.label = { x: tail.x + 6, y: labelY[head.rank], anchor: "start" };
      } else {
        const x = tail.x;
        const y1 = head.y;
        const x1 = right(head);
        e.path = `M${x},${bottom(tail)} L${x},${y1 - 18} C${x},${y1} ${x},${y1} ${x1},${y1}`;
        e.label = { x: x + 6, y: labelY[tail.rank + 1], anchor: "start" };
      }
      e.reach = Math.max(right(tail), right(head), e.label.x + textWidth(e.shape, "11px Arial") + 4);
    }

    // Frame boxes, innermost first: their members, the shortcuts and side paths into them, and the frames inside.
    frames.sort((a, b) => b.depth - a.depth);
    for (const f of frames) {
      const inside = new Set(f.members);
      const within = frames.filter((g) => g.depth > f.depth && g.members.every((n) => inside.has(n)));
      let x0 = Math.min(...f.members.map((n) => n.x - n.w / 2), ...within.map((g) => g.x0));
      let x1 = Math.max(...f.members.map((n) => n.x + n.w / 2), ...within.map((g) => g.x1));
      for (const e of edges) if (inside.has(e.head) && (e.style !== "main" || e.side)) x1 = Math.max(x1, e.reach);
      // The title sits left of the main path, which enters the frame down through the title's band.
      f.titleWidth = textWidth(f.title, "bold " + FONT) + (f.detail ? textWidth("  " + f.detail) : 0);
      x0 = Math.min(x0, -f.titleWidth - 18);
      const pad = f.kind === "stage" ? 2 * FRAME_PAD : FRAME_PAD;
      f.x0 = x0 - pad;
      f.x1 = x1 + pad;
      f.y0 = top[f.first] - BAND * (1 + within.filter((g) => g.first === f.first).length);
      f.y1 = Math.max(
        top[f.last] + height[f.last] + pad,
        ...within.filter((g) => g.last === f.last).map((g) => g.y1 + FRAME_PAD)
      );
    }
    frames.sort((a, b) => a.depth - b.depth); // outer frames drawn under inner ones
    return { nodes, edges, frames };
  }

  // -- drawing ---------------------------------------------------------------------
  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, content, attrs) {
    const node = el("text", Object.assign({ x, y }, attrs || {}), parent);
    node.textContent = content;
    return node;
  }

  const COLORS = Object.assign({}, model.colors);
  const lineColor = (style) => model.shortcutColors[style] || "#343a40";

  function defs() {
    const d = el("defs", {}, svg);
    for (const style of ["main", "identity", ...model.shortcutKinds]) {
      const m = el("marker", { id: "arrow-" + style, viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, d);
      el("path", { d: "M0,1 L10,5 L0,9 z", fill: lineColor(style) }, m);
    }
  }

  let drawn = null;
  function draw() {
    drawn = layout(visibleGraph());
    scene.textContent = "";
    const frameLayer = el("g", {}, scene);
    const edgeLayer = el("g", {}, scene);
    const nodeLayer = el("g", {}, scene);
    for (const f of drawn.frames) {
      const g = el("g", { class: "frame " + f.kind }, frameLayer);
      el("rect", { x: f.x0, y: f.y0, width: f.x1 - f.x0, height: f.y1 - f.y0, rx: 8 }, g);
      const title = text(g, f.x0 + 8, f.y0 + 16, "");
      const name = el("tspan", { "font-weight": "bold" }, title);
      name.textContent = f.title;
      const detail = el("tspan", { class: "detail" }, title);
      detail.textContent = f.detail ? "  " + f.detail : "";
      if (f.kind === "inner") continue; // a block called inside another folds with it
      el("title", {}, g).textContent = "click the title to fold " + f.title;
      title.addEventListener("click", (event) => {
        event.stopPropagation();
        if (moved) return;
        if (f.kind === "stage") expandedStages.delete(f.stage.id);
        else expandedGroups.delete(f.group);
        redraw(null);
      });
    }
    for (const e of drawn.edges) {
      const color = lineColor(e.style);
      el("path", {
        class: "edge " + e.style,
        d: e.path,
        stroke: color,
        "stroke-width": e.style in model.shortcutColors ? 1.6 : 1.2,
        "marker-end": `url(#arrow-${e.style})`,
      }, edgeLayer);
      text(edgeLayer, e.label.x, e.label.y, e.shape, { class: "edge-label", "text-anchor": e.label.anchor });
    }
    for (const n of drawn.nodes) {
      const expandable = n !== OUTPUT && canExpand(n);
      const g = el("g", { class: "node" + (expandable ? " expandable" : ""), "data-id": n.id, "data-path": n.path || "" }, nodeLayer);
      const colors = COLORS[n.kind] || COLORS.op;
      const dashed = shortcutKinds.has(n.kind) && n.note ? { "stroke-dasharray": "5 3" } : {};
      const shape = { fill: colors.fill, stroke: colors.line, ...dashed };
      if (n.kind === "add") el("ellipse", { cx: n.x, cy: n.y, rx: n.w / 2, ry: n.h / 2, ...shape }, g);
      else el("rect", { x: n.x - n.w / 2, y: n.y - n.h / 2, width: n.w, height: n.h, rx: 6, ...shape }, g);
      n.lines.forEach((line, i) => {
        const y = n.kind === "add" ? n.y + 4.5 : n.y - n.h / 2 + PAD_Y + LINE * i + 12;
        const t = text(g, n.x, y, line.text, { "text-anchor": "middle", class: line.cls });
        if (line.extra) {
          const extra = el("tspan", { "font-weight": "normal", fill: "#666" }, t);
          extra.textContent = " " + line.extra;
        }
      });
      if (n === OUTPUT) continue;
      g.addEventListener("mouseenter", (event) => showTip(n, event));
      g.addEventListener("mousemove", (event) => placeTip(event));
      g.addEventListener("mouseleave", () => (tooltip.hidden = true));
      g.addEventListener("click", (event) => {
        event.stopPropagation();
        if (moved || !expandable) return;
        if (n.level === 0) expandedStages.add(n.id);
        else expandedGroups.add(n.group);
        tooltip.hidden = true;
        redraw(n);
      });
    }
  }

  // -- hover -------------------------------------------------------------------------
  const number = (v) => v.toLocaleString("en-US");
  function showTip(n, event) {
    tooltip.textContent = "";
    const add = (tag, content, cls) => {
      const node = document.createElement(tag);
      node.textContent = content;
      if (cls) node.className = cls;
      tooltip.appendChild(node);
      return node;
    };
    add("b", n.path || n.title || n.kind);
    add("span", "  " + (n.level === 0 ? "stage" : n.level === 1 ? "block level" : "op"), "dim");
    add("br", "");
    for (const row of n.rows) {
      add("span", row);
      add("br", "");
    }
    add("span", "in " + (n.inputs.join(", ") || "–") + " → out " + n.output);
    add("br", "");
    add("span", `${number(n.params)} parameters · ${number(n.macs)} MACs`);
    if (canExpand(n)) {
      add("br", "");
      add("span", "click to expand", "dim");
    }
    tooltip.hidden = false;
    placeTip(event);
  }

  function placeTip(event) {
    const box = svg.getBoundingClientRect();
    const x = event.clientX - box.left + 14;
    const y = event.clientY - box.top + 14;
    tooltip.style.left = Math.min(x, box.width - tooltip.offsetWidth - 4) + "px";
    tooltip.style.top = Math.min(y, box.height - tooltip.offsetHeight - 4) + "px";
  }

  // -- pan and zoom ------------------------------------------------------------------
  const view = { x: 0, y: 0, k: 1 };
  function apply() {
    scene.setAttribute("transform", `translate(${view.x},${view.y}) scale(${view.k})`);
  }
  function zoomAt(px, py, factor) {
    const k = Math.min(4, Math.max(0.05, view.k * factor));
    view.x = px - ((px - view.x) * k) / view.k;
    view.y = py - ((py - view.y) * k) / view.k;
    view.k = k;
    apply();
  }
  function bounds() {
    const xs = [];
    const ys = [];
    for (const n of drawn.nodes) xs.push(n.x - n.w / 2, n.x + n.w / 2), ys.push(n.y - n.h / 2, n.y + n.h / 2);
    for (const f of drawn.frames) xs.push(f.x0, f.x1), ys.push(f.y0, f.y1);
    for (const e of drawn.edges) xs.push(e.reach);
    return { x0: Math.min(...xs), x1: Math.max(...xs), y0: Math.min(...ys), y1: Math.max(...ys) };
  }
  function fit(whole) {
    const b = bounds();
    const box = svg.getBoundingClientRect();
    const margin = 24;
    const across = (box.width - 2 * margin) / (b.x1 - b.x0);
    const down = (box.height - 2 * margin) / (b.y1 - b.y0);
    // A long network is shown readable from its top; `fit` shows it whole.
    view.k = Math.min(1.25, whole ? Math.min(across, down) : Math.max(Math.min(across, down), Math.min(across, 0.8)));
    view.x = margin - b.x0 * view.k + Math.max(0, (box.width - 2 * margin - (b.x1 - b.x0) * view.k) / 2);
    view.y = margin - b.y0 * view.k + Math.max(0, (box.height - 2 * margin - (b.y1 - b.y0) * view.k) / 2);
    apply();
  }

  function redraw(anchor) {
    // Keep what was clicked where it was: its first part takes its place on screen.
    let before = null;
    if (anchor) before = { x: view.x + anchor.x * view.k, y: view.y + (anchor.y - anchor.h / 2) * view.k };
    draw();
    if (before) {
      const first = drawn.nodes.find((n) => n !== OUTPUT && (n === anchor || isWithin(n, anchor)));
      if (first) {
        view.x = before.x - first.x * view.k;
        view.y = before.y - (first.y - first.h / 2) * view.k;
      }
    }
    apply();
  }
  function isWithin(unit, ancestor) {
    for (let u = unit; u; u = u.parent ? units.get(u.parent) : null) {
      if (u === ancestor || (ancestor.level === 1 && u.level === 1 && u.group === ancestor.group)) return true;
    }
    return false;
  }

  let moved = false;
  let drag = null;
  svg.addEventListener("pointerdown", (event) => {
    drag = { x: event.clientX, y: event.clientY, vx: view.x, vy: view.y };
    moved = false;
  });
  window.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const dx = event.clientX - drag.x;
    const dy = event.clientY - drag.y;
    if (!moved && Math.abs(dx) + Math.abs(dy) < 4) return;
    moved = true;
    svg.classList.add("dragging");
    view.x = drag.vx + dx;
    view.y = drag.vy + dy;
    apply();
  });
  window.addEventListener("pointerup", () => {
    drag = null;
    svg.classList.remove("dragging");
  });
  svg.addEventListener(
    "wheel",
    (event) => {
      event.preventDefault();
      const box = svg.getBoundingClientRect();
      zoomAt(event.clientX - box.left, event.clientY - box.top, Math.exp(-event.deltaY * 0.0015));
    },
    { passive: false }
  );
  window.addEventListener("keydown", (event) => {
    if (event.target instanceof HTMLInputElement) return;
    const box = svg.getBoundingClientRect();
    if (event.key === "+" || event.key === "=") zoomAt(box.width / 2, box.height / 2, 1.25);
    else if (event.key === "-") zoomAt(box.width / 2, box.height / 2, 0.8);
    else if (event.key === "0") fit(true);
  });

  // -- search ------------------------------------------------------------------------
  const found = document.getElementById("found");
  function find(query) {
    const q = query.trim().toLowerCase();
    if (!q) return null;
    // A block's own node before the ops that merely sit in it (a ReLU has no module of its own),
    // then the coarsest unit with that path, then the first whose path goes on from it or holds it.
    const all = model.units.slice().sort((a, b) => a.level - b.level || a.key - b.key);
    const path = (u) => (u.path || "").toLowerCase();
    const exact = all.filter((u) => path(u) === q);
    return (
      exact.find((u) => u.title.toLowerCase() === q) ||
      exact[0] ||
      all.find((u) => path(u).startsWith(q + ".")) ||
      all.find((u) => path(u).includes(q)) ||
      null
    );
  }
  document.getElementById("search").addEventListener("submit", (event) => {
    event.preventDefault();
    const query = document.getElementById("query").value;
    const unit = find(query);
    if (!unit) {
      found.textContent = `no module path matches “${query.trim()}”`;
      return;
    }
    const stage = stageOf(unit);
    expandedStages.add(stage.id);
    if (unit.level === 2) expandedGroups.add(blockOf(unit).group);
    draw();
    const shown = drawn.nodes.find((n) => n === unit) || drawn.nodes.find((n) => n === visibleOf(unit));
    const box = svg.getBoundingClientRect();
    view.k = Math.max(view.k, 0.8);
    view.x = box.width / 2 - shown.x * view.k;
    view.y = box.height / 2 - shown.y * view.k;
    apply();
    const g = scene.querySelector(`.node[data-id="${shown.id}"]`);
    if (g) g.classList.add("found");
    found.textContent = shown.path || shown.title;
  });
  const datalist = document.getElementById("paths");
  const paths = [...new Set(model.units.slice().sort((a, b) => a.key - b.key || a.level - b.level).map((u) => u.path).filter(Boolean))];
  for (const p of paths) {
    const option = document.createElement("option");
    option.value = p;
    datalist.appendChild(option);
  }

  // -- start ---------------------------------------------------------------------------
  document.getElementById("name").textContent = model.name;
  document.getElementById("totals").textContent =
    `${number(model.params)} parameters · ${number(model.macs)} MACs (${(model.macs / 1e9).toFixed(2)} G) · ${model.policies}`;
  document.getElementById("expand-all").addEventListener("click", () => {
    stages.forEach((s) => expandedStages.add(s.id));
    groups.forEach((_, g) => expandedGroups.add(g));
    draw();
    fit(false);
  });
  document.getElementById("collapse-all").addEventListener("click", () => {
    expandedStages.clear();
    expandedGroups.clear();
    draw();
    fit(false);
  });
  document.getElementById("fit").addEventListener("click", () => fit(true));
  if (model.level >= 1) stages.forEach((s) => expandedStages.add(s.id));
  if (model.level >= 2) groups.forEach((_, g) => expandedGroups.add(g));
  defs();
  draw();
  fit(false);
})();
