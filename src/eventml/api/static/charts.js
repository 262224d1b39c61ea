// Small SVG charts for the dashboard: no dependencies, no network.
"use strict";
const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    if (Math.abs(v) >= 1000) return (v / 1000).toFixed(v >= 10000 ? 0 : 1) + "k";
    if (Math.abs(v) >= 10 || Number.isInteger(v)) return Math.round(v).toString();
    return Math.abs(v) < 1 ? v.toFixed(2) : v.toFixed(1);
  }

  function clock(ms) {
    const d = new Date(ms);
    return d.toTimeString().slice(0, 8);
  }

  // series: [{name, color, points: [[t_ms, value|null], ...]}]
  function line(svg, series, opts) {
    opts = opts || {};
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const box = svg.getBoundingClientRect();
    const W = Math.max(box.width || 0, 320), H = Math.max(box.height || 0, 140);
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const pad = { l: 38, r: 10, t: 16, b: 20 };
    const all = series.flatMap((s) => s.points.filter((p) => p[1] !== null && p[1] !== undefined));
    svg.dataset.points = String(all.length);
    if (!all.length) {
      el("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, svg).textContent = opts.empty || "waiting for data";
      return;
    }
    const t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]));
    const peak = Math.max(...all.map((p) => p[1]));
    svg.dataset.max = String(peak);
    const top = niceMax(peak);
    const x = (t) => pad.l + (t1 > t0 ? (t - t0) / (t1 - t0) : 1) * (W - pad.l - pad.r);
    const y = (v) => H - pad.b - (v / top) * (H - pad.t - pad.b);
    const mantissa = top / Math.pow(10, Math.floor(Math.log10(top)));
    const steps = [2.5, 5].some((m) => Math.abs(mantissa - m) < 1e-6) ? 5 : 4;  // round tick values
    for (let i = 0; i <= steps; i++) {
      const v = (top * i) / steps;
      el("line", { x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v), class: "grid-line" }, svg);
      el("text", { x: pad.l - 4, y: y(v) + 3, "text-anchor": "end" }, svg).textContent = fmt(v);
    }
    el("text", { x: pad.l, y: H - 4 }, svg).textContent = clock(t0);
    el("text", { x: W - pad.r, y: H - 4, "text-anchor": "end" }, svg).textContent = clock(t1);
    let lx = pad.l;
    for (const s of series) {
      const pts = s.points.filter((p) => p[1] !== null && p[1] !== undefined);
      if (pts.length) {
        const d = pts.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
        el("path", { d, class: "series", stroke: s.color, "data-name": s.name }, svg);
        if (pts.length === 1) el("circle", { cx: x(pts[0][0]), cy: y(pts[0][1]), r: 2.5, fill: s.color }, svg);
      }
      const label = el("text", { x: lx, y: 10, class: "legend", fill: s.color }, svg);
      label.textContent = "● " + s.name;
      lx += 14 + 6.2 * (s.name.length + 2);
    }
  }

  return { line, fmt, el, NS };
})();
