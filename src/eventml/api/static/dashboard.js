// The eventml dashboard: reads /v1/dashboard/stream (Server-Sent Events over fetch, so the
// API key travels in the Authorization header), draws it, and replays dead letters.
"use strict";
(() => {
  const KEY_ITEM = "eventml.apiKey";
  const $ = (id) => document.getElementById(id);
  const state = { snap: null, seenAlerts: new Set(), dlqHeld: {}, dlqFetchedAt: {}, abort: null, retry: 0 };

  // -- the API key (sessionStorage: this tab only) ---------------------------------------
  function key() { return sessionStorage.getItem(KEY_ITEM) || ""; }
  function headers(extra) {
    const h = Object.assign({}, extra || {});
    if (key()) h["Authorization"] = "Bearer " + key();
    return h;
  }
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const v = $("api-key").value.trim();
    if (v) sessionStorage.setItem(KEY_ITEM, v);
    $("api-key").value = "";
    $("api-key").placeholder = v ? "key set for this tab" : $("api-key").placeholder;
    connect();
  });
  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_ITEM);
    $("api-key").placeholder = "eml_… (kept in this tab only)";
    connect();
  });
  if (key()) $("api-key").placeholder = "key set for this tab";

  function notice(text) { const n = $("notice"); n.textContent = text; n.hidden = !text; }
  function setStatus(text, s) { const n = $("status"); n.textContent = text; n.dataset.state = s; }

  async function errorText(r) {
    try { const b = await r.json(); return b.message || r.statusText; } catch (_) { return r.statusText; }
  }

  // -- the stream --------------------------------------------------------------------------
  async function connect() {
    if (state.abort) state.abort.abort();
    const ctrl = new AbortController();
    state.abort = ctrl;
    setStatus("connecting…", "idle");
    try {
      const r = await fetch("/v1/dashboard/stream", { headers: headers({ Accept: "text/event-stream" }), signal: ctrl.signal, cache: "no-store" });
      if (!r.ok) {
        const msg = await errorText(r);
        const auth = r.status === 401 || r.status === 403;
        setStatus(auth ? "needs an API key (read:*)" : "error " + r.status, "error");
        notice(auth ? `This service checks API keys: paste one with the scope read:* above (an admin key also replays dead letters). The server said: ${msg}` : msg);
        return;
      }
      setStatus("live", "live");
      notice("");
      state.retry = 0;
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut); buf = buf.slice(cut + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
          if (data) render(JSON.parse(data));
        }
      }
    } catch (e) {
      if (ctrl.signal.aborted) return;
      setStatus("disconnected", "error");
    }
    if (state.abort === ctrl) {  // ended or failed: reconnect with backoff
      state.retry = Math.min(state.retry + 1, 5);
      setTimeout(() => { if (state.abort === ctrl) connect(); }, 500 * state.retry);
    }
  }

  // -- drawing -----------------------------------------------------------------------------
  const COLORS = ["#2f6fdd", "#d64545", "#1f9d55", "#d97706", "#7c3aed", "#0891b2", "#be185d"];
  const fmt = Charts.fmt;

  function cell(tr, text, cls) { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; tr.appendChild(td); return td; }
  function rows(tbody, items, fill) {
    tbody.textContent = "";
    for (const it of items) { const tr = document.createElement("tr"); fill(tr, it); tbody.appendChild(tr); }
  }

  function inputTopics(s) {
    if (s.graph) return [...new Set(s.graph.edges.filter((e) => e.direction === "out_of" && !e.topic.startsWith(s.graph.app + "-")).map((e) => e.topic))];
    return s.topics.filter((t) => !t.topic.startsWith("_") && !t.topic.endsWith(".dlq")).map((t) => t.topic);
  }

  function render(s) {
    state.snap = s;
    const rate = Object.fromEntries(s.topics.map((t) => [t.topic, t.rate_eps]));
    const ins = inputTopics(s), alerts = s.alerts.topics;
    const sum = (names) => names.reduce((a, n) => a + (rate[n] || 0), 0);
    $("throughput-in").textContent = fmt(sum(ins));
    $("throughput-alerts").textContent = fmt(sum(alerts));
    $("alerts-total").textContent = fmt(s.alerts.total);
    $("alert-topics").textContent = alerts.join(", ");
    $("app-name").textContent = s.graph ? `app ${s.graph.app}` : "(no app given: serve with --app)";

    const shown = [...ins, ...alerts].slice(0, COLORS.length);
    Charts.line($("throughput-chart"), shown.map((name, i) => ({
      name: name + " /s", color: COLORS[i], points: s.series.map((p) => [p.at_ms, p.rates[name] ?? null]),
    })), { empty: "rates appear after two samples" });
    rows($("topics-table").tBodies[0], s.topics.filter((t) => !t.topic.startsWith("_")), (tr, t) => {
      cell(tr, t.topic); cell(tr, t.end_offset.toLocaleString(), "num"); cell(tr, fmt(t.rate_eps), "num");
    });

    renderLatency(s);
    rows($("lag-table").tBodies[0], s.groups, (tr, g) => {
      cell(tr, g.group); cell(tr, g.topic); cell(tr, g.lag === null ? "–" : g.lag.toLocaleString(), "num");
      cell(tr, fmt(g.rate_eps), "num"); cell(tr, fmt(g.time_lag_ms), "num");
    });

    renderAlerts(s);
    renderModels(s);
    renderTopology(s);
    renderDeadLetters(s);
    $("errors").textContent = s.errors.length ? "Sampling problems: " + s.errors.join("; ") : `sampled ${new Date(s.at_ms).toLocaleTimeString()}`;
  }

  // Processing latency (from the workers' metrics) when the service scrapes them, else the
  // consumer group's time lag; the time lag's current value as a small figure either way.
  function renderLatency(s) {
    const w = s.workers, last = s.series[s.series.length - 1] || {}, chart = $("latency-chart");
    const PCTS = [["p50", COLORS[2]], ["p95", COLORS[3]], ["p99", COLORS[1]]];
    const figures = w ? w.processing : last;
    for (const [p] of PCTS) $("latency-" + p).textContent = fmt(figures[p + "_ms"]);
    $("time-lag").textContent = fmt(last.time_lag_ms);
    chart.dataset.kind = w ? "processing" : "time-lag";
    const prefix = w ? "processing_" : "";
    Charts.line(chart, PCTS.map(([p, color]) => ({
      name: p + " ms", color, points: s.series.map((pt) => [pt.at_ms, pt[prefix + p + "_ms"]]),
    })), { empty: w ? "waiting for the workers' batches" : "no consumer group to measure yet" });
    const status = $("workers-status");
    status.textContent = "";
    if (!w) {
      $("latency-kind").textContent = "time lag";
      $("latency-measures").textContent = "Measures " + s.latency_measures + ".";
      status.append("For processing latency, run the workers with ");
      const run = document.createElement("code"); run.textContent = "eventml run --metrics-port PORT";
      const serve = document.createElement("code"); serve.textContent = "eventml serve --worker-metrics URL";
      status.append(run, " and serve with ", serve, " (one per worker).");
      return;
    }
    const batches = w.processing.batches, lag = s.latency_measures;
    $("latency-kind").textContent = "processing, per batch";
    $("latency-measures").textContent = `Processing latency: ${w.processing_measures}. ${lag.charAt(0).toUpperCase() + lag.slice(1)}.`;
    const up = w.endpoints.filter((e) => e.up).length;
    status.append(`Workers ${up}/${w.endpoints.length} up: `);
    w.endpoints.forEach((e, i) => {
      const span = document.createElement("span");
      span.className = "worker " + (e.up ? "up" : "down");
      span.textContent = (e.up ? "● " : "○ ") + (e.app ? `${e.app} #${e.worker}` : e.url) + (e.up ? "" : " down");
      span.title = e.url + (e.error ? ": " + e.error : "");
      if (i) status.append(" · ");
      status.append(span);
      if (!e.up && e.error) status.append(` (${e.error})`);
    });
    status.append(` · ${batches} batch${batches === 1 ? "" : "es"} in the last sample`);
  }

  function renderAlerts(s) {
    const feed = $("alerts-feed");
    feed.textContent = "";
    for (const a of s.alerts.recent) {
      const li = document.createElement("li");
      const id = `${a.topic}:${a.partition}:${a.offset}`;
      if (!state.seenAlerts.has(id)) { li.className = "new"; state.seenAlerts.add(id); }
      const v = a.value && typeof a.value === "object" ? a.value : {};
      const score = document.createElement("span"); score.className = "score";
      score.textContent = v.score !== undefined ? Number(v.score).toFixed(3) : "alert";
      li.appendChild(score);
      li.append(` ${v.card_id || a.key || ""} `);
      const tag = document.createElement("span"); tag.className = "tag";
      tag.textContent = v.transaction_id || a.id || `${a.partition}:${a.offset}`;
      li.appendChild(tag);
      if (v.model_version !== undefined) { const t = document.createElement("span"); t.className = "tag"; t.textContent = "v" + v.model_version; li.appendChild(t); }
      li.dataset.alertId = id;
      feed.appendChild(li);
    }
    if (!s.alerts.recent.length) { const li = document.createElement("li"); li.className = "muted"; li.textContent = s.alerts.topics.length ? "no alerts yet" : "no alert topic (an output topic named *alert*)"; feed.appendChild(li); }
  }

  function renderModels(s) {
    const w = s.workers;
    $("model-latency").hidden = !w;
    if (w) {
      $("model-latency-window").textContent = "(" + w.models_measure + ")";
      if (!w.models.length) rows($("model-latency-table").tBodies[0], [0], (tr) => { const c = cell(tr, "no model calls in the window (models scored by stream.predict report here)"); c.colSpan = 5; c.className = "muted"; });
      else rows($("model-latency-table").tBodies[0], w.models, (tr, m) => {
        cell(tr, m.model); cell(tr, /^\d+$/.test(m.version) ? "v" + m.version : m.version); cell(tr, String(m.calls), "num");
        cell(tr, fmt(m.p50_ms), "num"); cell(tr, fmt(m.p99_ms), "num");
      });
    }
    rows($("models-table").tBodies[0], s.models, (tr, m) => {
      cell(tr, m.name); cell(tr, String(m.versions), "num");
      cell(tr, Object.entries(m.aliases || {}).map(([a, v]) => `${a}→v${v}`).join(", ") || "–");
    });
    if (!s.models.length) rows($("models-table").tBodies[0], [0], (tr) => { const c = cell(tr, "no models registered"); c.colSpan = 3; c.className = "muted"; });
    if (!s.predictions.length) rows($("predictions-table").tBodies[0], [0], (tr) => { const c = cell(tr, "no prediction log (stream.predict(..., predictions=...))"); c.colSpan = 6; c.className = "muted"; });
    else rows($("predictions-table").tBodies[0], s.predictions, (tr, p) => {
      cell(tr, p.model); cell(tr, p.version === null ? "–" : "v" + p.version); cell(tr, p.role);
      cell(tr, String(p.predictions), "num"); cell(tr, p.mean_score.toFixed(3), "num"); cell(tr, (100 * p.decision_rate).toFixed(1) + "%", "num");
    });
    const feed = $("drift-feed");
    feed.textContent = "";
    const items = [
      ...s.drift.map((d) => ({ tag: "drift", text: `${d.model}: ${d.kind} drift, ${d.statistic} ${fmt(d.value)} > ${fmt(d.threshold)}${d.feature ? " on " + d.feature : ""}` })),
      ...s.alias_changes.map((c) => ({ tag: "alias", text: `${c.model}@${c.alias} → v${c.version}${c.previous ? " (was v" + c.previous + ")" : ""}${c.reason ? ": " + c.reason : ""}` })),
    ];
    for (const it of items) {
      const li = document.createElement("li");
      const t = document.createElement("span"); t.className = "tag " + it.tag; t.textContent = it.tag;
      li.appendChild(t); li.append(" " + it.text); feed.appendChild(li);
    }
    if (!items.length) { const li = document.createElement("li"); li.className = "muted"; li.textContent = "no drift alarms or alias changes"; feed.appendChild(li); }
  }

  // "fraud_app.<locals>.card_features state=cards" -> "card_features"
  function shortName(detail) {
    const fn = (detail || "").split(" ")[0];
    return fn.split(".").pop();
  }

  function renderTopology(s) {
    const svg = $("topology");
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    if (!s.graph) {
      svg.setAttribute("viewBox", "0 0 600 40"); svg.setAttribute("width", "600");
      Charts.el("text", { x: 10, y: 24 }, svg).textContent = "Serve with an app (eventml serve --app module:app) to see its topology.";
      return;
    }
    const el = Charts.el;
    const BW = 150, BH = 40, CW = 205, RH = 58;
    const byLayer = {};
    for (const n of s.graph.nodes) (byLayer[n.layer] = byLayer[n.layer] || []).push(n);
    const pos = {};
    let rowsMax = 0;
    for (const [layer, nodes] of Object.entries(byLayer)) {
      nodes.forEach((n, i) => { pos[n.id] = { x: 10 + Number(layer) * CW, y: 10 + i * RH }; });
      rowsMax = Math.max(rowsMax, nodes.length);
    }
    const W = 10 + (Math.max(...s.graph.nodes.map((n) => n.layer)) + 1) * CW, H = 20 + rowsMax * RH;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`); svg.setAttribute("width", "100%");
    svg.style.maxWidth = W + "px";  // shrinks to the card, never grows past its natural size
    const marker = el("marker", { id: "arrow", viewBox: "0 0 8 8", refX: 8, refY: 4, markerWidth: 7, markerHeight: 7, orient: "auto" }, el("defs", {}, svg));
    el("path", { d: "M0,0 L8,4 L0,8 z", fill: "#aab2c5" }, marker);
    for (const e of s.graph.edges) {
      const a = pos[e.source], b = pos[e.target];
      if (!a || !b) continue;
      const x1 = a.x + BW, y1 = a.y + BH / 2, x2 = b.x, y2 = b.y + BH / 2, mx = (x1 + x2) / 2;
      el("path", { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2 - 2},${y2}`, class: "edge" + (e.rate_eps > 0 ? " busy" : ""), "marker-end": "url(#arrow)" }, svg);
      if (e.topic) {
        const t = el("text", { x: mx, y: (y1 + y2) / 2 - 4, "text-anchor": "middle", class: "rate", "data-edge": `${e.source}->${e.target}` }, svg);
        t.textContent = e.rate_eps === null ? "–" : `${fmt(e.rate_eps)}/s`;
      }
    }
    for (const n of s.graph.nodes) {
      const p = pos[n.id];
      const g = el("g", { class: "node " + n.kind, transform: `translate(${p.x},${p.y})` }, svg);
      el("title", {}, g).textContent = `${n.kind} ${n.id}${n.detail ? ": " + n.detail : ""}`;
      el("rect", { width: BW, height: BH }, g);
      el("text", { x: 8, y: 14, class: "kind" }, g).textContent = n.kind === "operator" ? n.label : n.kind;
      const label = n.kind === "operator" || n.kind === "sink" ? shortName(n.detail) || n.label : n.label;
      el("text", { x: 8, y: 31 }, g).textContent = label.length > 22 ? label.slice(0, 21) + "…" : label;
    }
  }

  // -- dead letters ------------------------------------------------------------------------
  function b64text(v) {
    if (v === null || v === undefined) return "∅";
    try { return new TextDecoder().decode(Uint8Array.from(atob(v), (c) => c.charCodeAt(0))); } catch (_) { return v; }
  }

  function renderDeadLetters(s) {
    const root = $("dlq-topics");
    if (!s.dead_letters.length) { root.textContent = "No dead-letter topics."; return; }
    if (root.textContent === "No dead-letter topics.") root.textContent = "";
    for (const d of s.dead_letters) {
      const now = Date.now();
      if (state.dlqHeld[d.topic] !== d.held || now - (state.dlqFetchedAt[d.topic] || 0) > 15000) {
        state.dlqHeld[d.topic] = d.held; state.dlqFetchedAt[d.topic] = now;
        loadDeadLetters(d.topic);
      }
    }
  }

  function dlqBlock(topic) {
    const id = "dlq-" + topic.replace(/[^a-zA-Z0-9_-]/g, "_");
    let block = document.getElementById(id);
    if (!block) {
      block = document.createElement("div"); block.className = "dlq-block"; block.id = id; block.dataset.topic = topic;
      $("dlq-topics").appendChild(block);
    }
    return block;
  }

  async function loadDeadLetters(topic) {
    const block = dlqBlock(topic);
    const r = await fetch(`/v1/topics/${encodeURIComponent(topic)}/dlq?limit=50`, { headers: headers(), cache: "no-store" });
    block.textContent = "";
    const h = document.createElement("h3"); h.textContent = `${topic}.dlq`; block.appendChild(h);
    if (!r.ok) { const p = document.createElement("p"); p.className = "problem"; p.textContent = await errorText(r); block.appendChild(p); return; }
    const page = await r.json();
    const table = document.createElement("table"); table.className = "table";
    table.className = "table dlq-table";
    table.innerHTML = "<colgroup><col class='c-id'><col class='c-err'><col class='c-val'><col class='c-act'></colgroup>" +
      "<thead><tr><th>id</th><th>error</th><th>original value</th><th></th></tr></thead><tbody></tbody>";
    rows(table.tBodies[0], page.dead_letters, (tr, d) => {
      tr.dataset.dlqId = d.id;
      cell(tr, d.id);
      const err = d.error ? `${d.error.class.split(".").pop()}: ${d.error.message}` : (d.problem || "");
      cell(tr, err.length > 200 ? err.slice(0, 199) + "…" : err, d.problem ? "problem" : "").title = err;
      const v = b64text(d.value); cell(tr, v.length > 90 ? v.slice(0, 89) + "…" : v).title = v;
      const td = cell(tr, "");
      if (d.replayed) { td.className = "replayed"; td.textContent = "replayed"; return; }
      const btn = document.createElement("button"); btn.textContent = "Replay"; btn.className = "replay-btn";
      btn.addEventListener("click", () => replay(topic, d.id, td, btn));
      td.appendChild(btn);
    });
    if (!page.dead_letters.length) rows(table.tBodies[0], [0], (tr) => { cell(tr, "none held").colSpan = 4; });
    block.appendChild(table);
  }

  async function replay(topic, id, td, btn) {
    btn.disabled = true; btn.textContent = "Replaying…";
    const r = await fetch(`/v1/topics/${encodeURIComponent(topic)}/dlq/replay`, {
      method: "POST", headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify({ ids: [id] }),
    });
    if (!r.ok) {
      btn.disabled = false; btn.textContent = "Replay";
      const msg = document.createElement("div"); msg.className = "problem"; msg.textContent = await errorText(r);
      td.appendChild(msg);
      return;
    }
    const body = await r.json();
    td.textContent = ""; td.className = "replayed";
    const where = Object.entries(body.replayed).map(([t, n]) => `${n} → ${t}`).join(", ");
    td.textContent = body.total ? `replayed (${where})` : "replayed already";
    td.dataset.replayed = "true";
  }

  connect();
})();
