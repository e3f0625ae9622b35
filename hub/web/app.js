/* CityEye reviewer page. Plain modern JS, no build step, no third-party code.
 *
 * Every string comes from the message catalogue (i18n.js: t()). Data comes from the hub's REST API:
 * people sign in with a password and hold a session cookie (HttpOnly, SameSite); every request that
 * changes something carries the session's CSRF token in X-CSRF-Token. Machines and temporary access may
 * sign in with an API token instead (kept in sessionStorage, sent as a Bearer header). Images and clips
 * are fetched with the same credentials and shown as blob: URLs; live updates read /stream/cases
 * (Server-Sent Events) through fetch. The DOM is built with textContent only: nothing from the API is
 * ever parsed as HTML.
 */
"use strict";

const TOKEN_KEY = "cityeye.token";
const UNDO_GRACE_S = 60; // the hub's default undo window; /me says the hub's own (undo_grace_s)

const STATUSES = ["pending_review", "filed", "void", "dispatched", "in_progress", "handled", "verified", "closed"];
const TERMINAL = new Set(["void", "closed"]);

// shortcut, needs a note, style
const ACTIONS = {
  confirm: { key: "c", style: "primary", advance: true },
  void: { key: "v", note: "action.note_required", style: "danger", advance: true },
  dispatch: { key: "d", unit: true, style: "primary" },
  return: { note: "action.note_required" },
  start: { style: "primary" },
  handle: { note: "action.what_was_done", photo: true, style: "primary" },
  verify: { style: "primary" },
  rework: { note: "action.note_required" },
  close: { style: "primary" },
  reopen: { note: "action.note_required" },
};
// Void reasons on number keys 1..n; the last needs a note. Stored in the bureau's language (zh-CN).
const VOID_REASONS = ["false_alarm", "not_violation", "permitted", "duplicate", "unclear", "other"];
const PAGE_SIZES = [25, 50, 100];
const SORTS = [["-created_at", "sort.newest"], ["created_at", "sort.oldest"], ["deadline_at", "sort.deadline"],
  ["-last_seen", "sort.last_seen"], ["-event_count", "sort.events"]];

const S = {
  token: sessionStorage.getItem(TOKEN_KEY), // API token sign-in; null with a password session
  csrf: null, // the session's CSRF token (from /session or /me)
  me: null,
  classes: new Map(),
  cameras: [],
  route: { view: "queue", params: new URLSearchParams() },
  queue: { items: [], total: 0, pending: 0, selected: 0, fresh: new Set(), marked: new Map() },
  detail: null,
  undo: null, // { cases: [{ caseId, status }], label, at }
  live: { ctrl: null, connected: false, lastId: null },
  gen: 0, // render generation: stale async results are dropped
};

// ---------------------------------------------------------------- helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k === "style") el.style.cssText = v; // CSSOM: allowed by the page's CSP, unlike style attributes
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const $ = (sel, root = document) => root.querySelector(sel);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const enc = encodeURIComponent;
const zhText = (key, vars) => { // a message in the bureau's language, for records others read
  const saved = I18N.lang;
  I18N.lang = "zh-CN";
  try { return t(key, vars); } finally { I18N.lang = saved; }
};

/** A refusal of the hub, worded from its machine code (hub/errors.py) through the catalogue (`code.<code>`):
 * `message` is in the page's language; the hub's own English `hubDetail` is only shown to an admin, folded. */
class ApiError extends Error {
  constructor(status, body = {}) {
    const { detail = null, code = null, params = {} } = body && typeof body === "object" ? body : { detail: body };
    super(errorText(status, code, params || {}));
    this.status = status;
    this.detail = detail;
    this.code = code;
    this.params = params || {};
    this.hubDetail = detail === null ? "" : formatDetail(detail);
  }
  /** The reason in the page's language: the status's title, then what the hub said. */
  title() {
    return MESSAGES["zh-CN"][`error.${this.status}`] ? t(`error.${this.status}`) : t("error.unknown");
  }
}

/** A field's name for people: the catalogue's (`field.<path>`, else `field.<last part>`), else the id itself. */
function fieldText(field) {
  if (!field) return t("field.request");
  const last = String(field).split(".").pop();
  for (const key of [`field.${field}`, `field.${last}`]) if (MESSAGES["zh-CN"][key]) return t(key);
  return field;
}

// Each parameter a code may carry, in the page's language (ids stay as they are).
const ERROR_PARAMS = {
  action: (v) => actionText(v),
  status: (v) => (typeof v === "string" ? statusText(v) : v),
  role: (v) => roleText(v),
  field: (v) => fieldText(v),
  class_id: (v) => className(v)[0],
  locked_until: (v) => fmtTime(v, { seconds: false }),
};

/** The catalogue's words for a hub refusal; a code the catalogue lacks gets a generic message, never English. */
function errorText(status, code, params = {}) {
  if (code && MESSAGES["zh-CN"][`code.${code}`]) {
    const vars = {};
    for (const [k, v] of Object.entries(params)) vars[k] = ERROR_PARAMS[k] ? ERROR_PARAMS[k](v) : v;
    return t(`code.${code}`, vars);
  }
  if (!status) return t("error.generic_unreachable");
  return t(status >= 500 ? "error.generic_server" : "error.generic", { status });
}

/** The hub's English detail, folded, for an admin (who may need it to fix a setting); nothing for others. */
function errorDetails(e) {
  if (!(e instanceof ApiError) || !e.hubDetail || S.me?.role !== "admin") return null;
  return h("details", { class: "hub-detail" }, h("summary", {}, t("error.details")),
    h("code", { lang: "en" }, `${e.code || e.status}: ${e.hubDetail}`));
}

function formatDetail(detail) {
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).filter((p) => p !== "body").join(".") || "request"}: ${d.msg}`).join("\n");
  }
  if (detail && typeof detail === "object") return detail.message || JSON.stringify(detail);
  return typeof detail === "string" ? detail : JSON.stringify(detail);
}

function authHeaders(token = S.token) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// Requests the page makes while nobody has touched it lately (live refreshes, thumbnails) say so: they
// don't keep a password session from ending when idle (hub setting session_idle_minutes).
let lastInput = Date.now();
for (const kind of ["keydown", "pointerdown", "wheel"]) addEventListener(kind, () => { lastInput = Date.now(); }, true);
function requestHeaders(token = S.token) {
  const headers = authHeaders(token);
  const idleMs = (S.me?.session_idle_minutes || 30) * 60e3;
  if (Date.now() - lastInput > Math.min(30e3, idleMs / 4)) headers["X-CityEye-Background"] = "1";
  return headers;
}

/** The sign-in form after the hub ended the session: why, in the page's language (the place is kept). */
function sessionEnded(e) {
  signOut(e.code && e.code.startsWith("session_") ? e.message : t("login.expired"));
}

async function api(path, { method = "GET", body, form, token = S.token } = {}) {
  const headers = requestHeaders(token);
  if (method !== "GET" && !token && S.csrf) headers["X-CSRF-Token"] = S.csrf;
  let payload;
  if (form) payload = form;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  } catch (e) {
    throw new ApiError(0, { detail: e.message });
  }
  if (!res.ok) {
    let answer = { detail: res.statusText };
    try { answer = await res.json(); } catch { /* not JSON */ }
    const err = new ApiError(res.status, answer);
    if (res.status === 401 && S.me && path !== "/session") sessionEnded(err);
    throw err;
  }
  return res.status === 204 ? null : res.json();
}

// Evidence is behind the sign-in: fetch it and hand out blob: URLs (cached, bounded).
const blobCache = new Map();
function blobUrl(path) {
  if (blobCache.has(path)) return blobCache.get(path);
  const p = fetch(path, { headers: requestHeaders(), credentials: "same-origin" })
    .then((r) => (r.ok ? r.blob() : null))
    .then((b) => (b ? URL.createObjectURL(b) : null))
    .catch(() => null);
  blobCache.set(path, p);
  if (blobCache.size > 400) {
    const [oldest, op] = blobCache.entries().next().value;
    blobCache.delete(oldest);
    op.then((u) => u && URL.revokeObjectURL(u));
  }
  return p;
}

function authImg(path, { cls = "", alt = "", onmissing } = {}) {
  const img = h("img", { class: cls, alt, decoding: "async" });
  blobUrl(path).then((u) => {
    if (u) img.src = u;
    else if (onmissing) onmissing(img);
    else img.replaceWith(h("div", { class: `${cls} none` }, t("media.image_missing")));
  });
  return img;
}

async function download(path, filename) {
  const u = await blobUrl(path);
  if (!u) return toast(t("media.download_failed", { name: filename }), true);
  const a = h("a", { href: u, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
}

function toast(text, error = false, ms = 5000) {
  const el = h("div", { class: `toast${error ? " error" : ""}`, role: error ? "alert" : "status" }, text);
  $("#toasts").append(el);
  setTimeout(() => el.remove(), ms);
  return el;
}

// ---- time, in the bureau's time zone and the page's language

function locale() {
  return I18N.locales[I18N.lang] || I18N.lang;
}
function fmtTime(iso, { seconds = true } = {}) {
  if (!iso) return t("misc.dash");
  return new Intl.DateTimeFormat(locale(), {
    timeZone: S.me?.timezone || undefined, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: seconds ? "2-digit" : undefined, hourCycle: "h23",
  }).format(new Date(iso));
}
function fmtDay(day) { // "2026-12-07" (a bureau-local date) in the page's format
  const [y, m, d] = day.split("-").map(Number);
  return new Intl.DateTimeFormat(locale(), { month: "2-digit", day: "2-digit", timeZone: "UTC" })
    .format(new Date(Date.UTC(y, m - 1, d)));
}
function fmtDuration(ms) {
  const s = Math.round(Math.abs(ms) / 1000);
  if (s < 60) return t("dur.s", { s });
  const m = Math.round(s / 60);
  if (m < 60) return t("dur.min", { m });
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return t("dur.hm", { h: hrs, m: m % 60 });
  return t("dur.dh", { d: Math.floor(hrs / 24), h: hrs % 24 });
}
function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 ** 2).toFixed(1)} MB`;
}
const pct = (x) => (x === null || x === undefined ? t("misc.dash") : `${(x * 100).toFixed(1)} %`);

// ---- presentation pieces

const statusText = (status) => (STATUSES.includes(status) ? t(`status.${status}`) : status);
const roleText = (role) => t(`role.${role}`);
const actionText = (action) => (MESSAGES["zh-CN"][`action.${action}`] ? t(`action.${action}`) : action);

function statusBadge(status) {
  return h("span", { class: `badge st-${status}`, dataset: { status } }, statusText(status));
}

/** The class's name in the page's language (the catalogue's name_zh / name_en), and the other one. */
function className(classId) {
  const c = S.classes.get(classId);
  if (!c) return [classId, ""];
  return I18N.lang === "zh-CN" ? [c.name_zh, ""] : [c.name_en, c.name_zh];
}
function classCell(classId) {
  const [main, other] = className(classId);
  return h("div", {}, h("div", { class: "cls-main" }, main), other ? h("div", { class: "cls-other" }, other) : null);
}

function deadlineCell(c) {
  const stage = MESSAGES["zh-CN"][`deadline.stage.${c.status}`] ? t(`deadline.stage.${c.status}`) : "";
  if (c.overdue) {
    return h("div", { class: "deadline" }, h("span", { class: "badge overdue", title: `${stage} ${fmtTime(c.deadline_at)}` },
      t("deadline.overdue", { d: fmtDuration(Date.now() - Date.parse(c.deadline_at)) })));
  }
  if (!c.deadline_at || TERMINAL.has(c.status)) return h("span", { class: "muted" }, t("misc.dash"));
  const left = Date.parse(c.deadline_at) - Date.now();
  return h("div", { class: "deadline" },
    h("span", { class: `badge${left < 3600e3 ? " soon" : ""}`, title: stage }, t("deadline.left", { d: fmtDuration(left) })),
    h("div", { class: "muted" }, `${stage} ${fmtTime(c.deadline_at, { seconds: false })}`));
}

function place(c) {
  if (c.camera_id) return [c.camera_id, c.zone ? ` / ${c.zone}` : ""].join("");
  if (c.lat !== null && c.lat !== undefined) return `${c.lat.toFixed(5)}, ${c.lon.toFixed(5)}`;
  if (c.address && !c.ground) return t("case.address_only", { address: c.address });
  return sourceText(c.source);
}
/** The case's position, or "no position" for a case filed with only an address. */
function locationText(c, ground) {
  if (c.lat !== null && c.lat !== undefined) return `${c.lat.toFixed(6)}, ${c.lon.toFixed(6)}`;
  if (ground) return ground;
  return c.address ? h("span", { class: "no-position" }, t("case.no_position")) : t("misc.dash");
}
/** What became of each photo an Open311 client linked (media_url): fetched, refused with why, or off. */
function mediaFetches(c) {
  return h("ul", { class: "media-fetches" }, ...(c.media_fetches || []).map((f) =>
    h("li", { dataset: { status: f.status } },
      h("a", { href: f.url, rel: "noopener noreferrer", target: "_blank" }, f.url), " ",
      h("span", { class: f.status === "failed" ? "error" : "muted" },
        t(`case.media_url.${f.status}`, { reason: f.reason || "" })))));
}
const sourceText = (source) => (MESSAGES["zh-CN"][`source.${source}`] ? t(`source.${source}`) : source);

/** The unit column: the responsible unit, or the one routing would pick, marked as not dispatched yet. */
function unitText(c, long = false) {
  if (c.unit) return unitName(c.unit);
  if (c.routed_unit) {
    const routed = h("span", { class: "routed", title: t("queue.unit_routed_title") },
      t(long ? "case.unit_routed" : "queue.unit_routed", { unit: unitName(c.routed_unit) }));
    if (!long || c.routing_note !== "no_place") return routed;
    return h("span", {}, routed, h("div", { class: "muted routing-note" }, t("case.routing_no_place")));
  }
  return h("span", { class: "muted" }, t("misc.dash"));
}
function unitName(id) {
  const u = (S.me?.units || []).find((x) => x.id === id);
  return u && u.name !== id ? u.name : id;
}

// ---------------------------------------------------------------- sign-in / session

function showLogin(message) {
  $("#app").hidden = true;
  $("#login").hidden = false;
  const err = $("#login-error");
  err.hidden = !message;
  err.textContent = message || "";
  $("#username").focus();
}

/** The wrong-password, lockout and rate-limit answers of POST /session, in the page's language. */
function loginMessage(e) {
  if (!(e instanceof ApiError)) return t("error.unknown");
  const left = e.detail && typeof e.detail === "object" ? e.detail.attempts_left : undefined;
  if (e.code === "bad_credentials" && left > 0 && left <= 3) return t("login.failed_left", { left });
  return e.message;
}

async function passwordSignIn(username, password) {
  const out = await api("/session", { method: "POST", body: { username, password }, token: null });
  S.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  S.csrf = out.csrf_token;
  await start();
}

async function tokenSignIn(token) {
  const me = await api("/me", { token });
  if (me.role === "sensor") throw new ApiError(403, { code: "sensor_token" });
  S.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  await start(me);
}

/** Signed in (by session cookie or token): load what every view needs and show the page. */
async function start(me) {
  S.me = me || await api("/me");
  if (S.me.csrf_token) S.csrf = S.me.csrf_token;
  const [classes, cameras] = await Promise.all([api("/classes"), api("/cameras").catch(() => [])]);
  S.classes = new Map(classes.map((c) => [c.id, c]));
  S.cameras = cameras;
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#admin-tab").hidden = S.me.role !== "admin";
  $("#labelling-tab").hidden = !["admin", "reviewer"].includes(S.me.role);
  showWhoami();
  startLive();
  route();
}

function showWhoami() {
  if (!S.me) return;
  $("#whoami").textContent = t("top.whoami", { name: S.me.name, role: roleText(S.me.role), timezone: S.me.timezone });
}

/** Back to the sign-in form; `endSession`: the user signed out, so the hub ends the session too. */
async function signOut(message, endSession = false) {
  if (endSession && S.me && !S.token) await api("/session", { method: "DELETE" }).catch(() => null);
  S.token = null;
  S.me = null;
  S.csrf = null;
  S.undo = null; // nothing of this user's to take back after someone else signs in
  $("#toasts").replaceChildren();
  sessionStorage.removeItem(TOKEN_KEY);
  S.live.ctrl?.abort();
  for (const p of blobCache.values()) p.then((u) => u && URL.revokeObjectURL(u));
  blobCache.clear();
  showLogin(message);
}

// ---------------------------------------------------------------- routing

// Views other page scripts add (district.js: cameras, map, calendar): name -> render(view, route).
const EXTRA_VIEWS = (window.CityEye = window.CityEye || { views: {} }).views;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query);
  if (parts[0] === "case" && parts[1]) return { view: "case", caseId: parts[1], params };
  if (parts[0] === "stats") return { view: "stats", params };
  if (parts[0] === "labelling") return { view: "labelling", params };
  if (EXTRA_VIEWS[parts[0]]) return { view: parts[0], parts, params };
  if (parts[0] === "admin") return { view: "admin", params };
  return { view: "queue", params };
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function route() {
  if (!S.me) return;
  S.route = parseHash();
  S.gen += 1;
  for (const a of document.querySelectorAll(".tabs a")) {
    a.classList.toggle("active", a.dataset.view === (S.route.view === "case" ? "queue" : S.route.view));
  }
  const view = $("#view");
  view.replaceChildren();
  if (S.route.view === "case") renderCase(view, S.route.caseId);
  else if (S.route.view === "stats") renderStats(view);
  else if (S.route.view === "labelling") renderLabelling(view);
  else if (EXTRA_VIEWS[S.route.view]) EXTRA_VIEWS[S.route.view](view, S.route);
  else if (S.route.view === "admin") renderAdmin(view);
  else renderQueue(view);
}

// ---------------------------------------------------------------- queue

function queueFilters() {
  const p = S.route.view === "queue" ? S.route.params : (S.queueParams || new URLSearchParams());
  return {
    status: p.get("status") || "",
    class_id: p.get("class_id") || "",
    camera_id: p.get("camera_id") || "",
    overdue: p.get("overdue") || "",
    sort: p.get("sort") || "-created_at",
    limit: Number(p.get("limit")) || 50,
    offset: Number(p.get("offset")) || 0,
  };
}

function queueHash(f) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) {
    if (v !== "" && !(k === "sort" && v === "-created_at") && !(k === "limit" && v === 50)
        && !(k === "offset" && v === 0)) p.set(k, v);
  }
  const q = p.toString();
  return `#/queue${q ? "?" + q : ""}`;
}

function listQuery(f, status, offset, limit) {
  const p = new URLSearchParams({ sort: f.sort, offset, limit });
  for (const s of status) p.append("status", s);
  if (f.class_id) p.set("class_id", f.class_id);
  if (f.camera_id) p.set("camera_id", f.camera_id);
  if (f.overdue) p.set("overdue", f.overdue);
  return `/cases?${p}`;
}

/** One page of the queue. With no status filter: every pending_review case first, then the rest. */
async function fetchQueue(f) {
  if (f.status) {
    const page = await api(listQuery(f, [f.status], f.offset, f.limit));
    return { items: page.items, total: page.total, pending: f.status === "pending_review" ? page.total : null };
  }
  const pending = await api(listQuery(f, ["pending_review"], f.offset, f.limit));
  const others = STATUSES.filter((s) => s !== "pending_review");
  const need = f.limit - pending.items.length;
  const rest = await api(listQuery(f, others, Math.max(0, f.offset - pending.total), Math.max(1, need)));
  return { items: [...pending.items, ...(need > 0 ? rest.items : [])], total: pending.total + rest.total,
           pending: pending.total };
}

function select(name, value, options, onchange) {
  const el = h("select", { name, onchange });
  for (const [v, label] of options) el.append(h("option", { value: v, selected: v === String(value) }, label));
  return el;
}

function renderQueue(view) {
  const f = queueFilters();
  S.queueParams = S.route.params;
  const apply = (patch) => go(queueHash({ ...f, offset: 0, ...patch }));
  const byName = (a, b) => className(a.id)[0].localeCompare(className(b.id)[0], locale());
  const classOpts = [["", t("queue.filter.all_classes")], ...[...S.classes.values()].sort(byName).map((c) => [c.id, className(c.id)[0]])];
  const cams = new Set(S.cameras.map((c) => c.camera_id));
  if (f.camera_id) cams.add(f.camera_id);
  const filters = h("div", { class: "filters" },
    h("label", {}, t("queue.filter.status"), select("status", f.status, [["", t("queue.filter.status_default")],
      ...STATUSES.map((k) => [k, statusText(k)])], (e) => apply({ status: e.target.value }))),
    h("label", {}, t("queue.filter.class"), select("class_id", f.class_id, classOpts, (e) => apply({ class_id: e.target.value }))),
    h("label", {}, t("queue.filter.camera"), select("camera_id", f.camera_id,
      [["", t("queue.filter.all_cameras")], ...[...cams].sort().map((c) => [c, c])], (e) => apply({ camera_id: e.target.value }))),
    h("label", {}, t("queue.filter.deadline"), select("overdue", f.overdue, [["", t("queue.filter.any")],
      ["true", t("queue.filter.overdue")], ["false", t("queue.filter.not_overdue")]], (e) => apply({ overdue: e.target.value }))),
    h("label", {}, t("queue.filter.sort"), select("sort", f.sort, SORTS.map(([v, k]) => [v, t(k)]), (e) => apply({ sort: e.target.value }))),
    h("label", {}, t("queue.filter.per_page"), select("limit", f.limit, PAGE_SIZES.map((n) => [String(n), String(n)]),
      (e) => apply({ limit: Number(e.target.value) }))),
    h("button", { class: "btn", type: "button", onclick: () => go("#/queue") }, t("queue.reset")),
    h("button", { class: "btn", type: "button", title: t("queue.reload_title"), onclick: () => loadQueue() }, t("queue.reload")),
    h("button", { class: "btn", type: "button", id: "mark-duplicates", title: t("batch.mark_duplicates_title"),
      onclick: markDuplicates }, t("batch.mark_duplicates")));
  const summary = h("div", { class: "summary", id: "queue-summary" }, t("queue.loading"));
  const batch = h("div", { class: "batch", id: "batch", hidden: true });
  const table = h("table", { class: "grid", id: "queue" },
    h("thead", {}, h("tr", {}, h("th", { class: "mark" }), h("th", {}),
      ...["queue.col.case", "queue.col.class", "queue.col.place", "queue.col.first_seen", "queue.col.last_seen",
        "queue.col.events", "queue.col.deadline", "queue.col.unit"].map((k) => h("th", {}, t(k))))),
    h("tbody", {}));
  const pager = h("div", { class: "pager", id: "pager" });
  view.append(h("section", { class: "panel" }, filters, summary, batch, table, pager));
  loadQueue();
}

let queueTimer = null;
function refreshQueueSoon() {
  clearTimeout(queueTimer);
  queueTimer = setTimeout(() => S.route.view === "queue" && loadQueue(), 250);
}

async function loadQueue() {
  const gen = S.gen;
  const f = queueFilters();
  let page;
  try {
    page = await fetchQueue(f);
  } catch (e) {
    if (gen === S.gen) $("#queue-summary").replaceChildren(h("span", { class: "error", role: "alert" },
      t("queue.load_failed", { error: hubErrorText(e) })));
    return;
  }
  if (gen !== S.gen) return;
  // A live refresh keeps the selected case; other filters or another page start at the top.
  const same = JSON.stringify(S.queue.filters || null) === JSON.stringify(f);
  const prevId = same ? S.queue.items[S.queue.selected]?.case_id : null;
  if (!same) S.queue.selected = 0;
  S.queue = { ...S.queue, ...page, filters: f };
  const ids = new Set(page.items.map((c) => c.case_id));
  for (const id of [...S.queue.marked.keys()]) if (!ids.has(id)) S.queue.marked.delete(id);
  const idx = page.items.findIndex((c) => c.case_id === prevId);
  S.queue.selected = idx >= 0 ? idx : Math.min(S.queue.selected, Math.max(0, page.items.length - 1));
  const tbody = $("#queue tbody");
  tbody.replaceChildren(...page.items.map((c, i) => queueRow(c, i)));
  if (!page.items.length) {
    tbody.append(h("tr", {}, h("td", { colspan: 10, class: "empty" }, t("queue.empty"))));
  }
  const first = page.total ? f.offset + 1 : 0;
  const last = f.offset + page.items.length;
  $("#queue-summary").replaceChildren(
    h("span", {}, t("queue.total", { n: page.total })),
    page.pending !== null ? h("span", { class: "pending" }, t("queue.pending", { n: page.pending })) : null,
    h("span", {}, t("queue.showing", { first, last })),
    h("span", { class: "muted" }, t("queue.keys")));
  $("#pager").replaceChildren(
    h("button", { class: "btn", type: "button", disabled: f.offset === 0,
      onclick: () => go(queueHash({ ...f, offset: Math.max(0, f.offset - f.limit) })) }, t("queue.previous")),
    h("span", { class: "muted" }, t("queue.page", { page: Math.floor(f.offset / f.limit) + 1,
      pages: Math.max(1, Math.ceil(page.total / f.limit)) })),
    h("button", { class: "btn", type: "button", disabled: last >= page.total,
      onclick: () => go(queueHash({ ...f, offset: f.offset + f.limit })) }, t("queue.next")));
  markSelected();
  showBatch();
}

/** A queue row: the case's own crop, with class, place, plate (when read) and age beside it. */
function queueRow(c, i) {
  const fresh = S.queue.fresh.has(c.case_id);
  if (fresh) S.queue.fresh.delete(c.case_id);
  const id = enc(c.case_id);
  const thumb = authImg(`/cases/${id}/image?kind=crop&v=${c.event_count}`, {
    cls: "thumb", alt: t("queue.thumb_alt", { case: c.case_id }),
    onmissing: (img) => { // sensor and citizen cases have no crop: their snapshot, if any
      blobUrl(`/cases/${id}/image?kind=snapshot&v=${c.event_count}`).then((u) => {
        if (u) img.src = u;
        else img.replaceWith(h("div", { class: "thumb none" }, t("media.none")));
      });
    } });
  const plate = c.plate?.text || (typeof c.plate === "string" ? c.plate : null);
  const mark = h("input", { type: "checkbox", class: "mark", title: t("batch.mark_title"), checked: S.queue.marked.has(c.case_id),
    onclick: (e) => { e.stopPropagation(); toggleMark(c.case_id, e.target.checked); } });
  return h("tr", {
    class: `case-row${fresh ? " fresh" : ""}${S.queue.marked.has(c.case_id) ? " marked" : ""}`,
    dataset: { caseId: c.case_id, index: i },
    onclick: () => { S.queue.selected = i; go(`#/case/${id}`); },
  },
  h("td", { class: "mark" }, mark),
  h("td", { class: "thumb-cell" }, thumb),
  h("td", {}, h("div", { class: "case-id" }, c.case_id), statusBadge(c.status),
    c.recurrence_of ? h("div", { class: "muted", title: t("queue.recurrence_of", { case: c.recurrence_of }) },
      t("queue.recurrence", { n: c.recurrence_count })) : null),
  h("td", {}, classCell(c.class_id), plate ? h("div", { class: "plate" }, t("queue.plate", { plate })) : null),
  h("td", {}, place(c), h("div", { class: "muted" }, sourceText(c.source))),
  h("td", { class: "mono" }, fmtTime(c.first_seen), h("div", { class: "age muted" },
    t("queue.age", { age: fmtDuration(Date.now() - Date.parse(c.first_seen)) }))),
  h("td", { class: "mono" }, fmtTime(c.last_seen)),
  h("td", { class: "num" }, String(c.event_count)),
  h("td", {}, deadlineCell(c)),
  h("td", { class: "unit" }, unitText(c)));
}

function markSelected(scroll = false) {
  for (const tr of document.querySelectorAll("#queue tr.case-row")) {
    const on = Number(tr.dataset.index) === S.queue.selected;
    tr.classList.toggle("selected", on);
    if (on && scroll) tr.scrollIntoView({ block: "nearest" });
  }
}

// ---- batch: obvious duplicates (same camera, zone and class, pending review) voided together

function toggleMark(caseId, on, dupOf = null) {
  if (on) S.queue.marked.set(caseId, dupOf);
  else S.queue.marked.delete(caseId);
  const tr = $(`#queue tr[data-case-id="${CSS.escape(caseId)}"]`);
  if (tr) {
    tr.classList.toggle("marked", on);
    tr.querySelector("input.mark").checked = on;
  }
  showBatch();
}

/** Mark every pending case that repeats an older case of the same camera, zone and class on this page
 * (pending or already filed: anything but void or closed); the oldest is kept. */
function markDuplicates() {
  const groups = new Map();
  for (const c of S.queue.items) {
    if (TERMINAL.has(c.status) || !c.camera_id) continue;
    const key = `${c.camera_id}\u0000${c.zone || ""}\u0000${c.class_id}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(c);
  }
  let n = 0;
  for (const cases of groups.values()) {
    if (cases.length < 2) continue;
    cases.sort((a, b) => Date.parse(a.first_seen) - Date.parse(b.first_seen) || a.case_id.localeCompare(b.case_id));
    for (const dup of cases.slice(1).filter((c) => c.status === "pending_review")) {
      toggleMark(dup.case_id, true, cases[0].case_id);
      n += 1;
    }
  }
  if (!n) toast(t("batch.none"));
}

function showBatch() {
  const bar = $("#batch");
  if (!bar) return;
  const n = S.queue.marked.size;
  bar.hidden = n === 0;
  bar.replaceChildren(
    h("strong", {}, t("batch.title")), h("span", {}, t("batch.selected", { n })),
    h("button", { class: "btn danger solid", type: "button", id: "void-duplicates", onclick: voidMarked },
      t("batch.void_duplicates", { n })),
    h("button", { class: "btn", type: "button", onclick: () => { for (const id of [...S.queue.marked.keys()]) toggleMark(id, false); } },
      t("batch.clear")));
}

async function voidMarked() {
  const marked = [...S.queue.marked.entries()];
  if (!marked.length) return;
  const done = [];
  const failed = [];
  for (const [caseId, dupOf] of marked) {
    const note = dupOf ? `${zhText("void.duplicate")}：${zhText("void.duplicate_of", { case: dupOf })}` : zhText("void.duplicate");
    try {
      await api(`/cases/${enc(caseId)}/void`, { method: "POST", body: { note } });
      done.push({ caseId, status: "pending_review" });
      S.queue.marked.delete(caseId);
    } catch (e) {
      failed.push(`${caseId}: ${e.title()}`);
    }
  }
  if (done.length) offerUndo(done, t("batch.done", { n: done.length }));
  if (failed.length) toast(t("batch.failed", { n: failed.length, error: failed.join("; ") }), true, 10000);
  loadQueue();
}

// ---------------------------------------------------------------- case detail

async function renderCase(view, caseId) {
  const gen = S.gen;
  view.append(h("p", { class: "muted" }, t("case.loading")));
  let c;
  try {
    c = await api(`/cases/${enc(caseId)}`);
  } catch (e) {
    if (gen !== S.gen) return;
    view.replaceChildren(h("div", { class: "alert", role: "alert" }, h("strong", {}, `${e.status} ${e.title()}`), " ",
      e.status === 404 ? t("case.not_found") : hubErrorText(e), errorDetails(e)),
    h("p", {}, h("a", { href: "#/queue" }, t("case.back"))));
    return;
  }
  if (gen !== S.gen) return;
  S.detail = { case: c, form: null };
  view.replaceChildren(caseHead(c), h("div", { class: "detail" }, caseMedia(c), caseSide(c)));
}

function queuePosition(caseId) {
  return S.queue.items.findIndex((x) => x.case_id === caseId);
}

function caseHead(c) {
  const pos = queuePosition(c.case_id);
  const [main, other] = className(c.class_id);
  return h("div", { class: "detail-head" },
    h("a", { class: "btn", href: "#/queue", title: t("case.back_title") }, t("case.back")),
    h("h1", {}, main, other ? [" ", h("span", { class: "zh" }, other)] : null),
    statusBadge(c.status),
    c.overdue ? h("span", { class: "badge overdue" }, t("case.overdue")) : null,
    h("span", { class: "case-id muted" }, c.case_id),
    h("span", { class: "nav" },
      pos >= 0 ? h("span", { class: "muted" }, t("case.position", { pos: S.queue.filters.offset + pos + 1, total: S.queue.total })) : null,
      h("button", { class: "btn", type: "button", title: t("case.prev_title"), onclick: () => stepCase(-1) }, t("case.prev"), h("kbd", {}, "k")),
      h("button", { class: "btn", type: "button", title: t("case.next_title"), onclick: () => stepCase(1) }, t("case.next"), h("kbd", {}, "j"))));
}

function latestMedia(c, kind) {
  for (let i = c.events.length - 1; i >= 0; i--) {
    const m = c.events[i].media.find((x) => x.kind === kind);
    if (m) return m;
  }
  return null;
}

function caseMedia(c) {
  const annotated = latestMedia(c, "annotated");
  const snapshot = latestMedia(c, "snapshot");
  const main = annotated || snapshot;
  const stage = h("div", { class: "stage" });
  if (main) {
    const img = authImg(main.url, { alt: t("media.image_alt", { case: c.case_id }),
      onmissing: (el) => el.replaceWith(h("div", { class: "none" }, t("media.image_missing"))) });
    img.id = "main-image";
    stage.append(h("a", { title: t("media.open_full"), onclick: (e) => { e.preventDefault(); openBlob(main.url); }, href: "#" }, img));
  } else {
    stage.append(h("div", { class: "none" }, t("media.no_image")));
  }
  const caption = h("div", { class: "stage-caption" },
    h("span", {}, main ? t(annotated ? "media.annotated" : "media.snapshot") : ""),
    h("span", {}, t("media.latest", { n: c.events.length })));

  const crop = latestMedia(c, "crop");
  const clip = latestMedia(c, "clip");
  const fig = (title, media, alt) => h("figure", {},
    media ? authImg(media.url, { alt }) : h("div", { class: "placeholder" }, t("media.none")),
    h("figcaption", {}, h("span", {}, title),
      media ? h("a", { href: "#", onclick: (e) => { e.preventDefault(); openBlob(media.url); } }, t("media.full_size")) : null));
  return h("section", {},
    stage, caption,
    h("div", { class: "media-row" },
      fig(t("media.snapshot"), annotated ? snapshot : null, t("media.snapshot")),
      fig(t("media.crop"), crop, t("media.crop")),
      clipFigure(c, clip)),
    platePanel(c),
    ["reviewer", "admin"].includes(S.me?.role) ? labelEditor(`/cases/${encodeURIComponent(c.case_id)}/labels`) : null,
    h("section", { class: "panel", style: "margin-top:16px" },
      h("header", { style: "display:flex;align-items:center;justify-content:space-between;gap:8px" },
        h("h2", {}, t("evidence.title", { n: c.events.length })),
        packageLink(c)),
      evidenceTable(c)));
}

// ---------------------------------------------------------------- licence plate (parking evidence)

// The plate crop large beside its text, the three timed stills, and (for roles that may) a correction form.
// Classes without plate evidence have no `plate`; `plate.text` null means the edge could not read it.
function platePanel(c) {
  if (!c.plate) return null;
  const p = c.plate;
  // A masked plate's close-ups stay hidden: the crop and the vehicle close-up would show it in full.
  const crop = p.masked ? null : latestMedia(c, "plate");
  const stills = latestStills(c).filter((m) => !(p.masked && m.name === "still_3.jpg"));
  const text = p.text
    ? h("div", { class: "plate-text", id: "plate-text", dataset: { colour: p.colour || "" } }, p.text)
    : h("div", { class: "plate-text unreadable", id: "plate-text" }, t("plate.unreadable"));
  const facts = p.text ? h("div", { class: "muted", id: "plate-facts" },
    t("plate.facts", { colour: t(`plate.colour.${p.colour}`), frames: p.frames, attempts: p.attempts,
      score: Math.round(p.score * 100) }),
    p.corrected ? h("div", {}, t("plate.corrected")) : null,
    p.cases_90d > 1 ? h("div", { class: "plate-repeat", id: "plate-repeat" }, t("plate.repeat", { n: p.cases_90d })) : null)
    : null;
  return h("section", { class: "panel plate-panel", id: "plate-panel", style: "margin-top:16px" },
    h("h2", {}, t("plate.title")),
    h("div", { class: "body", style: "display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start" },
      crop ? authImg(crop.url, { alt: t("plate.crop_alt"), cls: "plate-crop" }) : null,
      h("div", {}, text, facts, p.can_correct ? plateForm(c) : null)),
    stills.length ? h("div", { class: "media-row", id: "plate-stills" }, ...stills.map((m, i) => h("figure", {},
      authImg(m.url, { alt: t(`plate.still.${i + 1}`) }),
      h("figcaption", {}, h("span", {}, t(`plate.still.${i + 1}`)),
        h("a", { href: "#", onclick: (e) => { e.preventDefault(); openBlob(m.url); } }, t("media.full_size")))))) : null);
}

function latestStills(c) {
  for (let i = c.events.length - 1; i >= 0; i--) {
    const stills = c.events[i].media.filter((x) => x.kind === "still").sort((a, b) => a.name.localeCompare(b.name));
    if (stills.length) return stills;
  }
  return [];
}

function plateForm(c) {
  const input = h("input", { id: "plate-input", value: c.plate.text || "", placeholder: "苏E·D51712", maxlength: "12",
    "aria-label": t("plate.correct_label") });
  const note = h("input", { id: "plate-note", placeholder: t("plate.correct_note"), "aria-label": t("plate.correct_note") });
  return h("form", { class: "plate-form", style: "margin-top:8px;display:flex;gap:6px;flex-wrap:wrap",
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api(`/cases/${encodeURIComponent(c.case_id)}/plate`, { method: "POST",
          body: { text: input.value, note: note.value } });
        toast(t("plate.corrected_toast"));
        route();
      } catch (err) {
        toast(t("plate.correct_failed", { error: err.message }), true, 8000);
      }
    } },
    input, note, h("button", { class: "btn small", type: "submit", id: "plate-save" }, t("plate.correct")));
}

// ---------------------------------------------------------------- label editor (teaching new classes)
// Boxes on the case's snapshot: drag on the image to draw one, drag a box to move it, pick its label or
// delete it; "Nothing here" saves the frame as a hard negative. Saved with PUT /cases/{id}/labels; the
// hub exports them (GET /labels/export) for `cityeye models dataset`.

/** A label as reviewers read it: its name in the page's language, the model's id after it as a hint. */
function labelText(n) {
  const name = I18N.lang === "zh-CN" ? n.name_zh : n.name_en;
  return name && name !== n.id ? t("labels.option", { name, id: n.id }) : n.id;
}

function labelEditor(path) {
  const panel = h("section", { class: "panel label-editor", id: "label-editor" },
    h("header", {}, h("h2", {}, t("labels.title"))),
    h("p", { class: "muted" }, t("labels.loading")));
  (async () => {
    let data, names;
    try {
      [data, names] = await Promise.all([api(path), api("/labels")]);
    } catch (e) {
      panel.replaceChildren(h("p", { class: "muted" }, t("labels.unavailable", { error: e.message })));
      return;
    }
    const state = { boxes: data.boxes.map((b) => ({ label: b.label, box: [...b.box] })), selected: -1,
      nothing: data.nothing };
    const img = authImg(`/evidence/${data.image_sha256}`, { alt: t("labels.image_alt") });
    img.id = "label-image";
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 1 1");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.id = "label-svg";
    const labelSelect = h("select", { id: "label-select", "aria-label": t("labels.select"),
      onchange: () => { if (state.selected >= 0) { state.boxes[state.selected].label = labelSelect.value; draw(); } } },
      ...names.map((n) => h("option", { value: n.id, title: n.id }, labelText(n))));
    const status = h("span", { class: "muted", id: "label-status" },
      data.source === "detector" ? t("labels.from_detector")
        : data.source === "prelabel" ? t("labels.from_prelabel", { model: data.proposed_by?.name || t("misc.dash") })
          : t("labels.saved_by", { name: data.labelled_by }));
    const pos = (e) => {
      const r = svg.getBoundingClientRect();
      return [Math.min(1, Math.max(0, (e.clientX - r.left) / r.width)), Math.min(1, Math.max(0, (e.clientY - r.top) / r.height))];
    };
    let drag = null;
    svg.addEventListener("pointerdown", (e) => {
      const [x, y] = pos(e);
      const hit = state.boxes.findIndex((b) => x >= b.box[0] && x <= b.box[2] && y >= b.box[1] && y <= b.box[3]);
      state.selected = hit;
      drag = hit >= 0 ? { kind: "move", start: [x, y], orig: [...state.boxes[hit].box] } : { kind: "draw", start: [x, y] };
      if (hit < 0) {
        state.boxes.push({ label: labelSelect.value || names[0]?.id, box: [x, y, x, y] });
        state.selected = state.boxes.length - 1;
      } else {
        labelSelect.value = state.boxes[hit].label;
      }
      state.nothing = false;
      svg.setPointerCapture(e.pointerId);
      draw();
    });
    svg.addEventListener("pointermove", (e) => {
      if (!drag || state.selected < 0) return;
      const [x, y] = pos(e);
      const b = state.boxes[state.selected];
      if (drag.kind === "draw") {
        b.box = [Math.min(drag.start[0], x), Math.min(drag.start[1], y), Math.max(drag.start[0], x), Math.max(drag.start[1], y)];
      } else {
        const dx = Math.max(-drag.orig[0], Math.min(1 - drag.orig[2], x - drag.start[0]));
        const dy = Math.max(-drag.orig[1], Math.min(1 - drag.orig[3], y - drag.start[1]));
        b.box = [drag.orig[0] + dx, drag.orig[1] + dy, drag.orig[2] + dx, drag.orig[3] + dy];
      }
      draw();
    });
    svg.addEventListener("pointerup", () => {
      if (drag && drag.kind === "draw" && state.selected >= 0) {
        const b = state.boxes[state.selected].box;
        if (b[2] - b[0] < 0.004 || b[3] - b[1] < 0.004) { state.boxes.splice(state.selected, 1); state.selected = -1; }
      }
      drag = null;
      draw();
    });
    function draw() {  // rects are updated in place: replacing the one under the pointer would end its drag
      while (svg.childNodes.length > state.boxes.length) svg.lastChild.remove();
      while (svg.childNodes.length < state.boxes.length) svg.append(document.createElementNS("http://www.w3.org/2000/svg", "rect"));
      state.boxes.forEach((b, i) => {
        const r = svg.childNodes[i];
        r.setAttribute("x", b.box[0]); r.setAttribute("y", b.box[1]);
        r.setAttribute("width", b.box[2] - b.box[0]); r.setAttribute("height", b.box[3] - b.box[1]);
        r.setAttribute("class", i === state.selected ? "label-box selected" : "label-box");
        r.setAttribute("data-label", b.label);
      });
      count.textContent = state.nothing ? t("labels.nothing") : t("labels.count", { n: state.boxes.length });
    }
    const count = h("span", { id: "label-count" });
    async function save(nothing) {
      try {
        const out = await api(path, { method: "PUT", body: {
          boxes: nothing ? [] : state.boxes, nothing, image_sha256: data.image_sha256 } });
        state.boxes = out.boxes; state.nothing = out.nothing; state.selected = -1;
        status.textContent = t("labels.saved", { n: out.boxes.length });
        draw();
      } catch (e) {
        status.textContent = t("labels.not_saved", { error: e.message });
      }
    }
    panel.replaceChildren(panel.firstChild, h("p", { class: "muted" }, t("labels.help")),
      h("div", { class: "label-stage" }, img, svg),
      h("div", { class: "label-tools" },
        labelSelect,
        h("button", { class: "btn small", type: "button", id: "label-delete",
          onclick: () => { if (state.selected >= 0) { state.boxes.splice(state.selected, 1); state.selected = -1; draw(); } } },
          t("labels.delete")),
        h("button", { class: "btn small", type: "button", id: "label-nothing", onclick: () => save(true) }, t("labels.nothing")),
        h("button", { class: "btn small primary", type: "button", id: "label-save", onclick: () => save(false) }, t("labels.save")),
        count, status));
    draw();
  })();
  return panel;
}

// ---- the labelling queue: sampled frames the detector pre-labelled (hub.releases.sampled) -----------------
// `cityeye models sample --prelabel MODEL --hub URL` queues them; the editor above draws the detector's
// boxes as pre-labels, the reviewer corrects and saves, and the next frame opens.
async function renderLabelling(view) {
  const gen = S.gen;
  const frameId = S.route.params.get("frame");
  view.append(h("div", { class: "detail-head" }, h("h1", {}, t("labels.sampled_title"))));
  let queue;
  try {
    queue = await api("/labels/frames?reviewed=false&limit=200");
  } catch (e) {
    if (gen === S.gen) view.append(h("div", { class: "alert", role: "alert" }, t("labels.unavailable", { error: e.message })));
    return;
  }
  if (gen !== S.gen) return;
  const link = (f) => `#/labelling?frame=${encodeURIComponent(f.frame_id)}`;
  if (frameId) {
    view.append(labelEditor(`/labels/frames/${encodeURIComponent(frameId)}`));
    const next = queue.frames.find((f) => f.frame_id !== frameId);
    if (next) view.append(h("p", {}, h("a", { class: "btn small", id: "label-next", href: link(next) }, t("labels.next"))));
  }
  view.append(h("section", { class: "panel wide" },
    h("p", { class: "muted" }, t("labels.sampled_count", { n: queue.total })),
    queue.frames.length ? h("table", { class: "grid", id: "sampled-frames" },
      h("thead", {}, h("tr", {}, ...["labels.camera", "labels.taken_at", "labels.proposals"].map((k) => h("th", {}, t(k))))),
      h("tbody", {}, ...queue.frames.map((f) => h("tr", { dataset: { frameId: f.frame_id } },
        h("td", {}, h("a", { href: link(f) }, f.camera_id)), h("td", {}, fmtTime(f.taken_at)),
        h("td", { class: "num" }, String(f.proposals.length))))))
      : h("p", { class: "empty" }, t("labels.sampled_none"))));
}

// The evidence package (signed evidence + case record, verifiable offline) is built per request, so it is
// fetched each time, never from the blob cache.
function packageLink(c) {
  const link = h("a", { class: "btn small", id: "evidence-package", href: "#", title: t("evidence.package_title") },
    t("evidence.package"));
  link.addEventListener("click", (e) => { e.preventDefault(); downloadPackage(c, link); });
  return link;
}

async function downloadPackage(c, link) {
  if (link.getAttribute("aria-busy")) return;
  link.setAttribute("aria-busy", "true");
  try {
    const res = await fetch(`/cases/${enc(c.case_id)}/evidence-package`, { headers: requestHeaders(), credentials: "same-origin" });
    if (!res.ok) {
      let answer = { detail: res.statusText };
      try { answer = await res.json(); } catch { /* not JSON */ }
      const e = new ApiError(res.status, answer);
      if (res.status === 401) return sessionEnded(e);
      return toast(t("evidence.package_failed", { error: `${res.status} ${e.title()}: ${e.message}` }), true, 10000);
    }
    const u = URL.createObjectURL(await res.blob());
    const a = h("a", { href: u, download: `${c.case_id}-evidence.zip` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(u), 60_000);
  } catch (e) {
    toast(t("evidence.package_failed", { error: e.message }), true);
  } finally {
    link.removeAttribute("aria-busy");
  }
}

async function openBlob(path) {
  const u = await blobUrl(path);
  if (u) window.open(u, "_blank", "noopener");
}

function clipFigure(c, clip) {
  const caption = h("figcaption", {}, h("span", {}, t("media.clip")));
  if (!clip) return h("figure", {}, h("div", { class: "placeholder" }, t("media.no_clip")), caption);
  const ext = { "video/webm": "webm", "video/x-msvideo": "avi", "video/mp4": "mp4" }[clip.content_type] || "bin";
  const name = `${c.case_id}-clip.${ext}`;
  caption.append(h("button", { class: "btn small", type: "button", onclick: () => download(clip.url, name) }, t("media.download")));
  const video = h("video", { controls: true, preload: "metadata", muted: true, id: "clip-video" });
  if (video.canPlayType(clip.content_type)) {
    blobUrl(clip.url).then((u) => { if (u) video.src = u; });
    return h("figure", {}, video, caption);
  }
  return h("figure", {},
    h("div", { class: "placeholder", id: "clip-fallback" },
      h("div", {}, t("media.cannot_play", { type: ext }), h("br"),
        h("button", { class: "btn small", type: "button", style: "margin-top:8px", onclick: () => download(clip.url, name) },
          t("media.download_clip", { size: fmtBytes(clip.size) })))),
    caption);
}

const mediaKind = (kind) => (MESSAGES["zh-CN"][`media.kind.${kind}`] ? t(`media.kind.${kind}`) : kind);

function evidenceTable(c) {
  const rows = [];
  for (const ev of [...c.events].reverse()) {
    const media = ev.media.length ? ev.media : [null];
    const state = MESSAGES["zh-CN"][`evidence.state.${ev.state}`] ? t(`evidence.state.${ev.state}`) : ev.state;
    media.forEach((m, i) => rows.push(h("tr", {},
      i === 0 ? h("td", { rowspan: media.length, class: "mono" }, fmtTime(ev.observed_at),
        h("div", { class: "muted" }, `${state} · ${sourceText(ev.source)}`)) : null,
      i === 0 ? h("td", { rowspan: media.length }, h("div", {}, ev.device_id), h("div", { class: "muted mono" }, ev.event_id),
        h("div", { class: ev.signed ? "signed" : "unsigned" }, t(ev.signed ? "evidence.signed" : "evidence.unsigned"))) : null,
      m ? h("td", {}, mediaKind(m.kind), h("div", { class: "muted" }, fmtBytes(m.size))) : h("td", { class: "muted" }, t("evidence.no_media")),
      m ? h("td", { class: "sha", title: "SHA-256" }, m.sha256) : h("td"),
      m ? h("td", {}, h("button", { class: "btn small", type: "button",
        onclick: () => download(m.url, `${m.sha256.slice(0, 12)}-${m.name}`) }, t("media.download"))) : h("td"))));
  }
  return h("div", { style: "overflow-x:auto" }, h("table", { class: "grid evidence", id: "evidence" },
    h("thead", {}, h("tr", {}, ...["evidence.col.observed", "evidence.col.device", "evidence.col.kind", "evidence.col.sha"]
      .map((k) => h("th", {}, t(k))), h("th", {}))),
    h("tbody", {}, rows)));
}

function caseSide(c) {
  const ground = c.ground ? `${c.ground.crs}: ${c.ground.x.toFixed(2)}, ${c.ground.y.toFixed(2)}` : null;
  const plate = c.plate?.text || (typeof c.plate === "string" ? c.plate : null);
  const explain = c.deadline_at && !TERMINAL.has(c.status) ? `deadline.explain.${c.status}` : "deadline.explain.none";
  const facts = h("dl", { class: "facts" },
    ...[
      ["case.status", statusBadge(c.status)],
      ["case.class", classCell(c.class_id)],
      plate ? ["case.plate", h("span", { class: "plate" }, plate)] : null,
      ["case.place", place(c)],
      ["case.source", sourceText(c.source)],
      ["case.first_seen", fmtTime(c.first_seen)],
      ["case.last_seen", fmtTime(c.last_seen)],
      ["case.events", String(c.event_count)],
      ["case.deadline", h("div", {}, deadlineCell(c), h("div", { class: "stage-help", id: "deadline-stage" },
        MESSAGES["zh-CN"][explain] ? t(explain) : ""))],
      ["case.unit", h("span", { id: "case-unit" }, unitText(c, true))],
      c.address ? ["case.address", h("span", { id: "case-address" }, c.address)] : null,
      ["case.location", h("span", { id: "case-location" }, locationText(c, ground))],
      (c.media_fetches || []).length ? ["case.media_url", mediaFetches(c)] : null,
      c.recurrence_of ? ["case.recurrence", h("a", { href: `#/case/${enc(c.recurrence_of)}` },
        t("case.recurrence_text", { case: c.recurrence_of, n: c.recurrence_count }))] : null,
      c.description ? ["case.description", c.description] : null,
      ["case.created", fmtTime(c.created_at)],
    ].filter(Boolean).flatMap(([k, v]) => [h("dt", {}, t(k)), h("dd", {}, v)]));
  return h("aside", { class: "side" },
    actionsPanel(c),
    h("section", { class: "panel" }, h("h2", {}, t("case.info")), h("div", { class: "body" }, facts)),
    h("section", { class: "panel" }, h("h2", {}, t("timeline.title")), h("div", { class: "body" }, timeline(c))));
}

function timeline(c) {
  if (!c.timeline.length) {
    return h("p", { class: "muted", id: "timeline" }, t("timeline.empty", { time: fmtTime(c.created_at), source: sourceText(c.source) }));
  }
  return h("ol", { class: "timeline", id: "timeline" },
    ...c.timeline.map((x) => h("li", { dataset: { action: x.action } },
      h("div", {}, h("strong", {}, actionText(x.action)), " ",
        x.from_status ? [statusBadge(x.from_status), " → "] : null, statusBadge(x.to_status),
        x.unit ? t("timeline.unit", { unit: unitName(x.unit) }) : ""),
      h("div", { class: "when" }, `${fmtTime(x.at)} · ${x.actor}`),
      x.note ? h("div", { class: "note" }, noteText(x)) : null,
      x.photo_sha256 ? h("div", {}, authImg(`/evidence/${x.photo_sha256}`, { cls: "thumb", alt: t("timeline.photo_alt") }),
        h("span", { class: "sha" }, x.photo_sha256)) : null)));
}

/** A timeline note in the page's language: the hub writes its own notes (undo, recurrence, auto-verify,
 * overdue) in English; people's notes are shown as they wrote them. */
const HUB_NOTES = [
  [/^undo of (\w+) \(/, (m) => t("timeline.undo_of", { action: actionText(m[1]) })],
  [/^recurrence of (\S+)$/, (m) => t("queue.recurrence_of", { case: m[1] })],
  [/^problem cleared at the place \(camera (.+)\)$/, (m) => t("timeline.cleared", { camera: m[1] })],
  [/^deadline of the (\w+) stage passed$/, (m) => t("timeline.overdue", { status: statusText(m[1]) })],
];
function noteText(x) {
  for (const [re, fmt] of HUB_NOTES) {
    const m = x.note.match(re);
    if (m) return fmt(m);
  }
  return x.note;
}

function actionsPanel(c) {
  const body = h("div", { class: "body" });
  const panel = h("section", { class: "panel actions", id: "actions" }, h("h2", {}, t("action.title")), body);
  if (!c.allowed_actions.length) {
    body.append(h("p", { class: "readonly-note", id: "no-actions" },
      t("action.none", { role: roleText(S.me.role), status: statusText(c.status) })));
    return panel;
  }
  const buttons = h("div", { class: "buttons" }, ...c.allowed_actions.map((a) => {
    const spec = ACTIONS[a] || {};
    return h("button", {
      class: `btn ${spec.style || ""}`, type: "button", dataset: { action: a },
      "aria-keyshortcuts": spec.key || null, title: spec.key || null,
      onclick: () => startAction(a),
    }, actionText(a), spec.key ? h("kbd", {}, spec.key) : null);
  }));
  body.append(buttons, h("div", { id: "action-form" }), h("div", { id: "action-error" }));
  return panel;
}

/** A refusal in the page's language (ApiError words itself from the hub's code). */
function hubErrorText(e) {
  return e instanceof ApiError ? e.message : t("error.unknown");
}

function showActionError(e) {
  const box = $("#action-error");
  const title = e instanceof ApiError ? `${e.status || ""} · ${e.title()}` : t("error.unknown");
  if (!box) return toast(`${title}: ${hubErrorText(e)}`, true);
  box.replaceChildren(h("div", { class: "alert", role: "alert" }, h("strong", {}, title), " ", hubErrorText(e),
    errorDetails(e)));
}

function startAction(action) {
  const c = S.detail?.case;
  if (!c || !c.allowed_actions.includes(action)) return;
  const spec = ACTIONS[action] || {};
  $("#action-error").replaceChildren();
  if (!spec.note && !spec.unit && !spec.photo) return runAction(action, {});
  if (action === "void") return startVoid();
  const form = h("form", { id: `form-${action}` });
  const note = h("textarea", { name: "note", placeholder: t(spec.note || "action.note_optional"), maxlength: 4000 });
  let unit = null;
  let photo = null;
  form.append(h("strong", {}, actionText(action)));
  if (spec.unit) {
    const units = S.me.units || [];
    const auto = c.routed_unit ? t("action.unit_auto", { unit: unitName(c.routed_unit) }) : t("action.unit_auto_none");
    unit = h("select", { name: "unit" },
      h("option", { value: "" }, auto),
      ...units.map((u) => h("option", { value: u.id, selected: c.unit === u.id }, u.name !== u.id ? `${u.name} (${u.id})` : u.id)));
    form.append(h("label", {}, t("action.unit"), unit));
  }
  form.append(h("label", {}, t(spec.note || "action.note_optional"), note));
  if (spec.photo) {
    photo = h("input", { type: "file", name: "photo", accept: "image/jpeg" });
    form.append(h("label", {}, t("action.photo"), photo));
  }
  const submit = h("button", { class: "btn primary", type: "submit" }, actionText(action));
  form.append(h("div", { class: "row" },
    h("button", { class: "btn", type: "button", onclick: cancelAction }, t("action.cancel"), h("kbd", {}, "Esc")), submit));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    submit.disabled = true;
    try {
      const body = {};
      if (note.value.trim()) body.note = note.value.trim();
      if (unit && unit.value) body.unit = unit.value;
      if (photo && photo.files.length) {
        const fd = new FormData();
        fd.append("file", photo.files[0]);
        body.photo_sha256 = (await api("/evidence", { method: "POST", form: fd })).sha256;
      }
      await runAction(action, body);
    } catch (err) {
      showActionError(err);
    } finally {
      submit.disabled = false;
    }
  });
  S.detail.form = action;
  $("#action-form").replaceChildren(form);
  (unit && !spec.note ? unit : note).focus();
}

/** The void form: reasons on number keys (one more keystroke voids), an optional note (n to type it). */
function startVoid() {
  const form = h("form", { id: "form-void" });
  const note = h("textarea", { name: "note", placeholder: t("void.note_hint"), maxlength: 4000 });
  const chips = h("div", { class: "chips", role: "group", "aria-label": t("void.reasons") },
    ...VOID_REASONS.map((r, i) => h("button", { class: "btn", type: "button", dataset: { reason: r, key: String(i + 1) },
      onclick: () => submitVoid(r) }, h("kbd", {}, String(i + 1)), t(`void.${r}`))));
  form.append(h("strong", {}, actionText("void")), h("div", { class: "muted" }, t("void.reasons")), chips,
    h("label", {}, t("void.note_hint"), note),
    h("div", { class: "row" }, h("button", { class: "btn", type: "button", onclick: cancelAction }, t("action.cancel"), h("kbd", {}, "Esc"))));
  form.addEventListener("submit", (e) => { e.preventDefault(); submitVoid(null); });
  note.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); submitVoid(null); }
  });
  S.detail.form = "void";
  $("#action-form").replaceChildren(form);
  form.tabIndex = -1;
  form.focus();
}

/** Void with preset `reason` (null: "other", which needs the typed note), plus the note if one was typed. */
function submitVoid(reason) {
  const extra = $("#form-void textarea")?.value.trim() || "";
  const r = reason || "other";
  if (r === "other" && !extra) {
    $("#form-void textarea").focus();
    return;
  }
  const label = zhText(`void.${r === "other" ? "other" : r}`).replace(/（.*）$/, "");
  runAction("void", { note: extra ? `${label}：${extra}` : label });
}

function cancelAction() {
  if (!S.detail?.form) return false;
  S.detail.form = null;
  $("#action-form").replaceChildren();
  $("#action-error").replaceChildren();
  return true;
}

async function runAction(action, body) {
  const c = S.detail.case;
  let out;
  try {
    out = await api(`/cases/${enc(c.case_id)}/${action}`, { method: "POST", body });
  } catch (e) {
    showActionError(e);
    return;
  }
  S.detail.form = null;
  const done = t("action.done", { case: c.case_id, action: actionText(action), status: statusText(out.status) });
  if (ACTIONS[action]?.advance) {
    offerUndo([{ caseId: c.case_id, status: c.status }], done);
    const pos = queuePosition(c.case_id);
    if (pos >= 0) S.queue.items[pos] = { ...S.queue.items[pos], status: out.status };
    return nextPending(c.case_id);
  }
  toast(done);
  route(); // reload the case (status, timeline, next actions)
}

/** After confirm or void: the next case still pending review in the queue, else the queue itself. */
async function nextPending(doneId) {
  if (!S.queue.items.length || queuePosition(doneId) < 0) {
    const f = S.queue.filters || queueFilters();
    try { Object.assign(S.queue, await fetchQueue(f), { filters: f }); } catch { /* fall through to the queue */ }
  }
  const from = Math.max(0, queuePosition(doneId));
  const order = [...S.queue.items.slice(from + 1), ...S.queue.items.slice(0, from)];
  const next = order.find((x) => x.status === "pending_review" && x.case_id !== doneId);
  if (next) {
    S.queue.selected = queuePosition(next.case_id);
    return go(`#/case/${enc(next.case_id)}`);
  }
  toast(t("case.queue_done"));
  go(queueHash(S.queue.filters || queueFilters()));
}

// ---- undo: the hub reverses the transition and writes an audit row (POST /cases/{id}/undo)

function undoGraceMs() {
  return (S.me?.undo_grace_s ?? UNDO_GRACE_S) * 1000;
}

function offerUndo(cases, message) {
  S.undo = { cases, at: Date.now() };
  const el = toast(`${message} · ${t("action.undo_hint", { seconds: Math.round(undoGraceMs() / 1000) })}`, false, 8000);
  el.append(" ", h("button", { class: "btn small", type: "button", id: "undo-btn", onclick: () => undoLast() }, t("action.undo"),
    h("kbd", {}, "z")));
}

async function undoLast() {
  const u = S.undo;
  if (!u) return toast(t("action.nothing_to_undo"), true, 3000);
  if (Date.now() - u.at > undoGraceMs()) {
    S.undo = null;
    return toast(t("action.undo_expired"), true, 3000);
  }
  S.undo = null;
  let last = null;
  for (const { caseId } of u.cases) {
    try {
      last = await api(`/cases/${enc(caseId)}/undo`, { method: "POST", body: {} });
      toast(t("action.undone", { case: caseId, status: statusText(last.status) }));
    } catch (e) {
      toast(`${caseId}: ${e.status} ${e.title()} — ${hubErrorText(e)}`, true, 8000);
    }
  }
  if (u.cases.length === 1 && last) go(`#/case/${enc(u.cases[0].caseId)}`);
  else route();
}

async function stepCase(delta) {
  if (!S.queue.items.length) {
    const f = queueFilters();
    try { Object.assign(S.queue, await fetchQueue(f), { filters: f }); } catch (e) { return toast(e.message, true); }
  }
  const current = S.route.view === "case" ? queuePosition(S.route.caseId) : S.queue.selected - delta;
  const next = current + delta;
  const f = S.queue.filters || queueFilters();
  if (next >= 0 && next < S.queue.items.length) {
    S.queue.selected = next;
    return go(`#/case/${enc(S.queue.items[next].case_id)}`);
  }
  const offset = f.offset + (delta > 0 ? f.limit : -f.limit);
  if (offset < 0 || offset >= S.queue.total) return toast(t(delta > 0 ? "case.end_of_queue" : "case.start_of_queue"));
  const nf = { ...f, offset };
  const page = await fetchQueue(nf);
  if (!page.items.length) return toast(t("case.end_of_queue"));
  S.queue = { ...S.queue, ...page, filters: nf, selected: delta > 0 ? 0 : page.items.length - 1 };
  S.queueParams = new URLSearchParams(queueHash(nf).split("?")[1] || "");
  go(`#/case/${enc(S.queue.items[S.queue.selected].case_id)}`);
}

// ---------------------------------------------------------------- statistics

async function renderStats(view) {
  const gen = S.gen;
  const days = Number(S.route.params.get("days")) || 30;
  const until = new Date(Date.now() + 1000);
  const since = new Date(until - days * 86400e3);
  const range = select("days", days, [1, 7, 30, 90, 365].map((v) => [String(v), t(`stats.range.${v}`)]),
    (e) => go(`#/stats?days=${e.target.value}`));
  view.append(h("div", { class: "detail-head" }, h("h1", {}, t("stats.title")), range,
    h("span", { class: "muted" }, `${fmtTime(since.toISOString(), { seconds: false })} – ${fmtTime(until.toISOString(), { seconds: false })} ${t("stats.tz", { tz: S.me.timezone })}`)));
  let stats, cameras, devices;
  try {
    [stats, cameras, devices] = await Promise.all([
      api(`/stats?since=${enc(since.toISOString())}&until=${enc(until.toISOString())}`),
      api("/cameras"), api("/devices")]);
  } catch (e) {
    if (gen === S.gen) view.append(h("div", { class: "alert", role: "alert" }, t("stats.load_failed", { error: hubErrorText(e) })));
    return;
  }
  if (gen !== S.gen) return;
  S.cameras = cameras;
  const sum = (k) => stats.per_class.reduce((a, x) => a + x[k], 0);
  const filed = sum("filed");
  const voided = sum("void");
  view.append(h("div", { class: "cards" },
    card(t("stats.events"), sum("events")), card(t("stats.cases"), sum("cases")), card(t("stats.filed"), filed),
    card(t("stats.void"), voided), card(t("stats.precision"), pct(filed + voided ? filed / (filed + voided) : null)),
    card(t("stats.median_close"), stats.median_hours_to_close === null ? t("misc.dash") : t("stats.hours", { n: stats.median_hours_to_close.toFixed(1) })),
    card(t("stats.cameras_online"), `${cameras.filter((c) => c.online).length} / ${cameras.length}`)));

  const th = (keys, numFrom = 1, numTo = 99) => h("thead", {}, h("tr", {}, ...keys.map((k, i) =>
    h("th", { class: i >= numFrom && i < numTo ? "num" : "" }, t(k)))));
  const perClass = h("table", { class: "grid", id: "per-class" },
    th(["stats.class", "stats.events", "stats.cases", "stats.filed", "stats.void", "stats.precision"]),
    h("tbody", {}, stats.per_class.length ? stats.per_class.map((x) => h("tr", { dataset: { classId: x.class_id } },
      h("td", {}, classCell(x.class_id)),
      ...["events", "cases", "filed", "void"].map((k) => h("td", { class: "num" }, String(x[k]))),
      h("td", { class: "num precision" }, precisionBar(x.precision), pct(x.precision)))) :
      h("tr", {}, h("td", { colspan: 6, class: "empty" }, t("stats.no_events")))));
  const perUnit = h("table", { class: "grid", id: "per-unit" },
    th(["stats.unit", "stats.handled", "stats.on_time", "stats.on_time_rate"]),
    h("tbody", {}, stats.per_unit.length ? stats.per_unit.map((u) => h("tr", {}, h("td", {}, unitName(u.unit)),
      h("td", { class: "num" }, String(u.handled)), h("td", { class: "num" }, String(u.on_time)),
      h("td", { class: "num" }, precisionBar(u.on_time_rate), pct(u.on_time_rate)))) :
      h("tr", {}, h("td", { colspan: 4, class: "empty" }, t("stats.no_handled")))));
  const camTable = h("table", { class: "grid", id: "cameras" },
    th(["stats.camera", "stats.device", "stats.state", "stats.last_heartbeat", "stats.health"], 99),
    h("tbody", {}, cameras.length ? cameras.map((c) => h("tr", {}, h("td", {}, c.camera_id), h("td", {}, c.device_id),
      h("td", {}, c.health && c.health.stalled ? stalledBadge() : onlineBadge(c.online)),
      h("td", { class: "mono" }, fmtTime(c.last_seen)),
      h("td", { class: "muted" }, healthText(c.health)))) :
      h("tr", {}, h("td", { colspan: 5, class: "empty" }, t("stats.no_camera")))));
  const devTable = h("table", { class: "grid", id: "devices" },
    th(["stats.device", "stats.state", "stats.agent", "stats.last_heartbeat", "stats.cameras"], 99),
    h("tbody", {}, devices.length ? devices.map((d) => h("tr", {}, h("td", {}, d.device_id),
      h("td", {}, d.revoked ? h("span", { class: "badge offline" }, t("stats.revoked")) : onlineBadge(d.online)),
      h("td", {}, d.agent_version || t("misc.dash")), h("td", { class: "mono" }, fmtTime(d.last_seen)),
      h("td", {}, d.cameras.join(", ") || t("misc.dash")))) :
      h("tr", {}, h("td", { colspan: 5, class: "empty" }, t("stats.no_device")))));
  const note = (text) => h("p", { class: "body muted", style: "margin:0;padding-top:6px;padding-bottom:6px" }, text);
  view.append(h("div", { class: "stats-grid" },
    h("section", { class: "panel wide" }, h("h2", {}, t("stats.per_class")), note(t("stats.per_class_help")), perClass),
    h("section", { class: "panel wide" }, h("h2", {}, t("stats.per_camera")),
      note([t("stats.per_camera_help"), stats.per_camera_total > stats.per_camera.length
        ? ` ${t("stats.per_camera_more", { shown: stats.per_camera.length, total: stats.per_camera_total })}` : ""].join("")),
      perCameraTable(stats.per_camera)),
    h("section", { class: "panel" }, h("h2", {}, t("stats.per_day")), h("div", { class: "body" }, dayChart(stats.per_day, since, until))),
    h("section", { class: "panel" }, h("h2", {}, t("stats.per_unit")), perUnit),
    h("section", { class: "panel" }, h("h2", {}, t("stats.cameras")), camTable),
    h("section", { class: "panel" }, h("h2", {}, t("stats.devices")), devTable)));
  if (S.me.role === "admin" || S.me.role === "reviewer") await modelVersionsPanel(view, gen);
}

// ---- precision per class per model version (GET /models/stats): the bureau's 10% -> 90% curve --------------
async function modelVersionsPanel(view, gen) {
  const panel = h("section", { class: "panel wide", id: "model-versions" }, h("h2", {}, t("mv.title")),
    h("p", { class: "body muted", style: "margin:0;padding-top:6px;padding-bottom:6px" }, t("mv.help")));
  view.append(panel);
  let rows;
  try {
    rows = await api("/models/stats");
  } catch (e) {
    if (gen === S.gen) panel.append(h("div", { class: "alert", role: "alert" }, t("mv.load_failed", { error: hubErrorText(e) })));
    return;
  }
  if (gen !== S.gen) return;
  if (!rows.length) {
    panel.append(h("p", { class: "empty" }, t("mv.none")));
    return;
  }
  const versions = [];  // in the hub's order: registry order, an unregistered model first
  for (const r of rows) if (!versions.some((v) => v.sha256 === r.sha256)) versions.push(r);
  const classes = [...new Set(rows.map((r) => r.class_id))];
  const cell = (sha, cls) => rows.find((r) => r.sha256 === sha && r.class_id === cls);
  const versionName = (v) => v.release_id ? t("mv.release", { name: v.name, id: v.release_id })
    : t("mv.unregistered", { name: v.name || v.sha256.slice(0, 8) });
  panel.append(h("table", { class: "grid", id: "model-versions-table" },
    h("thead", {}, h("tr", {}, h("th", {}, t("stats.class")),
      ...versions.map((v) => h("th", { class: "num", title: `sha256 ${v.sha256}`, dataset: { sha256: v.sha256 } }, versionName(v))))),
    h("tbody", {}, ...classes.map((cls) => h("tr", { dataset: { classId: cls } }, h("td", {}, classCell(cls)),
      ...versions.map((v) => {
        const x = cell(v.sha256, cls);
        if (!x) return h("td", { class: "num muted" }, t("misc.dash"));
        return h("td", { class: "num precision", dataset: { sha256: v.sha256 } },
          precisionBar(x.precision), x.precision === null ? t("mv.unreviewed", { pending: x.pending })
            : t("mv.cell", { pct: pct(x.precision), confirmed: x.confirmed, reviewed: x.reviewed }));
      }))))));
}

/** Per-camera precision rows; the camera links to its voided cases, the false captures to look at. */
function perCameraTable(rows) {
  const worst = (x) => x.most_voided_class
    ? h("td", { class: "most-voided" }, classCell(x.most_voided_class),
      h("div", { class: "muted" }, t("stats.most_voided_n", { n: x.most_voided_class_voids, void: x.void })))
    : h("td", { class: "most-voided muted" }, t("misc.dash"));
  return h("table", { class: "grid", id: "per-camera" },
    h("thead", {}, h("tr", {}, ...["stats.camera", "stats.cases", "stats.filed", "stats.void", "stats.precision", "stats.most_voided"]
      .map((k, i) => h("th", { class: i && i < 5 ? "num" : "" }, t(k))))),
    h("tbody", {}, rows.length ? rows.map((x) => h("tr", { dataset: { cameraId: x.camera_id } },
      h("td", {}, h("a", { href: queueHash({ camera_id: x.camera_id, status: "void" }), title: t("stats.voided_cases_title") },
        x.camera_id)),
      ...["cases", "filed", "void"].map((k) => h("td", { class: "num" }, String(x[k]))),
      h("td", { class: "num precision" }, precisionBar(x.precision), pct(x.precision)), worst(x))) :
      h("tr", {}, h("td", { colspan: 6, class: "empty" }, t("stats.no_camera_cases")))));
}

function card(label, value) {
  return h("div", { class: "card" }, h("div", { class: "label" }, label), h("div", { class: "value" }, String(value)));
}
function precisionBar(x) {
  if (x === null || x === undefined) return null;
  return h("span", { class: `bar${x < 0.5 ? " low" : x < 0.8 ? " mid" : ""}` }, h("i", { style: `width:${(x * 100).toFixed(0)}%` }));
}
function onlineBadge(online) {
  return h("span", { class: `badge ${online ? "online" : "offline"}` }, t(online ? "stats.online" : "stats.offline"));
}
/** Connected but no frame for the camera's stall_s: the agent is reconnecting. */
function stalledBadge() {
  return h("span", { class: "badge offline", title: t("stats.stalled_hint") }, t("stats.stalled"));
}
function healthText(health) {
  if (!health) return t("misc.dash");
  const bits = [];
  if (typeof health.frame_age_s === "number") bits.push(t("stats.health.frame_age", { n: health.frame_age_s.toFixed(1) }));
  if (health.clock) bits.push(t(`stats.health.clock.${health.clock}`));
  // the camera's clock, off by more than the agent believes (1 s): its NTP needs setting
  if (typeof health.clock_skew_s === "number" && Math.abs(health.clock_skew_s) > 1) {
    bits.push(t("stats.health.clock_skew", { n: (-health.clock_skew_s).toFixed(1) }));
  }
  if (health.detect_fps) bits.push(t("stats.health.fps", { n: health.detect_fps }));
  if (health.inference_ms) bits.push(t("stats.health.inference", { n: health.inference_ms.toFixed(0) }));
  if (health.reconnects) bits.push(t("stats.health.reconnects", { n: health.reconnects }));
  if (health.skipped_frames) bits.push(t("stats.health.skipped", { n: health.skipped_frames }));
  if (health.last_error) bits.push(t("stats.health.error", { error: health.last_error }));
  return bits.join(" · ") || t("misc.dash");
}

/** Every day of the range, in the bureau's time zone, with its events and cases side by side: a day with
 * cases but no events (sensor or citizen reports) still shows, and days without any show as gaps. */
function dayChart(days, since, until) {
  const byDay = new Map(days.map((d) => [d.day, d]));
  const dayOf = (date) => new Intl.DateTimeFormat("en-CA", { timeZone: S.me.timezone, year: "numeric", month: "2-digit",
    day: "2-digit" }).format(date);
  const all = [];
  for (let ms = since.getTime(); ; ms += 86400e3) {
    const day = dayOf(new Date(Math.min(ms, until.getTime())));
    if (!all.length || all[all.length - 1] !== day) all.push(day);
    if (ms >= until.getTime()) break;
  }
  for (const d of byDay.keys()) if (!all.includes(d)) all.push(d);
  all.sort();
  if (!days.length) return h("p", { class: "muted" }, t("stats.no_data"));
  const max = Math.max(1, ...days.map((d) => Math.max(d.events, d.cases)));
  return h("div", {},
    h("div", { class: "days", id: "per-day" }, ...all.map((day) => {
      const d = byDay.get(day) || { events: 0, cases: 0 };
      return h("div", { class: "day", dataset: { day, events: d.events, cases: d.cases },
        title: t("stats.per_day_title", { day: fmtDay(day), events: d.events, cases: d.cases }) },
      h("i", { class: "events", style: `height:${(100 * d.events) / max}%` }),
      h("i", { class: "cases", style: `height:${(100 * d.cases) / max}%` }));
    })),
    h("div", { class: "legend" }, h("span", {}, h("i", { class: "cases" }), t("stats.legend.cases")),
      h("span", {}, h("i", { class: "events" }), t("stats.legend.events")),
      h("span", {}, `${fmtDay(all[0])} – ${fmtDay(all[all.length - 1])}`)));
}

// ---------------------------------------------------------------- accounts (admin)

async function renderAdmin(view) {
  const gen = S.gen;
  view.append(h("div", { class: "detail-head" }, h("h1", {}, t("admin.title")), h("span", { class: "muted" }, t("admin.cli_hint"))));
  let users, tokens, labels;
  try {
    [users, tokens, labels] = await Promise.all([api("/users"), api("/tokens"), api("/labels")]);
  } catch (e) {
    if (gen === S.gen) view.append(h("div", { class: "alert", role: "alert" }, t("admin.load_failed", { error: hubErrorText(e) })));
    return;
  }
  if (gen !== S.gen) return;
  const state = (u) => {
    if (u.disabled) return h("span", { class: "badge offline" }, t("admin.disabled"));
    if (u.locked_until && Date.parse(u.locked_until) > Date.now()) {
      return h("span", { class: "badge overdue" }, t("admin.locked_until", { time: fmtTime(u.locked_until, { seconds: false }) }));
    }
    return h("span", { class: "badge online" }, t("admin.active"));
  };
  view.append(h("div", { class: "stats-grid" },
    h("section", { class: "panel wide" }, h("h2", {}, t("admin.users")), h("table", { class: "grid", id: "users" },
      h("thead", {}, h("tr", {}, ...["admin.name", "admin.role", "admin.state", "admin.last_login", "admin.created"].map((k) => h("th", {}, t(k))))),
      h("tbody", {}, users.length ? users.map((u) => h("tr", { dataset: { user: u.name } }, h("td", {}, u.name), h("td", {}, roleText(u.role)),
        h("td", {}, state(u)), h("td", { class: "mono" }, fmtTime(u.last_login_at)), h("td", { class: "mono" }, fmtTime(u.created_at)))) :
        h("tr", {}, h("td", { colspan: 5, class: "empty" }, t("admin.no_users")))))),
    h("section", { class: "panel wide" }, h("h2", {}, t("admin.tokens")), h("table", { class: "grid", id: "tokens" },
      h("thead", {}, h("tr", {}, ...["admin.name", "admin.role", "admin.created"].map((k) => h("th", {}, t(k))))),
      h("tbody", {}, tokens.length ? tokens.map((x) => h("tr", {}, h("td", {}, x.name), h("td", {}, roleText(x.role)),
        h("td", { class: "mono" }, fmtTime(x.created_at)))) :
        h("tr", {}, h("td", { colspan: 3, class: "empty" }, t("admin.no_tokens")))))),
    adminLabels(labels)));
}

/** The labels an admin added (teaching a new class), and a form to add one with its Chinese name. */
function adminLabels(labels) {
  const added = labels.filter((x) => x.source === "admin");
  const id = h("input", { id: "new-label-id", required: true, pattern: "[a-z0-9][a-z0-9_ ]{0,63}", maxlength: 64,
    placeholder: "cone_stack", "aria-label": t("admin.label_id") });
  const zh = h("input", { id: "new-label-zh", required: true, maxlength: 64, "aria-label": t("admin.label_zh") });
  const en = h("input", { id: "new-label-en", maxlength: 64, "aria-label": t("admin.label_en") });
  const status = h("span", { class: "muted", id: "new-label-status", role: "status" });
  const form = h("form", { class: "label-form", id: "new-label", onsubmit: async (e) => {
    e.preventDefault();
    try {
      await api("/labels/names", { method: "POST", body: { name: id.value.trim(), name_zh: zh.value.trim(),
        name_en: en.value.trim() || null } });
      route();
    } catch (err) {
      status.replaceChildren(err.message, errorDetails(err) || "");
    }
  } },
    h("label", {}, t("admin.label_id"), id), h("label", {}, t("admin.label_zh"), zh), h("label", {}, t("admin.label_en"), en),
    h("button", { class: "btn small primary", type: "submit" }, t("admin.label_add")), status);
  return h("section", { class: "panel wide" }, h("h2", {}, t("admin.labels")), h("p", { class: "muted" }, t("admin.labels_hint")),
    h("table", { class: "grid", id: "admin-labels" },
      h("thead", {}, h("tr", {}, ...["admin.label_zh", "admin.label_en", "admin.label_id"].map((k) => h("th", {}, t(k))))),
      h("tbody", {}, added.length ? added.map((x) => h("tr", { dataset: { label: x.id } }, h("td", {}, x.name_zh || t("misc.dash")),
        h("td", {}, x.name_en), h("td", { class: "mono" }, x.id))) :
        h("tr", {}, h("td", { colspan: 3, class: "empty" }, t("admin.no_labels"))))),
    form);
}

// ---------------------------------------------------------------- live updates (SSE over fetch)

function setLive(on) {
  S.live.connected = on;
  const el = $("#live");
  el.className = `live ${on ? "on" : "off"}`;
  el.lastElementChild.textContent = t(on ? "top.live" : "top.reconnecting");
}

async function startLive() {
  S.live.ctrl?.abort();
  const ctrl = new AbortController();
  S.live.ctrl = ctrl;
  let backoff = 1000;
  while (!ctrl.signal.aborted && S.me) {
    try {
      const q = S.live.lastId !== null ? `?after=${S.live.lastId}` : "";
      const res = await fetch(`/stream/cases${q}`, { headers: { ...requestHeaders(), Accept: "text/event-stream" },
        signal: ctrl.signal, cache: "no-store", credentials: "same-origin" });
      if (res.status === 401) {
        let answer = {};
        try { answer = await res.json(); } catch { /* not JSON */ }
        return sessionEnded(new ApiError(401, answer));
      }
      if (!res.ok || !res.body) throw new Error(`stream answered ${res.status}`);
      setLive(true);
      backoff = 1000;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let cut;
        while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut).replace(/^\r?\n\r?\n/, "");
          sseBlock(block);
        }
      }
    } catch (e) {
      if (ctrl.signal.aborted) return;
    }
    setLive(false);
    await sleep(backoff);
    backoff = Math.min(backoff * 2, 15000);
  }
}

function sseBlock(block) {
  let id = null;
  const data = [];
  for (const line of block.split(/\r?\n/)) {
    if (line.startsWith(":")) continue;
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
    if (field === "id") id = Number(value);
    else if (field === "data") data.push(value);
  }
  if (id !== null && !Number.isNaN(id)) S.live.lastId = id;
  if (!data.length) return;
  let change;
  try { change = JSON.parse(data.join("\n")); } catch { return; }
  onChange(change);
}

let statsTimer = null;
function onChange(ch) {
  if (ch.kind === "case.created") {
    S.queue.fresh.add(ch.case_id);
    toast(t("live.new_case", { case: ch.case_id, cls: className(ch.data?.class_id)[0] || "" }));
  }
  if (S.route.view === "queue") refreshQueueSoon();
  else if (S.route.view === "stats") {
    clearTimeout(statsTimer);
    statsTimer = setTimeout(() => S.route.view === "stats" && route(), 1500);
  } else if (S.route.view === "case" && S.route.caseId === ch.case_id && !S.detail?.form) {
    route();
  }
}

// ---------------------------------------------------------------- keyboard

let pendingG = false;
function onKey(e) {
  if (!S.me || e.ctrlKey || e.metaKey || e.altKey) return;
  const help = $("#help");
  const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName) && e.target.type !== "checkbox";
  if (e.key === "Escape") {
    if (help.open) return;
    if (cancelAction()) return e.preventDefault();
    if (typing) return e.target.blur();
    if (S.route.view === "case") return go(queueHash(S.queue.filters || queueFilters()));
    return;
  }
  if (typing || help.open) return;
  if (e.key === "Enter" && /^(BUTTON|A)$/.test(e.target.tagName)) return; // let Enter press the focused control
  if (pendingG) {
    pendingG = false;
    if (e.key === "q") return go("#/queue");
    if (e.key === "s") return go("#/stats");
  }
  const view = S.route.view;
  if (view === "case" && S.detail?.form === "void") { // the void form: a number picks the reason and voids
    const i = Number(e.key) - 1;
    if (Number.isInteger(i) && i >= 0 && i < VOID_REASONS.length) {
      e.preventDefault();
      return submitVoid(VOID_REASONS[i] === "other" ? null : VOID_REASONS[i]);
    }
    if (e.key === "n") {
      e.preventDefault();
      return $("#form-void textarea").focus();
    }
  }
  switch (e.key) {
    case "?": help.showModal(); break;
    case "g": pendingG = true; setTimeout(() => { pendingG = false; }, 1000); break;
    case "r": route(); break;
    case "z": undoLast(); break;
    case "x":
      if (view === "queue" && S.queue.items[S.queue.selected]) {
        const id = S.queue.items[S.queue.selected].case_id;
        toggleMark(id, !S.queue.marked.has(id));
      }
      break;
    case "D": if (view === "queue") markDuplicates(); break;
    case "j": case "k":
      if (view === "case") stepCase(e.key === "j" ? 1 : -1);
      else if (view === "queue" && S.queue.items.length) {
        S.queue.selected = Math.max(0, Math.min(S.queue.items.length - 1, S.queue.selected + (e.key === "j" ? 1 : -1)));
        markSelected(true);
      }
      break;
    case "Enter": case "o":
      if (view === "queue" && S.queue.items[S.queue.selected]) go(`#/case/${enc(S.queue.items[S.queue.selected].case_id)}`);
      break;
    default: {
      if (view !== "case") return;
      const action = Object.keys(ACTIONS).find((a) => ACTIONS[a].key === e.key);
      if (!action) return;
      if (!S.detail?.case.allowed_actions.includes(action)) {
        toast(t("action.not_possible", { action: actionText(action), status: statusText(S.detail?.case.status),
          role: roleText(S.me.role) }), true, 3000);
        return;
      }
      startAction(action);
    }
  }
  e.preventDefault();
}

// ---------------------------------------------------------------- start

function switchLang() {
  setLang(I18N.lang === "zh-CN" ? "en" : "zh-CN");
  $("#help-undo").textContent = t("help.undo", { seconds: Math.round(undoGraceMs() / 1000) });
  showWhoami();
  if (S.me) {
    setLive(S.live.connected);
    route();
  }
}

function init() {
  initLang();
  $("#help-undo").textContent = t("help.undo", { seconds: UNDO_GRACE_S });
  $("#password-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const btn = e.target.querySelector("button");
    // The fields are read-only until the hub answers: what is typed meanwhile would be cleared with the answer.
    const fields = [$("#username"), $("#password")];
    btn.disabled = true;
    fields.forEach((f) => { f.readOnly = true; });
    try {
      await passwordSignIn($("#username").value.trim(), $("#password").value);
      $("#password").value = "";
    } catch (err) {
      $("#password").value = "";
      showLogin(loginMessage(err));
    } finally {
      btn.disabled = false;
      fields.forEach((f) => { f.readOnly = false; });
    }
  });
  $("#login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const btn = e.target.querySelector("button");
    btn.disabled = true;
    try {
      await tokenSignIn($("#token").value.trim());
      $("#token").value = "";
    } catch (err) {
      showLogin(err.status === 401 ? t("login.bad_token") : err.status === 403 ? t("login.sensor_token") : loginMessage(err));
    } finally {
      btn.disabled = false;
    }
  });
  $("#logout").addEventListener("click", () => signOut(t("login.signed_out"), true));
  $("#lang").addEventListener("click", switchLang);
  $("#login-lang").addEventListener("click", switchLang);
  $("#help-btn").addEventListener("click", () => $("#help").showModal());
  $("#help-close").addEventListener("click", () => $("#help").close());
  window.addEventListener("hashchange", route);
  document.addEventListener("keydown", onKey);
  // A session cookie or a token from this tab signs in at once; otherwise the sign-in form.
  const resume = S.token ? tokenSignIn(S.token) : start();
  resume.catch((err) => {
    sessionStorage.removeItem(TOKEN_KEY);
    S.token = null;
    S.me = null;
    showLogin(err.status === 401 ? "" : loginMessage(err));
  });
}

init();
