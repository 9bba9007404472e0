// Draws a Sagaflow graph (GET …/graph) as SVG, with a layered layout of its own:
// saga: stages left→right, compensations in a row below; ASL: top→bottom by the
// longest path from the start, groups (Parallel, Map, branches) framed around
// their children; durable: an operation tree with the invocations on a timeline.

const NS = "http://www.w3.org/2000/svg";
const NODE_H = 40;
const GAP_RANK = 44;
const GAP_CROSS = 22;
const PAD = 16;
const GROUP_HEAD = 20;

export const STATE_COLORS = {
  pending: "#9ca3af", running: "#2563eb", retrying: "#ea8c0c", succeeded: "#16a34a",
  failed: "#dc2626", compensating: "#9333ea", compensated: "#8b5cf6", parked: "#eab308",
  stuck: "#7f1d1d", cancelled: "#b4727a", timed_out: "#b4727a",
};
const LIGHT_STATES = new Set(["parked"]);
const DEF_FILL = "#e2e8f0";

function el(name, attrs = {}, parent) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function subText(n, state) {
  const parts = [n.sub_type || n.type];
  if (state) parts.push(state);
  if (n.attempts > 1) parts.push(`${n.attempts} attempts`);
  return parts.filter(Boolean).join(" · ");
}

function nodeWidth(n) {
  const label = String(n.label ?? n.id);
  const sub = subText(n, n.state || "compensated");
  return Math.max(110, Math.min(280, label.length * 7.4 + 30), Math.min(280, sub.length * 6.2 + 30));
}

const isGroup = (n, kids) => (kids.get(n.id) || []).length > 0 || n.type === "stage" || n.type === "branch";

// Lays out the children of `parentId` (recursively); returns {w, h} and sets x, y
// (relative to the container) on every laid out node in `pos`.
function layoutContainer(parentId, ctx, dir) {
  const { kids, byId, pos, edges } = ctx;
  const members = (kids.get(parentId) || []).filter((n) => !ctx.skip.has(n.id));
  if (!members.length) return { w: 0, h: 0 };
  const sizes = new Map();
  for (const n of members) {
    if (isGroup(n, kids)) {
      const inner = layoutContainer(n.id, ctx, n.type === "branch" || n.type === "stage" && dir === "TB" ? dir : dir);
      sizes.set(n.id, { w: Math.max(inner.w + 2 * PAD, nodeWidth(n)), h: inner.h + 2 * PAD + GROUP_HEAD, inner });
    } else {
      sizes.set(n.id, { w: nodeWidth(n), h: NODE_H });
    }
  }
  // Map every edge to the pair of members that contain its ends.
  const memberOf = (id) => {
    let cur = byId.get(id);
    while (cur) {
      if ((cur.parent ?? null) === parentId) return cur.id;
      cur = byId.get(cur.parent);
    }
    return null;
  };
  const succ = new Map(members.map((n) => [n.id, []]));
  const indeg = new Map(members.map((n) => [n.id, 0]));
  for (const e of edges) {
    if (e.kind === "compensation" || e.kind === "undo") continue;
    const a = memberOf(e.from), b = memberOf(e.to);
    if (a && b && a !== b && succ.has(a) && succ.has(b)) { succ.get(a).push(b); indeg.set(b, indeg.get(b) + 1); }
  }
  // Back edges (loops) are found by a DFS from the roots and ignored for ranking.
  const order = [...members].sort((x, y) => (indeg.get(x.id) === 0 ? 0 : 1) - (indeg.get(y.id) === 0 ? 0 : 1)
    || (x.type === "start" ? -1 : y.type === "start" ? 1 : 0));
  const state = new Map();
  const topo = [];
  const back = new Set();
  const visit = (id) => {
    state.set(id, 1);
    for (const s of succ.get(id)) {
      if (state.get(s) === 1) back.add(id + "\u0000" + s);
      else if (!state.get(s)) visit(s);
    }
    state.set(id, 2);
    topo.push(id);
  };
  for (const n of order) if (!state.get(n.id)) visit(n.id);
  topo.reverse();
  const rank = new Map(members.map((n) => [n.id, 0]));
  for (const id of topo) for (const s of succ.get(id)) {
    if (!back.has(id + "\u0000" + s)) rank.set(s, Math.max(rank.get(s), rank.get(id) + 1));
  }
  const ranks = [];
  const index = new Map(members.map((n, i) => [n.id, i]));
  for (const id of [...topo].sort((a, b) => index.get(a) - index.get(b))) { const r = rank.get(id); (ranks[r] ||= []).push(id); }
  // Place ranks along the main axis, members of a rank along the cross axis.
  const along = (s) => (dir === "LR" ? s.w : s.h);
  const across = (s) => (dir === "LR" ? s.h : s.w);
  let main = 0;
  let crossMax = 0;
  const rankInfo = [];
  for (const ids of ranks) {
    if (!ids) continue;
    const len = Math.max(...ids.map((id) => along(sizes.get(id))));
    const cross = ids.reduce((t, id) => t + across(sizes.get(id)), 0) + GAP_CROSS * (ids.length - 1);
    rankInfo.push({ ids, main, len, cross });
    crossMax = Math.max(crossMax, cross);
    main += len + GAP_RANK;
  }
  main -= GAP_RANK;
  for (const r of rankInfo) {
    let c = (crossMax - r.cross) / 2;
    for (const id of r.ids) {
      const s = sizes.get(id);
      const m = r.main + (r.len - along(s)) / 2;
      const p = dir === "LR" ? { x: m, y: c, w: s.w, h: s.h } : { x: c, y: m, w: s.w, h: s.h };
      pos.set(id, { ...p, rel: parentId, group: !!s.inner });
      c += across(s) + GAP_CROSS;
    }
  }
  return dir === "LR" ? { w: main, h: crossMax } : { w: crossMax, h: main };
}

// Turns relative positions into absolute ones (a group's children are offset by it).
function absolutize(ctx, parentId, ox, oy) {
  for (const n of ctx.kids.get(parentId) || []) {
    const p = ctx.pos.get(n.id);
    if (!p) continue;
    p.x += ox; p.y += oy;
    if (p.group) absolutize(ctx, n.id, p.x + PAD, p.y + PAD + GROUP_HEAD);
  }
}

function durableLayout(ctx, nodes) {
  // An operation tree: each operation on its own row, children indented.
  let y = 0;
  let w = 0;
  const walk = (parentId, depth) => {
    for (const n of ctx.kids.get(parentId) || []) {
      const width = nodeWidth(n) + 60;
      ctx.pos.set(n.id, { x: depth * 34, y, w: width, h: NODE_H - 6, group: false });
      w = Math.max(w, depth * 34 + width);
      y += NODE_H + 4;
      walk(n.id, depth + 1);
    }
  };
  walk(null, 0);
  for (const n of nodes) if (!ctx.pos.has(n.id)) {
    ctx.pos.set(n.id, { x: 0, y, w: nodeWidth(n), h: NODE_H - 6, group: false });
    y += NODE_H + 4;
  }
  return { w, h: y };
}

function anchor(p, q, dir) {
  // The point on p's border facing q: across the layout's flow when q is beside p.
  const pc = { x: p.x + p.w / 2, y: p.y + p.h / 2 };
  const qc = { x: q.x + q.w / 2, y: q.y + q.h / 2 };
  const dx = qc.x - pc.x, dy = qc.y - pc.y;
  const apartX = q.x >= p.x + p.w || p.x >= q.x + q.w;
  const apartY = q.y >= p.y + p.h || p.y >= q.y + q.h;
  const horizontal = dir === "LR" ? apartX : dir === "TB" ? !apartY : Math.abs(dx) * p.h > Math.abs(dy) * p.w;
  if (horizontal) return { x: dx > 0 ? p.x + p.w : p.x, y: pc.y, side: "h" };
  return { x: pc.x, y: dy > 0 ? p.y + p.h : p.y, side: "v" };
}

function edgePath(a, b, dir) {
  const s = anchor(a, b, dir), t = anchor(b, a, dir);
  const k = 0.45;
  if (dir === "TB" && s.side === "v" && t.side === "v" && t.y - s.y > 3 * NODE_H && Math.abs(t.x - s.x) > 40) {
    // A long edge down (to the end, past other ranks): straight down beside them, then into its target.
    const turn = t.y - 2 * NODE_H;
    return { d: `M${s.x},${s.y} L${s.x},${turn} C${s.x},${t.y - NODE_H / 2} ${t.x},${turn} ${t.x},${t.y}`, mid: { x: s.x, y: (s.y + turn) / 2 } };
  }
  const c1 = s.side === "h" ? { x: s.x + (t.x - s.x) * k, y: s.y } : { x: s.x, y: s.y + (t.y - s.y) * k };
  const c2 = t.side === "h" ? { x: t.x + (s.x - t.x) * k, y: t.y } : { x: t.x, y: t.y + (s.y - t.y) * k };
  return { d: `M${s.x},${s.y} C${c1.x},${c1.y} ${c2.x},${c2.y} ${t.x},${t.y}`, mid: { x: (s.x + t.x) / 2, y: (s.y + t.y) / 2 } };
}

// Renders `graph` into `container`. opts.onNodeClick(node), opts.highlight:
// {id: {state, order, title}}, opts.problems: [{node, message}], opts.selected.
export function renderGraph(container, graph, opts = {}) {
  container.replaceChildren();
  const nodes = graph.nodes || [];
  const edges = graph.edges || [];
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const kids = new Map();
  for (const n of nodes) {
    const p = n.parent && byId.has(n.parent) ? n.parent : null;
    if (!kids.has(p)) kids.set(p, []);
    kids.get(p).push(n);
  }
  const ctx = { kids, byId, pos: new Map(), edges, skip: new Set() };
  let size;
  let compRow = [];
  if (graph.kind === "durable") {
    size = durableLayout(ctx, nodes);
  } else if (graph.kind === "saga") {
    compRow = nodes.filter((n) => n.type === "compensation");
    for (const n of compRow) ctx.skip.add(n.id);
    size = layoutContainer(null, ctx, "LR");
    absolutize(ctx, null, 0, 0);
    // Compensations in a row below, each under its step.
    const y = size.h + GAP_RANK + 10;
    let placed = [];
    for (const c of compRow) {
      const stepId = c.id.replace(/\/compensation$/, "");
      const sp = ctx.pos.get(stepId);
      const w = nodeWidth(c);
      let x = sp ? sp.x + (sp.w - w) / 2 : 0;
      for (const q of placed) if (x < q.x + q.w + 10 && x + w > q.x) x = q.x + q.w + 10;
      const p = { x, y, w, h: NODE_H, group: false };
      ctx.pos.set(c.id, p);
      placed.push(p);
    }
    if (compRow.length) size = { w: Math.max(size.w, ...placed.map((p) => p.x + p.w)), h: y + NODE_H };
  } else {
    size = layoutContainer(null, ctx, "TB");
    absolutize(ctx, null, 0, 0);
  }
  const invocations = graph.kind === "durable" ? graph.invocations || [] : [];
  const timelineH = invocations.length ? 56 : 0;
  const W = Math.max(size.w + 2 * PAD + 10, invocations.length ? 760 : 200);
  const H = size.h + 2 * PAD + 14 + timelineH;
  const svg = el("svg", { class: "graph", width: W, height: H, viewBox: `0 0 ${W} ${H}`, "data-testid": "graph", "data-kind": graph.kind });
  const defs = el("defs", {}, svg);
  for (const [id, color] of [["arrow", "#64748b"], ["arrow-comp", "#8b5cf6"], ["arrow-catch", "#dc2626"]]) {
    const m = el("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
    el("path", { d: "M0,0 L10,5 L0,10 z", fill: color }, m);
  }
  const root = el("g", { transform: `translate(${PAD},${PAD + 14})` }, svg);
  const groupsG = el("g", {}, root);
  const edgesG = el("g", {}, root);
  const nodesG = el("g", {}, root);
  const problemsBy = new Map();
  for (const p of opts.problems || []) if (p.node) problemsBy.set(p.node, [...(problemsBy.get(p.node) || []), p.message]);
  const hl = opts.highlight || {};

  // Groups first (behind), then edges, then nodes.
  for (const n of nodes) {
    const p = ctx.pos.get(n.id);
    if (!p || !p.group) continue;
    const g = el("g", { class: "group", "data-testid": `node-${n.id}`, "data-state": hl[n.id]?.state ?? n.state ?? "", "data-type": n.type, "data-parent": n.parent ?? "" }, groupsG);
    el("rect", { x: p.x, y: p.y, width: p.w, height: p.h, rx: 10 }, g);
    const t = el("text", { x: p.x + 8, y: p.y + 14 }, g);
    t.textContent = `${n.label ?? n.id}${n.type ? " · " + (n.sub_type || n.type) : ""}${n.state ? " · " + n.state : ""}`;
    g.addEventListener("click", (ev) => { ev.stopPropagation(); opts.onNodeClick?.(n); });
  }
  if (graph.kind !== "durable") {
    for (const e of edges) {
      const a = ctx.pos.get(e.from), b = ctx.pos.get(e.to);
      if (!a || !b) continue;
      const kind = e.kind || "next";
      const g = el("g", { class: `edge ${kind}`, "data-testid": `edge-${e.from}-${e.to}` }, edgesG);
      const { d, mid } = edgePath(a, b, graph.kind === "saga" ? "LR" : "TB");
      const marker = kind === "compensation" || kind === "undo" ? "arrow-comp" : kind === "catch" ? "arrow-catch" : "arrow";
      el("path", { d, "marker-end": `url(#${marker})` }, g);
      if (e.label) {
        const t = el("text", { x: mid.x + 4, y: mid.y - 4 }, g);
        t.textContent = e.label.length > 40 ? e.label.slice(0, 39) + "…" : e.label;
      }
    }
  }
  for (const n of nodes) {
    const p = ctx.pos.get(n.id);
    if (!p || p.group) continue;
    const h = hl[n.id];
    const state = h?.state ?? n.state ?? null;
    const problem = problemsBy.get(n.id);
    let fill = state ? STATE_COLORS[state] || DEF_FILL : DEF_FILL;
    if (problem) fill = STATE_COLORS.failed;
    const light = !problem && (!state || LIGHT_STATES.has(state));
    const cls = ["node", n.pivot ? "pivot" : "", light ? "light" : "", problem ? "problem" : "", opts.selected === n.id ? "selected" : ""].join(" ");
    const g = el("g", {
      class: cls, "data-testid": `node-${n.id}`, "data-state": state ?? "", "data-type": n.type ?? "",
      "data-pivot": n.pivot ? "true" : "false", "data-problem": problem ? "true" : null, "data-parent": n.parent ?? "", tabindex: 0,
    }, nodesG);
    const title = el("title", {}, g);
    title.textContent = [n.label ?? n.id, n.type, state, ...(problem || []), h?.title].filter(Boolean).join(" — ");
    const rx = n.type === "start" || n.type === "end" || n.type === "Succeed" || n.type === "Fail" ? NODE_H / 2 : 8;
    const box = el("rect", { class: "box", x: p.x, y: p.y, width: p.w, height: p.h, rx, fill }, g);
    if (n.type === "compensation" && !state) { box.setAttribute("fill", "#ede9fe"); box.setAttribute("stroke-dasharray", "4 2"); }
    const label = el("text", { x: p.x + 10, y: p.y + 16 }, g);
    label.textContent = n.label ?? n.id;
    const sub = el("text", { class: "sub", x: p.x + 10, y: p.y + 30 }, g);
    sub.textContent = subText(n, state);
    if (n.pivot) {
      const tag = el("g", {}, g);
      el("rect", { x: p.x + p.w - 38, y: p.y - 9, width: 36, height: 14, rx: 7, fill: "#fde047", stroke: "#111827" }, tag);
      const t = el("text", { class: "tag", x: p.x + p.w - 32, y: p.y + 1 }, tag);
      t.textContent = "pivot";
      t.setAttribute("data-testid", `pivot-${n.id}`);
    }
    if (h?.order) {
      el("circle", { class: "order-dot", cx: p.x + p.w - 2, cy: p.y + p.h - 2, r: 10 }, g);
      const t = el("text", { class: "order", x: p.x + p.w - 2, y: p.y + p.h + 2, "text-anchor": "middle", "data-testid": `order-${n.id}` }, g);
      t.textContent = String(h.order);
    }
    if (graph.kind === "durable" && (n.started_at || n.ended_at)) {
      const t = el("text", { class: "sub", x: p.x + p.w - 8, y: p.y + 16, "text-anchor": "end" }, g);
      t.textContent = n.ended_at && n.started_at ? fmtDur(ts(n.ended_at) - ts(n.started_at)) : "";
    }
    g.addEventListener("click", (ev) => { ev.stopPropagation(); opts.onNodeClick?.(n); });
    g.addEventListener("keydown", (ev) => { if (ev.key === "Enter") opts.onNodeClick?.(n); });
  }
  if (invocations.length) {
    const y0 = size.h + 18;
    const g = el("g", { class: "inv", "data-testid": "invocations" }, root);
    const t0 = Math.min(...invocations.map((i) => ts(i.started_at)));
    const t1 = Math.max(...invocations.map((i) => ts(i.ended_at || i.started_at)), t0 + 1);
    const span = Math.max(W - 2 * PAD - 10, 100);
    const lbl = el("text", { x: 0, y: y0 }, g);
    lbl.textContent = "invocations";
    for (const i of invocations) {
      const a = ts(i.started_at), b = ts(i.ended_at || i.started_at);
      const num = i.number ?? i.n;
      const x = ((a - t0) / (t1 - t0)) * span;
      const w = Math.max(6, ((b - a) / (t1 - t0)) * span);
      const ig = el("g", { "data-testid": `invocation-${num}`, "data-outcome": i.outcome ?? "" }, g);
      const r = el("rect", { x, y: y0 + 6, width: w, height: 14, rx: 3 }, ig);
      const tt = el("title", {}, r);
      tt.textContent = `invocation ${num}: ${i.outcome ?? "running"} (${i.started_at} → ${i.ended_at ?? "…"})`;
      const t = el("text", { x, y: y0 + 32 }, ig);
      const took = i.ended_at ? ` · ${fmtDur(ts(i.ended_at) - a)}` : "";
      t.textContent = `#${num} ${i.outcome ?? "running"}${took}`;
    }
  }
  container.appendChild(svg);
  return svg;
}

// A time as milliseconds: the API gives RFC 3339 text (or milliseconds).
export const ts = (v) => (typeof v === "number" ? v : Date.parse(v));

export function fmtDur(ms) {
  if (!Number.isFinite(ms)) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60000);
  return `${m} min ${Math.round((ms % 60000) / 1000)} s`;
}

export function legend() {
  const div = document.createElement("div");
  div.className = "legend";
  for (const [s, c] of Object.entries(STATE_COLORS)) {
    const span = document.createElement("span");
    const i = document.createElement("i");
    i.style.background = c;
    span.append(i, s);
    div.appendChild(span);
  }
  return div;
}
