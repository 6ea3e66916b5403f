// edgefleet fleet UI: a static single page over /api/v1. No build step, no network beyond the server.
const REFRESH_MS = 2000;
const OPERATOR_ROLES = new Set(["operator", "admin"]);
const main = document.getElementById("main");
const session = { token: sessionStorage.getItem("ef.token"), me: null, project: sessionStorage.getItem("ef.project") };
let current = null; // the mounted page: { refresh(), destroy?() }
let timer = null;
const samples = new Map(); // device id -> [{t, series...}] gathered while the page is open

const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const pill = (v) => `<span class="pill st-${esc(v)}">${esc(v)}</span>`;
const labels = (l) => Object.entries(l || {}).map(([k, v]) => `<span class="label">${esc(k)}=${esc(v)}</span>`).join("");
const ago = (ts) => {
  if (!ts) return "never";
  const s = (Date.now() - Date.parse(String(ts).replace(" ", "T"))) / 1000;
  if (s < 60) return `${Math.max(0, Math.round(s))} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
};
const fmt = (v) => (v === null || v === undefined ? "–" : typeof v === "number" ? +v.toFixed(4) : esc(v));
const canOperate = () => session.me && OPERATOR_ROLES.has(session.me.role);
const proj = (p) => `/api/v1/projects/${encodeURIComponent(session.project)}${p}`;

class ApiError extends Error {}

async function api(path, opts = {}) {
  const headers = { Authorization: `Bearer ${session.token}`, ...(opts.body ? { "Content-Type": "application/json" } : {}) };
  const r = await fetch(path, { ...opts, headers });
  if (r.status === 401) { signOut("Your token was refused (401). Sign in again."); throw new ApiError("unauthorized"); }
  const data = r.headers.get("content-type")?.includes("json") ? await r.json() : null;
  if (!r.ok) throw new ApiError(data?.error ? `${data.error.code}: ${data.error.message}` : `HTTP ${r.status}`);
  return data;
}

function setStatus(text, bad = false) {
  const el = document.getElementById("status");
  el.textContent = text;
  el.style.color = bad ? "var(--bad)" : "";
}

// ---- sign-in -------------------------------------------------------------------------------
function signOut(message = "") {
  sessionStorage.removeItem("ef.token");
  session.token = null; session.me = null;
  document.getElementById("nav").hidden = true;
  document.getElementById("who").innerHTML = "";
  showSignIn(message);
}

function showSignIn(message = "") {
  stop();
  main.innerHTML = `<form class="signin" id="signin">
    <h1>Sign in</h1>
    <p class="muted">Paste a management API token (<span class="mono">efk_…</span>). It stays in this tab only.</p>
    <input id="token" name="token" type="password" autocomplete="off" placeholder="efk_..." required>
    <div class="error" id="signin-error">${esc(message)}</div>
    <button type="submit" id="signin-button">Sign in</button></form>`;
  document.getElementById("signin").addEventListener("submit", async (e) => {
    e.preventDefault();
    session.token = document.getElementById("token").value.trim();
    try { await start(); } catch (err) { if (!(err instanceof ApiError)) throw err; document.getElementById("signin-error").textContent = err.message; }
  });
}

async function start() {
  session.me = await api("/api/v1/whoami");
  sessionStorage.setItem("ef.token", session.token);
  if (session.me.project) session.project = session.me.project;
  if (!session.project) {
    const projects = await api("/api/v1/projects");
    session.project = projects.length ? projects[0].id : "default";
  }
  sessionStorage.setItem("ef.project", session.project);
  document.getElementById("nav").hidden = false;
  document.getElementById("who").innerHTML =
    `<span data-testid="whoami">${esc(session.me.name)} · <b>${esc(session.me.role)}</b> · project ${esc(session.project)}</span>
     <button class="plain" id="signout">Sign out</button>`;
  document.getElementById("signout").onclick = () => signOut();
  route();
}

// ---- routing and live refresh -----------------------------------------------------------------
function stop() { if (timer) clearInterval(timer); timer = null; current?.destroy?.(); current = null; }

function route() {
  if (!session.me) return;
  stop();
  const parts = (location.hash.replace(/^#\/?/, "") || "").split("/").map(decodeURIComponent);
  const pages = { "": overview, devices: parts[1] ? () => device(parts[1]) : devices, bundles, deployments, rollouts: () => rollout(parts[1]) };
  const page = pages[parts[0]] || overview;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.getAttribute("href") === `#/${parts[0]}`);
  current = page();
  const tick = async () => {
    try { await current?.refresh(); setStatus(`updated ${new Date().toLocaleTimeString()} · refreshing every ${REFRESH_MS / 1000} s`); }
    catch (err) { if (!(err instanceof ApiError)) throw err; setStatus(err.message, true); }
  };
  tick();
  timer = setInterval(tick, REFRESH_MS);
}
window.addEventListener("hashchange", route);

// ---- pages ---------------------------------------------------------------------------------------
function overview() {
  main.innerHTML = `<h1>Fleet overview</h1><div class="cards" id="by-status"></div>
    <div class="grid2"><div><h2>Alerts</h2><div id="alerts"></div></div>
    <div><h2>Versions in the field</h2><div id="versions"></div></div></div>
    <h2>Active and halted rollouts</h2><div id="rollouts"></div>`;
  return {
    async refresh() {
      const [sum, deps] = await Promise.all([api(proj("/fleet-summary")), api(proj("/deployments"))]);
      const depName = Object.fromEntries(deps.map((d) => [d.id, d.name]));
      const total = Object.values(sum.devices).reduce((a, b) => a + b, 0);
      document.getElementById("by-status").innerHTML = [["total", total], ...["online", "offline", "new", "decommissioned"].map((s) => [s, sum.devices[s] || 0])]
        .map(([k, v]) => `<div class="card" data-testid="status-${k}"><div class="lbl">${k}</div><div class="big">${v}</div></div>`).join("");
      const alerts = [
        ...sum.crash_loops.map((c) => `<div class="alert" data-testid="alert-crash"><b>crash loop</b> <a href="#/devices/${esc(c.id)}">${esc(c.name)}</a> · ${esc(c.deployment)} · ${c.crash_loops} restarts</div>`),
        ...sum.offline.map((d) => `<div class="alert warn" data-testid="alert-offline"><b>offline</b> <a href="#/devices/${esc(d.id)}">${esc(d.name)}</a> · last seen ${ago(d.last_seen_at)}</div>`),
        ...sum.rollouts.filter((r) => r.phase === "paused" || r.phase === "aborted").map((r) => `<div class="alert" data-testid="alert-gate"><b>rollout ${esc(r.phase)}</b> <a href="#/rollouts/${esc(r.id)}">${esc(depName[r.deployment_id] || r.deployment_id)}</a> · ${esc(r.reason)}</div>`),
      ];
      document.getElementById("alerts").innerHTML = alerts.join("") || `<p class="muted">No alerts.</p>`;
      document.getElementById("versions").innerHTML = sum.versions.length
        ? `<table><tr><th>deployment</th><th>version</th><th>devices</th></tr>${sum.versions.map((v) => `<tr><td>${esc(v.deployment)}</td><td>${esc(v.version)}</td><td>${v.devices}</td></tr>`).join("")}</table>`
        : `<p class="muted">No device reports a workload yet.</p>`;
      document.getElementById("rollouts").innerHTML = sum.rollouts.length
        ? `<table><tr><th>deployment</th><th>phase</th><th>reason</th><th>updated</th></tr>${sum.rollouts.map((r) => `<tr class="link" data-href="#/rollouts/${esc(r.id)}"><td>${esc(depName[r.deployment_id] || r.deployment_id)}</td><td>${pill(r.phase)}</td><td>${esc(r.reason)}</td><td>${ago(r.updated_at)}</td></tr>`).join("")}</table>`
        : `<p class="muted">No rollout in progress.</p>`;
      linkRows();
    },
  };
}

function linkRows() {
  for (const tr of main.querySelectorAll("tr.link")) tr.onclick = () => { location.hash = tr.dataset.href; };
}

function devices() {
  const q = new URLSearchParams(location.hash.split("?")[1] || "");
  main.innerHTML = `<h1>Devices</h1><div class="toolbar">
    <input id="selector" size="34" placeholder="label selector, e.g. site=lab,tier!=dev" value="${esc(q.get("selector") || "")}">
    <select id="status-filter"><option value="">any status</option>${["online", "offline", "new", "decommissioned"].map((s) => `<option>${s}</option>`).join("")}</select>
    <input id="search" placeholder="search name or id">
    <span class="muted" id="count"></span></div><div class="error" id="devices-error"></div><div id="table"></div>`;
  const sel = document.getElementById("selector"), st = document.getElementById("status-filter"), search = document.getElementById("search");
  const page = {
    async refresh() {
      const params = new URLSearchParams({ limit: "500" });
      if (sel.value.trim()) params.set("selector", sel.value.trim());
      if (st.value) params.set("status", st.value);
      let data;
      try { data = await api(proj(`/devices?${params}`)); document.getElementById("devices-error").textContent = ""; }
      catch (err) { document.getElementById("devices-error").textContent = err.message; throw err; }
      const needle = search.value.trim().toLowerCase();
      const rows = data.items.filter((d) => !needle || d.name.toLowerCase().includes(needle) || d.id.includes(needle));
      document.getElementById("count").textContent = `${rows.length} device${rows.length === 1 ? "" : "s"}${data.next_cursor ? " (first 500)" : ""}`;
      document.getElementById("table").innerHTML = `<table data-testid="devices-table"><tr><th>name</th><th>id</th><th>status</th><th>labels</th><th>revision (desired / reported)</th><th>last seen</th></tr>${rows
        .map((d) => `<tr class="link" data-href="#/devices/${esc(d.id)}" data-testid="device-row"><td>${esc(d.name)}</td><td class="mono">${esc(d.id)}</td><td>${pill(d.status)}</td><td>${labels(d.labels)}</td><td>${d.desired_revision} / ${d.reported_revision ?? "–"}</td><td>${ago(d.last_seen_at)}</td></tr>`)
        .join("")}</table>`;
      linkRows();
    },
  };
  let debounce = null;
  for (const el of [sel, st, search]) el.addEventListener("input", () => { clearTimeout(debounce); debounce = setTimeout(() => page.refresh().catch(() => {}), 250); });
  return page;
}

function device(id) {
  main.innerHTML = `<h1>Device <span id="dev-name"></span></h1><div id="dev-head"></div>
    <h2>Workloads and health</h2><div id="workloads"></div>
    <h2>Reported metrics <span class="muted">(sampled while this page is open)</span></h2><div class="grid2" id="charts"></div>
    <div class="grid2"><div><h2>Inventory</h2><pre id="inventory"></pre></div><div><h2>Recent events</h2><div id="events"></div></div></div>
    <h2>Logs <span class="muted">(agent and workloads, newest last)</span></h2><pre class="logs" id="logs" data-testid="device-logs"></pre>`;
  const plots = new Map();
  const logs = { cursor: null, lines: [] };
  const series = samples.get(id) || [];
  samples.set(id, series);
  return {
    destroy() { for (const p of plots.values()) p.destroy(); },
    async refresh() {
      const logPath = `/devices/${encodeURIComponent(id)}/logs?` + (logs.cursor === null ? "limit=200" : `after=${logs.cursor}&limit=1000`);
      const [d, ev, lg] = await Promise.all([
        api(proj(`/devices/${encodeURIComponent(id)}`)),
        api(proj(`/devices/${encodeURIComponent(id)}/events?limit=50`)),
        api(proj(logPath)),
      ]);
      if (lg.cursor !== null) logs.cursor = lg.cursor;
      logs.lines.push(...lg.items.map((l) => `${String(l.ts).replace("T", " ").slice(0, 19)}  ${l.source === "workload" ? l.workload : "agent"}  ${l.level ?? ""}  ${l.message}`));
      logs.lines.splice(0, Math.max(0, logs.lines.length - 500));
      const box = document.getElementById("logs");
      const atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
      box.textContent = logs.lines.length ? logs.lines.join("\n") : "No logs shipped yet.";
      if (atEnd) box.scrollTop = box.scrollHeight;
      document.getElementById("dev-name").textContent = d.name;
      document.getElementById("dev-head").innerHTML = `<div class="cards">
        <div class="card"><div class="lbl">status</div><div data-testid="device-status">${pill(d.status)}</div></div>
        <div class="card"><div class="lbl">id</div><div class="mono">${esc(d.id)}</div></div>
        <div class="card"><div class="lbl">labels</div>${labels(d.labels) || "–"}</div>
        <div class="card"><div class="lbl">last seen</div>${ago(d.last_seen_at)}</div>
        <div class="card"><div class="lbl">revision desired / reported</div>${d.desired_revision} / ${d.reported_revision ?? "–"}</div></div>`;
      const work = d.health?.workloads || [];
      const versionOf = Object.fromEntries((d.reported?.workloads || []).map((w) => [w.release, w.bundle]));
      document.getElementById("workloads").innerHTML = work.length
        ? `<table data-testid="workloads"><tr><th>deployment</th><th>release</th><th>version</th><th>status</th><th>ready</th><th>crash loops</th><th>error rate</th><th>p95 ms</th><th>metrics</th></tr>${work
            .map((w) => `<tr><td>${esc(w.deployment)}</td><td class="mono">${esc(w.release)}</td><td>${esc(versionOf[w.release])}</td><td>${pill(w.status)}</td><td>${w.ready ? "yes" : "no"}</td><td>${fmt(w.crash_loops)}</td><td>${fmt(w.error_rate)}</td><td>${fmt(w.p95_latency_ms)}</td><td>${labels(w.metrics)}</td></tr>`)
            .join("")}</table>`
        : `<p class="muted">No workload reported.</p>`;
      document.getElementById("inventory").textContent = JSON.stringify(d.inventory ?? {}, null, 2);
      document.getElementById("events").innerHTML = ev.items.length
        ? `<table><tr><th>time</th><th>kind</th><th>detail</th></tr>${ev.items.map((e) => `<tr><td>${ago(e.at || e.created_at)}</td><td>${esc(e.kind || e.type)}</td><td class="mono">${esc(e.message || JSON.stringify(e.data ?? e.detail ?? ""))}</td></tr>`).join("")}</table>`
        : `<p class="muted">No events reported.</p>`;
      // one sample per refresh: p95 latency per workload, and every numeric metric the device reports
      const point = { t: Date.now() / 1000 };
      for (const w of work) {
        if (typeof w.p95_latency_ms === "number") point[`p95 latency ms · ${w.deployment}`] = w.p95_latency_ms;
        if (typeof w.error_rate === "number") point[`error rate · ${w.deployment}`] = w.error_rate;
        for (const [k, v] of Object.entries(w.metrics || {})) if (typeof v === "number") point[`${k} · ${w.deployment}`] = v;
      }
      for (const [k, v] of Object.entries(d.health?.metrics || {})) if (typeof v === "number") point[k] = v;
      series.push(point);
      if (series.length > 600) series.shift();
      drawCharts(series, plots);
    },
  };
}

function drawCharts(series, plots) {
  const box = document.getElementById("charts");
  const names = [...new Set(series.flatMap((p) => Object.keys(p).filter((k) => k !== "t")))].sort();
  if (!names.length) { box.innerHTML = `<p class="muted">The device reports no numeric health yet.</p>`; return; }
  for (const name of names) {
    const xs = series.map((p) => p.t), ys = series.map((p) => p[name] ?? null);
    if (plots.has(name)) { plots.get(name).setData([xs, ys]); continue; }
    const el = document.createElement("div");
    el.className = "chart"; el.dataset.testid = "chart";
    if (box.querySelector("p")) box.innerHTML = "";
    box.appendChild(el);
    plots.set(name, new uPlot({ title: name, width: 560, height: 180, scales: { x: { time: true }, y: { range: (_u, lo, hi) => [Math.min(0, lo ?? 0), hi > 0 ? hi * 1.25 : 1] } }, series: [{}, { label: name, stroke: "#2563eb", width: 2, spanGaps: true, points: { show: true } }], axes: [{}, { size: 60 }] }, [xs, ys], el));
  }
}

function bundles() {
  main.innerHTML = `<h1>Bundles and versions</h1><div id="bundles"></div>`;
  return {
    async refresh() {
      const data = await api(proj("/bundles?limit=500"));
      const byName = {};
      for (const b of data.items) (byName[b.name] ||= []).push(b);
      document.getElementById("bundles").innerHTML = Object.keys(byName).length
        ? Object.entries(byName).map(([name, vs]) => `<h2>${esc(name)}</h2><table data-testid="bundle-table"><tr><th>version</th><th>sha256</th><th>size</th><th>files</th><th>signed targets</th><th>uploaded</th></tr>${vs
            .map((b) => `<tr><td>${esc(b.version)}</td><td class="mono">${esc(b.sha256.slice(0, 16))}…</td><td>${b.size} B</td><td>${(b.manifest.files || []).map((f) => esc(f.path)).join(", ")}</td><td>${b.targets ? "yes" : "no"}</td><td>${ago(b.created_at)}</td></tr>`)
            .join("")}</table>`).join("")
        : `<p class="muted">No bundle uploaded.</p>`;
    },
  };
}

function deployments() {
  main.innerHTML = `<h1>Deployments</h1><div id="deployments"></div>`;
  return {
    async refresh() {
      const deps = await api(proj("/deployments"));
      document.getElementById("deployments").innerHTML = deps.length
        ? `<table data-testid="deployments-table"><tr><th>name</th><th>selector</th><th>stable release</th><th>latest rollout</th><th>wave</th><th>updated / ready / failed</th><th>reason</th></tr>${deps
            .map((d) => { const r = d.rollout; return `<tr class="link" data-href="#/rollouts/${esc(r?.id || "")}" data-testid="deployment-row"><td>${esc(d.name)}</td><td class="mono">${esc(d.selector)}</td><td class="mono">${esc(d.stable_release || "–")}</td><td>${r ? pill(r.phase) : "–"}</td><td>${r ? `${r.wave} of ${r.waves}` : ""}</td><td>${r ? `${r.counts.updated} / ${r.counts.ready} / ${r.counts.failed} of ${r.counts.devices}` : ""}</td><td>${esc(r?.reason)}</td></tr>`; })
            .join("")}</table>`
        : `<p class="muted">No deployment.</p>`;
      linkRows();
    },
  };
}

const ACTIONS = { pause: ["rolling", "baking", "awaiting_approval"], resume: ["paused"], approve: ["awaiting_approval"], abort: ["pending", "rolling", "baking", "awaiting_approval", "paused"] };

function rollout(id) {
  main.innerHTML = `<h1>Rollout <span id="ro-name"></span> <span id="ro-phase"></span></h1><p id="ro-reason" data-testid="rollout-reason"></p>
    <div id="actions"></div>
    <h2>Waves</h2><div class="waves" id="waves"></div>
    <h2>Gates <span class="muted">(over the devices on the new release)</span></h2><div id="gates"></div>
    <h2>Timeline</h2><ul class="timeline" id="timeline"></ul>`;
  if (canOperate()) {
    document.getElementById("actions").innerHTML = `<div class="toolbar" data-testid="rollout-actions">
      <input id="reason" size="40" placeholder="reason (stored with the transition)">
      ${Object.keys(ACTIONS).map((a) => `<button id="btn-${a}" data-action="${a}" class="${a === "abort" ? "danger" : ""}">${a}</button>`).join("")}
      <span class="error" id="action-error"></span></div>`;
    for (const b of main.querySelectorAll("button[data-action]")) {
      b.onclick = async () => {
        const reason = document.getElementById("reason").value.trim();
        if (b.dataset.action === "abort" && !confirm("Abort this rollout and roll every updated device back?")) return;
        try {
          await api(proj(`/rollouts/${encodeURIComponent(id)}/${b.dataset.action}`), { method: "POST", body: JSON.stringify(reason ? { reason } : {}) });
          document.getElementById("action-error").textContent = "";
          document.getElementById("reason").value = "";
          await page.refresh();
        } catch (err) { document.getElementById("action-error").textContent = err.message; }
      };
    }
  }
  const page = {
    async refresh() {
      const [r, g, deps] = await Promise.all([api(proj(`/rollouts/${encodeURIComponent(id)}`)), api(proj(`/rollouts/${encodeURIComponent(id)}/gates`)), api(proj("/deployments"))]);
      const dep = deps.find((d) => d.id === r.deployment_id);
      document.getElementById("ro-name").textContent = dep ? dep.name : r.deployment_id;
      document.getElementById("ro-phase").innerHTML = `<span data-testid="rollout-phase">${pill(r.phase)}</span>`;
      document.getElementById("ro-reason").innerHTML = `${esc(r.reason)} <span class="muted">· ${esc(r.from_release || "(first release)")} → ${esc(r.to_release)}</span>`;
      for (const [a, phases] of Object.entries(ACTIONS)) { const b = document.getElementById(`btn-${a}`); if (b) b.disabled = !phases.includes(r.phase); }
      document.getElementById("waves").innerHTML = g.waves.map((w) => `<div class="wave ${w.state}" data-testid="wave"><b>wave ${w.wave}</b> ${pill(w.state)}<div class="muted">target ${w.target} devices</div>
        <div>${w.updated} updated · ${w.ready} ready of ${w.devices}</div><div class="bar"><div style="width:${w.devices ? (100 * w.ready) / w.devices : 0}%"></div></div></div>`).join("");
      document.getElementById("gates").innerHTML = `<table data-testid="gates"><tr><th>gate</th><th>threshold</th><th>observed</th><th>result</th><th></th></tr>${g.gates
        .map((x) => `<tr><td>${esc(x.gate)}</td><td>${esc(x.op)} ${fmt(x.threshold)}</td><td>${fmt(x.observed)}</td><td>${x.ok === null ? pill("no data") : pill(x.ok ? "ok" : "bad")}</td><td class="muted">${esc(x.detail)}</td></tr>`)
        .join("")}</table>`;
      document.getElementById("timeline").innerHTML = [...r.transitions].reverse().map((t) => `<li class="to-${esc(t.to)}" data-testid="transition"><span class="muted">${esc(String(t.at).slice(0, 19))}</span> ${pill(t.from)} → ${pill(t.to)} wave ${t.wave}: ${esc(t.reason)}</li>`).join("");
    },
  };
  return page;
}

if (session.token) start().catch((err) => { if (!(err instanceof ApiError)) throw err; showSignIn(err.message); });
else showSignIn();
