/* CityEye reviewer page. Plain modern JS, no build step, no third-party code.
 *
 * Every piece of data comes from the hub's REST API with the user's Bearer token (kept in
 * sessionStorage). Images and clips are fetched with the token and shown as blob: URLs; live updates
 * read /stream/cases (Server-Sent Events) through fetch, since EventSource cannot send a header.
 * The DOM is built with textContent only: nothing from the API is ever parsed as HTML.
 */
"use strict";

const TOKEN_KEY = "cityeye.token";

const STATUS = {
  pending_review: ["Pending review", "待审核"],
  filed: ["Filed", "已立案"],
  void: ["Void", "已作废"],
  dispatched: ["Dispatched", "已派遣"],
  in_progress: ["In progress", "处置中"],
  handled: ["Handled", "已处置"],
  verified: ["Verified", "已核查"],
  closed: ["Closed", "已结案"],
};
const TERMINAL = new Set(["void", "closed"]);

// label, Chinese, shortcut, needs a note, style
const ACTIONS = {
  confirm: { en: "Confirm", zh: "立案", key: "c", style: "primary" },
  void: { en: "Void", zh: "作废", key: "v", note: "Reason (required)", style: "danger" },
  dispatch: { en: "Dispatch", zh: "派遣", key: "d", unit: true, style: "primary" },
  return: { en: "Return", zh: "退回", note: "Reason (required)" },
  start: { en: "Start", zh: "开始处置", style: "primary" },
  handle: { en: "Handled", zh: "处置反馈", note: "What was done (required)", photo: true, style: "primary" },
  verify: { en: "Verify", zh: "核查通过", style: "primary" },
  rework: { en: "Rework", zh: "返工", note: "Reason (required)" },
  close: { en: "Close", zh: "结案", style: "primary" },
  reopen: { en: "Reopen", zh: "重新立案", note: "Reason (required)" },
};
const VOID_REASONS = ["False alarm 误报", "Not a violation here 非违规", "Permitted 已许可", "Duplicate 重复",
                      "Image unclear 图像不清"];
const ROLE_ZH = { admin: "管理员", reviewer: "审核员", dispatcher: "派遣员", handler: "处置人员", reader: "只读",
                  sensor: "传感器" };
const PAGE_SIZES = [25, 50, 100];
const SORTS = [
  ["-created_at", "Newest first"], ["created_at", "Oldest first"], ["deadline_at", "Deadline soonest"],
  ["-last_seen", "Last seen"], ["-event_count", "Most events"],
];

const S = {
  token: sessionStorage.getItem(TOKEN_KEY),
  me: null,
  classes: new Map(),
  cameras: [],
  route: { view: "queue", params: new URLSearchParams() },
  queue: { items: [], total: 0, pending: 0, selected: 0, fresh: new Set() },
  detail: null,
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
const zh = (text) => h("span", { class: "zh" }, text);

class ApiError extends Error {
  constructor(status, detail) {
    super(formatDetail(detail));
    this.status = status;
    this.detail = detail;
  }
}
const STATUS_TEXT = { 400: "Bad request", 401: "Not signed in", 403: "Not allowed", 404: "Not found",
                      409: "Conflict with the case's state", 413: "File too large", 415: "Unsupported file",
                      422: "Invalid input", 500: "Hub error" };

function formatDetail(detail) {
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).filter((p) => p !== "body").join(".") || "request"}: ${d.msg}`).join("\n");
  }
  return typeof detail === "string" ? detail : JSON.stringify(detail);
}

async function api(path, { method = "GET", body, form, token = S.token } = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  let payload;
  if (form) payload = form;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body: payload });
  } catch (e) {
    throw new ApiError(0, `the hub is not reachable (${e.message})`);
  }
  if (res.status === 401 && token === S.token && S.token) {
    signOut("Your token is no longer valid (401). Sign in again.");
  }
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail ?? detail; } catch { /* not JSON */ }
    throw new ApiError(res.status, detail);
  }
  return res.status === 204 ? null : res.json();
}

// Evidence is behind the token: fetch it and hand out blob: URLs (cached, bounded).
const blobCache = new Map();
function blobUrl(path) {
  if (blobCache.has(path)) return blobCache.get(path);
  const p = fetch(path, { headers: { Authorization: `Bearer ${S.token}` } })
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
    else img.replaceWith(h("div", { class: `${cls} none` }, "no image"));
  });
  return img;
}

async function download(path, filename) {
  const u = await blobUrl(path);
  if (!u) return toast(`Could not download ${filename}`, true);
  const a = h("a", { href: u, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
}

function toast(text, error = false, ms = 5000) {
  const t = h("div", { class: `toast${error ? " error" : ""}`, role: error ? "alert" : "status" }, text);
  $("#toasts").append(t);
  setTimeout(() => t.remove(), ms);
}

// ---- time, in the bureau's time zone

function fmtTime(iso, { seconds = true } = {}) {
  if (!iso) return "—";
  const d = new Date(iso);
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-GB", {
    timeZone: S.me?.timezone || undefined, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  }).formatToParts(d).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}${seconds ? ":" + parts.second : ""}`;
}
function fmtDuration(ms) {
  const m = Math.round(Math.abs(ms) / 60000);
  if (m < 60) return `${m} min`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs} h ${m % 60} min`;
  return `${Math.floor(hrs / 24)} d ${hrs % 24} h`;
}
function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 ** 2).toFixed(1)} MB`;
}
const pct = (x) => (x === null || x === undefined ? "—" : `${(x * 100).toFixed(1)} %`);

// ---- presentation pieces

function statusBadge(status) {
  const [en, cn] = STATUS[status] || [status, ""];
  return h("span", { class: `badge st-${status}`, dataset: { status } }, en, cn ? ` ${cn}` : "");
}

function className(classId) {
  const c = S.classes.get(classId);
  return c ? [c.name_zh, c.name_en] : [classId, ""];
}
function classCell(classId) {
  const [cn, en] = className(classId);
  return h("div", {}, h("div", { class: "cls-zh" }, cn), h("div", { class: "cls-en" }, en));
}

function deadlineCell(c) {
  if (c.overdue) {
    return h("div", { class: "deadline" }, h("span", { class: "badge overdue", title: fmtTime(c.deadline_at) },
      `Overdue 超期 ${fmtDuration(Date.now() - Date.parse(c.deadline_at))}`));
  }
  if (!c.deadline_at || TERMINAL.has(c.status)) return h("span", { class: "muted" }, "—");
  const left = Date.parse(c.deadline_at) - Date.now();
  return h("div", { class: "deadline" },
    h("span", { class: `badge${left < 3600e3 ? " soon" : ""}`, title: fmtTime(c.deadline_at) },
      `${fmtDuration(left)} left`),
    h("div", { class: "muted" }, fmtTime(c.deadline_at, { seconds: false })));
}

function place(c) {
  if (c.camera_id) return [c.camera_id, c.zone ? ` / ${c.zone}` : ""].join("");
  if (c.lat !== null && c.lat !== undefined) return `${c.lat.toFixed(5)}, ${c.lon.toFixed(5)}`;
  return c.source;
}

// ---------------------------------------------------------------- login / session

function showLogin(message) {
  $("#app").hidden = true;
  $("#login").hidden = false;
  const err = $("#login-error");
  err.hidden = !message;
  err.textContent = message || "";
  $("#token").focus();
}

async function signIn(token) {
  const me = await api("/me", { token });
  if (me.role === "sensor") {
    throw new ApiError(403, "this is a sensor token: it may only report problems. Use a reviewer, dispatcher, "
      + "handler or reader token.");
  }
  S.token = token;
  S.me = me;
  sessionStorage.setItem(TOKEN_KEY, token);
  const [classes, cameras] = await Promise.all([api("/classes"), api("/cameras").catch(() => [])]);
  S.classes = new Map(classes.map((c) => [c.id, c]));
  S.cameras = cameras;
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#whoami").textContent = `${me.name} · ${me.role} ${ROLE_ZH[me.role] || ""} · ${me.timezone}`;
  startLive();
  route();
}

function signOut(message) {
  S.token = null;
  S.me = null;
  sessionStorage.removeItem(TOKEN_KEY);
  S.live.ctrl?.abort();
  for (const p of blobCache.values()) p.then((u) => u && URL.revokeObjectURL(u));
  blobCache.clear();
  showLogin(message);
}

// ---------------------------------------------------------------- routing

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query);
  if (parts[0] === "case" && parts[1]) return { view: "case", caseId: parts[1], params };
  if (parts[0] === "stats") return { view: "stats", params };
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
  const others = Object.keys(STATUS).filter((s) => s !== "pending_review");
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
  const classOpts = [["", "All classes 全部类别"],
    ...[...S.classes.values()].sort((a, b) => a.id.localeCompare(b.id)).map((c) => [c.id, `${c.name_zh} ${c.name_en}`])];
  const cams = new Set(S.cameras.map((c) => c.camera_id));
  if (f.camera_id) cams.add(f.camera_id);
  const filters = h("div", { class: "filters" },
    h("label", {}, "Status 状态", select("status", f.status, [["", "Queue: pending review first"],
      ...Object.entries(STATUS).map(([k, [en, cn]]) => [k, `${en} ${cn}`])], (e) => apply({ status: e.target.value }))),
    h("label", {}, "Class 类别", select("class_id", f.class_id, classOpts, (e) => apply({ class_id: e.target.value }))),
    h("label", {}, "Camera 摄像头", select("camera_id", f.camera_id, [["", "All cameras"], ...[...cams].sort().map((c) => [c, c])],
      (e) => apply({ camera_id: e.target.value }))),
    h("label", {}, "Deadline 时限", select("overdue", f.overdue, [["", "Any"], ["true", "Overdue only 超期"],
      ["false", "Not overdue"]], (e) => apply({ overdue: e.target.value }))),
    h("label", {}, "Sort 排序", select("sort", f.sort, SORTS, (e) => apply({ sort: e.target.value }))),
    h("label", {}, "Per page", select("limit", f.limit, PAGE_SIZES.map((n) => [String(n), String(n)]),
      (e) => apply({ limit: Number(e.target.value) }))),
    h("button", { class: "btn", type: "button", onclick: () => go("#/queue") }, "Reset"),
    h("button", { class: "btn", type: "button", title: "Reload (r)", onclick: () => loadQueue() }, "Reload"));
  const summary = h("div", { class: "summary", id: "queue-summary" }, "Loading…");
  const table = h("table", { class: "grid", id: "queue" },
    h("thead", {}, h("tr", {}, ...["", "Case 案件", "Class 类别", "Camera / zone 位置", "First seen 首次发现",
      "Last seen 最近发现", "Events", "Deadline 处置时限", "Unit 单位"].map((t) => h("th", {}, t)))),
    h("tbody", {}));
  const pager = h("div", { class: "pager", id: "pager" });
  view.append(h("section", { class: "panel" }, filters, summary, table, pager));
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
      `Could not load cases: ${e.status || ""} ${e.message}`));
    return;
  }
  if (gen !== S.gen) return;
  const prevId = S.queue.items[S.queue.selected]?.case_id;
  S.queue = { ...S.queue, ...page, filters: f };
  const idx = page.items.findIndex((c) => c.case_id === prevId);
  S.queue.selected = idx >= 0 ? idx : Math.min(S.queue.selected, Math.max(0, page.items.length - 1));
  const tbody = $("#queue tbody");
  tbody.replaceChildren(...page.items.map((c, i) => queueRow(c, i)));
  if (!page.items.length) {
    tbody.append(h("tr", {}, h("td", { colspan: 9, class: "empty" }, "No cases match these filters. 暂无案件")));
  }
  const first = page.total ? f.offset + 1 : 0;
  const last = f.offset + page.items.length;
  $("#queue-summary").replaceChildren(
    h("span", {}, h("strong", {}, String(page.total)), " cases"),
    page.pending !== null ? h("span", {}, h("strong", {}, String(page.pending)), " pending review 待审核") : null,
    h("span", {}, `showing ${first}–${last}`),
    h("span", { class: "muted" }, "j/k to move, Enter to open, ? for shortcuts"));
  $("#pager").replaceChildren(
    h("button", { class: "btn", type: "button", disabled: f.offset === 0,
      onclick: () => go(queueHash({ ...f, offset: Math.max(0, f.offset - f.limit) })) }, "← Previous"),
    h("span", { class: "muted" }, `Page ${Math.floor(f.offset / f.limit) + 1} of ${Math.max(1, Math.ceil(page.total / f.limit))}`),
    h("button", { class: "btn", type: "button", disabled: last >= page.total,
      onclick: () => go(queueHash({ ...f, offset: f.offset + f.limit })) }, "Next →"));
  markSelected();
}

function queueRow(c, i) {
  const fresh = S.queue.fresh.has(c.case_id);
  if (fresh) S.queue.fresh.delete(c.case_id);
  const thumb = authImg(`/cases/${encodeURIComponent(c.case_id)}/image?kind=snapshot&v=${c.event_count}`,
    { cls: "thumb", alt: `snapshot of ${c.case_id}` });
  return h("tr", {
    class: `case-row${fresh ? " fresh" : ""}`, dataset: { caseId: c.case_id, index: i },
    onclick: () => { S.queue.selected = i; go(`#/case/${encodeURIComponent(c.case_id)}`); },
  },
  h("td", {}, thumb),
  h("td", {}, h("div", { class: "case-id" }, c.case_id), statusBadge(c.status),
    c.recurrence_of ? h("div", { class: "muted", title: `recurrence of ${c.recurrence_of}` }, `recurrence ×${c.recurrence_count}`) : null),
  h("td", {}, classCell(c.class_id)),
  h("td", {}, place(c), h("div", { class: "muted" }, c.source)),
  h("td", { class: "mono" }, fmtTime(c.first_seen)),
  h("td", { class: "mono" }, fmtTime(c.last_seen)),
  h("td", { class: "num" }, String(c.event_count)),
  h("td", {}, deadlineCell(c)),
  h("td", {}, c.unit || h("span", { class: "muted" }, "—")));
}

function markSelected(scroll = false) {
  for (const tr of document.querySelectorAll("#queue tr.case-row")) {
    const on = Number(tr.dataset.index) === S.queue.selected;
    tr.classList.toggle("selected", on);
    if (on && scroll) tr.scrollIntoView({ block: "nearest" });
  }
}

// ---------------------------------------------------------------- case detail

async function renderCase(view, caseId) {
  const gen = S.gen;
  view.append(h("p", { class: "muted" }, "Loading case…"));
  let c;
  try {
    c = await api(`/cases/${encodeURIComponent(caseId)}`);
  } catch (e) {
    if (gen !== S.gen) return;
    view.replaceChildren(h("div", { class: "alert", role: "alert" }, h("strong", {}, `${e.status} ${STATUS_TEXT[e.status] || ""}`),
      e.message), h("p", {}, h("a", { href: "#/queue" }, "← Back to the queue")));
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
  const [cn, en] = className(c.class_id);
  return h("div", { class: "detail-head" },
    h("a", { class: "btn", href: "#/queue", title: "Back to the queue (Esc)" }, "← Queue"),
    h("h1", {}, `${cn} `, zh(en), " "),
    statusBadge(c.status),
    c.overdue ? h("span", { class: "badge overdue" }, "Overdue 超期") : null,
    h("span", { class: "case-id muted" }, c.case_id),
    h("span", { class: "nav" },
      pos >= 0 ? h("span", { class: "muted" }, `${S.queue.filters.offset + pos + 1} of ${S.queue.total}`) : null,
      h("button", { class: "btn", type: "button", title: "Previous case (k)", onclick: () => stepCase(-1) }, "↑ Prev ", h("kbd", {}, "k")),
      h("button", { class: "btn", type: "button", title: "Next case (j)", onclick: () => stepCase(1) }, "↓ Next ", h("kbd", {}, "j"))));
}

function latestMedia(c, kind) {
  for (let i = c.events.length - 1; i >= 0; i--) {
    const m = c.events[i].media.find((x) => x.kind === kind);
    if (m) return m;
  }
  return null;
}

function caseMedia(c) {
  const id = encodeURIComponent(c.case_id);
  const annotated = latestMedia(c, "annotated");
  const snapshot = latestMedia(c, "snapshot");
  const mainKind = annotated ? "annotated" : "snapshot";
  const main = annotated || snapshot;
  const stage = h("div", { class: "stage" });
  if (main) {
    const img = authImg(main.url, { alt: `${mainKind} image of ${c.case_id}`,
      onmissing: (el) => el.replaceWith(h("div", { class: "none" }, "image not available")) });
    img.id = "main-image";
    stage.append(h("a", { title: "Open full size", onclick: (e) => { e.preventDefault(); openBlob(main.url); }, href: "#" }, img));
  } else {
    stage.append(h("div", { class: "none" }, `No image for this ${c.source} case. 无图像`));
  }
  const caption = h("div", { class: "stage-caption" },
    h("span", {}, main ? (annotated ? "Annotated (zone, box, dwell) 标注图" : "Snapshot 原图") : ""),
    h("span", {}, `latest of ${c.events.length} event(s)`));

  const crop = latestMedia(c, "crop");
  const clip = latestMedia(c, "clip");
  const fig = (title, media, alt) => h("figure", {},
    media ? authImg(media.url, { alt }) : h("div", { class: "placeholder" }, "none"),
    h("figcaption", {}, h("span", {}, title), media ? h("a", { href: "#", onclick: (e) => { e.preventDefault(); openBlob(media.url); } }, "full size") : null));
  return h("section", {},
    stage, caption,
    h("div", { class: "media-row" },
      fig("Original snapshot 原图", annotated ? snapshot : null, "original snapshot"),
      fig("Crop 特写", crop, "crop of the object"),
      clipFigure(c, clip)),
    h("section", { class: "panel", style: "margin-top:16px" },
      h("header", { style: "display:flex;align-items:center;justify-content:space-between;gap:8px" },
        h("h2", {}, `Evidence (${c.events.length} event${c.events.length === 1 ? "" : "s"})`, zh("证据")),
        packageLink(c)),
      evidenceTable(c)));
}

// The evidence package (signed evidence + case record, verifiable offline) is built per request, so it is
// fetched with the token each time, never from the blob cache.
function packageLink(c) {
  const link = h("a", { class: "btn small", id: "evidence-package", href: "#",
    title: "A ZIP with the signed evidence of every event, the case record and the device keys; check it offline "
      + "with `cityeye evidence verify FILE`" }, "Download evidence package / 下载证据包");
  link.addEventListener("click", (e) => { e.preventDefault(); downloadPackage(c, link); });
  return link;
}

async function downloadPackage(c, link) {
  if (link.getAttribute("aria-busy")) return;
  link.setAttribute("aria-busy", "true");
  try {
    const res = await fetch(`/cases/${encodeURIComponent(c.case_id)}/evidence-package`,
      { headers: { Authorization: `Bearer ${S.token}` } });
    if (res.status === 401) return signOut("Your token is no longer valid (401). Sign in again.");
    if (!res.ok) {
      let detail = res.statusText;
      try { detail = (await res.json()).detail ?? detail; } catch { /* not JSON */ }
      return toast(`Evidence package: ${res.status} ${formatDetail(detail)}`, true, 10000);
    }
    const u = URL.createObjectURL(await res.blob());
    const a = h("a", { href: u, download: `${c.case_id}-evidence.zip` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(u), 60_000);
  } catch (e) {
    toast(`Evidence package: ${e.message}`, true);
  } finally {
    link.removeAttribute("aria-busy");
  }
}

async function openBlob(path) {
  const u = await blobUrl(path);
  if (u) window.open(u, "_blank", "noopener");
}

function clipFigure(c, clip) {
  const caption = h("figcaption", {}, h("span", {}, "Clip 视频"));
  if (!clip) return h("figure", {}, h("div", { class: "placeholder" }, "no clip"), caption);
  const ext = { "video/webm": "webm", "video/x-msvideo": "avi", "video/mp4": "mp4" }[clip.content_type] || "bin";
  const name = `${c.case_id}-clip.${ext}`;
  const dl = h("button", { class: "btn small", type: "button", onclick: () => download(clip.url, name) }, "Download");
  caption.append(dl);
  const video = h("video", { controls: true, preload: "metadata", muted: true, id: "clip-video" });
  if (video.canPlayType(clip.content_type)) {
    blobUrl(clip.url).then((u) => { if (u) video.src = u; });
    return h("figure", {}, video, caption);
  }
  return h("figure", {},
    h("div", { class: "placeholder", id: "clip-fallback" },
      h("div", {}, `This browser cannot play ${clip.content_type} inline.`, h("br"),
        h("button", { class: "btn small", type: "button", style: "margin-top:8px", onclick: () => download(clip.url, name) },
          `Download clip (${fmtBytes(clip.size)})`))),
    caption);
}

function evidenceTable(c) {
  const rows = [];
  for (const ev of [...c.events].reverse()) {
    const media = ev.media.length ? ev.media : [null];
    media.forEach((m, i) => rows.push(h("tr", {},
      i === 0 ? h("td", { rowspan: media.length, class: "mono" }, fmtTime(ev.observed_at),
        h("div", { class: "muted" }, `${ev.state} · ${ev.source}`)) : null,
      i === 0 ? h("td", { rowspan: media.length }, h("div", {}, ev.device_id), h("div", { class: "muted mono" }, ev.event_id),
        h("div", { class: ev.signed ? "signed" : "unsigned" }, ev.signed ? "✓ signed by the device" : "not signed")) : null,
      m ? h("td", {}, m.kind, h("div", { class: "muted" }, `${m.content_type}, ${fmtBytes(m.size)}`)) : h("td", { class: "muted" }, "no media"),
      m ? h("td", { class: "sha", title: "SHA-256" }, m.sha256) : h("td"),
      m ? h("td", {}, h("button", { class: "btn small", type: "button", onclick: () => download(m.url, `${m.sha256.slice(0, 12)}-${m.name}`) },
        "Download")) : h("td"))));
  }
  return h("div", { style: "overflow-x:auto" }, h("table", { class: "grid evidence", id: "evidence" },
    h("thead", {}, h("tr", {}, ...["Observed", "Device / event", "Kind", "SHA-256", ""].map((t) => h("th", {}, t)))),
    h("tbody", {}, rows)));
}

function caseSide(c) {
  const ground = c.ground ? `${c.ground.crs}: ${c.ground.x.toFixed(2)}, ${c.ground.y.toFixed(2)}` : null;
  const facts = h("dl", { class: "facts" },
    ...[
      ["Status 状态", statusBadge(c.status)],
      ["Class 类别", classCell(c.class_id)],
      ["Camera / zone", place(c)],
      ["Source 来源", c.source],
      ["First seen", fmtTime(c.first_seen)],
      ["Last seen", fmtTime(c.last_seen)],
      ["Events", String(c.event_count)],
      ["Deadline 时限", deadlineCell(c)],
      ["Unit 责任单位", c.unit || "—"],
      ["Location", c.lat !== null ? `${c.lat.toFixed(6)}, ${c.lon.toFixed(6)}` : (ground || "—")],
      c.recurrence_of ? ["Recurrence", h("a", { href: `#/case/${encodeURIComponent(c.recurrence_of)}` }, `of ${c.recurrence_of} (×${c.recurrence_count})`)] : null,
      c.description ? ["Description", c.description] : null,
      ["Created", fmtTime(c.created_at)],
    ].filter(Boolean).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  return h("aside", { class: "side" },
    actionsPanel(c),
    h("section", { class: "panel" }, h("h2", {}, "Case", zh("案件信息")), h("div", { class: "body" }, facts)),
    h("section", { class: "panel" }, h("h2", {}, "Timeline", zh("处理记录")), h("div", { class: "body" }, timeline(c))));
}

function timeline(c) {
  if (!c.timeline.length) {
    return h("p", { class: "muted" }, `Opened ${fmtTime(c.created_at)} from ${c.source}; no action taken yet.`);
  }
  return h("ol", { class: "timeline", id: "timeline" },
    ...c.timeline.map((t) => h("li", {},
      h("div", {}, h("strong", {}, t.action), " ", t.from_status ? [statusBadge(t.from_status), " → "] : null, statusBadge(t.to_status),
        t.unit ? ` · unit ${t.unit}` : ""),
      h("div", { class: "when" }, `${fmtTime(t.at)} · ${t.actor}`),
      t.note ? h("div", { class: "note" }, t.note) : null,
      t.photo_sha256 ? h("div", {}, authImg(`/evidence/${t.photo_sha256}`, { cls: "thumb", alt: "feedback photo" }),
        h("span", { class: "sha" }, t.photo_sha256)) : null)));
}

function actionsPanel(c) {
  const body = h("div", { class: "body" });
  const panel = h("section", { class: "panel actions", id: "actions" }, h("h2", {}, "Actions", zh("操作")), body);
  if (!c.allowed_actions.length) {
    body.append(h("p", { class: "readonly-note", id: "no-actions" },
      `No action for role ${S.me.role} on a ${STATUS[c.status]?.[0].toLowerCase() || c.status} case.`));
    return panel;
  }
  const buttons = h("div", { class: "buttons" }, ...c.allowed_actions.map((a) => {
    const spec = ACTIONS[a] || { en: a, zh: "" };
    return h("button", {
      class: `btn ${spec.style || ""}`, type: "button", dataset: { action: a },
      "aria-keyshortcuts": spec.key || null, title: spec.key ? `shortcut: ${spec.key}` : null,
      onclick: () => startAction(a),
    }, `${spec.en} ${spec.zh}`, spec.key ? h("kbd", {}, spec.key) : null);
  }));
  body.append(buttons, h("div", { id: "action-form" }), h("div", { id: "action-error" }));
  return panel;
}

function showActionError(e) {
  const box = $("#action-error");
  if (!box) return toast(e.message, true);
  box.replaceChildren(h("div", { class: "alert", role: "alert" },
    h("strong", {}, `${e.status || "Error"} · ${STATUS_TEXT[e.status] || "request failed"}`), e.message));
}

function startAction(action) {
  const c = S.detail?.case;
  if (!c || !c.allowed_actions.includes(action)) return;
  const spec = ACTIONS[action] || {};
  $("#action-error").replaceChildren();
  if (!spec.note && !spec.unit && !spec.photo) return runAction(action, {});
  const form = h("form", { id: `form-${action}` });
  const note = h("textarea", { name: "note", placeholder: spec.note, maxlength: 4000 });
  let unit = null;
  let photo = null;
  form.append(h("strong", {}, `${spec.en} ${spec.zh}`));
  if (action === "void") {
    form.append(h("div", { class: "chips" }, ...VOID_REASONS.map((r) => h("button", {
      class: "btn", type: "button", onclick: () => { note.value = r; note.focus(); } }, r))));
  }
  if (spec.unit) {
    const units = S.me.units || [];
    unit = h("select", { name: "unit" },
      h("option", { value: "" }, S.me.default_unit || units.length ? "Automatic (routing rules) 自动" : "—"),
      ...units.map((u) => h("option", { value: u.id, selected: c.unit === u.id }, u.name !== u.id ? `${u.name} (${u.id})` : u.id)));
    form.append(h("label", {}, "Responsible unit 责任单位", unit));
  }
  form.append(h("label", {}, spec.note ? `${spec.note} ${action === "void" ? "作废原因" : "说明"}` : "Note (optional)", note));
  if (spec.photo) {
    photo = h("input", { type: "file", name: "photo", accept: "image/jpeg" });
    form.append(h("label", {}, "Photo of the result (JPEG, required) 处置照片", photo));
  }
  const submit = h("button", { class: `btn ${spec.style === "danger" ? "danger solid" : "primary"}`, type: "submit" },
    `${spec.en} ${spec.zh}`);
  form.append(h("div", { class: "row" },
    h("button", { class: "btn", type: "button", onclick: cancelAction }, "Cancel ", h("kbd", {}, "Esc")), submit));
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

function cancelAction() {
  if (!S.detail?.form) return false;
  S.detail.form = null;
  $("#action-form").replaceChildren();
  $("#action-error").replaceChildren();
  return true;
}

async function runAction(action, body) {
  const c = S.detail.case;
  try {
    const out = await api(`/cases/${encodeURIComponent(c.case_id)}/${action}`, { method: "POST", body });
    const [en, cn] = STATUS[out.status] || [out.status, ""];
    toast(`${c.case_id}: ${ACTIONS[action]?.en || action} → ${en} ${cn}`);
    S.detail.form = null;
    route(); // reload the case (status, timeline, next actions)
  } catch (e) {
    showActionError(e);
  }
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
    return go(`#/case/${encodeURIComponent(S.queue.items[next].case_id)}`);
  }
  const offset = f.offset + (delta > 0 ? f.limit : -f.limit);
  if (offset < 0 || offset >= S.queue.total) return toast(delta > 0 ? "End of the queue" : "Start of the queue");
  const nf = { ...f, offset };
  const page = await fetchQueue(nf);
  if (!page.items.length) return toast("End of the queue");
  S.queue = { ...S.queue, ...page, filters: nf, selected: delta > 0 ? 0 : page.items.length - 1 };
  S.queueParams = new URLSearchParams(queueHash(nf).split("?")[1] || "");
  go(`#/case/${encodeURIComponent(S.queue.items[S.queue.selected].case_id)}`);
}

// ---------------------------------------------------------------- statistics

async function renderStats(view) {
  const gen = S.gen;
  const days = Number(S.route.params.get("days")) || 30;
  const until = new Date(Date.now() + 1000);
  const since = new Date(until - days * 86400e3);
  const range = select("days", days, [[1, "Last 24 hours"], [7, "Last 7 days"], [30, "Last 30 days"], [90, "Last 90 days"],
    [365, "Last year"]].map(([v, l]) => [String(v), l]), (e) => go(`#/stats?days=${e.target.value}`));
  view.append(h("div", { class: "detail-head" }, h("h1", {}, "Statistics ", zh("统计")), range,
    h("span", { class: "muted" }, `${fmtTime(since.toISOString(), { seconds: false })} – ${fmtTime(until.toISOString(), { seconds: false })} (${S.me.timezone})`)));
  let stats, cameras, devices;
  try {
    [stats, cameras, devices] = await Promise.all([
      api(`/stats?since=${encodeURIComponent(since.toISOString())}&until=${encodeURIComponent(until.toISOString())}`),
      api("/cameras"), api("/devices")]);
  } catch (e) {
    if (gen === S.gen) view.append(h("div", { class: "alert", role: "alert" }, `Could not load statistics: ${e.status} ${e.message}`));
    return;
  }
  if (gen !== S.gen) return;
  S.cameras = cameras;
  const sum = (k) => stats.per_class.reduce((a, x) => a + x[k], 0);
  const filed = sum("filed");
  const voided = sum("void");
  view.append(h("div", { class: "cards" },
    card("Events 事件", sum("events")), card("Cases 案件", sum("cases")), card("Filed 立案", filed),
    card("Void 作废", voided), card("Precision 准确率", pct(filed + voided ? filed / (filed + voided) : null)),
    card("Median time to close 结案中位时长", stats.median_hours_to_close === null ? "—" : `${stats.median_hours_to_close.toFixed(1)} h`),
    card("Cameras online 在线摄像头", `${cameras.filter((c) => c.online).length} / ${cameras.length}`)));

  const perClass = h("table", { class: "grid", id: "per-class" },
    h("thead", {}, h("tr", {}, ...["Class 类别", "Events", "Cases", "Filed", "Void", "Precision 准确率"].map((t, i) =>
      h("th", { class: i ? "num" : "" }, t)))),
    h("tbody", {}, stats.per_class.length ? stats.per_class.map((x) => h("tr", { dataset: { classId: x.class_id } },
      h("td", {}, classCell(x.class_id)),
      ...["events", "cases", "filed", "void"].map((k) => h("td", { class: "num" }, String(x[k]))),
      h("td", { class: "num precision" }, precisionBar(x.precision), pct(x.precision)))) :
      h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No events in this range."))));
  const perUnit = h("table", { class: "grid", id: "per-unit" },
    h("thead", {}, h("tr", {}, ...["Unit 单位", "Handled", "On time", "On-time rate 按时率"].map((t, i) => h("th", { class: i ? "num" : "" }, t)))),
    h("tbody", {}, stats.per_unit.length ? stats.per_unit.map((u) => h("tr", {}, h("td", {}, u.unit),
      h("td", { class: "num" }, String(u.handled)), h("td", { class: "num" }, String(u.on_time)),
      h("td", { class: "num" }, precisionBar(u.on_time_rate), pct(u.on_time_rate)))) :
      h("tr", {}, h("td", { colspan: 4, class: "empty" }, "No case handled in this range."))));
  const camTable = h("table", { class: "grid", id: "cameras" },
    h("thead", {}, h("tr", {}, ...["Camera 摄像头", "Device", "State", "Last heartbeat", "Health"].map((t) => h("th", {}, t)))),
    h("tbody", {}, cameras.length ? cameras.map((c) => h("tr", {}, h("td", {}, c.camera_id), h("td", {}, c.device_id),
      h("td", {}, onlineBadge(c.online)), h("td", { class: "mono" }, fmtTime(c.last_seen)),
      h("td", { class: "muted" }, healthText(c.health)))) :
      h("tr", {}, h("td", { colspan: 5, class: "empty" }, "No camera has reported yet."))));
  const devTable = h("table", { class: "grid", id: "devices" },
    h("thead", {}, h("tr", {}, ...["Device 设备", "State", "Agent", "Last heartbeat", "Cameras"].map((t) => h("th", {}, t)))),
    h("tbody", {}, devices.length ? devices.map((d) => h("tr", {}, h("td", {}, d.device_id),
      h("td", {}, d.revoked ? h("span", { class: "badge offline" }, "revoked 已吊销") : onlineBadge(d.online)),
      h("td", {}, d.agent_version || "—"), h("td", { class: "mono" }, fmtTime(d.last_seen)), h("td", {}, d.cameras.join(", ") || "—"))) :
      h("tr", {}, h("td", { colspan: 5, class: "empty" }, "No device enrolled."))));
  view.append(h("div", { class: "stats-grid" },
    h("section", { class: "panel wide" }, h("h2", {}, "Per class: capture precision", zh("各类别准确率")),
      h("p", { class: "body muted", style: "margin:0;padding-top:6px;padding-bottom:6px" },
        "Precision = filed / (filed + void): the share of reviewed captures that were real problems."),
      perClass),
    h("section", { class: "panel wide" }, h("h2", {}, "Per camera: capture precision", zh("各摄像头准确率")),
      h("p", { class: "body muted", style: "margin:0;padding-top:6px;padding-bottom:6px" },
        "Worst first: a badly placed camera floods reviewers with false captures. Edge cameras only.",
        stats.per_camera_total > stats.per_camera.length ? ` Showing ${stats.per_camera.length} of ${stats.per_camera_total}.` : ""),
      perCameraTable(stats.per_camera)),
    h("section", { class: "panel" }, h("h2", {}, "Per day", zh("每日趋势")), h("div", { class: "body" }, dayChart(stats.per_day))),
    h("section", { class: "panel" }, h("h2", {}, "Per unit: on-time handling", zh("责任单位按时处置率")), perUnit),
    h("section", { class: "panel" }, h("h2", {}, "Cameras", zh("摄像头")), camTable),
    h("section", { class: "panel" }, h("h2", {}, "Edge devices", zh("边缘设备")), devTable)));
}

/** Per-camera precision rows; the camera links to its voided cases, the false captures to look at. */
function perCameraTable(rows) {
  const worst = (x) => x.most_voided_class
    ? h("td", { class: "most-voided" }, classCell(x.most_voided_class),
      h("div", { class: "muted" }, `${x.most_voided_class_voids} of ${x.void} void`))
    : h("td", { class: "most-voided muted" }, "—");
  return h("table", { class: "grid", id: "per-camera" },
    h("thead", {}, h("tr", {}, ...["Camera 摄像头", "Cases", "Filed", "Void", "Precision 准确率", "Most voided 主要误报"]
      .map((t, i) => h("th", { class: i && i < 5 ? "num" : "" }, t)))),
    h("tbody", {}, rows.length ? rows.map((x) => h("tr", { dataset: { cameraId: x.camera_id } },
      h("td", {}, h("a", { href: queueHash({ camera_id: x.camera_id, status: "void" }), title: "Voided cases of this camera" },
        x.camera_id)),
      ...["cases", "filed", "void"].map((k) => h("td", { class: "num" }, String(x[k]))),
      h("td", { class: "num precision" }, precisionBar(x.precision), pct(x.precision)), worst(x))) :
      h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No camera captured a case in this range."))));
}

function card(label, value) {
  return h("div", { class: "card" }, h("div", { class: "label" }, label), h("div", { class: "value" }, String(value)));
}
function precisionBar(x) {
  if (x === null || x === undefined) return null;
  const bar = h("span", { class: `bar${x < 0.5 ? " low" : x < 0.8 ? " mid" : ""}` }, h("i", { style: `width:${(x * 100).toFixed(0)}%` }));
  return bar;
}
function onlineBadge(online) {
  return h("span", { class: `badge ${online ? "online" : "offline"}` }, online ? "● online 在线" : "● offline 离线");
}
function healthText(health) {
  if (!health) return "—";
  const bits = [];
  if (health.detect_fps) bits.push(`detect ${health.detect_fps} fps`);
  if (health.inference_ms) bits.push(`inference ${health.inference_ms.toFixed(0)} ms`);
  if (health.reconnects) bits.push(`${health.reconnects} reconnects`);
  if (health.skipped_frames) bits.push(`${health.skipped_frames} frames skipped`);
  if (health.last_error) bits.push(`error: ${health.last_error}`);
  return bits.join(" · ") || "—";
}
function dayChart(days) {
  if (!days.length) return h("p", { class: "muted" }, "No data in this range.");
  const max = Math.max(1, ...days.map((d) => d.events));
  return h("div", {},
    h("div", { class: "days" }, ...days.map((d) => h("div", { class: "day", title: `${d.day}: ${d.events} events, ${d.cases} cases` },
      h("i", { style: `height:${(100 * (d.events - d.cases)) / max}%` }), h("i", { class: "cases", style: `height:${(100 * Math.min(d.cases, d.events)) / max}%` })))),
    h("div", { class: "legend" }, h("span", {}, h("i", { style: "background:var(--accent)" }), "cases"),
      h("span", {}, h("i", { style: "background:#8fb3ea" }), "events"),
      h("span", {}, `${days[0].day} – ${days[days.length - 1].day}`)));
}

// ---------------------------------------------------------------- live updates (SSE over fetch)

function setLive(on) {
  S.live.connected = on;
  const el = $("#live");
  el.className = `live ${on ? "on" : "off"}`;
  el.lastElementChild.textContent = on ? "live 实时" : "reconnecting…";
}

async function startLive() {
  S.live.ctrl?.abort();
  const ctrl = new AbortController();
  S.live.ctrl = ctrl;
  let backoff = 1000;
  while (!ctrl.signal.aborted && S.token) {
    try {
      const q = S.live.lastId !== null ? `?after=${S.live.lastId}` : "";
      const res = await fetch(`/stream/cases${q}`, { headers: { Authorization: `Bearer ${S.token}`, Accept: "text/event-stream" },
        signal: ctrl.signal, cache: "no-store" });
      if (res.status === 401) return signOut("Your token is no longer valid (401). Sign in again.");
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
    const cls = S.classes.get(ch.data?.class_id);
    toast(`New case ${ch.case_id}${cls ? ` · ${cls.name_zh} ${cls.name_en}` : ""}`);
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
  const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName);
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
  switch (e.key) {
    case "?": help.showModal(); break;
    case "g": pendingG = true; setTimeout(() => { pendingG = false; }, 1000); break;
    case "r": route(); break;
    case "j": case "k":
      if (view === "case") stepCase(e.key === "j" ? 1 : -1);
      else if (view === "queue" && S.queue.items.length) {
        S.queue.selected = Math.max(0, Math.min(S.queue.items.length - 1, S.queue.selected + (e.key === "j" ? 1 : -1)));
        markSelected(true);
      }
      break;
    case "Enter": case "o":
      if (view === "queue" && S.queue.items[S.queue.selected]) go(`#/case/${encodeURIComponent(S.queue.items[S.queue.selected].case_id)}`);
      break;
    default: {
      if (view !== "case") return;
      const action = Object.keys(ACTIONS).find((a) => ACTIONS[a].key === e.key);
      if (!action) return;
      if (!S.detail?.case.allowed_actions.includes(action)) {
        toast(`${ACTIONS[action].en} is not possible here (status ${S.detail?.case.status}, role ${S.me.role})`, true, 3000);
        return;
      }
      startAction(action);
    }
  }
  e.preventDefault();
}

// ---------------------------------------------------------------- start

function init() {
  $("#login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const token = $("#token").value.trim();
    const btn = e.target.querySelector("button");
    btn.disabled = true;
    try {
      await signIn(token);
      $("#token").value = "";
    } catch (err) {
      showLogin(err.status === 401 ? "Unknown or revoked token (401)." : `${err.status || ""} ${err.message}`);
    } finally {
      btn.disabled = false;
    }
  });
  $("#logout").addEventListener("click", () => signOut("Signed out."));
  $("#help-btn").addEventListener("click", () => $("#help").showModal());
  $("#help-close").addEventListener("click", () => $("#help").close());
  window.addEventListener("hashchange", route);
  document.addEventListener("keydown", onKey);
  if (S.token) {
    signIn(S.token).catch((err) => {
      sessionStorage.removeItem(TOKEN_KEY);
      S.token = null;
      showLogin(err.status === 401 ? "Your token is no longer valid. Sign in again." : err.message);
    });
  } else {
    showLogin();
  }
}

init();
