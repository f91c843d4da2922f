// RPi Logger page: one WebSocket for live events, fetch() for actions. No build step.
// Every text from the server goes in with textContent (never innerHTML): labels and notes
// are shown as typed, never run.
"use strict";
const API = "/api/v1";
const $ = (id) => document.getElementById(id);
const state = { status: null, clock: null, cards: {}, notes: new Set(), sessionId: null };

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 5000);
}

async function call(method, path, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const reply = await fetch(API + path, opts);
  let data = null;
  try { data = await reply.json(); } catch (e) { data = null; }
  if (!reply.ok) throw new Error((data && data.detail) || reply.statusText);
  return data;
}

// -- status ------------------------------------------------------------------------------
function fmtTime(s) {
  const m = Math.floor(s / 60);
  const sec = s - m * 60;
  return `${m}:${sec.toFixed(1).padStart(4, "0")}`;
}
function fmtDuration(s) {
  if (s === null || s === undefined) return "";
  if (s > 48 * 3600) return `· ${Math.round(s / 86400)} days left`;
  if (s > 3600) return `· ${(s / 3600).toFixed(1)} h left`;
  return `· ${Math.round(s / 60)} min left`;
}
function fmtSize(b) {
  if (b > 1e9) return (b / 1e9).toFixed(2) + " GB";
  if (b > 1e6) return (b / 1e6).toFixed(1) + " MB";
  return Math.round(b / 1e3) + " kB";
}

function onStatus(s) {
  state.status = s;
  // The server's monotonic clock against ours, for a smooth timer between updates.
  state.clock = { server: s.now_mono_ns, local: performance.now() };
  $("sim").hidden = !(s.simulate || s.modules.some((m) => m.simulated));
  const sess = s.session;
  $("session").textContent = sess ? `${sess.id}${sess.simulated ? " (simulated)" : ""}` : "none";
  if (sess && sess.id !== state.sessionId) { state.sessionId = sess.id; loadNotes(); }
  if (!sess && state.sessionId) { state.sessionId = null; }
  $("trial").textContent = s.trial ? `#${s.trial.number}${s.trial.label ? " " + s.trial.label : ""}` : (sess ? `${sess.trials} done` : "–");
  const free = s.disk_free_mb;
  $("disk").textContent = free === null ? "?" : `${(free / 1000).toFixed(1)} GB free ${fmtDuration(s.time_left_s)}`;
  $("halted").hidden = !s.halted;
  $("halted").textContent = s.halted ? `Recording stopped: ${s.halted}` : "";
  $("record-btn").disabled = !!s.trial || !!s.halted;
  $("stop-btn").disabled = !s.trial;
  $("end-btn").disabled = !sess || !!s.trial;
  for (const m of s.modules) card(m.name).update(m);
  const warnings = $("warnings");
  warnings.replaceChildren(...s.warnings.slice().reverse().map(logLine));
}

function logLine(w) {
  const li = el("li", w.level);
  li.textContent = `${new Date(w.time * 1000).toLocaleTimeString()} ${w.level}: ${w.message}`;
  return li;
}

function tick() {
  const s = state.status;
  let text = "0:00.0";
  if (s && s.trial && state.clock) {
    const nowNs = state.clock.server + (performance.now() - state.clock.local) * 1e6;
    text = fmtTime(Math.max(0, (nowNs - s.trial.start_mono_ns) / 1e9));
  } else if (s && s.trial) {
    text = fmtTime(s.trial.elapsed_s);
  }
  $("timer").textContent = text;
}
setInterval(tick, 100);

// -- module cards --------------------------------------------------------------------------
function card(name) {
  if (state.cards[name]) return state.cards[name];
  const root = el("div", "card");
  root.dataset.module = name;
  const title = el("h3");
  const nameEl = el("span", "", name);
  const badge = el("span", "badge");
  const simBadge = el("span", "badge warn", "simulated");
  simBadge.hidden = true;
  title.append(nameEl, badge, simBadge);
  const figs = el("div", "figs");
  const summary = el("div", "summary");
  const err = el("div", "err");
  const meters = el("div", "meters");
  const previews = el("div", "previews");
  root.append(title, figs, summary, err, meters, previews);
  $("modules").append(root);
  const images = {};
  const c = {
    update(m) {
      badge.textContent = m.status === "failed" ? "FAILED" : m.status;
      badge.className = "badge " + (m.status === "ok" ? "ok" : m.status === "failed" ? "bad" : "");
      simBadge.hidden = !m.simulated;
      const rates = m.rates.map((r) => `${r.id} ${r.rate === null ? "?" : Number(r.rate).toFixed(1)}`).join(", ");
      const drops = Object.entries(m.drops).filter(([, n]) => n).map(([k, n]) => `${k} ${n}`).join(", ");
      const lag = m.loop_lag_ms ? `lag p99 ${m.loop_lag_ms.p99.toFixed(1)} ms` : "";
      figs.textContent = [rates && `rate: ${rates}`, `drops: ${drops || "0"}`, lag].filter(Boolean).join(" · ");
      summary.replaceChildren(...(m.summary || []).map((line) => el("div", "", line)));
      err.textContent = m.error || "";
      if (m.levels) c.levels(m.levels);
    },
    preview(d) {
      const key = d.camera || d.device || d.id || d.stream || "preview";
      let p = images[key];
      if (!p) {
        const wrap = el("div", "pv");
        const img = el("img");
        img.alt = `${name} ${key}`;
        img.dataset.device = key;
        const cap = el("span", "cap", key);
        const gaze = el("div", "gaze");
        gaze.hidden = true;
        wrap.append(img, gaze, cap);
        previews.append(wrap);
        p = images[key] = { img, gaze };
      }
      p.img.src = "data:image/jpeg;base64," + d.jpeg_base64;
      p.img.dataset.t = String(d.t_mono_ns || "");
      const g = gazePoint(d);
      p.gaze.hidden = !g;
      if (g) { p.gaze.style.left = `${g[0] * 100}%`; p.gaze.style.top = `${g[1] * 100}%`; }
    },
    levels(levels) {
      const rows = Array.isArray(levels) ? levels : Object.values(levels);
      meters.replaceChildren(...rows.map((ch) => meter(ch)));
    },
  };
  state.cards[name] = c;
  return c;
}

// A gaze point in [0,1] image coordinates, from `gaze: {x, y}` (normalized or pixels) or
// `gaze_x`/`gaze_y`; null when the preview has none.
function gazePoint(d) {
  let x = null, y = null;
  if (d.gaze && typeof d.gaze === "object") { x = d.gaze.x; y = d.gaze.y; }
  else if (d.gaze_x !== undefined) { x = d.gaze_x; y = d.gaze_y; }
  if (typeof x !== "number" || typeof y !== "number") return null;
  if ((x > 1 || y > 1) && d.width && d.height) { x /= d.width; y /= d.height; }
  return [Math.min(1, Math.max(0, x)), Math.min(1, Math.max(0, y))];
}

function dbfs(ch, word) {
  if (typeof ch === "number") return word === "rms" ? ch : null;
  for (const [k, v] of Object.entries(ch || {})) if (k.includes(word) && typeof v === "number") return v;
  return null;
}
function meter(ch) {
  const m = el("div", "meter");
  const rms = el("div", "rms");
  const peak = el("div", "peak");
  const pct = (db) => Math.max(0, Math.min(100, ((db + 60) / 60) * 100));
  const r = dbfs(ch, "rms"), p = dbfs(ch, "peak");
  rms.style.width = r === null ? "0" : `${pct(r)}%`;
  peak.style.left = p === null ? "0" : `${pct(p)}%`;
  m.title = `rms ${r} dBFS, peak ${p} dBFS`;
  m.append(rms, peak);
  return m;
}

// -- notes -------------------------------------------------------------------------------------
function showNote(n) {
  const key = `${state.sessionId}:${n.note_index}`;
  if (state.notes.has(key)) return;
  state.notes.add(key);
  const li = el("li");
  li.append(el("span", "t", `${n.wall_iso.slice(11, 19)}${n.trial ? " T" + n.trial : ""}`), el("span", "text", n.text));
  $("notes").prepend(li);
}
async function loadNotes() {
  $("notes").replaceChildren();
  state.notes.clear();
  try { (await call("GET", "/notes")).notes.forEach(showNote); } catch (e) { /* no session */ }
}
$("note").addEventListener("keydown", async (ev) => {
  if (ev.key !== "Enter") return;
  ev.preventDefault();
  const box = ev.target;
  const text = box.value;
  box.value = ""; // cleared at once; the note shows in the list once it is on disk
  if (!text.trim()) return;
  try {
    showNote(await call("POST", "/notes", { text }));
  } catch (e) {
    toast(`Note not saved: ${e.message}`);
    if (!box.value) box.value = text;
  }
});

// -- record / stop -----------------------------------------------------------------------------
$("record-btn").addEventListener("click", async () => {
  const label = $("label").value.trim() || null;
  try {
    if (!state.status || !state.status.session) await call("POST", "/session/start", { label });
    await call("POST", "/trial/start", { label });
  } catch (e) { toast(e.message); }
  refresh();
});
$("stop-btn").addEventListener("click", async () => {
  try { await call("POST", "/trial/stop"); } catch (e) { toast(e.message); }
  refresh();
});
$("end-btn").addEventListener("click", async () => {
  try { await call("POST", "/session/end"); } catch (e) { toast(e.message); }
  refresh();
});
async function refresh() { try { onStatus(await call("GET", "/status")); } catch (e) { /* offline */ } }

// -- live events -----------------------------------------------------------------------------------
function connect(delay) {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}${API}/events`);
  ws.onopen = () => { $("conn").textContent = "live"; $("conn").className = "badge ok"; delay = 500; };
  ws.onmessage = (msg) => {
    const ev = JSON.parse(msg.data);
    switch (ev.event) {
      case "hello": case "master_status": onStatus(ev.data); break;
      case "preview": card(ev.module).preview(ev.data); break;
      case "status": if (ev.data && ev.data.levels) card(ev.module).levels(ev.data.levels); break;
      case "note": showNote(ev.data); break;
      case "session": if (ev.data.state === "ended") refreshSessions(); break;
    }
  };
  ws.onclose = () => {
    $("conn").textContent = "reconnecting…";
    $("conn").className = "badge warn";
    setTimeout(() => connect(Math.min(5000, delay * 2)), delay);
  };
}
connect(500);
refresh();

// -- sessions tab ----------------------------------------------------------------------------------
for (const b of document.querySelectorAll(".tab")) {
  b.addEventListener("click", () => {
    for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t === b);
    for (const p of document.querySelectorAll(".page")) p.hidden = p.id !== b.dataset.tab;
    if (b.dataset.tab === "sessions") refreshSessions();
  });
}
$("refresh").addEventListener("click", refreshSessions);
async function refreshSessions() {
  let rows;
  try { rows = await call("GET", "/sessions"); } catch (e) { toast(e.message); return; }
  $("session-rows").replaceChildren(...rows.map((s) => {
    const tr = el("tr");
    tr.dataset.session = s.id;
    const name = el("td", "", s.label || s.folder);
    if (s.simulated) name.append(el("span", "badge warn", "sim"));
    const actions = el("td");
    const verify = el("button", "small", "Verify");
    verify.addEventListener("click", async () => {
      $("verify-out").textContent = "verifying…";
      try {
        const r = await call("GET", `/sessions/${encodeURI(s.id)}/verify`);
        $("verify-out").textContent = `${s.id}: ${r.ok ? "OK" : "PROBLEMS"} (${r.checked_files} files)\n` +
          r.findings.map((f) => `${f.level} ${f.where}: ${f.message}`).join("\n");
      } catch (e) { $("verify-out").textContent = e.message; }
    });
    const zip = el("a", "", "zip");
    zip.href = `${API}/sessions/${encodeURI(s.id)}/zip`;
    actions.append(verify, " ", zip);
    tr.append(name, el("td", "", s.started ? s.started.slice(0, 19).replace("T", " ") : ""),
      el("td", "", s.trials), el("td", "", fmtSize(s.size_bytes)), actions);
    return tr;
  }));
}
