"""The dashboard page (GET /dashboard): one self-contained HTML document.

No external resources (the box may be offline): inline CSS and plain JavaScript that polls
/dashboard/data every 5 s and rebuilds the view with textContent (log lines are shown, never
interpreted as HTML). Sized for a laptop screen (1366x768 shows the header, the cards, the
alerts and the first agents without scrolling).
"""

PAGE = rb"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>unified-system - ObservabilityHub</title>
<style>
:root { --bg:#f4f6f8; --card:#fff; --ink:#1d2733; --muted:#5b6773; --line:#dde3e9;
        --ok:#1a7f37; --warn:#b35900; --bad:#c62828; --info:#0b5cad; --idle:#6e7781; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
       font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
header { display:flex; align-items:center; gap:14px; padding:10px 18px; background:#1d2733;
         color:#fff; }
header h1 { font-size:16px; margin:0; font-weight:600; }
header .sp { flex:1; }
.pill { display:inline-block; padding:2px 9px; border-radius:10px; font-weight:600;
        font-size:12px; background:#eef1f4; color:var(--ink); }
header .pill { background:#33414f; color:#fff; }
.st-healthy { background:var(--ok)!important; color:#fff!important; }
.st-degraded { background:var(--warn)!important; color:#fff!important; }
.st-critical { background:var(--bad)!important; color:#fff!important; }
main { padding:12px 18px; }
.cards { display:grid; grid-template-columns: 150px 1.2fr 1fr 1.3fr 1fr; gap:10px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:6px;
        padding:9px 12px; min-height:86px; }
.card h2 { margin:0 0 5px; font-size:11px; font-weight:600; color:var(--muted);
           text-transform:uppercase; letter-spacing:.04em; }
.score { font-size:40px; font-weight:700; line-height:1; }
.big { font-size:20px; font-weight:700; }
.muted { color:var(--muted); }
.chips span { display:inline-block; margin:2px 4px 2px 0; }
.bar { height:8px; background:#e7ebef; border-radius:4px; overflow:hidden; display:flex; }
.bar i { display:block; height:100%; }
.legend span { margin-right:10px; white-space:nowrap; }
.legend b { display:inline-block; width:9px; height:9px; border-radius:2px; margin-right:4px; }
section { margin-top:12px; background:var(--card); border:1px solid var(--line);
          border-radius:6px; }
section > h2 { margin:0; padding:7px 12px; font-size:12px; font-weight:600;
               border-bottom:1px solid var(--line); display:flex; gap:10px; align-items:center; }
section > h2 input { margin-left:auto; font:inherit; padding:2px 6px; width:200px; }
table { width:100%; border-collapse:collapse; }
th, td { text-align:left; padding:4px 10px; border-bottom:1px solid #eef1f4;
         white-space:nowrap; }
th { font-size:11px; color:var(--muted); font-weight:600; background:#fafbfc;
     position:sticky; top:0; }
td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; }
td.err { white-space:normal; max-width:420px; color:var(--bad); font-size:12px;
         overflow:hidden; text-overflow:ellipsis; }
tr.problem td:first-child { box-shadow: inset 3px 0 var(--bad); }
.s { display:inline-block; min-width:62px; text-align:center; padding:1px 6px;
     border-radius:9px; font-size:11px; font-weight:600; color:#fff; }
.s-active { background:var(--ok); } .s-dormant { background:var(--info); }
.s-starting,.s-stopping { background:var(--warn); } .s-failed { background:var(--bad); }
.s-stopped,.s-unknown { background:var(--idle); }
.sev-critical { color:var(--bad); font-weight:700; } .sev-warning { color:var(--warn); font-weight:700; }
.mem { display:inline-block; width:46px; height:6px; background:#e7ebef; border-radius:3px;
       margin-left:6px; vertical-align:middle; overflow:hidden; }
.mem i { display:block; height:100%; background:var(--info); }
.wrap { max-height: calc(100vh - 330px); min-height:220px; overflow:auto; }
#banner { display:none; margin:0 0 10px; padding:6px 10px; background:#fff3e0;
          border:1px solid #f0c36d; border-radius:6px; }
footer { padding:8px 18px 14px; color:var(--muted); font-size:12px; }
footer a { color:var(--info); margin-right:12px; }
.ess { color:var(--muted); font-size:11px; margin-left:4px; }
</style>
</head>
<body>
<header>
  <h1>unified-system &middot; ObservabilityHub</h1>
  <span class="pill" id="host">host</span>
  <span class="pill" id="profile">profile</span>
  <span class="pill" id="status">loading</span>
  <span class="sp"></span>
  <span id="updated" class="muted" style="color:#c9d1d9">-</span>
</header>
<main>
  <div id="banner"></div>
  <div class="cards">
    <div class="card"><h2>Health score</h2><div class="score" id="score">-</div>
      <div class="muted" id="scorenote">0-100</div></div>
    <div class="card"><h2>Agents</h2><div class="big" id="agentsbig">-</div>
      <div class="chips" id="chips"></div></div>
    <div class="card"><h2>GPU / VRAM</h2><div class="big" id="gpubig">-</div>
      <div class="muted" id="gpunote"></div></div>
    <div class="card"><h2>LLM routing split</h2><div class="bar" id="routebar"></div>
      <div class="legend" id="routelegend" style="margin-top:6px"></div>
      <div class="muted" id="routenote"></div></div>
    <div class="card"><h2>Circuit breakers</h2><div class="big" id="cbbig">-</div>
      <div class="muted" id="cbnote"></div></div>
  </div>
  <section>
    <h2>Alerts <span class="muted" id="alertcount"></span></h2>
    <table><thead><tr><th>severity</th><th>alert</th><th>state</th><th>summary</th>
      <th>since</th><th>action</th></tr></thead><tbody id="alerts"></tbody></table>
  </section>
  <section>
    <h2>Agents <span class="muted" id="agentcount"></span>
      <input id="filter" placeholder="filter: name, group, state"></h2>
    <div class="wrap"><table><thead><tr>
      <th>agent</th><th>group</th><th>state</th><th class="num">memory</th>
      <th class="num">CPU</th><th class="num">VRAM</th><th class="num">restarts</th>
      <th class="num">uptime</th><th class="num">load</th><th>last error</th>
    </tr></thead><tbody id="agents"></tbody></table></div>
  </section>
</main>
<footer>
  <span id="sources"></span><br>
  <a href="/health/summary">/health/summary</a><a href="/metrics">/metrics</a>
  <a href="/circuit_breakers">/circuit_breakers</a><a href="/debug/state">/debug/state</a>
</footer>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const COLORS = ["#0b5cad", "#8250df", "#1a7f37", "#b35900", "#6e7781", "#c62828"];
const ORDER = {failed: 0, starting: 1, stopping: 2, active: 3, dormant: 4, stopped: 5, unknown: 6};
let last = null;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function mb(b) {
  if (b === null || b === undefined) return "-";
  const m = b / 1048576;
  return m >= 1024 ? (m / 1024).toFixed(1) + " GiB" : m.toFixed(m < 10 ? 1 : 0) + " MiB";
}
function dur(s) {
  if (s === null || s === undefined) return "-";
  if (s < 1) return (s * 1000).toFixed(0) + " ms";
  if (s < 120) return s.toFixed(1) + " s";
  if (s < 7200) return (s / 60).toFixed(0) + " min";
  if (s < 172800) return (s / 3600).toFixed(1) + " h";
  return (s / 86400).toFixed(1) + " d";
}
function ago(iso) {
  if (!iso) return "-";
  return dur(Math.max(0, (Date.now() - Date.parse(iso)) / 1000)) + " ago";
}
function scoreColor(s) {
  return s === null ? "var(--muted)" : s >= 90 ? "var(--ok)" : s >= 70 ? "var(--warn)" : "var(--bad)";
}

function render(d) {
  $("host").textContent = "host " + d.host;
  $("profile").textContent = "profile " + d.profile;
  const st = $("status");
  st.textContent = d.status;
  st.className = "pill st-" + d.status;
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  const sc = $("score");
  sc.textContent = d.health_score === null ? "?" : d.health_score;
  sc.style.color = scoreColor(d.health_score);
  const ess = d.essential;
  $("scorenote").textContent = ess.up + "/" + ess.total + " essential up";

  const counts = d.counts || {};
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  $("agentsbig").textContent = total + " agents";
  const chips = $("chips");
  chips.replaceChildren();
  Object.keys(counts).sort((a, b) => (ORDER[a] ?? 9) - (ORDER[b] ?? 9)).forEach((k) => {
    const s = el("span", counts[k] + " " + k, "s s-" + k);
    chips.appendChild(s);
  });

  const g = d.gpu || {};
  if (g.available && g.gpus && g.gpus.length) {
    const used = g.gpus.reduce((a, x) => a + x.used_bytes, 0);
    const tot = g.gpus.reduce((a, x) => a + x.total_bytes, 0);
    $("gpubig").textContent = mb(used) + " / " + mb(tot);
    $("gpunote").textContent = g.gpus.map((x) => "GPU" + x.index + " " + x.name + ": " +
      (x.utilization_percent === null ? "-" : x.utilization_percent + "% busy")).join("; ");
  } else {
    $("gpubig").textContent = "no GPU";
    $("gpunote").textContent = g.reason || "";
  }

  const r = d.routing || {};
  const split = r.split || {};
  const keys = Object.keys(split);
  const sum = keys.reduce((a, k) => a + split[k], 0);
  const bar = $("routebar"), legend = $("routelegend");
  bar.replaceChildren(); legend.replaceChildren();
  keys.forEach((k, i) => {
    const w = sum ? (100 * split[k] / sum) : 0;
    const seg = el("i"); seg.style.width = w + "%"; seg.style.background = COLORS[i % COLORS.length];
    bar.appendChild(seg);
    const item = el("span"); const sw = el("b"); sw.style.background = COLORS[i % COLORS.length];
    item.appendChild(sw); item.appendChild(document.createTextNode(k + " " + w.toFixed(0) + "% (" + split[k] + ")"));
    legend.appendChild(item);
  });
  $("routenote").textContent = sum ? sum + " decisions since the last reset" :
    (r.available === false ? r.reason : (r.reason === "ok" ? "no decisions yet" : r.reason || ""));

  const cb = d.circuit_breakers || {};
  const open = cb.open || [];
  $("cbbig").textContent = cb.available ? (open.length ? open.length + " open" : "all closed") : "-";
  $("cbbig").style.color = open.length ? "var(--bad)" : "var(--ink)";
  $("cbnote").textContent = open.length ? open.map((b) => b.agent + " (" + b.state + ")").join(", ")
    : (cb.available ? "RequestCoordinator: " + ((cb.age_s ?? "-") + " s old") : (cb.reason || ""));

  const tb = $("alerts");
  tb.replaceChildren();
  const alerts = d.alerts || [];
  $("alertcount").textContent = alerts.filter((a) => a.state === "firing").length + " firing, " +
    alerts.filter((a) => a.state === "pending").length + " pending";
  if (!alerts.length) {
    const tr = el("tr"); const td = el("td", "No active alerts.", "muted"); td.colSpan = 6;
    tr.appendChild(td); tb.appendChild(tr);
  }
  alerts.forEach((a) => {
    const tr = el("tr");
    tr.appendChild(el("td", a.severity, "sev-" + a.severity));
    tr.appendChild(el("td", a.name));
    tr.appendChild(el("td", a.state));
    tr.appendChild(el("td", a.summary));
    tr.appendChild(el("td", ago(a.since)));
    const act = el("td", a.action, "muted"); act.style.whiteSpace = "normal";
    tr.appendChild(act);
    tb.appendChild(tr);
  });

  renderAgents(d);
  const src = d.collectors || {};
  $("sources").textContent = "sources: " + Object.keys(src).map((k) => {
    const s = src[k];
    let t = k + " " + (s.ok ? "ok" : "DEGRADED");
    if (s.age_s !== undefined && s.age_s !== null) t += " (" + s.age_s + " s)";
    if (k === "journal") t += " (" + s.lines + " lines, lag " + (s.lag_s ?? "-") + " s)";
    if (s.error) t += ": " + s.error;
    return t;
  }).join(" | ") + (d.stale_sources && d.stale_sources.length ? " | stale: " + d.stale_sources.join(", ") : "");
}

function renderAgents(d) {
  const f = $("filter").value.trim().toLowerCase();
  const rows = (d.agents || []).filter((a) => !f || (a.name + " " + a.group + " " + a.state).toLowerCase().includes(f));
  rows.sort((a, b) => (ORDER[a.state] ?? 9) - (ORDER[b.state] ?? 9) ||
    (b.required - a.required) || a.group.localeCompare(b.group) || a.name.localeCompare(b.name));
  $("agentcount").textContent = rows.length + " shown";
  const tb = $("agents");
  tb.replaceChildren();
  rows.forEach((a) => {
    const tr = el("tr");
    if (a.state === "failed" || (a.required && a.in_profile && a.state !== "active")) tr.className = "problem";
    const name = el("td", a.name); if (a.required) name.appendChild(el("span", "essential", "ess"));
    tr.appendChild(name);
    tr.appendChild(el("td", a.group, "muted"));
    const s = el("td"); s.appendChild(el("span", a.state, "s s-" + a.state)); tr.appendChild(s);
    const m = el("td", mb(a.memory_bytes), "num");
    if (a.memory_bytes !== null && a.memory_limit_bytes) {
      const box = el("span", null, "mem"); const fill = el("i");
      const pct = Math.min(100, 100 * a.memory_bytes / a.memory_limit_bytes);
      fill.style.width = pct + "%"; if (pct > 90) fill.style.background = "var(--bad)";
      box.appendChild(fill); m.appendChild(box);
      m.title = mb(a.memory_bytes) + " of " + mb(a.memory_limit_bytes) + " (" + a.memory_source + ")";
    }
    tr.appendChild(m);
    tr.appendChild(el("td", a.cpu_percent === null ? "-" : a.cpu_percent.toFixed(1) + " %", "num"));
    const vram = el("td", a.vram_bytes ? mb(a.vram_bytes) : "-", "num");
    if (a.vram_budget_bytes) vram.title = "budget " + mb(a.vram_budget_bytes);
    tr.appendChild(vram);
    tr.appendChild(el("td", a.restarts, "num"));
    tr.appendChild(el("td", dur(a.uptime_s), "num"));
    tr.appendChild(el("td", dur(a.startup_s), "num"));
    const e = a.last_error;
    const warn = a.log_warnings ? a.log_warnings + (a.log_warnings === 1 ? " warning" : " warnings") : "";
    const td = el("td", e ? e.message : warn, e ? "err" : "muted");
    if (e) td.title = e.at + " " + e.priority + ": " + e.message;
    tr.appendChild(td);
    tb.appendChild(tr);
  });
}

async function tick() {
  try {
    const resp = await fetch("/dashboard/data", {cache: "no-store"});
    if (!resp.ok) throw new Error("HTTP " + resp.status);
    last = await resp.json();
    $("banner").style.display = "none";
    render(last);
  } catch (e) {
    const b = $("banner");
    b.textContent = "Cannot reach the hub (" + e.message + "); showing the last data, retrying every 5 s.";
    b.style.display = "block";
  }
}
$("filter").addEventListener("input", () => { if (last) renderAgents(last); });
tick();
setInterval(tick, 5000);
</script>
</body>
</html>
"""
