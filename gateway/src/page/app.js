// The technician's page: polls /status every second and draws it.
//
// Every name, error and reason comes from a device or a configuration file: it is written as
// text (textContent, text nodes), never parsed as HTML. The page only reads.
"use strict";

const POLL_MS = 1000;
// No answer for this long: the page says the data is old, so it is never taken for live.
const STALE_MS = 3000;
const TIMEOUT_MS = 2500;

let last = null; // the last /status answer
// Every zone and device name seen, for the filters: a filtered answer lists only its own.
const known = { zones: new Set(), devices: new Map() };
let lastOkAt = 0; // when it arrived, on this browser's clock
let lastError = "";
let pollTimer = 0;

const $ = (id) => document.getElementById(id);

// An element with text children only. attrs: class, data-* and a few plain attributes.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("data-") || k === "title" || k === "colspan") e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function num(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v !== "number") return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 0.01 || a >= 1e6)) return v.toExponential(2);
  return String(Math.round(v * 100) / 100);
}

// A value with its unit, as a person reads it: states as on/off, degrees with their sign.
function valueText(v, unit) {
  if (unit === "bool") return v === null || v === undefined ? "—" : v ? "on" : "off";
  const u = unit === "degC" ? "°C" : unit || "";
  return num(v) + (u ? " " + u : "");
}

function ago(ms) {
  if (ms === null || ms === undefined || !isFinite(ms)) return "never";
  if (ms < 0) ms = 0;
  const s = Math.round(ms / 1000);
  if (s < 120) return s + " s ago";
  if (s < 7200) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

function clock(ms) {
  const d = new Date(ms);
  return isNaN(d) ? String(ms) : d.toLocaleTimeString([], { hour12: false });
}

// ---- filters (kept in the address: #zone=…&device=…) ----

function filters() {
  const p = new URLSearchParams(location.hash.slice(1));
  return { zone: p.get("zone") || "", device: p.get("device") || "" };
}

function setFilters(f) {
  const p = new URLSearchParams();
  if (f.zone) p.set("zone", f.zone);
  if (f.device) p.set("device", f.device);
  history.replaceState(null, "", p.toString() ? "#" + p.toString() : location.pathname);
  if (last) draw(last);
  // An answer for the new choice now, not in a second.
  clearTimeout(pollTimer);
  pollTimer = setTimeout(poll, 0);
}

function fillSelect(select, names, chosen, all) {
  const want = JSON.stringify([all, ...names]);
  if (select.dataset.options !== want) {
    select.replaceChildren(el("option", {}, all), ...names.map((n) => el("option", {}, n)));
    select.options[0].value = "";
    names.forEach((n, i) => (select.options[i + 1].value = n));
    select.dataset.options = want;
  }
  select.value = names.includes(chosen) ? chosen : "";
}

// ---- drawing ----

function unitOf(s, device, signal, channel) {
  const v = (s.signals || []).find(
    (x) => x.device === device && x.signal === signal && x.channel === (channel || 0),
  );
  return v && v.unit ? v.unit : "";
}

// One reason as a line: the rule, what it looked at, the value and the threshold.
function reason(s, r) {
  const li = el("li", { "data-rule": r.rule });
  li.append(el("span", { class: "rule" }, r.rule), ": ");
  if (r.signal) {
    const u = unitOf(s, r.device, r.signal, r.channel);
    const where = r.device ? " on " + r.device : "";
    const ch = r.channel ? " [" + r.channel + "]" : "";
    li.append(
      r.signal + ch + where + " = " + valueText(r.value, u) + (u === "bool" ? "" : " (threshold " + valueText(r.threshold, u) + ")"),
    );
  } else {
    // A rule over other rules or over links: how many, against how many it needs.
    li.append(num(r.value) + " (needs " + num(r.threshold) + ")" + (r.device ? " · " + r.device : ""));
  }
  return li;
}

function levelBadge(level, id) {
  return el("span", { class: "level", "data-level": level, id }, level);
}

function drawZones(s, f) {
  const zones = (s.policy.zones || []).filter((z) => !f.zone || z.zone === f.zone);
  const cards = zones.map((z) => {
    const reasons = z.reasons || [];
    const firing = z.firing || [];
    return el(
      "article",
      { class: "card zone", "data-zone": z.zone, "data-level": z.level },
      el("div", { class: "card-head" }, el("h3", {}, z.zone), levelBadge(z.level)),
      reasons.length
        ? el("ul", { class: "plain reasons", "data-reasons": z.zone }, reasons.map((r) => reason(s, r)))
        : el("p", { class: "empty" }, z.level === "normal" ? "no rule raises it" : "no reason recorded"),
      firing.length ? el("p", { class: "dim" }, "rules firing: " + firing.join(", ")) : null,
      maintainedIn(s, z.zone),
    );
  });
  $("zones").replaceChildren(...(cards.length ? cards : [el("p", { class: "empty" }, "no zone yet")]));
}

// ---- maintenance (firebreak maintenance): readings that do not count, for a bounded time ----

function subject(m) {
  return m.device + (m.channel !== undefined ? " channel " + m.channel : "");
}

function activeMaintenance(s) {
  return (s.maintenance && s.maintenance.active) || [];
}

// A zone's line: which of its devices do not count now.
function maintainedIn(s, zone) {
  const here = activeMaintenance(s).filter((m) => m.zone === zone);
  if (!here.length) return null;
  return el(
    "p",
    { class: "warn", "data-maintenance-zone": zone },
    "under maintenance, not evidence: " + here.map(subject).join(", "),
  );
}

function drawMaintenance(s, f) {
  const active = activeMaintenance(s).filter(
    (m) => (!f.zone || m.zone === f.zone) && (!f.device || m.device === f.device),
  );
  $("maintenance-section").hidden = active.length === 0 && !((s.maintenance || {}).recent || []).length;
  $("maintenance").replaceChildren(
    ...(active.length
      ? active.map((m) =>
          el(
            "li",
            { "data-maintenance": subject(m) },
            el("span", { class: "warn" }, "MAINTENANCE"),
            " " + subject(m) + " (zone " + m.zone + ") until " + clock(m.until_ms) + ", " +
              Math.floor(m.remaining_s / 60) + " min left · by " + m.by + ": " + m.reason,
          ),
        )
      : [el("li", { class: "empty" }, "nothing under maintenance now")]),
  );
  const recent = ((s.maintenance || {}).recent || []).slice(-10).reverse();
  $("maintenance-recent").replaceChildren(
    ...recent.map((c) =>
      el(
        "li",
        { "data-action": c.action },
        el("span", { class: "when" }, clock(c.at_ms)),
        " " + c.action + " " + subject(c) + " · " + c.by + ": " + c.reason + (c.forced ? " (forced)" : ""),
      ),
    ),
  );
}

function drawTransitions(s, f) {
  const recent = (s.policy.recent || [])
    .filter((t) => !f.zone || t.zone === f.zone || !t.zone)
    .slice()
    .reverse();
  const items = recent.map((t) =>
    el(
      "li",
      { "data-zone": t.zone || "", "data-level": t.level },
      el("span", { class: "when" }, clock(t.at_ms)),
      " ",
      t.zone ? t.zone : "site",
      ": ",
      el("span", { class: "level", "data-level": t.previous }, t.previous),
      " → ",
      el("span", { class: "level", "data-level": t.level }, t.level),
      t.seconds_to_power_loss !== undefined ? " (power loss in about " + t.seconds_to_power_loss + " s)" : "",
      (t.reasons || []).length ? el("ul", { class: "plain reasons" }, t.reasons.map((r) => reason(s, r))) : null,
    ),
  );
  $("transitions").replaceChildren(
    ...(items.length ? items : [el("li", { class: "empty" }, "no change of level since the gateway started")]),
  );
}

function signalTable(signals) {
  const head = ["signal", "value", "quality", "age"].map((h) => el("th", {}, h));
  const rows = signals.map((v) =>
    el(
      "tr",
      { "data-signal": v.signal, "data-quality": v.quality },
      el("td", {}, v.signal + (v.channel ? " [" + v.channel + "]" : "")),
      el("td", { class: "num" }, valueText(v.value, v.unit)),
      el("td", { class: "q-" + v.quality }, v.quality),
      el("td", { class: "num" }, ago(v.age_ms)),
    ),
  );
  return el("table", {}, el("thead", {}, el("tr", {}, head)), el("tbody", {}, rows));
}

function drawDevices(s, f) {
  const devices = (s.devices || []).filter(
    (d) => (!f.zone || d.zone === f.zone) && (!f.device || d.device === f.device),
  );
  const byDevice = new Map();
  for (const v of s.signals || []) {
    if (!byDevice.has(v.device)) byDevice.set(v.device, []);
    byDevice.get(v.device).push(v);
  }
  const cards = devices.map((d) => {
    const signals = byDevice.get(d.device) || [];
    const errors = Object.entries(d.errors || {});
    const link = d.comm_lost
      ? el("span", { class: "bad" }, "COMM LOST")
      : d.missed > 0
        ? el("span", { class: "warn" }, "missed " + d.missed + " of " + d.comm_lost_after)
        : el("span", { class: "ok" }, "up");
    const lastOk = d.last_ok_ms ? ago(s.now_ms - d.last_ok_ms) : "never";
    const maint = d.maintenance || [];
    return el(
      "article",
      { class: "card device", "data-device": d.device, "data-comm": d.comm_lost ? "lost" : "up" },
      el("div", { class: "card-head" }, el("h3", {}, d.device), link),
      maint.length
        ? el(
            "p",
            { class: "warn", "data-device-maintenance": d.device },
            "MAINTENANCE " +
              maint
                .map((m) => (m.channel !== undefined ? "channel " + m.channel : "whole device") + " until " + clock(m.until_ms))
                .join(", ") +
              ": not evidence",
          )
        : null,
      el(
        "p",
        { class: "dim" },
        "zone " + d.zone + " · " + d.source + " · answered " + lastOk + " · " + d.polls + " reads" +
          (d.last_latency_ms !== null && d.last_latency_ms !== undefined ? " · " + num(d.last_latency_ms) + " ms" : ""),
      ),
      errors.length ? el("p", {}, "errors: " + errors.map(([k, n]) => k + " " + n).join(", ")) : null,
      d.last_error ? el("p", { class: "bad" }, "last error: " + d.last_error) : null,
      d.last_reboot ? el("p", { class: "warn" }, "rebooted (" + (d.reset_reason || "unknown") + ")") : null,
      signals.length ? el("div", { class: "scroll" }, signalTable(signals)) : null,
      signals.length ? null : el("p", { class: "empty" }, "no value yet"),
    );
  });
  $("devices").replaceChildren(...(cards.length ? cards : [el("p", { class: "empty" }, "no device")]));
}

function drawFaults(s, f) {
  const faults = (s.policy.sensor_faults || []).filter(
    (x) => (!f.zone || x.zone === f.zone) && (!f.device || x.device === f.device),
  );
  $("faults-section").hidden = faults.length === 0;
  $("sensor-faults").replaceChildren(
    ...faults.map((x) =>
      el(
        "li",
        {},
        el("span", { class: "bad" }, x.kind),
        " " + x.device + " " + x.signal + (x.channel ? " [" + x.channel + "]" : "") +
          (x.value !== undefined ? " = " + num(x.value) : "") +
          (x.reference !== undefined ? " (against " + num(x.reference) + ")" : ""),
      ),
    ),
  );
}

function drawBrokers(s) {
  const d = s.delivery;
  if (!d) {
    $("brokers").replaceChildren(el("p", { class: "empty" }, "no broker configured: triggers are not delivered"));
    return;
  }
  const cards = (d.brokers || []).map((b) =>
    el(
      "article",
      { class: "card broker", "data-broker": b.name, "data-connected": String(b.connected) },
      el("div", { class: "card-head" }, el("h3", {}, b.name), b.connected ? el("span", { class: "ok" }, "connected") : el("span", { class: "bad" }, "NOT CONNECTED")),
      el("p", { class: "dim" }, b.url),
      el(
        "p",
        {},
        "outbox: ",
        el("span", { class: b.near_full ? "bad" : "" }, b.pending + " waiting"),
        " of " + b.capacity + " · delivered " + b.delivered + " · published " + b.published +
          (b.refused ? " · refused " + b.refused : ""),
      ),
      b.last_error ? el("p", { class: b.connected ? "dim" : "bad" }, "last error: " + b.last_error) : null,
    ),
  );
  const store = d.outbox || {};
  cards.push(
    el(
      "article",
      { class: "card" },
      el("h3", {}, "outbox store"),
      el("p", {}, el("span", { class: store.state === "ok" ? "ok" : "bad" }, store.state || "?"), " · " + (store.path || "")),
      el("p", { class: "dim" }, "triggers issued " + d.issued + (d.last_seq !== null && d.last_seq !== undefined ? " · last seq " + d.last_seq : "") + (d.refused ? " · refused " + d.refused : "")),
    ),
  );
  cards.push(drillCard(s.drill));
  $("brokers").replaceChildren(...cards);
}

// The last drill (`firebreak drill`) and how each broker did: the path to the controllers,
// proved without a fire.
function drillCard(d) {
  if (!d) {
    return el(
      "article",
      { class: "card drill", "data-drill": "" },
      el("h3", {}, "last drill"),
      el("p", { class: "dim" }, "none since the gateway started (firebreak drill --config …)"),
    );
  }
  const failed = d.brokers.filter((b) => !b.delivered).length;
  return el(
    "article",
    { class: "card drill", "data-drill": d.drill, "data-failed": String(failed) },
    el(
      "div",
      { class: "card-head" },
      el("h3", {}, "last drill"),
      failed ? el("span", { class: "bad" }, "FAILED on " + failed) : el("span", { class: "ok" }, "ok"),
    ),
    el("p", {}, d.drill + " · " + String(d.level).toUpperCase() + (d.zone ? " zone " + d.zone : " site") + " · " + clock(d.issued_at_ms)),
    el(
      "ul",
      { class: "plain" },
      d.brokers.map((b) =>
        el(
          "li",
          { "data-drill-broker": b.broker, "data-delivered": String(b.delivered), class: b.delivered ? "" : "bad" },
          b.broker + ": " + (b.delivered ? "round trip " + num(b.round_trip_ms) + " ms" : "FAILED: " + (b.error || "no answer")),
        ),
      ),
    ),
  );
}

function drawHealth(s) {
  const h = s.health || {};
  const rows = [
    el("div", { class: "card-head" }, el("h3", {}, s.gateway), h.healthy ? el("span", { class: "ok", id: "healthy" }, "healthy") : el("span", { class: "bad", id: "healthy" }, "UNHEALTHY")),
    (h.reasons || []).length ? el("ul", { class: "plain" }, h.reasons.map((r) => el("li", { class: "bad" }, r))) : null,
    el(
      "p",
      {},
      "acquisition tasks " + h.acquisition_alive + " of " + h.acquisition_total + " running · brokers " +
        h.brokers_connected + " of " + h.brokers_total + " connected · policy stepped " + ago(s.now_ms - h.engine_last_step_ms),
    ),
    (h.faults || []).length ? el("ul", { class: "plain" }, h.faults.map((x) => el("li", { class: "bad" }, x.kind + (x.subject ? " " + x.subject : "") + ": " + x.detail))) : null,
  ];
  const c = s.config;
  if (c) {
    rows.push(
      el("p", { class: "dim" }, "configuration " + (c.file || "") + (c.sha256 ? " (sha256 " + String(c.sha256).slice(0, 12) + "…)" : "") + " · reloads " + c.reloads_ok + " ok, " + c.reloads_rejected + " rejected"),
    );
    if (c.last_reload && c.last_reload.result !== "ok") rows.push(el("p", { class: "bad" }, "last reload: " + c.last_reload.detail));
  }
  $("health").replaceChildren(...rows.filter(Boolean));
}

function draw(s) {
  const f = filters();
  $("site").textContent = s.site;
  $("gateway").textContent = s.gateway;
  document.title = s.policy.site.toUpperCase() + " · " + s.site + " · Firebreak";
  const badge = $("site-level");
  badge.textContent = "site " + s.policy.site;
  badge.dataset.level = s.policy.site;
  const est = $("estimate");
  est.hidden = s.policy.seconds_to_power_loss === undefined;
  est.textContent = est.hidden ? "" : "estimated power loss in about " + s.policy.seconds_to_power_loss + " s" + (s.policy.incident ? " · incident " + s.policy.incident : "");
  for (const z of s.policy.zones || []) known.zones.add(z.zone);
  for (const d of s.devices || []) {
    known.zones.add(d.zone);
    known.devices.set(d.device, d.zone);
  }
  fillSelect($("filter-zone"), [...known.zones].sort(), f.zone, "all zones");
  const devices = [...known.devices].filter(([, z]) => !f.zone || z === f.zone).map(([d]) => d).sort();
  fillSelect($("filter-device"), devices, f.device, "all devices");
  drawZones(s, f);
  drawTransitions(s, f);
  drawDevices(s, f);
  drawFaults(s, f);
  drawMaintenance(s, f);
  drawBrokers(s);
  drawHealth(s);
}

// ---- freshness: never let an old page pass for a live one ----

function showFreshness() {
  const p = $("freshness");
  const age = Date.now() - lastOkAt;
  if (!lastOkAt) {
    p.dataset.state = lastError ? "lost" : "connecting";
    p.textContent = lastError ? "connection lost: no answer from the gateway yet (" + lastError + ")" : "connecting to the gateway…";
    document.body.classList.toggle("stale", !!lastError);
    return;
  }
  if (age > STALE_MS) {
    p.dataset.state = "lost";
    p.textContent = "CONNECTION LOST — this data is " + Math.round(age / 1000) + " s old" + (lastError ? " (" + lastError + ")" : "");
    document.body.classList.add("stale");
  } else {
    p.dataset.state = "live";
    p.textContent = "live · updated " + clock(lastOkAt);
    document.body.classList.remove("stale");
  }
}

async function poll() {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
  try {
    // Filtered by the gateway too: a hall's whole /status can be megabytes.
    const f = filters();
    const q = new URLSearchParams();
    if (f.zone) q.set("zone", f.zone);
    if (f.device) q.set("device", f.device);
    const r = await fetch("status" + (q.toString() ? "?" + q : ""), { cache: "no-store", signal: ctl.signal });
    if (r.status === 404 && (f.zone || f.device)) {
      // The zone or device is gone (the configuration was reloaded): show everything.
      known.zones.clear();
      known.devices.clear();
      setFilters({ zone: "", device: "" });
      throw new Error((await r.text()).trim());
    }
    if (!r.ok) throw new Error("HTTP " + r.status);
    const s = await r.json();
    last = s;
    lastOkAt = Date.now();
    lastError = "";
    draw(s);
  } catch (e) {
    lastError = e && e.name === "AbortError" ? "timed out" : String((e && e.message) || e);
  } finally {
    clearTimeout(timer);
    showFreshness();
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, POLL_MS);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("filter-zone").addEventListener("change", (e) => setFilters({ zone: e.target.value, device: "" }));
  $("filter-device").addEventListener("change", (e) => setFilters({ zone: filters().zone, device: e.target.value }));
  $("filters").addEventListener("submit", (e) => e.preventDefault());
  window.addEventListener("hashchange", () => setFilters(filters()));
  setInterval(showFreshness, 1000);
  poll();
});
