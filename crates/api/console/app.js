// The Sagaflow console: executions, definitions, the failure explorer.
// Vanilla JavaScript, no build step; it talks only to this server's /v1 API.
import { renderGraph, legend, fmtDur } from "./graph.js";

const STATUSES = ["running", "compensating", "succeeded", "compensated", "failed", "cancelled", "timed_out"];
const TERMINAL = new Set(["succeeded", "compensated", "failed", "cancelled", "timed_out"]);
const TOKEN_KEY = "sagaflow.token";
const $ = (sel, root = document) => root.querySelector(sel);

// ---------- DOM helpers ----------
function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "testid") e.dataset.testid = v;
    else if (k === "class") e.className = v;
    else if (v === true) e.setAttribute(k, "");
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}
const badge = (status, testid) => h("span", { class: `badge ${status}`, testid, "data-status": status }, status);
const fmtTime = (t) => (t ? new Date(t).toLocaleString() : "");
const enc = encodeURIComponent;

// ---------- errors, sign-in, API ----------
function showError(msg) {
  $("#banner-text").textContent = msg;
  $("#banner").hidden = false;
}
function clearError() { $("#banner").hidden = true; }

class ApiError extends Error {
  constructor(status, code, message, body) {
    super(`${code}: ${message}`);
    this.status = status; this.code = code; this.body = body;
  }
}

const token = () => sessionStorage.getItem(TOKEN_KEY);
function authHeaders(extra = {}) {
  const t = token();
  return t ? { ...extra, Authorization: `Bearer ${t}` } : extra;
}

let signinShown = false;
function needSignIn(why) {
  signinShown = true;
  $("#main").hidden = true;
  $("#signin").hidden = false;
  $("#signin-error").textContent = why || "";
  $("#token").focus();
}

async function api(method, path, body, { text = false, quiet = false } = {}) {
  const headers = authHeaders();
  let payload;
  if (body !== undefined) {
    if (text) { headers["Content-Type"] = "application/yaml"; payload = body; }
    else { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  }
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: payload });
  } catch (e) {
    const err = new ApiError(0, "unreachable", `the server cannot be reached (${e.message})`);
    if (!quiet) showError(err.message);
    throw err;
  }
  const raw = await resp.text();
  let json = null;
  try { json = raw ? JSON.parse(raw) : null; } catch { json = null; }
  if (resp.status === 401) {
    const code = json?.error?.code || "missing_token";
    needSignIn(code === "invalid_token" ? "The token was refused (invalid_token)." : "");
    throw new ApiError(401, code, json?.error?.message || "sign in");
  }
  if (!resp.ok) {
    const err = new ApiError(resp.status, json?.error?.code || `http_${resp.status}`, json?.error?.message || raw || resp.statusText, json);
    if (!quiet) showError(err.message);
    throw err;
  }
  return json;
}

// Server-sent events over fetch (EventSource cannot send the Authorization
// header): parses `event:`/`data:`/`id:` lines, reconnects with a backoff and
// Last-Event-ID until `signal` aborts or `onEvent` returns "stop".
async function sse(path, onEvent, signal, { onState } = {}) {
  let lastId = null;
  let backoff = 500;
  while (!signal.aborted) {
    try {
      const headers = authHeaders({ Accept: "text/event-stream" });
      if (lastId !== null) headers["Last-Event-ID"] = lastId;
      const resp = await fetch(path, { headers, signal });
      if (resp.status === 401) { needSignIn(""); return; }
      if (resp.status >= 400 && resp.status < 500) {
        // A refused request (a bad filter): say why once, do not retry it.
        const body = await resp.json().catch(() => null);
        showError(`${body?.error?.code || `http_${resp.status}`}: ${body?.error?.message || resp.statusText}`);
        onState?.(false);
        return;
      }
      if (!resp.ok) throw new Error(`${resp.status}`);
      onState?.(true);
      backoff = 500;
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      let ev = { event: "message", data: [], id: null };
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let nl;
        while ((nl = buf.search(/\r?\n/)) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + (buf[nl] === "\r" ? 2 : 1));
          if (line === "") {
            if (ev.data.length) {
              if (ev.id !== null) lastId = ev.id;
              let data = ev.data.join("\n");
              try { data = JSON.parse(data); } catch { /* text */ }
              if (onEvent(ev.event, data, ev.id) === "stop") { reader.cancel().catch(() => {}); onState?.(false); return; }
            }
            ev = { event: "message", data: [], id: null };
            continue;
          }
          if (line.startsWith(":")) continue;
          const i = line.indexOf(":");
          const field = i < 0 ? line : line.slice(0, i);
          let val = i < 0 ? "" : line.slice(i + 1);
          if (val.startsWith(" ")) val = val.slice(1);
          if (field === "event") ev.event = val;
          else if (field === "data") ev.data.push(val);
          else if (field === "id") ev.id = val;
        }
      }
    } catch (e) {
      if (signal.aborted) break;
    }
    onState?.(false);
    if (signal.aborted) break;
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(backoff * 2, 15000);
  }
}

function setLive(on) { $("#live").classList.toggle("on", !!on); $("#live").title = on ? "live updates: connected" : "live updates: not connected"; }

// A confirmation in a real <dialog> (tests click its buttons).
function confirmDialog(text) {
  const d = $("#confirm-dialog");
  $("#confirm-text").textContent = text;
  return new Promise((resolve) => {
    d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
    d.returnValue = "";
    d.showModal();
  });
}

// ---------- JSON viewer and editor ----------
const CUT = 2048;
function jsonView(value, testid) {
  const text = JSON.stringify(value, null, 2) ?? "null";
  const pre = h("pre", { class: "json", testid });
  if (text.length > CUT) {
    pre.textContent = text.slice(0, CUT) + "\n…";
    const more = h("button", { type: "button", testid: testid ? `${testid}-all` : null, onclick: () => { pre.textContent = text; more.remove(); } }, `Show all (${(text.length / 1024).toFixed(1)} KB)`);
    return h("div", {}, pre, more);
  }
  pre.textContent = text;
  return pre;
}
function collapsible(title, value, testid, open = false) {
  return h("details", { class: "kv", open }, h("summary", {}, title), jsonView(value, testid));
}

// Where a JSON.parse error is, as "line L, column C".
function jsonProblem(text) {
  try { JSON.parse(text); return null; } catch (e) {
    let msg = e.message.replace(/^JSON\.parse: /, "");
    const m = /position (\d+)/.exec(msg);
    if (m && !/line \d+/.test(msg)) {
      const pos = Number(m[1]);
      const before = text.slice(0, pos).split("\n");
      msg += ` (line ${before.length}, column ${before[before.length - 1].length + 1})`;
    }
    return msg;
  }
}

function jsonEditor(initial, testid, onValidity) {
  const ta = h("textarea", { class: "code", spellcheck: "false", testid });
  ta.value = initial;
  const err = h("div", { class: "error", testid: testid ? `${testid}-error` : null });
  const check = () => {
    const p = ta.value.trim() === "" ? "the input is empty: write JSON, e.g. {}" : jsonProblem(ta.value);
    err.textContent = p ? `Invalid JSON: ${p}` : "";
    ta.classList.toggle("invalid", !!p);
    onValidity?.(!p);
    return !p;
  };
  ta.addEventListener("input", check);
  queueMicrotask(check);
  return { el: h("div", {}, ta, err), ta, check, value: () => JSON.parse(ta.value) };
}

// ---------- routing ----------
let viewAbort = new AbortController();
async function route() {
  viewAbort.abort();
  viewAbort = new AbortController();
  const signal = viewAbort.signal;
  setLive(false);
  clearError();
  if (signinShown) return;
  $("#main").hidden = false;
  $("#signout").hidden = !token();
  const hash = location.hash || "#/executions";
  const parts = hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const main = $("#main");
  try {
    if (parts[0] === "executions" && parts[1]) await executionView(main, parts.slice(1).join("/"), signal);
    else if (parts[0] === "definitions" && parts[1]) await definitionView(main, parts[1], signal);
    else if (parts[0] === "definitions") await definitionsView(main, signal);
    else if (parts[0] === "start") await startView(main, signal);
    else await executionsView(main, signal);
  } catch (e) {
    if (!(e instanceof ApiError)) { console.error(e); showError(String(e)); }
  }
}

// ---------- executions list ----------
const PAGE_SIZES = ["20", "50", "100"];
// A `datetime-local` value (the browser's local time) as an RFC 3339 UTC time, and back.
function localToUtc(v) {
  if (!v) return "";
  const d = new Date(v); // no offset in the text: local time
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}
function utcToLocal(v) {
  const d = v ? new Date(v) : null;
  if (!d || Number.isNaN(d.getTime())) return "";
  const p = (n, w = 2) => String(n).padStart(w, "0");
  const secs = d.getSeconds() || d.getMilliseconds() ? `:${p(d.getSeconds())}` : "";
  return `${p(d.getFullYear(), 4)}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}${secs}`;
}

async function executionsView(main, signal) {
  const q = new URLSearchParams(location.hash.split("?")[1] || "");
  const status = h("select", { testid: "filter-status" }, h("option", { value: "" }, "any status"), STATUSES.map((s) => h("option", { value: s }, s)));
  const definition = h("select", { testid: "filter-definition" }, h("option", { value: "" }, "any definition"));
  const from = h("input", { type: "datetime-local", step: "1", testid: "filter-from", title: "started at or after (your local time)" });
  const to = h("input", { type: "datetime-local", step: "1", testid: "filter-to", title: "started before (your local time)" });
  const clearTime = h("button", { type: "button", testid: "filter-clear-time", title: "any start time" }, "×");
  const pageSize = h("select", { testid: "page-size", title: "executions per page" }, PAGE_SIZES.map((n) => h("option", { value: n }, `${n} per page`)));
  const search = h("input", { placeholder: "execution id", testid: "search", size: 28 });
  const searchErr = h("span", { class: "error", testid: "search-error" });
  const tbody = h("tbody", { testid: "executions" });
  const next = h("button", { type: "button", testid: "next-page", hidden: true }, "Next page ›");
  const prev = h("button", { type: "button", testid: "prev-page", hidden: true }, "‹ Previous page");
  const first = h("button", { type: "button", testid: "first-page", hidden: true }, "« First page");
  const pageNo = h("span", { class: "muted", testid: "page-number" });
  const go = async () => {
    searchErr.textContent = "";
    const id = search.value.trim();
    if (!id) return;
    try {
      await api("GET", `/v1/executions/${enc(id)}`, undefined, { quiet: true });
      location.hash = `#/executions/${enc(id)}`;
    } catch (e) {
      searchErr.textContent = e.status === 404 ? `No execution has the id “${id}”.` : e.message;
    }
  };
  search.addEventListener("keydown", (e) => { if (e.key === "Enter") go(); });
  main.replaceChildren(
    h("h1", {}, "Executions"),
    h("div", { class: "row filters" }, "Status", status, "Definition", definition,
      h("span", { class: "range" }, "Started from", from, "to", to, clearTime),
      h("span", { class: "spacer" }), search, h("button", { type: "button", onclick: go, testid: "search-go" }, "Go"), searchErr),
    h("table", {}, h("thead", {}, h("tr", {}, ["Id", "Definition", "Version", "Status", "Started", "Updated"].map((t) => h("th", {}, t)))), tbody),
    h("div", { class: "row pager" }, first, prev, pageNo, next, h("span", { class: "spacer" }), pageSize),
  );
  status.value = q.get("status") || "";
  from.value = utcToLocal(q.get("started_after"));
  to.value = utcToLocal(q.get("started_before"));
  const limit = PAGE_SIZES.includes(q.get("limit")) ? q.get("limit") : "50";
  pageSize.value = limit;
  // The filtered definition at once (a durable function has no deployed definition to list).
  if (q.get("definition")) definition.append(h("option", { value: q.get("definition") }, q.get("definition")));
  definition.value = q.get("definition") || "";
  api("GET", "/v1/definitions").then((d) => {
    const names = [...new Set((d.items || []).map((i) => i.name))].sort();
    for (const n of names) if (n !== q.get("definition")) definition.append(h("option", { value: n }, n));
  }).catch(() => {});
  const filterChanged = () => {
    const p = new URLSearchParams();
    if (status.value) p.set("status", status.value);
    if (definition.value) p.set("definition", definition.value);
    if (localToUtc(from.value)) p.set("started_after", localToUtc(from.value));
    if (localToUtc(to.value)) p.set("started_before", localToUtc(to.value));
    if (pageSize.value !== "50") p.set("limit", pageSize.value);
    location.hash = `#/executions${p.toString() ? "?" + p : ""}`;
  };
  for (const c of [status, definition, from, to, pageSize]) c.addEventListener("change", filterChanged);
  clearTime.addEventListener("click", () => { from.value = ""; to.value = ""; filterChanged(); });

  const rows = new Map();
  const row = (x) => h("tr", { testid: `exec-row-${x.id}`, "data-id": x.id, "data-status": x.status },
    h("td", {}, h("a", { href: `#/executions/${enc(x.id)}` }, x.id)),
    h("td", {}, h("a", { href: `#/definitions/${enc(x.definition)}` }, x.definition)),
    h("td", {}, x.version), h("td", {}, badge(x.status, `status-${x.id}`)),
    h("td", {}, fmtTime(x.started_at)), h("td", {}, fmtTime(x.updated_at)));
  // The filter as the hash has it (a hand-written bad time goes to the server, which names it).
  const filterParams = () => {
    const p = new URLSearchParams();
    for (const k of ["status", "definition", "started_after", "started_before"]) if (q.get(k)) p.set(k, q.get(k));
    p.set("limit", limit);
    return p;
  };
  // Cursors of the pages before this one (for "Previous page").
  const cursors = [];
  let current = null;
  const load = async (cursor, back = false) => {
    const p = filterParams();
    if (cursor) p.set("cursor", cursor);
    const page = await api("GET", `/v1/executions?${p}`);
    if (signal.aborted) return;
    if (back) cursors.pop();
    else if (cursor) cursors.push(current);
    else cursors.length = 0;
    current = cursor;
    rows.clear();
    tbody.replaceChildren();
    for (const x of page.items || []) { const r = row(x); rows.set(x.id, r); tbody.append(r); }
    if (!page.items?.length) tbody.append(h("tr", { class: "empty", testid: "no-executions" }, h("td", { colspan: 6, class: "muted" }, "No executions.")));
    next.hidden = !page.next_cursor;
    next.onclick = () => load(page.next_cursor).catch(() => {});
    first.hidden = !cursor;
    first.onclick = () => load(null).catch(() => {});
    prev.hidden = cursors.length < 2;
    prev.onclick = () => load(cursors[cursors.length - 1], true).catch(() => {});
    pageNo.textContent = cursor || page.next_cursor ? `page ${cursors.length + 1}` : "";
    pageNo.dataset.page = String(cursors.length + 1);
  };
  await load(null);
  // Live updates: insert or update rows (new ones only on the first page).
  sse(`/v1/events?${filterParams()}`, (event, x) => {
    if (event !== "execution" || !x?.id) return;
    const old = rows.get(x.id);
    if (!old && current) return;
    const r = row(x);
    r.classList.add("flash");
    if (old) old.replaceWith(r);
    else { tbody.querySelector("tr.empty")?.remove(); tbody.prepend(r); }
    rows.set(x.id, r);
  }, signal, { onState: setLive });
}

// ---------- one execution ----------
async function executionView(main, id, signal) {
  const title = h("h1", {}, "Execution ", h("code", {}, id));
  const statusSlot = h("span");
  const actions = h("span", { class: "row" });
  const why = h("p", { class: "why", testid: "why", hidden: true });
  const graphBox = h("div", { class: "graph-wrap", testid: "graph-box" });
  const panel = h("aside", { class: "panel", testid: "node-panel", hidden: true });
  const layout = h("div", { class: "layout nopanel" }, h("div", {}, graphBox, legend()), panel);
  const meta = h("div", { class: "muted" });
  const io = h("div");
  const tbody = h("tbody", { testid: "history" });
  main.replaceChildren(title, h("div", { class: "row" }, statusSlot, actions), meta, why, layout, io,
    h("h2", {}, "History"),
    h("table", { class: "timeline" }, h("thead", {}, h("tr", {}, ["Seq", "Time", "Type", "Step / state", "Attempt", "Error"].map((t) => h("th", {}, t)))), tbody));
  title.append(statusSlot);

  let graph = null;
  let selected = null;
  let execution = null;

  const showExecution = (x, whyText) => {
    execution = x;
    statusSlot.replaceChildren(badge(x.status, "exec-status"));
    meta.replaceChildren("Definition ", h("a", { href: `#/definitions/${enc(x.definition)}` }, x.definition), ` v${x.version} · started ${fmtTime(x.started_at)} · updated ${fmtTime(x.updated_at)} · ${x.events} events`);
    const w = whyText ?? (x.error ? `${x.error.error}: ${x.error.cause ?? ""}` : null);
    why.hidden = x.status === "succeeded" || !w;
    why.textContent = w || "";
    io.replaceChildren(collapsible("Input", x.input, "exec-input"),
      x.output !== null && x.output !== undefined ? collapsible("Output", x.output, "exec-output") : "",
      x.error ? collapsible("Error", x.error, "exec-error") : "");
    actions.replaceChildren(
      h("button", { type: "button", class: "danger", testid: "cancel", disabled: TERMINAL.has(x.status), onclick: doCancel }, "Cancel (compensate)"),
      h("button", { type: "button", testid: "redrive", disabled: x.status !== "failed", onclick: doRedrive }, "Redrive"));
  };
  const draw = () => {
    if (!graph) return;
    renderGraph(graphBox, graph, { selected, onNodeClick: (n) => { selected = n.id; draw(); showNode(n); } });
    if (selected) {
      const n = graph.nodes.find((x) => x.id === selected);
      if (n) showNode(n);
    }
  };
  const loadGraph = async () => {
    try {
      graph = await api("GET", `/v1/executions/${enc(id)}/graph`, undefined, { quiet: true });
      if (signal.aborted) return;
      showExecution(graph.execution, graph.why);
      draw();
    } catch (e) {
      if (e.status === 404 && e.code !== "route_not_found") { showError(e.message); throw e; }
      const x = await api("GET", `/v1/executions/${enc(id)}`);
      showExecution(x, null);
      graphBox.replaceChildren(h("p", { class: "muted" }, `No graph: ${e.message}`));
    }
  };

  let panelKey = null;
  const showNode = (n) => {
    // Rebuilt only when the node changed, so a refresh keeps what is being typed.
    const key = JSON.stringify(n);
    if (key === panelKey && !panel.hidden) return;
    panelKey = key;
    layout.classList.remove("nopanel");
    panel.hidden = false;
    const dl = h("dl", {},
      h("dt", {}, "Type"), h("dd", { testid: "panel-type" }, n.sub_type ? `${n.type} (${n.sub_type})` : n.type),
      h("dt", {}, "State"), h("dd", { testid: "panel-state" }, n.state ? badge(n.state) : "—"),
      h("dt", {}, "Attempts"), h("dd", { testid: "panel-attempts" }, n.attempts ?? 0),
      h("dt", {}, "Started"), h("dd", {}, fmtTime(n.started_at) || "—"),
      h("dt", {}, "Ended"), h("dd", {}, fmtTime(n.ended_at) || "—"),
      n.location ? [h("dt", {}, "Location"), h("dd", {}, h("code", {}, n.location))] : "",
      n.pivot ? [h("dt", {}, "Pivot"), h("dd", {}, "yes: nothing after it is undone")] : "",
      n.iterations?.length ? [h("dt", {}, "Iterations"), h("dd", {}, `${n.iterations.length}`)] : "");
    const iterations = n.iterations?.length
      ? h("div", { class: "kv" }, h("b", {}, "Map iterations"),
        h("ol", { class: "iterations", start: 0, testid: "panel-iterations" }, n.iterations.map((it) =>
          h("li", { testid: `iteration-${it.index}`, "data-index": it.index, "data-state": it.state }, badge(it.state)))))
      : "";
    const err = n.error ? h("div", { class: "error", testid: "panel-error" }, h("b", {}, n.error.error), ": ", n.error.cause ?? "") : "";
    const callback = n.task_token && n.state === "parked" ? callbackForm(n) : "";
    panel.replaceChildren(
      h("div", { class: "row" }, h("h3", {}, n.label ?? n.id), h("span", { class: "spacer" }),
        h("button", { type: "button", onclick: () => { selected = null; panel.hidden = true; layout.classList.add("nopanel"); draw(); } }, "×")),
      dl, err, callback, iterations,
      n.input !== undefined && n.input !== null ? collapsible("Input", n.input, "panel-input", true) : "",
      n.output !== undefined && n.output !== null ? collapsible("Output", n.output, "panel-output", true) : "");
  };

  const callbackForm = (n) => {
    let valid = true;
    const send = h("button", { type: "button", class: "primary", testid: "callback-success" }, "Send success");
    const editor = jsonEditor("{}", "callback-output", (ok) => { valid = ok; send.disabled = !ok; });
    const error = h("input", { placeholder: "error, e.g. Rejected", testid: "callback-error" });
    const cause = h("input", { placeholder: "cause", testid: "callback-cause" });
    const result = h("div", { testid: "callback-result" });
    const path = (o) => `/v1/callbacks/${enc(n.task_token)}/${o}`;
    send.addEventListener("click", async () => {
      if (!valid) return;
      try {
        await api("POST", path("success"), editor.value());
        result.textContent = "Success sent.";
        refreshSoon();
      } catch { /* banner */ }
    });
    const fail = h("button", { type: "button", class: "danger", testid: "callback-failure", onclick: async () => {
      const body = {};
      if (error.value.trim()) body.error = error.value.trim();
      if (cause.value.trim()) body.cause = cause.value.trim();
      try { await api("POST", path("failure"), body); result.textContent = "Failure sent."; refreshSoon(); } catch { /* banner */ }
    } }, "Send failure");
    return h("div", { class: "card", testid: "callback" },
      h("b", {}, "Waiting for its callback"), h("p", { class: "muted" }, "The output to send (JSON):"),
      editor.el, send, h("hr"), h("div", { class: "row" }, error, cause, fail), result);
  };

  const doCancel = async () => {
    if (!(await confirmDialog(`Cancel ${id}? What it did is compensated.`))) return;
    try { await api("POST", `/v1/executions/${enc(id)}/cancel`, { reason: "cancelled from the console" }); follow(); refreshSoon(); } catch { /* banner */ }
  };
  const doRedrive = async () => {
    if (!(await confirmDialog(`Redrive ${id}? It resumes where it failed.`))) return;
    try { await api("POST", `/v1/executions/${enc(id)}/redrive`); follow(); refreshSoon(); } catch { /* banner */ }
  };

  // History timeline.
  let lastSeq = 0;
  // What an event is about: a step or state, or a durable operation (by its name) or invocation.
  const what = (e) => {
    if (e.step ?? e.state ?? e.name) return e.step ?? e.state ?? e.name;
    const f = e.fact;
    if (!f || typeof f !== "object") return "";
    const type = String(f.type ?? "").replaceAll("_", " ");
    if (f.op?.id) opNames.set(f.op.id, f.op.name ?? f.op.id);
    const id = f.op?.id ?? f.id;
    let subject = "";
    if (id) subject = type.startsWith("execution") ? "" : opNames.get(id) ?? graph?.nodes?.find((n) => n.id === id)?.label ?? id;
    else if (f.number !== undefined) subject = `invocation ${f.number}`;
    return [subject, type].filter(Boolean).join(": ");
  };
  const opNames = new Map();
  const addEvent = (e) => {
    if (e.seq <= lastSeq) return;
    lastSeq = e.seq;
    const detail = h("tr", { class: "ev-detail", hidden: true }, h("td", { colspan: 6 }, jsonView(e)));
    const err = e.error ? `${e.error.error ?? ""}${e.error.cause ? ": " + e.error.cause : ""}` : "";
    const tr = h("tr", { class: "ev", testid: `event-${e.seq}`, "data-type": e.type, onclick: () => { detail.hidden = !detail.hidden; } },
      h("td", {}, e.seq), h("td", {}, fmtTime(e.at)), h("td", {}, h("code", {}, e.type)),
      h("td", {}, what(e)), h("td", {}, e.attempt ?? ""), h("td", { class: "error" }, err));
    tbody.append(tr, detail);
  };
  const loadHistory = async () => {
    let cursor = null;
    for (let i = 0; i < 40; i++) {
      const p = new URLSearchParams({ limit: "500" });
      if (cursor) p.set("cursor", cursor);
      const page = await api("GET", `/v1/executions/${enc(id)}/history?${p}`);
      for (const e of page.events || []) addEvent(e);
      cursor = page.next_cursor;
      if (!cursor || signal.aborted) break;
    }
  };

  let timer = null;
  let pending = false;
  const refreshSoon = () => {
    // Throttled: at most one graph fetch every 400 ms.
    if (timer) { pending = true; return; }
    loadGraph().catch(() => {});
    timer = setTimeout(() => { timer = null; if (pending) { pending = false; refreshSoon(); } }, 400);
  };
  let following = null;
  const follow = () => {
    if (following && !following.signal.aborted) return;
    following = new AbortController();
    signal.addEventListener("abort", () => following.abort(), { once: true });
    const f = following;
    sse(`/v1/executions/${enc(id)}/events?follow=true&after=${lastSeq}`, (event, data) => {
      if (event === "end") {
        if (data?.id) showExecution(data, null);
        refreshSoon();
        f.abort();
        return "stop";
      }
      if (data && typeof data === "object" && data.seq) { addEvent(data); refreshSoon(); }
    }, f.signal, { onState: setLive });
  };

  await loadGraph();
  const seen = execution?.events ?? 0;
  await loadHistory();
  if (signal.aborted) return;
  // Events recorded between the graph and the history: draw them too.
  if (lastSeq > seen) await loadGraph();
  if (execution && !TERMINAL.has(execution.status)) follow();
}

// ---------- definitions ----------
async function definitionsView(main) {
  const d = await api("GET", "/v1/definitions");
  main.replaceChildren(h("h1", {}, "Definitions"),
    h("table", {}, h("thead", {}, h("tr", {}, ["Name", "Version", "Format", "Created"].map((t) => h("th", {}, t)))),
      h("tbody", { testid: "definitions" }, (d.items || []).map((x) => h("tr", { testid: `def-row-${x.name}` },
        h("td", {}, h("a", { href: `#/definitions/${enc(x.name)}` }, x.name)), h("td", {}, x.version), h("td", {}, x.format), h("td", {}, fmtTime(x.created_at)))))));
  if (!d.items?.length) main.append(h("p", { class: "muted" }, "No definitions yet: deploy one with PUT /v1/definitions/{name} or `sagaflow deploy`."));
}

// The start form (a definition's page, or #/start with a definition to pick).
function startForm(getDefinition, initialInput = "{}") {
  const start = h("button", { type: "button", class: "primary", testid: "start" }, "Start execution");
  const editor = jsonEditor(initialInput, "start-input", (ok) => { start.disabled = !ok; });
  const execId = h("input", { placeholder: "execution id (optional)", testid: "start-id", size: 30 });
  start.addEventListener("click", async () => {
    if (!editor.check()) return;
    const body = { definition: getDefinition(), input: editor.value() };
    if (execId.value.trim()) body.execution_id = execId.value.trim();
    try {
      const x = await api("POST", "/v1/executions", body);
      location.hash = `#/executions/${enc(x.id)}`;
    } catch { /* banner */ }
  });
  return h("div", { class: "card", testid: "start-form" }, h("h2", {}, "Start an execution"), h("p", { class: "muted" }, "Input (JSON):"), editor.el, h("div", { class: "row" }, execId, start));
}

async function startView(main) {
  const d = await api("GET", "/v1/definitions");
  const sel = h("select", { testid: "start-definition" }, [...new Set((d.items || []).map((i) => i.name))].map((n) => h("option", { value: n }, n)));
  main.replaceChildren(h("h1", {}, "Start an execution"), h("div", { class: "row" }, "Definition", sel), startForm(() => sel.value));
}

async function definitionView(main, name, signal) {
  const q = new URLSearchParams(location.hash.split("?")[1] || "");
  const wanted = q.get("version");
  const def = await api("GET", `/v1/definitions/${enc(name)}${wanted ? `?version=${enc(wanted)}` : ""}`);
  const latest = wanted ? (await api("GET", `/v1/definitions/${enc(name)}`)).version : def.version;
  const version = h("select", { testid: "version" });
  for (let v = latest; v >= 1; v--) version.append(h("option", { value: v }, `v${v}`));
  version.value = String(def.version);
  version.addEventListener("change", () => { location.hash = `#/definitions/${enc(name)}?version=${version.value}`; });
  const graphBox = h("div", { class: "graph-wrap", testid: "graph-box" });
  const panel = h("aside", { class: "panel", testid: "explorer", hidden: true });
  const layout = h("div", { class: "layout nopanel" }, h("div", {}, graphBox, legend()), panel);
  main.replaceChildren(h("h1", {}, "Definition ", h("code", {}, name), version, h("span", { class: "muted" }, `${def.format} · created ${fmtTime(def.created_at)}`)),
    h("p", { class: "muted" }, "Click a step to ask what happens if it fails."), layout);
  let graph = null;
  let selected = null;
  let highlight = {};
  const draw = () => graph && renderGraph(graphBox, graph, { selected, highlight, onNodeClick: (n) => { selected = n.id; highlight = {}; draw(); explorer(n); } });
  try {
    graph = await api("GET", `/v1/definitions/${enc(name)}/graph?version=${def.version}`, undefined, { quiet: true });
    draw();
  } catch (e) {
    graphBox.replaceChildren(h("p", { class: "muted" }, `No graph: ${e.message}`));
  }
  if (signal.aborted) return;

  // The failure explorer.
  const explorer = (n) => {
    let stepNode = n;
    let compDefault = null;
    if (n.type === "compensation") {
      stepNode = graph.nodes.find((x) => x.id === n.id.replace(/\/compensation$/, "")) || n;
      compDefault = stepNode.label ?? stepNode.id;
    }
    const step = stepNode.label ?? stepNode.id;
    layout.classList.remove("nopanel");
    panel.hidden = false;
    const choice = (value, label, extra) => h("label", { class: "row" }, h("input", { type: "radio", name: "fail-kind", value, testid: `fail-${value}`, checked: value === "business" }), label, extra || "");
    const bizName = h("input", { placeholder: "PaymentDeclined", value: "PaymentDeclined", testid: "fail-error-name", size: 18 });
    const compensable = graph.nodes.filter((x) => x.type === "compensation").map((x) => x.id.replace(/\/compensation$/, ""));
    const compCheck = h("input", { type: "checkbox", testid: "fail-compensation", checked: !!compDefault });
    const compStep = h("select", { testid: "fail-compensation-step" }, compensable.map((s) => h("option", { value: s }, s)));
    if (compDefault) compStep.value = compDefault;
    const result = h("div", { testid: "explain-result", class: "explain" });
    const go = h("button", { type: "button", class: "primary", testid: "explain" }, "Predict");
    go.addEventListener("click", async () => {
      const kind = panel.querySelector("input[name=fail-kind]:checked").value;
      const error = { business: bizName.value.trim(), timeout: "States.Timeout", lost: "Sagaflow.ResponseLost", exhausted: "" }[kind];
      if (kind === "business" && !error) { result.replaceChildren(h("p", { class: "error" }, "Name the business error, e.g. PaymentDeclined.")); return; }
      const body = { fail: error ? `${step}:${error}` : step, version: def.version };
      if (compCheck.checked && compStep.value) body.fail_compensation = compStep.value;
      try {
        const x = await api("POST", `/v1/definitions/${enc(name)}/explain`, body, { quiet: true });
        showExplanation(x, step, error || "States.TaskFailed", result);
      } catch (e) {
        result.replaceChildren(h("p", { class: "error" }, e.message));
      }
    });
    panel.replaceChildren(
      h("div", { class: "row" }, h("h3", {}, `What if ${step} fails?`), h("span", { class: "spacer" }),
        h("button", { type: "button", onclick: () => { selected = null; highlight = {}; panel.hidden = true; layout.classList.add("nopanel"); draw(); } }, "×")),
      h("dl", {}, h("dt", {}, "Type"), h("dd", {}, stepNode.type), stepNode.pivot ? [h("dt", {}, "Pivot"), h("dd", {}, "yes")] : "",
        stepNode.location ? [h("dt", {}, "Location"), h("dd", {}, h("code", {}, stepNode.location))] : ""),
      h("div", { class: "kv" },
        choice("business", "a business error", bizName),
        choice("timeout", "a timeout (States.Timeout)"),
        choice("lost", "a lost response (Sagaflow.ResponseLost)"),
        choice("exhausted", "its retries run out (States.TaskFailed)")),
      compensable.length ? h("label", { class: "row kv" }, compCheck, "and the compensation of", compStep, "keeps failing") : "",
      go, result);
  };

  const showExplanation = (x, step, error, result) => {
    const end = x.end || {};
    const failedStep = x.rollback?.step ?? step;
    const before = (x.succeeded || []).filter((s) => !(x.after_failure || []).includes(s));
    const items = [];
    for (const s of before) items.push(h("li", { class: "ok" }, `${s} succeeds${x.retried?.[s] ? ` after ${x.retried[s]} attempts` : ""}`));
    const attempts = x.retried?.[step] ?? 1;
    items.push(h("li", { class: "fail", testid: "explain-failure" }, `${step} fails with ${error}${attempts > 1 ? ` on each of ${attempts} attempts (retried ${attempts - 1} times)` : ""}`));
    if (x.handling?.catch) items.push(h("li", {}, `caught by ${JSON.stringify(x.handling.catch.ErrorEquals ?? x.handling.catch)} → ${x.handling.catch.Next ?? ""}`));
    (x.compensated || []).forEach((s, i) => {
      const r = x.compensation_retries?.[s];
      items.push(h("li", { class: "comp", testid: `explain-comp-${i + 1}` }, `compensation ${i + 1}: undo ${s}${r ? ` (failed ${r} time(s) first, retried)` : ""}`));
    });
    for (const s of x.after_failure || []) items.push(h("li", {}, `${s} runs${x.retried?.[s] ? ` (${x.retried[s]} attempts)` : ""}`));
    let ending;
    if (end.kind === "finished") ending = `ends ${end.status}${end.error ? ` (${end.error.error})` : ""}`;
    else if (end.kind === "retried_without_end") ending = `never ends by itself: the ${end.task} of ${end.step} is still retried after ${x.events?.length ? "25" : "many"} attempts — a human must step in`;
    else if (end.kind === "waiting") ending = "waits for a callback";
    else ending = end.kind || "?";
    items.push(h("li", { testid: "explain-end" }, ending));
    const comps = x.compensated || [];
    const sentence = `If ${step} fails with ${error}, ` +
      (attempts > 1 ? `it is tried ${attempts} times, then ` : "") +
      (comps.length ? `Sagaflow compensates ${comps.join(", then ")}, and the execution ` : x.rollback ? "nothing needs undoing, and the execution " : "the execution ") +
      `${ending}, after at most ${fmtDur(x.elapsed_ms)}.`;
    result.replaceChildren(
      h("p", { testid: "explain-summary" }, sentence),
      h("ol", { testid: "explain-steps" }, items),
      h("p", { class: "muted" }, "Longest time: ", h("b", { testid: "explain-time" }, fmtDur(x.elapsed_ms)), ` · ends: `, h("b", {}, end.status || end.kind)),
      collapsible("The dry run's JSON", x, "explain-json"));
    // On the graph: succeeded green, the failing step red, compensations violet and numbered.
    highlight = {};
    for (const s of x.succeeded || []) highlight[s] = { state: "succeeded" };
    highlight[failedStep] = { state: "failed", title: error };
    comps.forEach((s, i) => {
      const own = graph.nodes.some((n) => n.id === `${s}/compensation`);
      highlight[s] = { state: "compensated", order: own ? null : i + 1, title: `compensation ${i + 1}` };
      if (own) highlight[`${s}/compensation`] = { state: "compensated", order: i + 1, title: `compensation ${i + 1}` };
    });
    if (end.kind === "retried_without_end") highlight[end.task === "compensation" ? `${end.step}/compensation` : end.step] = { state: "stuck" };
    // ASL nodes may be keyed by path: map labels to ids.
    for (const n of graph.nodes) if (n.label && highlight[n.label] && !highlight[n.id]) highlight[n.id] = highlight[n.label];
    draw();
  };

  // Source, start form, validate box.
  main.append(startForm(() => name, "{}"));
  main.append(h("h2", {}, "Source"), h("pre", { class: "json", testid: "source" }, def.source ?? ""));
  const src = h("textarea", { class: "code", testid: "validate-source", spellcheck: "false" });
  src.value = def.source ?? "";
  const problems = h("div", { testid: "problems" });
  const vgraph = h("div", { class: "graph-wrap", testid: "validate-graph" });
  const validate = h("button", { type: "button", testid: "validate" }, "Validate");
  validate.addEventListener("click", async () => {
    try {
      const g = await api("POST", `/v1/definitions/${enc(name)}/graph`, src.value, { text: true, quiet: true });
      const ps = g.problems || [];
      problems.replaceChildren(ps.length
        ? h("ul", { class: "problems" }, ps.map((p) => h("li", { "data-code": p.code }, h("code", {}, p.code), " ", p.message, p.location ? ` (at ${p.location})` : "")))
        : h("p", { testid: "valid" }, "Valid: no problems."));
      if (g.nodes?.length) renderGraph(vgraph, g, { problems: ps });
      else vgraph.replaceChildren();
    } catch (e) {
      problems.replaceChildren(h("p", { class: "error" }, e.message));
    }
  });
  main.append(h("h2", {}, "Validate a new source"), h("p", { class: "muted" }, "Paste a new version: its problems are listed and marked on its graph (nothing is deployed)."), src, h("div", { class: "row" }, validate), problems, vgraph);
}

// ---------- boot ----------
function boot() {
  $("#banner-close").addEventListener("click", clearError);
  $("#signout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    viewAbort.abort();
    $("#signout").hidden = true;
    $("#main").replaceChildren();
    needSignIn("Signed out.");
  });
  $("#signin").addEventListener("submit", async (e) => {
    e.preventDefault();
    const t = $("#token").value.trim();
    if (!t) { $("#signin-error").textContent = "Enter a token."; return; }
    sessionStorage.setItem(TOKEN_KEY, t);
    signinShown = false;
    try {
      await api("GET", "/v1/definitions", undefined, { quiet: true });
    } catch (err) {
      if (err.status === 401) { sessionStorage.removeItem(TOKEN_KEY); return; }
    }
    $("#token").value = "";
    $("#signin").hidden = true;
    route();
  });
  window.addEventListener("hashchange", route);
  route();
}
boot();
