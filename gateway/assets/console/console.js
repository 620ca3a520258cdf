// flashgate console. Plain JavaScript, no library: every call is an ordinary
// API call with the token the operator entered (kept in sessionStorage), and
// the live view reads GET /v1/console/stream with fetch() so the token goes
// in the Authorization header (EventSource cannot send one), resuming with
// Last-Event-ID after a drop.
"use strict";

const TOKEN_KEY = "flashgate.console.token";
const HISTORY_POINTS = 180; // samples kept per chart (3 minutes at 1/s)
const CHART_POINTS_MIN = 30;
const RECONNECT_MAX_MS = 10000;
const COLORS = {
  created: "#3fb950", replayed: "#4ea1ff", sold_out: "#f85149", limit_exceeded: "#f5b642",
  overloaded: "#db61a2", insufficient_stock: "#ff7b72", rate_limited: "#a371f7",
  sale_not_open: "#8a96a5", idempotency_key_reused: "#d29922",
};
const PALETTE = ["#56d4dd", "#e3b341", "#bc8cff", "#ff9bce", "#7ee787", "#ffa657"];

const $ = (id) => document.getElementById(id);
const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  lastEventId: null,
  alerts: new Map(), // alert id -> alert
  snapshot: null,
  history: [], // {at, rates: {outcome: n}, p50, p99, lagMs, lagRecords}
  abort: null,
  retryMs: 1000,
  reconnectTimer: null,
};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    // Through the CSSOM: the page's Content-Security-Policy refuses style
    // attributes written as markup.
    else if (key === "style") for (const [name, v] of Object.entries(value)) node.style.setProperty(name, v);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}

function fmt(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

function time(rfc3339) {
  if (!rfc3339) return "";
  const date = new Date(rfc3339);
  return date.toLocaleTimeString(undefined, { hour12: false });
}

// ---------------------------------------------------------------- the API --

async function api(method, path, body, extraHeaders) {
  const headers = Object.assign({ Authorization: "Bearer " + state.token }, extraHeaders || {});
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  if (response.status === 401) signIn("The node refused this token: " + ((json && json.detail) || response.statusText));
  return { status: response.status, ok: response.ok, json, text };
}

// ------------------------------------------------------------ sign in/out --

function signIn(message) {
  stopStream();
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  $("login").hidden = false;
  const error = $("login-error");
  error.hidden = !message;
  error.textContent = message || "";
  $("token-input").focus();
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token-input").value.trim();
  if (!token) return;
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token-input").value = "";
  $("login").hidden = true;
  startStream();
});

$("sign-out").addEventListener("click", () => signIn(null));

// ----------------------------------------------------------- live stream --

function setLink(live, text) {
  const link = $("link");
  link.classList.toggle("live", live);
  link.textContent = text;
}

function stopStream() {
  if (state.abort) state.abort.abort();
  state.abort = null;
  clearTimeout(state.reconnectTimer);
}

function scheduleReconnect(why) {
  setLink(false, "reconnecting");
  clearTimeout(state.reconnectTimer);
  state.reconnectTimer = setTimeout(startStream, state.retryMs);
  state.retryMs = Math.min(state.retryMs * 2, RECONNECT_MAX_MS);
  if (why) console.warn("console stream:", why);
}

async function startStream() {
  stopStream();
  if (!state.token) return signIn(null);
  const abort = new AbortController();
  state.abort = abort;
  const headers = { Authorization: "Bearer " + state.token, Accept: "text/event-stream" };
  if (state.lastEventId !== null) headers["Last-Event-ID"] = String(state.lastEventId);
  let response;
  try {
    response = await fetch("/v1/console/stream", { headers, signal: abort.signal, cache: "no-store" });
  } catch (error) {
    if (!abort.signal.aborted) scheduleReconnect(error);
    return;
  }
  if (response.status === 401 || response.status === 403) {
    const problem = await response.json().catch(() => ({}));
    return signIn("The node refused this token: " + (problem.detail || response.statusText));
  }
  if (!response.ok || !response.body) {
    const problem = await response.json().catch(() => ({}));
    showProblem("Live stream: " + response.status + " " + (problem.detail || response.statusText));
    return scheduleReconnect();
  }
  showProblem(null);
  setLink(true, "live");
  state.retryMs = 1000;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        dispatch(block);
      }
    }
  } catch (error) {
    if (abort.signal.aborted) return;
  }
  if (!abort.signal.aborted) scheduleReconnect("the stream ended");
}

function dispatch(block) {
  let event = "message", id = null;
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "id") id = value;
    else if (field === "retry" && /^\d+$/.test(value)) state.retryMs = Number(value);
  }
  if (id !== null && /^\d+$/.test(id)) state.lastEventId = Number(id);
  if (!data.length) return;
  let payload;
  try { payload = JSON.parse(data.join("\n")); } catch (_) { return; }
  if (event === "snapshot") onSnapshot(payload);
  else if (event === "alerts") onAlertList(payload);
  else if (event === "alert") onAlertEvent(payload);
}

// ----------------------------------------------------------------- alerts --

function onAlertList(list) {
  state.alerts.clear();
  for (const alert of [...list.recent, ...list.active]) state.alerts.set(alert.id, alert);
  renderAlerts();
}

function onAlertEvent(event) {
  state.alerts.set(event.alert.id, event.alert);
  renderAlerts();
}

function renderAlerts() {
  const all = [...state.alerts.values()].sort((a, b) => (b.started_at || "").localeCompare(a.started_at || "") || b.id.localeCompare(a.id));
  const active = all.filter((alert) => !alert.resolved_at);
  $("kpi-alerts").textContent = active.length;
  $("kpi-alerts").className = "value" + (active.some((a) => a.severity === "critical") ? " bad" : active.length ? " warn" : "");
  $("alert-count").textContent = active.length + " active · " + (all.length - active.length) + " resolved";
  const list = $("alert-list");
  list.replaceChildren(...all.slice(0, 200).map((alert) => el("li", {
    class: "alert " + (alert.resolved_at ? "resolved" : "active"),
    dataset: { kind: alert.kind, severity: alert.severity, sku: alert.sku || "" },
  },
  el("div", { class: "alert-head" },
    el("span", { class: "alert-kind" }, alert.kind),
    alert.sku ? el("span", { class: "muted" }, alert.sku) : null,
    el("span", { class: "alert-state" }, alert.resolved_at ? "resolved" : "active")),
  el("div", { class: "alert-message" }, alert.message),
  el("div", { class: "alert-time" }, "since " + time(alert.started_at) + (alert.resolved_at ? " · resolved " + time(alert.resolved_at) : "")))));
  if (!all.length) list.replaceChildren(el("li", { class: "muted" }, "No alerts."));
}

// --------------------------------------------------------------- snapshot --

function onSnapshot(snapshot) {
  state.snapshot = snapshot;
  const rates = Object.fromEntries(snapshot.orders_per_sec);
  state.history.push({
    at: snapshot.at_ms,
    rates,
    p50: snapshot.order_latency.p50_ms,
    p99: snapshot.order_latency.p99_ms,
    lagMs: snapshot.cluster.lag_ms,
    lagRecords: snapshot.cluster.lag_records,
  });
  if (state.history.length > HISTORY_POINTS) state.history.shift();
  renderKpis(snapshot, rates);
  if (snapshot.skus) renderSkus(snapshot.skus);
  renderCluster(snapshot.cluster);
  renderNode(snapshot);
  renderCharts();
}

function renderKpis(snapshot, rates) {
  const created = rates.created || 0;
  const refused = Object.entries(rates).filter(([k]) => k !== "created" && k !== "replayed").reduce((sum, [, v]) => sum + v, 0);
  $("kpi-created").textContent = fmt(created, 1);
  $("kpi-refused").textContent = fmt(refused, 1);
  const latency = snapshot.order_latency;
  $("kpi-latency").textContent = latency.p50_ms === null ? "idle" : fmt(latency.p50_ms, 2) + " · " + fmt(latency.p99_ms, 2);
  const depth = snapshot.shard_queue_depth.length ? Math.max(...snapshot.shard_queue_depth) : 0;
  $("kpi-queue").textContent = fmt(depth);
  const log = snapshot.log;
  $("kpi-log").textContent = log.commit.p99_ms === null ? "idle" : fmt(log.commit.p99_ms, 2) + " · " + fmt(log.batch_records_mean, 1);
  const cluster = snapshot.cluster;
  $("kpi-lag").textContent = cluster.peer ? fmt(cluster.lag_records) + " · " + fmt(cluster.lag_ms) + " ms" : "no peer";
  $("kpi-lag").className = "value" + (cluster.degraded ? " bad" : "");
}

function renderCluster(cluster) {
  const role = $("role");
  role.textContent = cluster.role;
  role.dataset.role = cluster.role;
  $("epoch").textContent = cluster.epoch;
  document.title = "flashgate · " + cluster.role;
  const rows = [
    ["role", cluster.role],
    ["epoch", cluster.epoch],
    ["mode", cluster.mode + (cluster.standby_loss ? " · on loss: " + cluster.standby_loss : "")],
    ["taking orders", cluster.accepting_orders ? "yes" : "no", cluster.accepting_orders ? "good" : "bad"],
    ["peer", cluster.peer ? cluster.peer.address + (cluster.peer.connected ? " (connected)" : " (not connected)") : "none", cluster.peer && !cluster.peer.connected ? "bad" : null],
    ["lag", fmt(cluster.lag_records) + " records · " + fmt(cluster.lag_ms) + " ms"],
    ["log", "last " + fmt(cluster.last_lsn) + " · durable " + fmt(cluster.durable_lsn) + (cluster.acked_lsn !== undefined && cluster.acked_lsn !== null ? " · acked " + fmt(cluster.acked_lsn) : "")],
    ["degraded", cluster.degraded ? (cluster.degraded_reason || "yes") : "no", cluster.degraded ? "bad" : "good"],
    ["fenced", cluster.role === "fenced" ? "yes" : "no", cluster.role === "fenced" ? "bad" : "good"],
    ["primary", primaryText(cluster)],
  ];
  if (cluster.handing_over) rows.push(["handover", "in progress: writes stopped", "bad"]);
  if (cluster.replica_failure) rows.push(["replica", cluster.replica_failure, "bad"]);
  $("cluster").replaceChildren(...rows.flatMap(([k, v, cls]) => [el("dt", {}, k), el("dd", { class: cls }, v)]));
  // Writes go to a primary: elsewhere the buttons say why they are off.
  const writable = cluster.role === "primary" && cluster.accepting_orders;
  for (const button of document.querySelectorAll("#new-sku, .sku-bottom button")) {
    button.disabled = !writable;
    button.title = writable ? "" : "This node takes no writes: use the primary's console";
  }
  $("promote").hidden = cluster.role !== "standby";
  $("handover").hidden = cluster.role !== "primary";
  const banner = $("standby-banner");
  if (cluster.role === "primary") {
    banner.hidden = true;
  } else {
    banner.hidden = false;
    const primary = cluster.primary && cluster.primary.http;
    banner.replaceChildren(
      el("strong", {}, cluster.role === "standby" ? "This node is a standby. " : "This node is fenced: it takes no orders. "),
      primary ? el("span", {}, "The primary is ", el("a", { href: consoleUrl(primary), id: "primary-link" }, primary), ".") : el("span", {}, "The primary is not known to this node."));
  }
}

function primaryText(cluster) {
  if (cluster.role === "primary") return "this node";
  return (cluster.primary && cluster.primary.http) || "unknown";
}

function consoleUrl(http) {
  const base = /^https?:\/\//.test(http) ? http : location.protocol + "//" + http;
  return base.replace(/\/$/, "") + "/console";
}

function renderNode(snapshot) {
  const rows = [
    ["shard queues", snapshot.shard_queue_depth.join(" · ")],
    ["log commit", snapshot.log.commit.p50_ms === null ? "idle" : "p50 " + fmt(snapshot.log.commit.p50_ms, 2) + " ms · p99 " + fmt(snapshot.log.commit.p99_ms, 2) + " ms"],
    ["log batches", fmt(snapshot.log.batches_per_sec, 1) + "/s · " + (snapshot.log.batch_records_mean === null ? "—" : fmt(snapshot.log.batch_records_mean, 1) + " records each")],
    ["storage", snapshot.storage_failure || "ok", snapshot.storage_failure ? "bad" : "good"],
    ["console streams", snapshot.streams_open],
  ];
  $("node-figures").replaceChildren(...rows.flatMap(([k, v, cls]) => [el("dt", {}, k), el("dd", { class: cls }, v)]));
}

function renderSkus(skus) {
  const list = $("sku-list");
  if (!skus.length) {
    list.replaceChildren(el("p", { class: "muted" }, "No SKUs yet. Create one with “New SKU”."));
    return;
  }
  list.replaceChildren(...skus.map((sku) => {
    const soldOut = sku.available === 0;
    const low = !soldOut && sku.available <= sku.low_stock_threshold;
    const pct = (n) => (sku.total ? (100 * n / sku.total) : 0).toFixed(2) + "%";
    const status = soldOut ? "sold-out" : low ? "low" : "selling";
    return el("div", { class: "sku " + (soldOut ? "sold-out" : low ? "low" : ""), id: "sku-" + sku.sku, dataset: { sku: sku.sku, available: sku.available } },
      el("div", { class: "sku-top" },
        el("span", { class: "sku-id" }, sku.sku),
        el("span", { class: "sku-state " + status }, soldOut ? "sold out" : low ? "low stock" : "selling"),
        el("span", { class: "sku-figures" },
          el("b", { class: "available" }, fmt(sku.available)), " available · ",
          el("b", {}, fmt(sku.reserved)), " reserved · ",
          el("b", {}, fmt(sku.sold)), " sold / ", fmt(sku.total))),
      el("div", { class: "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": sku.total, "aria-valuenow": sku.total - sku.available, title: "sold + reserved of total" },
        el("div", { class: "sold", style: { width: pct(sku.sold) } }),
        el("div", { class: "reserved", style: { width: pct(sku.reserved) } })),
      el("div", { class: "sku-bottom" },
        el("span", {}, pct(sku.total - sku.available) + " taken"),
        sku.sold_out_at ? el("span", { class: "sold-out-at" }, "sold out at " + time(sku.sold_out_at)) : null,
        el("span", {}, "low-stock at " + fmt(sku.low_stock_threshold)),
        el("span", { class: "actions" },
          el("button", { type: "button", class: "small", onclick: () => restockDialog(sku) }, "Restock"),
          el("button", { type: "button", class: "small", onclick: () => settingsDialog(sku.sku) }, "Settings"))));
  }));
}

// ----------------------------------------------------------------- charts --

function drawChart(figureId, series, options) {
  const figure = $(figureId);
  const area = figure.querySelector("svg");
  const width = 600, height = 180, top = 10, bottom = 16;
  const points = state.history.length;
  // The x axis spans at least CHART_POINTS_MIN samples, so a young page
  // draws across the chart rather than in its last pixels.
  const span = Math.min(HISTORY_POINTS, Math.max(points, CHART_POINTS_MIN));
  let max = options.min || 1;
  for (const s of series) for (const v of s.values) if (v !== null && v > max) max = v;
  max = niceCeiling(max);
  const children = [];
  for (let i = 0; i <= 3; i++) {
    const y = top + (height - top - bottom) * i / 3;
    children.push(svg("line", { class: "grid", x1: 0, x2: width, y1: y, y2: y }));
    const label = svg("text", { x: 4, y: y - 2 });
    label.textContent = fmt(max * (3 - i) / 3, max < 10 ? 2 : 0);
    children.push(label);
  }
  for (const s of series) {
    const coords = [];
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      const x = width * (i + span - points) / (span - 1);
      const y = top + (height - top - bottom) * (1 - v / max);
      coords.push(x.toFixed(1) + "," + y.toFixed(1));
    });
    children.push(svg("polyline", { points: coords.join(" "), stroke: s.color, "data-series": s.name }));
  }
  area.replaceChildren(...children);
  figure.querySelector(".legend").replaceChildren(...series.map((s) => {
    const last = s.values.length ? s.values[s.values.length - 1] : null;
    const item = el("span", { style: { "--c": s.color } }, s.name + " ", el("b", {}, last === null ? "—" : fmt(last, options.digits || 0)));
    return item;
  }));
}

function niceCeiling(v) {
  const exp = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * exp) return m * exp;
  return 10 * exp;
}

function renderCharts() {
  const outcomes = new Set();
  for (const h of state.history) for (const [k, v] of Object.entries(h.rates)) if (v > 0) outcomes.add(k);
  outcomes.add("created");
  let extra = 0;
  const orderSeries = [...outcomes].sort().map((name) => ({
    name,
    color: COLORS[name] || PALETTE[extra++ % PALETTE.length],
    values: state.history.map((h) => h.rates[name] || 0),
  }));
  drawChart("chart-orders", orderSeries, { min: 1, digits: 1 });
  drawChart("chart-latency", [
    { name: "p50", color: "#3fb950", values: state.history.map((h) => h.p50) },
    { name: "p99", color: "#f5b642", values: state.history.map((h) => h.p99) },
  ], { min: 0.1, digits: 2 });
  drawChart("chart-lag", [
    { name: "ms", color: "#a371f7", values: state.history.map((h) => h.lagMs) },
    { name: "records", color: "#56d4dd", values: state.history.map((h) => h.lagRecords) },
  ], { min: 1, digits: 0 });
}

// ------------------------------------------------------ actions + confirm --

let pending = null;

function field(label, name, value, type, hint) {
  return el("div", {},
    el("label", { for: "field-" + name }, label + (hint ? " · " + hint : "")),
    el("input", { id: "field-" + name, name, value: value === null || value === undefined ? "" : String(value), type: type || "text", spellcheck: "false" }));
}

function readFields(names) {
  const out = {};
  for (const [name, kind] of names) {
    const raw = $("field-" + name).value.trim();
    if (raw === "") continue;
    out[name] = kind === "number" && /^\d+$/.test(raw) ? Number(raw) : raw;
  }
  return out;
}

// Opens the confirmation dialog: `build` returns {method, path, body} from
// the form; nothing is sent until "Confirm", and the answer is shown as is.
function confirmAction(title, form, build, after) {
  pending = { build, after, done: false };
  $("confirm-title").textContent = title;
  $("confirm-form").replaceChildren(...form);
  $("confirm-answer-wrap").hidden = true;
  $("confirm-go").hidden = false;
  $("confirm-go").disabled = false;
  $("confirm-cancel").textContent = "Cancel";
  $("confirm").hidden = false;
  const preview = () => {
    try {
      const r = build();
      $("confirm-request").textContent = r.method + " " + r.path + (r.body ? "\n" + JSON.stringify(r.body, null, 2) : "");
    } catch (error) {
      $("confirm-request").textContent = String(error.message || error);
    }
  };
  $("confirm-form").oninput = preview;
  preview();
  const first = $("confirm-form").querySelector("input");
  (first || $("confirm-go")).focus();
}

$("confirm-cancel").addEventListener("click", () => { $("confirm").hidden = true; pending = null; });

$("confirm-go").addEventListener("click", async () => {
  if (!pending || pending.done) return;
  let request;
  try { request = pending.build(); } catch (error) { $("confirm-request").textContent = String(error.message || error); return; }
  $("confirm-go").disabled = true;
  let answer;
  try {
    answer = await api(request.method, request.path, request.body);
  } catch (error) {
    answer = { status: 0, ok: false, text: String(error) };
  }
  pending.done = true;
  $("confirm-answer-wrap").hidden = false;
  const status = $("confirm-status");
  status.textContent = answer.status ? String(answer.status) : "no answer";
  status.className = "status " + (answer.ok ? "ok" : "bad");
  $("confirm-answer").textContent = answer.json ? JSON.stringify(answer.json, null, 2) : answer.text;
  $("confirm-go").hidden = true;
  $("confirm-cancel").textContent = "Close";
  if (answer.ok && pending.after) pending.after(answer);
});

function skuPath(id) {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(id)) throw new Error("A SKU id is 1 to 64 characters of A-Z a-z 0-9 . _ -");
  return "/v1/skus/" + id;
}

$("new-sku").addEventListener("click", () => confirmAction("Create a SKU", [
  field("SKU id", "sku", "", "text"),
  field("Stock (units)", "stock", "", "number"),
  field("Per-customer limit", "per_customer_limit", "", "number", "empty: none"),
  field("Max quantity per order", "max_quantity_per_order", "", "number", "default 10"),
  field("Low-stock threshold", "low_stock_threshold", "", "number", "default 0"),
  field("Reservation TTL (s)", "reservation_ttl_secs", "", "number", "default 600"),
  field("Sale starts at", "sale_starts_at", "", "text", "RFC 3339, empty: now"),
], () => {
  const id = $("field-sku").value.trim();
  const body = readFields([["stock", "number"], ["per_customer_limit", "number"], ["max_quantity_per_order", "number"], ["low_stock_threshold", "number"], ["reservation_ttl_secs", "number"], ["sale_starts_at", "text"]]);
  return { method: "PUT", path: skuPath(id), body };
}));

function restockDialog(sku) {
  confirmAction("Restock " + sku.sku, [
    el("p", { class: "muted" }, "Now " + fmt(sku.available) + " available of " + fmt(sku.total) + "."),
    field("Units to add", "quantity", "", "number"),
  ], () => ({ method: "POST", path: skuPath(sku.sku) + "/restock", body: readFields([["quantity", "number"]]) }));
}

async function settingsDialog(id) {
  const answer = await api("GET", skuPath(id));
  if (!answer.ok) return showProblem("GET " + skuPath(id) + ": " + answer.status + " " + ((answer.json && answer.json.detail) || ""));
  const sku = answer.json;
  confirmAction("Settings of " + id, [
    el("p", { class: "muted" }, "Stock changes through Restock; the total stays " + fmt(sku.total) + "."),
    field("Per-customer limit", "per_customer_limit", sku.per_customer_limit, "number", "empty: none"),
    field("Max quantity per order", "max_quantity_per_order", sku.max_quantity_per_order, "number"),
    field("Low-stock threshold", "low_stock_threshold", sku.low_stock_threshold, "number"),
    field("Reservation TTL (s)", "reservation_ttl_secs", sku.reservation_ttl_secs, "number"),
    field("Sale starts at", "sale_starts_at", sku.sale_starts_at, "text", "RFC 3339, empty: now"),
  ], () => {
    const body = readFields([["per_customer_limit", "number"], ["max_quantity_per_order", "number"], ["low_stock_threshold", "number"], ["reservation_ttl_secs", "number"], ["sale_starts_at", "text"]]);
    body.stock = sku.total;
    return { method: "PUT", path: skuPath(id), body };
  });
}

$("promote").addEventListener("click", () => confirmAction("Promote this standby", [
  el("p", {}, "This node becomes the primary of a new epoch and fences the old primary. Do this when the primary is lost, or after a handover."),
], () => ({ method: "POST", path: "/v1/admin/promote" })));

$("handover").addEventListener("click", () => confirmAction("Hand over", [
  el("p", {}, "This primary stops taking orders and waits (at most 30 s) until the standby holds every record. Then promote the standby from its console."),
  state.snapshot && state.snapshot.cluster.peer && state.snapshot.cluster.peer.http
    ? el("p", {}, "Standby: ", el("a", { href: consoleUrl(state.snapshot.cluster.peer.http) }, state.snapshot.cluster.peer.http))
    : null,
], () => ({ method: "POST", path: "/v1/admin/handover" })));

// ----------------------------------------------------------------- report --

async function loadReport() {
  const answer = await api("GET", "/v1/admin/report", undefined, { Accept: "application/json" });
  if (!answer.ok) return showProblem("Report: " + answer.status + " " + ((answer.json && answer.json.detail) || ""));
  const report = answer.json;
  $("report-meta").textContent = "Generated " + new Date(report.generated_at).toLocaleString() + " by a " + report.role + " running since " + new Date(report.node_started_at).toLocaleString() + (report.attempts_not_per_sku ? " · " + report.attempts_not_per_sku + " attempts not counted per SKU" : "");
  $("report-hot").replaceChildren(el("strong", {}, "Hottest: "), ...report.hottest.map((h) => el("span", {}, h.sku + " · " + fmt(h.attempts_per_minute, 1) + "/min")));
  const codes = [...new Set(report.skus.flatMap((s) => Object.keys(s.refused)))].sort();
  const head = ["SKU", "total", "available", "reserved", "sold", "attempts", "created", "replayed", ...codes.map((c) => "refused: " + c.replace(/_/g, " ")), "confirmed", "cancelled", "expired unpaid", "conversion", "first order at", "sold out at", "units/min", "attempts/min"];
  const rows = report.skus.map((s) => [s.sku, s.total, s.available, s.reserved, s.sold, s.attempts, s.created, s.replayed, ...codes.map((c) => s.refused[c] || 0), s.confirmed, s.cancelled, s.expired_unpaid,
    s.conversion_percent === null ? "—" : fmt(s.conversion_percent, 1) + "%", time(s.first_order_at) || "—", time(s.sold_out_at) || "—", s.units_per_minute === null ? "—" : fmt(s.units_per_minute, 1), s.attempts_per_minute === null ? "—" : fmt(s.attempts_per_minute, 1)]);
  $("report-table").replaceChildren(
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map((r) => el("tr", { dataset: { sku: r[0] } }, ...r.map((v) => el("td", {}, typeof v === "number" ? fmt(v) : v))))));
}

$("report-load").addEventListener("click", loadReport);
$("report-csv").addEventListener("click", async () => {
  const response = await fetch("/v1/admin/report", { headers: { Authorization: "Bearer " + state.token, Accept: "text/csv" } });
  if (!response.ok) return showProblem("Report CSV: " + response.status);
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", { href: url, download: "flashgate-report.csv" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
});

for (const button of document.querySelectorAll(".tabs button[data-tab]")) {
  button.addEventListener("click", () => {
    for (const other of document.querySelectorAll(".tabs button[data-tab]")) other.classList.toggle("on", other === button);
    $("tab-live").hidden = button.dataset.tab !== "live";
    $("tab-report").hidden = button.dataset.tab !== "report";
    if (button.dataset.tab === "report") loadReport();
  });
}

function showProblem(message) {
  const banner = $("problem-banner");
  banner.hidden = !message;
  banner.textContent = message || "";
}

// ------------------------------------------------------------------ start --

renderAlerts();
if (state.token) {
  $("login").hidden = true;
  startStream();
} else {
  signIn(null);
}
