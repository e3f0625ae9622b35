/* CityEye district pages: fleet health, camera config (zone editor, rules, calibration), map, working
 * calendar. Loaded after app.js and uses its helpers (h, api, toast, fmtTime, S); registers its views in
 * window.CityEye.views. Every string a user reads comes from the page's one catalogue (i18n.js, keys district.*,
 * zh-CN first) through tr(). No third-party code but
 * the bundled Leaflet (leaflet.js, BSD-2), for the map.
 */
"use strict";

(() => {
  // ------------------------------------------------------------ messages (zh-CN first)
  /** A user-visible string from the page's one message catalogue (i18n.js, zh-CN first). */
  const tr = (key, vars) => window.t(`district.${key}`, vars);

  const ZONE_COLOURS = ["#e4572e", "#17bebb", "#ffc914", "#76b041", "#8e44ad", "#2e86de"];
  const ago = (iso) => (iso ? `${Math.max(0, Math.round((Date.now() - new Date(iso)) / 1000))} s` : tr("never"));
  const num = (x, d = 1) => (x === null || x === undefined ? "—" : Number(x).toFixed(d));
  const clone = (x) => JSON.parse(JSON.stringify(x));

  // ------------------------------------------------------------ fleet (cameras list)
  const FLEET_FIELDS = ["device", "camera", "online", "last_frame", "detect_fps", "dropped", "spool", "oldest_unsent",
                        "clock", "model", "config", "cpu"];
  const FLEET_REFRESH_MS = 3000; // heartbeats come every few seconds; cheap to re-read (one query per table)

  /** The fleet table, kept live: rows are updated in place every few seconds (no reload), so the
   * reader's scroll position, the row they selected and any text they selected stay as they were. */
  async function renderFleet(view) {
    const gen = S.gen;
    const panel = h("section", { class: "panel district" }, h("h2", {}, tr("cameras")), h("p", { class: "muted" },
      tr("loading")));
    view.append(panel);
    const fleet = await api("/fleet").catch((e) => ({ error: e.message }));
    if (gen !== S.gen) return;
    panel.lastChild.remove();
    if (fleet.error) return panel.append(h("p", { class: "error" }, fleet.error));
    const tbody = h("tbody");
    const state = h("p", { class: "muted fleet-live", id: "fleet-live" });
    panel.append(state, h("table", { class: "grid fleet" },
      h("thead", {}, h("tr", {}, FLEET_FIELDS.map((k) => h("th", {}, tr(k))))), tbody));
    tbody.addEventListener("click", (e) => {
      const tr_ = e.target.closest("tr");
      if (!tr_) return;
      for (const r of tbody.querySelectorAll("tr.selected")) if (r !== tr_) r.classList.remove("selected");
      tr_.classList.toggle("selected");
    });
    updateFleet(tbody, state, fleet);
    while (gen === S.gen) {
      await sleep(FLEET_REFRESH_MS);
      if (gen !== S.gen) return;
      if (document.hidden) continue;
      try {
        updateFleet(tbody, state, await api("/fleet"));
      } catch (e) {
        state.textContent = `${tr("live_failed")}: ${e.message}`;
        state.classList.add("error");
      }
    }
  }

  /** One row per camera (a device without cameras gets one row), keyed device/camera; cells are
   * rewritten only where their text changed. */
  function updateFleet(tbody, state, fleet) {
    const keep = new Set();
    const rows = new Map([...tbody.rows].map((r) => [r.dataset.key, r])); // a district has ~1,800 cameras
    let at = 0;
    for (const d of fleet.devices) {
      for (const c of d.cameras.length ? d.cameras : [null]) {
        const key = `${d.device_id}/${c ? c.camera_id : ""}`;
        keep.add(key);
        let row = rows.get(key);
        if (!row) {
          row = h("tr", { dataset: { key, camera: c ? c.camera_id : "", device: d.device_id } },
            FLEET_FIELDS.map((f) => h("td", { dataset: { field: f } })));
        }
        if (tbody.rows[at] !== row) tbody.insertBefore(row, tbody.rows[at] || null);
        at += 1;
        fillFleetRow(row, d, c);
      }
    }
    for (const r of [...tbody.rows]) if (!keep.has(r.dataset.key)) r.remove();
    state.classList.remove("error");
    state.textContent = tr("live_updated", { time: new Date().toLocaleTimeString(I18N.locales[I18N.lang]) });
    state.dataset.updated = String(Date.now());
  }

  function fillFleetRow(row, d, c) {
    const hb = d.health || {};
    const ch = (c && c.health) || {};
    const online = c ? c.online : d.online;
    const cells = {
      device: d.device_id,
      camera: c ? c.camera_id : "—",
      online: ch.stalled ? tr("stalled") : online ? tr("online") : tr("offline"),
      last_frame: ch.last_frame_at ? ago(ch.last_frame_at) : "—",
      detect_fps: num(ch.detect_fps, 2),
      dropped: String(ch.dropped_frames ?? "—"),
      spool: String(hb.spool_events ?? "—"),
      oldest_unsent: hb.oldest_unsent_at ? ago(hb.oldest_unsent_at) : "—",
      clock: d.clock_offset_s === null || d.clock_offset_s === undefined ? "—" : `${num(d.clock_offset_s, 1)} s`,
      model: hb.model ? hb.model.name : "—",
      config: configCell((c && c.config) || {}),
      cpu: hb.cpu_percent === null || hb.cpu_percent === undefined ? "—" : `${num(hb.cpu_percent, 1)} %`,
    };
    for (const td of row.cells) {
      const f = td.dataset.field;
      if (f === "online") td.className = online ? "ok" : "bad";
      if (td.dataset.text === cells[f]) continue; // untouched: a selection inside it survives
      td.dataset.text = cells[f];
      if (f === "camera" && c) td.replaceChildren(h("a", { href: `#/camera/${encodeURIComponent(c.camera_id)}` }, cells[f]));
      else td.textContent = cells[f];
    }
  }

  function configCell(cfg) {
    if (cfg.running_version === undefined) return "—";
    const managed = cfg.managed_by === "local" ? tr("managed_local") : tr("managed_hub");
    const latest = cfg.latest_version && cfg.latest_version !== cfg.running_version
      ? ` · ${tr("latest")} v${cfg.latest_version} ${tr(`st_${cfg.latest_status}`)}` : "";
    return `v${cfg.running_version} (${managed})${latest}`;
  }

  // ------------------------------------------------------------ one camera: snapshot, zones, rules, calibration
  async function renderCamera(view, r) {
    const cameraId = r.parts[1];
    const gen = S.gen;
    const root = h("section", { class: "panel district camera-admin" }, h("p", { class: "muted" }, tr("loading")));
    view.append(root);
    let info;
    try {
      const [config, forms] = await Promise.all([api(`/cameras/${encodeURIComponent(cameraId)}/config`),
        api("/fleet/rule-forms")]);
      info = { ...config, rule_forms: forms };
    } catch (e) {
      root.replaceChildren(h("p", { class: "error" }, e.message));
      return;
    }
    if (gen !== S.gen) return;
    const ed = {
      cameraId, info, body: clone(info.latest.body), base: info.latest.version, selected: 0,
      calib: clone(info.latest.body.calibration || { crs: "wgs84", points: [] }), pick: null,
    };
    ed.root = root;
    root.replaceChildren();
    root.append(h("h2", {}, `${tr("camera")} ${cameraId}`), header(ed));
    const pic = pictureBox(ed);
    const side = h("div", { class: "side" }, zonesPanel(ed), settingsPanel(ed));
    root.append(h("div", { class: "editor" }, pic, side), rulesPanel(ed), calibrationPanel(ed), savePanel(ed),
      auditPanel(ed));
    redraw(ed);
    pollStatus(ed, gen);
  }

  function header(ed) {
    const i = ed.info;
    const el = h("p", { class: "cfg-status", id: "cfg-status" });
    const fill = (info) => {
      const latest = info.latest;
      el.replaceChildren(
        h("span", { class: "badge" }, info.managed_by === "local" ? tr("managed_local") : tr("managed_hub")), " ",
        `${tr("device")} ${info.device_id} · ${tr("running")} v${info.running_version ?? "—"} · ${tr("latest")} `
        + `v${latest.version} `,
        h("span", { class: `badge cfg-${latest.status}`, dataset: { status: latest.status } },
          tr(`st_${latest.status}`)),
        // the agent's own words (English) folded: the status badge already says it was refused
        latest.status === "rejected" ? h("details", { class: "error agent-error hub-detail" },
          h("summary", {}, tr("agent_says")), h("code", { lang: "en" }, latest.error || "")) : ""); // not null: replaceChildren writes "null"
    };
    fill(i);
    ed.fillStatus = fill;
    return el;
  }

  /** Follow the device's answer to what was saved (accepted / rejected) without reloading the page. */
  async function pollStatus(ed, gen) {
    while (gen === S.gen) {
      await sleep(1000);
      if (gen !== S.gen) return;
      try {
        const info = await api(`/cameras/${encodeURIComponent(ed.cameraId)}/config`);
        ed.info = info;
        ed.fillStatus(info);
      } catch { /* transient; try again */ }
    }
  }

  function pictureBox(ed) {
    const img = h("img", { class: "snapshot", alt: tr("snapshot") });
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 1000 1000");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.classList.add("zones-overlay");
    const note = h("p", { class: "muted snap-note" }, tr("snapshot_none"));
    const btn = h("button", { class: "btn", type: "button", id: "snapshot-btn", onclick: () => snapshot(ed, img, note) },
      tr("snapshot"));
    const stage = h("div", { class: "stage" }, img, svg);
    ed.svg = svg;
    ed.img = img;
    svg.addEventListener("click", (e) => onPictureClick(ed, e));
    svg.addEventListener("pointermove", (e) => onDrag(ed, e));
    svg.addEventListener("pointerup", () => { ed.drag = null; });
    loadSnapshot(ed, img, note);
    return h("div", { class: "picture" }, h("div", { class: "row" }, btn, note), stage,
      h("p", { class: "hint" }, tr("help_zone")));
  }

  async function loadSnapshot(ed, img, note, after = null) {
    const res = await fetch(`/cameras/${encodeURIComponent(ed.cameraId)}/snapshot`,
      { headers: { Authorization: `Bearer ${S.token}` } });
    if (!res.ok) return false;
    const taken = res.headers.get("x-taken-at");
    if (after && (!taken || new Date(taken) < after)) return false;
    if (img.src) URL.revokeObjectURL(img.src);
    img.src = URL.createObjectURL(await res.blob());
    note.textContent = `${tr("snapshot")} ${fmtTime(taken)}`;
    img.dataset.takenAt = taken || "";
    return true;
  }

  async function snapshot(ed, img, note) {
    const asked = new Date(Date.now() - 1000);
    note.textContent = tr("snapshot_wait");
    try {
      await api(`/cameras/${encodeURIComponent(ed.cameraId)}/snapshot`, { method: "POST" });
    } catch (e) {
      note.textContent = e.message;
      return;
    }
    for (let i = 0; i < 40; i++) {
      await sleep(250);
      if (await loadSnapshot(ed, img, note, asked)) return;
    }
    note.textContent = `${tr("error")}: ${tr("snapshot_none")}`;
  }

  function svgPoint(ed, e) {
    const r = ed.svg.getBoundingClientRect();
    const x = Math.min(1, Math.max(0, (e.clientX - r.left) / r.width));
    const y = Math.min(1, Math.max(0, (e.clientY - r.top) / r.height));
    return [Math.round(x * 1000) / 1000, Math.round(y * 1000) / 1000];
  }

  function onPictureClick(ed, e) {
    if (e.target.dataset && e.target.dataset.vertex !== undefined) return;
    const p = svgPoint(ed, e);
    if (ed.pick && ed.pick.side === "image") return ed.onCalibImage(p); // calibration: this row's picture point
    const zone = ed.body.zones[ed.selected];
    if (!zone) return;
    zone.polygon = zone.polygon || [];
    zone.polygon.push(p);
    redraw(ed);
  }

  function onDrag(ed, e) {
    if (!ed.drag) return;
    const [zi, pi] = ed.drag;
    ed.body.zones[zi].polygon[pi] = svgPoint(ed, e);
    redraw(ed);
  }

  function redraw(ed) {
    const svg = ed.svg;
    const NS = "http://www.w3.org/2000/svg";
    svg.replaceChildren();
    ed.body.zones.forEach((z, zi) => {
      const pts = z.polygon || z.line || [];
      const colour = ZONE_COLOURS[zi % ZONE_COLOURS.length];
      const shape = document.createElementNS(NS, z.line ? "polyline" : "polygon");
      shape.setAttribute("points", pts.map(([x, y]) => `${x * 1000},${y * 1000}`).join(" "));
      shape.setAttribute("class", `zone${zi === ed.selected ? " selected" : ""}`);
      shape.style.stroke = colour;
      shape.style.fill = zi === ed.selected ? `${colour}55` : `${colour}22`;
      shape.dataset.zone = z.id;
      svg.append(shape);
      if (zi !== ed.selected) return;
      pts.forEach(([x, y], pi) => {
        const c = document.createElementNS(NS, "circle");
        c.setAttribute("cx", x * 1000);
        c.setAttribute("cy", y * 1000);
        c.setAttribute("r", 9);
        c.setAttribute("class", "vertex");
        c.dataset.vertex = String(pi);
        c.style.fill = colour;
        c.addEventListener("pointerdown", (ev) => { ev.stopPropagation(); ed.drag = [zi, pi]; });
        c.addEventListener("dblclick", (ev) => { ev.stopPropagation(); pts.splice(pi, 1); redraw(ed); });
        svg.append(c);
      });
    });
    (ed.calib.points || []).forEach((p, i) => {
      if (!p.image) return;
      const c = document.createElementNS(NS, "circle");
      c.setAttribute("cx", p.image[0] * 1000);
      c.setAttribute("cy", p.image[1] * 1000);
      c.setAttribute("r", 6);
      c.setAttribute("class", "calib-point");
      c.dataset.calib = String(i);
      const label = document.createElementNS(NS, "text");
      label.setAttribute("x", p.image[0] * 1000 + 10);
      label.setAttribute("y", p.image[1] * 1000 - 8);
      label.setAttribute("class", "calib-label");
      label.textContent = String(i + 1);
      svg.append(c, label);
    });
    if (ed.renderZones) ed.renderZones();
  }

  function zonesPanel(ed) {
    const list = h("div", { class: "zone-list" });
    const kinds = ed.info.zone_kinds || ["generic"];
    ed.renderZones = () => {
      list.replaceChildren(...ed.body.zones.map((z, zi) => h("div", {
        class: `zone-item${zi === ed.selected ? " selected" : ""}`, dataset: { zone: z.id },
        onclick: () => { ed.selected = zi; redraw(ed); },
      },
      h("input", { class: "zone-id", value: z.id, size: 14, onchange: (e) => { renameZone(ed, z, e.target.value); } }),
      h("select", { class: "zone-kind", onchange: (e) => { z.kind = e.target.value; } },
        kinds.map((k) => h("option", { value: k, selected: (z.kind || "generic") === k, title: k },
          MESSAGES["zh-CN"][`zone_kind.${k}`] ? t(`zone_kind.${k}`) : k))),
      h("span", { class: "muted zone-points", dataset: { points: (z.polygon || z.line || []).length } },
        tr("n_points", { n: (z.polygon || z.line || []).length })),
      h("button", { class: "btn small ghost", type: "button", onclick: (e) => {
        e.stopPropagation();
        ed.body.zones.splice(zi, 1);
        ed.selected = Math.max(0, ed.selected - (zi <= ed.selected ? 1 : 0));
        redraw(ed);
        ed.renderRules();
      } }, tr("delete")))));
    };
    const add = h("button", { class: "btn small", type: "button", id: "new-zone", onclick: () => {
      let n = ed.body.zones.length + 1;
      while (ed.body.zones.some((z) => z.id === `zone_${n}`)) n += 1;
      ed.body.zones.push({ id: `zone_${n}`, kind: "no_parking", polygon: [] });
      ed.selected = ed.body.zones.length - 1;
      redraw(ed);
      ed.renderRules();
    } }, tr("new_zone"));
    return h("div", { class: "zones-panel" }, h("h3", {}, tr("zones")), list, add);
  }

  function renameZone(ed, zone, id) {
    for (const rule of ed.body.rules || []) {
      rule.zones = (rule.zones || []).map((z) => (z === zone.id ? id : z));
    }
    zone.id = id;
    ed.renderRules();
    redraw(ed);
  }

  function settingsPanel(ed) {
    return h("div", { class: "settings-panel" }, h("label", {}, tr("detect_fps_field"), " ",
      h("input", { type: "number", step: "0.5", min: "0.5", value: ed.body.detect_fps ?? 2, class: "detect-fps",
        onchange: (e) => { ed.body.detect_fps = Number(e.target.value); } })));
  }

  // ---- rules as forms: class (catalogue, Chinese names), zones, source, typed params, schedule
  const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
  const TIMEZONES = ["Asia/Shanghai", "Asia/Urumqi", "Asia/Hong_Kong", "Asia/Macau", "Asia/Taipei", "UTC"];
  const hasMsg = (key) => MESSAGES["zh-CN"][`district.${key}`] !== undefined;
  /** A param's label: the catalogue's name where there is one, else its field name as written in the YAML. */
  const paramLabel = (name) => (hasMsg(`p_${name}`) ? tr(`p_${name}`) : name);

  function rulesPanel(ed) {
    const box = h("div", { class: "rules" });
    const forms = ed.info.rule_forms || { classes: [], params: {} };
    const classes = new Map(forms.classes.map((c) => [c.id, c]));
    ed.renderRules = () => {
      box.replaceChildren(...(ed.body.rules || []).map((rule, ri) => ruleForm(ed, rule, ri, classes, forms)));
    };
    ed.renderRules();
    const add = h("button", { class: "btn small", type: "button", id: "new-rule", onclick: () => {
      ed.body.rules = ed.body.rules || [];
      ed.body.rules.push({ class_id: forms.classes[0]?.id || "illegal_car_parking",
        zones: ed.body.zones[ed.selected] ? [ed.body.zones[ed.selected].id] : [] });
      ed.renderRules();
    } }, tr("new_rule"));
    return h("div", { class: "rules-panel" }, h("h3", {}, tr("rules")), box, add);
  }

  function ruleForm(ed, rule, ri, classes, forms) {
    const at = `rules[${ri}]`;
    const rerender = () => ed.renderRules();
    const cls = classes.get(rule.class_id);
    const className_ = (c) => (I18N.lang === "zh-CN" ? `${c.name_zh}（${c.id}）` : `${c.name_en} (${c.id})`);
    const classSelect = h("select", { class: "rule-class", dataset: { path: `${at}.class_id` }, onchange: (e) => {
      const next = classes.get(e.target.value);
      const known = new Set((forms.params[paramKind(rule, next)] || []).map((f) => f.name));
      rule.class_id = e.target.value;
      rule.params = Object.fromEntries(Object.entries(rule.params || {}).filter(([k]) => known.has(k)));
      if (rule.source === "change" && !(next && next.change_ok)) delete rule.source;
      rerender();
    } }, [...classes.values()].map((c) => h("option", { value: c.id, selected: c.id === rule.class_id }, className_(c))),
    cls ? null : h("option", { value: rule.class_id, selected: true }, rule.class_id));
    const zones = h("div", { class: "rule-zones", dataset: { path: `${at}.zones` } },
      ed.body.zones.length ? ed.body.zones.map((z) => h("label", { class: "check" },
        h("input", { type: "checkbox", class: "rule-zone", value: z.id, checked: (rule.zones || []).includes(z.id),
          onchange: (e) => {
            const set = new Set(rule.zones || []);
            if (e.target.checked) set.add(z.id); else set.delete(z.id);
            rule.zones = ed.body.zones.map((x) => x.id).filter((id) => set.has(id));
          } }), ` ${z.id}`)) : h("span", { class: "muted" }, tr("zones_none")));
    const source = h("select", { class: "rule-source", dataset: { path: `${at}.source` }, onchange: (e) => {
      if (e.target.value === "detector") delete rule.source; else rule.source = e.target.value;
      rule.params = {};
      rerender();
    } }, h("option", { value: "detector", selected: rule.source !== "change" }, tr("src_detector")),
    cls && cls.change_ok ? h("option", { value: "change", selected: rule.source === "change" }, tr("src_change")) : null);
    return h("fieldset", { class: "rule", dataset: { rule: ri, path: at } },
      h("legend", {}, `${tr("rule")} ${ri + 1}`),
      h("div", { class: "rule-head" },
        h("label", {}, tr("class"), " ", classSelect),
        h("label", {}, tr("rule_source"), " ", source),
        h("label", { class: "check" }, h("input", { type: "checkbox", class: "rule-enabled", checked: rule.enabled !== false,
          onchange: (e) => { if (e.target.checked) delete rule.enabled; else rule.enabled = false; } }), " ", tr("enabled")),
        numberField(rule, "cooldown_s", tr("cooldown_s"), `${at}.cooldown_s`, { min: 0, placeholder: 60 }),
        numberField(rule, "min_score", tr("min_score"), `${at}.min_score`, { min: 0, max: 1, step: 0.05, placeholder: 0.3 }),
        h("button", { class: "btn small ghost", type: "button",
          onclick: () => { ed.body.rules.splice(ri, 1); rerender(); } }, tr("delete"))),
      h("div", { class: "rule-zones-row" }, h("span", { class: "label" }, tr("rule_zones")), zones),
      paramsForm(rule, at, cls, forms.params[paramKind(rule, cls)]),
      scheduleForm(ed, rule, at));
  }

  const paramKind = (rule, cls) => (rule.source === "change" ? "change" : cls && cls.rule);

  /** A number input for `obj[key]`: empty means "the default" (the key is left out of the config). */
  function numberField(obj, key, label, path, { min, max, step = "any", placeholder, integer = false } = {}) {
    const input = h("input", { type: "number", class: `num-${key.replace(/_/g, "-")}`, step: integer ? 1 : step,
      min, max, placeholder: placeholder ?? "", value: obj[key] ?? "", dataset: { path } });
    input.addEventListener("change", () => {
      const raw = input.value.trim();
      if (raw === "") delete obj[key];
      else obj[key] = integer ? parseInt(raw, 10) : Number(raw);
    });
    return h("label", {}, label, " ", input);
  }

  /** The rule's params as typed inputs (one per field the rule type knows; empty: the class's default),
   * and, only when the config holds params no form field knows, an advanced JSON box for those. */
  function paramsForm(rule, at, cls, specs) {
    rule.params = rule.params || {};
    const params = rule.params;
    const defaults = cls ? { labels: cls.labels, ...cls.defaults } : {}; // labels: the class's, unless the rule names its own
    const fields = (specs || []).map((f) => paramField(params, f, defaults, `${at}.params.${f.name}`));
    const known = new Set((specs || []).map((f) => f.name));
    const unknown = Object.fromEntries(Object.entries(params).filter(([k]) => !known.has(k)));
    let advanced = null;
    if (Object.keys(unknown).length || !specs) {
      const area = h("textarea", { class: "rule-params-advanced", rows: 2, spellcheck: false, dataset: { path: `${at}.params` } },
        Object.keys(unknown).length ? JSON.stringify(unknown) : "");
      area.addEventListener("change", () => {
        try {
          const value = area.value.trim() ? JSON.parse(area.value) : {};
          if (typeof value !== "object" || Array.isArray(value) || value === null) throw new Error(tr("json_object"));
          for (const k of Object.keys(params)) if (!known.has(k)) delete params[k];
          Object.assign(params, value);
          area.classList.remove("invalid");
        } catch (e) {
          area.classList.add("invalid");
          toast(`${tr("params_advanced")}: ${e.message}`, true);
        }
      });
      advanced = h("details", { class: "advanced", open: true }, h("summary", {}, tr("params_advanced")), area);
    }
    return h("fieldset", { class: "params", dataset: { path: `${at}.params` } }, h("legend", {}, tr("params")),
      h("div", { class: "param-grid" }, fields), advanced);
  }

  function paramField(params, f, defaults, path) {
    const dflt = defaults[f.name] !== undefined ? defaults[f.name] : f.default;
    const shown = dflt === undefined || dflt === null ? tr("param_none") : Array.isArray(dflt) ? dflt.join(", ")
      : typeof dflt === "boolean" ? tr(dflt ? "yes" : "no") : typeof dflt === "object" ? JSON.stringify(dflt) : String(dflt);
    const attrs = { class: "param-input", dataset: { param: f.name, path }, title: `${tr("param_default")} ${shown}` };
    const set = (v) => { if (v === undefined) delete params[f.name]; else params[f.name] = v; };
    const cur = params[f.name];
    let input;
    if (f.kind === "number" || f.kind === "integer") {
      input = h("input", { ...attrs, type: "number", step: f.kind === "integer" ? 1 : "any", min: f.ge ?? f.gt,
        max: f.le ?? f.lt, placeholder: shown, value: cur ?? "" });
      input.addEventListener("change", () => {
        const raw = input.value.trim();
        set(raw === "" ? undefined : f.kind === "integer" ? parseInt(raw, 10) : Number(raw));
      });
    } else if (f.kind === "boolean" || f.kind === "choice") {
      const choices = f.kind === "boolean" ? [true, false] : f.choices;
      const label = (v) => (typeof v === "boolean" ? tr(v ? "yes" : "no") : hasMsg(`c_${v}`) ? tr(`c_${v}`) : String(v));
      input = h("select", attrs, h("option", { value: "", selected: cur === undefined }, `${tr("param_default")} ${shown}`),
        choices.map((v, i) => h("option", { value: String(i), selected: cur === v }, label(v))));
      input.addEventListener("change", () => set(input.value === "" ? undefined : choices[Number(input.value)]));
    } else if (f.kind === "labels" || f.kind === "text") {
      input = h("input", { ...attrs, type: "text", placeholder: shown,
        value: cur === undefined || cur === null ? "" : Array.isArray(cur) ? cur.join(", ") : String(cur) });
      input.addEventListener("change", () => {
        const raw = input.value.trim();
        if (f.kind === "text") return set(raw === "" ? undefined : raw);
        set(raw === "" ? undefined : raw.split(/[,，\s]+/).filter(Boolean));
      });
    } else { // raw: nested values (a per-zone mapping, a confirmer) as JSON
      input = h("input", { ...attrs, type: "text", class: "param-input raw", placeholder: shown,
        value: cur === undefined ? "" : JSON.stringify(cur) });
      input.addEventListener("change", () => {
        const raw = input.value.trim();
        try {
          set(raw === "" ? undefined : JSON.parse(raw));
          input.classList.remove("invalid");
        } catch (e) {
          input.classList.add("invalid");
          toast(`${paramLabel(f.name)}: ${e.message}`, true);
        }
      });
    }
    return h("label", { class: "param" }, h("span", { class: "label" }, paramLabel(f.name)), input);
  }

  // ---- schedules: weekly windows, holidays and make-up working days (调休), time zone
  function scheduleForm(ed, rule, at) {
    const path = `${at}.schedule`;
    const box = h("fieldset", { class: "schedule", dataset: { path } });
    const render = () => {
      const s = rule.schedule;
      const on = h("select", { class: "sched-on", onchange: (e) => {
        if (e.target.value === "always") delete rule.schedule;
        else rule.schedule = { mode: "active", windows: [{ days: WEEKDAYS.slice(0, 5), start: "07:00", end: "19:00" }] };
        render();
      } }, h("option", { value: "always", selected: !s }, tr("sched_always")),
      h("option", { value: "scheduled", selected: Boolean(s) }, tr("sched_use")));
      box.replaceChildren(h("legend", {}, tr("schedule")), h("div", { class: "row" }, on));
      if (!s) return;
      s.windows = s.windows || [];
      box.append(
        h("div", { class: "row" }, h("label", {}, tr("sched_mode"), " ", h("select", { class: "sched-mode",
          dataset: { path: `${path}.mode` }, onchange: (e) => { s.mode = e.target.value; } },
        ["active", "allowed"].map((m) => h("option", { value: m, selected: (s.mode || "active") === m }, tr(`mode_${m}`))))),
        h("label", {}, tr("timezone"), " ", timezoneInput(ed, s, path))),
        h("h4", {}, tr("windows")),
        h("div", { class: "sched-windows" }, s.windows.map((w, wi) => windowRow(s.windows, w, wi, `${path}.windows[${wi}]`,
          true, render))),
        h("button", { class: "btn small sched-add-window", type: "button", onclick: () => {
          s.windows.push({ days: WEEKDAYS.slice(0, 5), start: "07:00", end: "09:00" });
          render();
        } }, tr("add_window")),
        h("h4", {}, tr("holidays_title")),
        h("div", { class: "row" }, dateList(s, "holidays", tr("holidays"), `${path}.holidays`, render),
          dateList(s, "workdays", tr("workdays"), `${path}.workdays`, render)),
        h("div", { class: "row" }, h("label", {}, tr("workday_as"), " ", h("select", { class: "sched-workday-as",
          dataset: { path: `${path}.workday_as` }, onchange: (e) => { s.workday_as = e.target.value; } },
        WEEKDAYS.map((d) => h("option", { value: d, selected: (s.workday_as || "mon") === d }, tr(`day_${d}`))))),
        calendarFill(s, render)),
        h("p", { class: "muted" }, tr("holiday_windows_help")),
        h("div", { class: "sched-holiday-windows" }, (s.holiday_windows || []).map((w, wi) => windowRow(s.holiday_windows, w,
          wi, `${path}.holiday_windows[${wi}]`, false, render))),
        h("button", { class: "btn small sched-add-holiday-window", type: "button", onclick: () => {
          s.holiday_windows = s.holiday_windows || [];
          s.holiday_windows.push({ start: "09:00", end: "17:00" });
          render();
        } }, tr("add_holiday_window")));
    };
    render();
    return box;
  }

  function windowRow(list, w, wi, path, withDays, render) {
    const time = (key) => {
      const input = h("input", { type: "text", class: `sched-${key}`, size: 6, value: w[key] || "", placeholder: "HH:MM",
        inputmode: "numeric", dataset: { path: `${path}.${key}` } });
      input.addEventListener("change", () => { w[key] = input.value.trim(); });
      return h("label", {}, tr(key), " ", input);
    };
    const days = withDays ? h("span", { class: "sched-days", dataset: { path: `${path}.days` } }, WEEKDAYS.map((d) =>
      h("label", { class: "check day" }, h("input", { type: "checkbox", class: "sched-day", value: d,
        checked: (w.days || []).includes(d), onchange: (e) => {
          const set = new Set(w.days || []);
          if (e.target.checked) set.add(d); else set.delete(d);
          w.days = WEEKDAYS.filter((x) => set.has(x));
        } }), tr(`day_${d}`)))) : null;
    return h("div", { class: withDays ? "sched-window" : "sched-holiday-window", dataset: { path, window: wi } },
      days, time("start"), time("end"),
      h("button", { class: "btn small ghost", type: "button", onclick: () => { list.splice(wi, 1); render(); } },
        tr("delete")));
  }

  function dateList(s, key, label, path, render) {
    s[key] = s[key] || [];
    const input = h("input", { type: "date", class: `sched-new-${key}` });
    return h("div", { class: `date-editor sched-${key}`, dataset: { path } }, h("span", { class: "label" }, label),
      h("ul", { class: "dates" }, s[key].map((d, i) => h("li", { dataset: { date: d } }, d, " ",
        h("button", { class: "btn small ghost", type: "button", onclick: () => { s[key].splice(i, 1); render(); } }, "×")))),
      h("div", { class: "row" }, input, h("button", { class: `btn small sched-add-${key}`, type: "button", onclick: () => {
        if (input.value && !s[key].includes(input.value)) s[key].push(input.value);
        s[key].sort();
        render();
      } }, tr("add"))));
  }

  /** Fill a schedule's holidays and make-up working days from the hub's working calendar (the official
   * days of the `holidays` package plus the bureau's own), so a rule follows 调休 without typing dates. */
  function calendarFill(s, render) {
    const year = new Date().getFullYear();
    return h("button", { class: "btn small sched-fill-calendar", type: "button", onclick: async () => {
      try {
        const cal = await api(`/calendar?year=${year}`);
        const off = new Set([...s.holidays, ...cal.official.filter((d) => d.kind === "off").map((d) => d.date),
          ...cal.days_off]);
        const work = new Set([...s.workdays, ...cal.official.filter((d) => d.kind === "work").map((d) => d.date),
          ...cal.working_days]);
        for (const d of work) off.delete(d);
        s.holidays = [...off].sort();
        s.workdays = [...work].sort();
        render();
      } catch (e) {
        toast(hubErrorText(e), true);
      }
    } }, tr("fill_calendar", { year }));
  }

  function timezoneInput(ed, s, path) {
    const id = `tz-list-${Math.random().toString(36).slice(2)}`;
    const input = h("input", { type: "text", class: "sched-tz", list: id, size: 16, value: s.timezone || "",
      placeholder: tr("tz_camera", { tz: ed.body.timezone || "UTC" }), dataset: { path } });
    input.addEventListener("change", () => {
      const v = input.value.trim();
      if (v) s.timezone = v; else delete s.timezone;
    });
    return h("span", {}, input, h("datalist", { id }, TIMEZONES.map((z) => h("option", { value: z }))));
  }

  /** Mark the inputs the check's problems name: the input at the exact path, else the nearest enclosing
   * one (a problem inside a list marks the list); cleared on the next check. */
  function highlightIssues(ed, issues) {
    const root = ed.root;
    for (const el of root.querySelectorAll(".field-invalid")) {
      el.classList.remove("field-invalid");
      el.removeAttribute("aria-invalid");
      el.removeAttribute("data-issue");
    }
    const fields = [...root.querySelectorAll("[data-path]")];
    let first = null;
    for (const issue of issues) {
      let best = null;
      for (const el of fields) {
        const p = el.dataset.path;
        if (!(issue.path === p || issue.path.startsWith(`${p}.`) || issue.path.startsWith(`${p}[`))) continue;
        if (!best || p.length > best.dataset.path.length) best = el;
      }
      if (!best) continue;
      best.classList.add("field-invalid");
      best.setAttribute("aria-invalid", "true");
      best.dataset.issue = issue.message;
      first = first || best;
    }
    if (first) first.scrollIntoView({ block: "center" });
  }

  // ---- calibration: each point pair picked by a click on the picture, then a click on the map; the
  // fit's ground error and each point's residual are shown before the fit goes into the config
  function calibrationPanel(ed) {
    const table = h("tbody");
    const result = h("p", { class: "calib-result", id: "calib-result" });
    const hint = h("p", { class: "hint calib-hint", id: "calib-hint" });
    const mapBox = h("div", { class: "calib-map", id: "calib-map" });
    const crs = h("input", { class: "calib-crs", value: ed.calib.crs, size: 18, dataset: { path: "calibration.crs" },
      onchange: (e) => { ed.calib.crs = e.target.value.trim(); } });
    const centre = h("input", { class: "calib-centre", size: 24, placeholder: tr("centre_placeholder") });
    ed.residuals = null;
    const pickText = () => {
      if (!ed.pick) return tr("pick_none");
      return tr(ed.pick.side === "image" ? "pick_hint_image" : "pick_hint_map", { n: ed.pick.row + 1 });
    };
    ed.renderCalib = () => {
      table.replaceChildren(...ed.calib.points.map((p, i) => h("tr", { dataset: { point: i },
        class: ed.pick && ed.pick.row === i ? "picking" : "" },
      h("td", {}, String(i + 1)),
      h("td", { class: "calib-image" }, p.image ? p.image.map((v) => v.toFixed(3)).join(", ") : "—", " ",
        h("button", { class: "btn small ghost pick-image", type: "button",
          onclick: () => { ed.pick = { row: i, side: "image" }; ed.renderCalib(); } }, tr("pick_image"))),
      h("td", { class: "calib-world" }, p.world ? p.world.map((v) => v.toFixed(ed.calib.crs === "wgs84" ? 7 : 2)).join(", ")
        : "—", " ",
      h("button", { class: "btn small ghost pick-map", type: "button",
        onclick: () => { ed.pick = { row: i, side: "map" }; ed.renderCalib(); } }, tr("pick_map"))),
      h("td", { class: "calib-residual" }, ed.residuals && ed.residuals[i] !== undefined ? num(ed.residuals[i], 1) : "—"),
      h("td", {}, h("button", { class: "btn small ghost", type: "button", onclick: () => {
        ed.calib.points.splice(i, 1);
        ed.pick = null;
        ed.residuals = null;
        ed.renderCalib();
        redraw(ed);
      } }, tr("delete"))))));
      hint.textContent = pickText();
      if (ed.drawCalibMap) ed.drawCalibMap();
    };
    ed.onCalibImage = (p) => { // a click on the picture while a row waits for its picture point
      const pt = ed.calib.points[ed.pick.row];
      pt.image = p;
      ed.residuals = null;
      ed.pick = pt.world ? null : { row: ed.pick.row, side: "map" };
      ed.renderCalib();
      redraw(ed);
    };
    const add = h("button", { class: "btn small", type: "button", id: "calib-add", onclick: () => {
      ed.calib.points.push({ image: null, world: null });
      ed.pick = { row: ed.calib.points.length - 1, side: "image" };
      ed.renderCalib();
    } }, tr("add_point"));
    const fit = h("button", { class: "btn small", type: "button", id: "calib-fit", onclick: async () => {
      const missing = ed.calib.points.findIndex((p) => !p.image || !p.world);
      if (missing >= 0) {
        result.className = "calib-result error";
        result.textContent = tr("point_incomplete", { n: missing + 1 });
        return;
      }
      try {
        const res = await api("/calibration/fit", { method: "POST", body: ed.calib });
        ed.fitOk = res.ok;
        ed.residuals = res.point_errors_px;
        result.className = `calib-result ${res.ok ? "ok" : "error"}`;
        result.dataset.errorM = String(res.error_m);
        const outliers = res.inliers.map((ok, i) => (ok ? null : i + 1)).filter((i) => i !== null);
        const why = res.ok ? "" : outliers.length ? t("desk.fit_outliers", { points: outliers.join("、") }) : t("desk.fit_off");
        result.textContent = `${tr("fit_error")}: ${num(res.error_m, 2)} m · ${tr("fit_error_px")}: `
          + `${num(res.error_px, 1)} px${why ? ` · ${why}` : ""}`;
        ed.renderCalib();
      } catch (e) {
        result.className = "calib-result error";
        result.textContent = hubErrorText(e);
      }
    } }, tr("fit"));
    const use = h("button", { class: "btn small", type: "button", id: "calib-use", onclick: () => {
      ed.body.calibration = clone(ed.calib);
      toast(tr("calib_in_config"));
    } }, tr("use_fit"));
    const go = h("button", { class: "btn small", type: "button", id: "calib-centre-go", onclick: () => {
      const v = centre.value.split(/[,，\s]+/).filter(Boolean).map(Number);
      if (v.length !== 2 || v.some((x) => !Number.isFinite(x))) return toast(tr("centre_invalid"), true);
      ed.calibMap.setView([v[1], v[0]], Math.max(ed.calibMap.getZoom(), ed.calibTiles ? 18 : 19));
    } }, tr("centre_go"));
    ed.renderCalib();
    calibrationMap(ed, mapBox);
    return h("div", { class: "calibration-panel" }, h("h3", {}, tr("calibration")),
      h("div", { class: "row" }, h("label", {}, tr("crs"), " ", crs), h("label", {}, tr("centre"), " ", centre), go),
      hint,
      h("div", { class: "calib-layout" },
        h("table", { class: "grid calib" }, h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, tr("image_pt")),
          h("th", {}, tr("world_pt")), h("th", {}, tr("residual_px")), h("th", {}))), table),
        mapBox),
      h("div", { class: "row" }, add, fit, use), result);
  }

  /** The map the ground points are picked on: the hub's tile service for WGS 84 (from the settings), or a
   * plain grid in the calibration's own coordinates (no tiles, or a local site frame in metres). */
  async function calibrationMap(ed, box) {
    const L = window.L;
    const info = await api("/map").catch(() => ({ tile_url: null, cameras: [] }));
    const tiles = Boolean(info.tile_url) && ed.calib.crs === "wgs84";
    ed.calibTiles = tiles;
    const map = L.map(box, { crs: tiles ? L.CRS.EPSG3857 : L.CRS.Simple, attributionControl: tiles,
      minZoom: tiles ? 1 : -5, maxZoom: tiles ? 22 : 26, doubleClickZoom: false });
    ed.calibMap = map;
    window.CityEye.calibMap = map; // tests and other scripts
    if (tiles) {
      L.tileLayer(info.tile_url, { attribution: info.attribution || "", maxNativeZoom: 19, maxZoom: 22 }).addTo(map);
    } else {
      gridLayer(L).addTo(map);
    }
    const layer = L.layerGroup().addTo(map);
    ed.drawCalibMap = () => {
      layer.clearLayers();
      ed.calib.points.forEach((p, i) => {
        if (!p.world) return;
        L.circleMarker([p.world[1], p.world[0]], { radius: 7, color: "#111", fillColor: "#ffc914", fillOpacity: 1,
          weight: 2, className: "calib-map-point" })
          .bindTooltip(String(i + 1), { permanent: true, direction: "right", className: "calib-label" }).addTo(layer);
      });
    };
    map.on("click", (e) => {
      if (!ed.pick || ed.pick.side !== "map") return;
      const pt = ed.calib.points[ed.pick.row];
      pt.world = [Number(e.latlng.lng.toFixed(8)), Number(e.latlng.lat.toFixed(8))];
      ed.residuals = null;
      ed.pick = pt.image ? null : { row: ed.pick.row, side: "image" };
      ed.renderCalib();
    });
    const known = ed.calib.points.filter((p) => p.world).map((p) => [p.world[1], p.world[0]]);
    const here = info.cameras.find((c) => c.camera_id === ed.cameraId) || info.cameras[0];
    if (known.length) map.fitBounds(L.latLngBounds(known).pad(0.5), { maxZoom: tiles ? 19 : 22 });
    else if (here) map.setView([here.y, here.x], tiles ? 18 : 19);
    else map.setView([0, 0], tiles ? 2 : 0);
    ed.drawCalibMap();
    box.dataset.ready = "1";
  }

  // ---- check, diff, save
  function savePanel(ed) {
    const out = h("div", { class: "save-result", id: "save-result" });
    const check = h("button", { class: "btn", type: "button", id: "cfg-check", onclick: () => checkConfig(ed, out) },
      tr("check"));
    const save = h("button", { class: "btn primary", type: "button", id: "cfg-save", onclick: () => saveConfig(ed, out) },
      tr("save"));
    return h("div", { class: "save-panel" }, h("div", { class: "row" }, check, save), out);
  }

  /** The field an issue's path ends in, by its label on the form when it has one (rules[0].params.min_dwell_s). */
  function issueField(path) {
    const last = String(path || "").split(".").pop().replace(/\[\d+\]$/, "");
    return hasMsg(`p_${last}`) ? paramLabel(last) : fieldText(path);
  }

  function showIssues(ed, out, issues) {
    highlightIssues(ed, issues);
    out.replaceChildren(h("p", { class: "error" }, tr("issues")),
      h("ul", { class: "issues" }, issues.map((i) => h("li", { dataset: { path: i.path } },
        h("code", {}, i.path || "—"), " ", t("code.invalid", { field: issueField(i.path) }),
        // the agent's own words (English) for the admin who edits the config, folded
        h("details", { class: "hub-detail" }, h("summary", {}, t("error.details")), h("code", { lang: "en" }, i.message))))));
  }

  function showDiff(out, changes) {
    if (!changes.length) return out.replaceChildren(h("p", { class: "muted" }, tr("no_changes")));
    out.replaceChildren(h("h3", {}, tr("diff")), h("table", { class: "grid diff" }, h("thead", {}, h("tr", {},
      h("th", {}, tr("diff_path")), h("th", {}, tr("diff_old")), h("th", {}, tr("diff_new")))), h("tbody", {},
      changes.map((c) => h("tr", { dataset: { path: c.path } }, h("td", {}, h("code", {}, c.path)),
        h("td", { class: "old" }, c.old === undefined ? "" : JSON.stringify(c.old)),
        h("td", { class: "new" }, c.new === undefined ? "" : JSON.stringify(c.new)))))));
  }

  async function checkConfig(ed, out) {
    try {
      const res = await api(`/cameras/${encodeURIComponent(ed.cameraId)}/config/check`, { method: "POST",
        body: { body: ed.body } });
      if (res.issues.length) showIssues(ed, out, res.issues);
      else {
        highlightIssues(ed, []);
        showDiff(out, res.changes);
      }
      return res;
    } catch (e) {
      out.replaceChildren(h("p", { class: "error" }, hubErrorText(e)));
      return null;
    }
  }

  async function saveConfig(ed, out) {
    const res = await checkConfig(ed, out);
    if (!res || res.issues.length) return; // refused on the page: nothing is saved or sent
    if (!res.changes.length) return;
    const ok = h("button", { class: "btn primary", type: "button", id: "cfg-confirm" }, tr("confirm_save"));
    const cancel = h("button", { class: "btn", type: "button" }, tr("cancel"));
    out.append(h("div", { class: "row" }, ok, cancel));
    cancel.addEventListener("click", () => out.replaceChildren());
    ok.addEventListener("click", async () => {
      ok.disabled = true;
      try {
        const saved = await api(`/cameras/${encodeURIComponent(ed.cameraId)}/config`, { method: "PUT",
          body: { body: ed.body, base_version: ed.base } });
        ed.base = saved.version;
        out.replaceChildren(h("p", { class: "ok saved", dataset: { version: saved.version } },
          `${tr("saved")} v${saved.version} · ${tr("agent_pending")}`));
        const info = await api(`/cameras/${encodeURIComponent(ed.cameraId)}/config`);
        ed.info = info;
        ed.fillStatus(info);
        ed.renderAudit();
      } catch (e) {
        if (e.status === 422 && e.detail && Array.isArray(e.detail.issues)) showIssues(ed, out, e.detail.issues);
        else out.replaceChildren(h("p", { class: "error" }, e.status === 409 ? tr("body_changed")
          : hubErrorText(e)));
      }
    });
  }

  function auditPanel(ed) {
    const body = h("tbody");
    ed.renderAudit = async () => {
      const rows = await api(`/cameras/${encodeURIComponent(ed.cameraId)}/config/audit`).catch(() => []);
      body.replaceChildren(...rows.map((a) => h("tr", { dataset: { action: a.action, version: a.version } },
        h("td", {}, fmtTime(a.at)), h("td", {}, a.actor), h("td", {}, `v${a.version}`),
        h("td", {}, tr(`st_${a.action}`)),
        h("td", {}, (a.changes || []).map((c) => c.path).join(", "), // field paths (ids); the hub's or agent's
          a.detail ? h("details", { class: "hub-detail" }, h("summary", {}, t("error.details")), // words, folded
            h("code", { lang: "en" }, a.detail)) : null))));
    };
    ed.renderAudit();
    return h("div", { class: "audit-panel" }, h("h3", {}, tr("audit")), h("table", { class: "grid audit" },
      h("thead", {}, h("tr", {}, h("th", {}, tr("when")), h("th", {}, tr("who")), h("th", {}, tr("versions")),
        h("th", {}), h("th", {}, tr("what")))), body));
  }

  // ------------------------------------------------------------ map
  async function renderMap(view) {
    const gen = S.gen;
    const box = h("div", { class: "map", id: "map" });
    const note = h("p", { class: "muted map-note" });
    const list = h("ul", { class: "map-cases", id: "map-cases" });
    // Cases filed with only an address have no position: not plotted, but counted and listed here.
    const nowhereTitle = h("h3", { id: "map-nowhere-title" });
    const nowhere = h("ul", { class: "map-cases", id: "map-nowhere" });
    view.append(h("section", { class: "panel district" }, h("h2", {}, tr("map")), note, box,
      h("h3", {}, tr("cases_in_view")), list, nowhereTitle, nowhere));
    api("/cases?placed=false&limit=200").then((page) => {
      if (gen !== S.gen) return;
      nowhereTitle.textContent = tr("no_position_cases", { n: page.total });
      nowhere.replaceChildren(...page.items.map((c) => h("li", { dataset: { case: c.case_id } },
        h("a", { href: `#/case/${encodeURIComponent(c.case_id)}` }, c.case_id), ` ${className(c.class_id)} `,
        h("span", { class: "muted" }, c.address || ""))));
    }).catch(() => {});
    const info = await api("/map").catch((e) => ({ error: e.message }));
    if (gen !== S.gen) return;
    if (info.error) return note.append(h("span", { class: "error" }, info.error));
    const L = window.L;
    const tiles = Boolean(info.tile_url);
    const map = L.map(box, { crs: tiles ? L.CRS.EPSG3857 : L.CRS.Simple, attributionControl: tiles,
      minZoom: tiles ? 1 : -5, maxZoom: tiles ? 22 : 24 });
    window.CityEye.map = map; // tests and other scripts
    if (tiles) {
      L.tileLayer(info.tile_url, { attribution: info.attribution || "", maxNativeZoom: 19, maxZoom: 22 }).addTo(map);
    } else {
      note.textContent = tr("tiles_none");
      gridLayer(L).addTo(map);
    }
    const pts = [];
    for (const c of info.cameras) {
      if (c.x === null || c.x === undefined) continue;
      pts.push([c.y, c.x]);
      L.circleMarker([c.y, c.x], { radius: 9, color: "#2e86de", weight: 3, className: "map-camera" })
        .bindTooltip(`${tr("camera")} ${c.camera_id}`).addTo(map);
    }
    const layer = L.layerGroup().addTo(map);
    const load = async () => {
      const b = map.getBounds();
      const bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(6)).join(",");
      const page = await api(`/cases?bbox=${bbox}&limit=200`).catch(() => ({ items: [] }));
      layer.clearLayers();
      list.replaceChildren(...page.items.map((c) => h("li", { dataset: { case: c.case_id } },
        h("a", { href: `#/case/${encodeURIComponent(c.case_id)}` }, c.case_id), ` ${className(c.class_id)}`)));
      for (const c of page.items) {
        if (c.lat === null || c.lat === undefined) continue;
        L.circleMarker([c.lat, c.lon], { radius: 6, color: "#e4572e", className: "map-case" })
          .bindTooltip(`${c.case_id} ${className(c.class_id)}`).addTo(layer);
      }
      box.dataset.cases = String(page.items.length);
    };
    map.on("moveend", load);
    if (pts.length) map.fitBounds(L.latLngBounds(pts).pad(tiles ? 0.002 : 0.5), { maxZoom: tiles ? 18 : 8 });
    else map.setView([0, 0], tiles ? 2 : 0);
    if (!tiles && pts.length === 1) map.setView(pts[0], 8);
    box.dataset.ready = "1";
  }

  /** A plain grid in calibrated coordinates (no tiles): lines every power of ten that fits the view. */
  function gridLayer(L) {
    const Grid = L.GridLayer.extend({
      createTile(coords) {
        const tile = document.createElement("canvas");
        const size = this.getTileSize();
        tile.width = size.x;
        tile.height = size.y;
        const ctx = tile.getContext("2d");
        ctx.strokeStyle = "#c8d0da";
        ctx.strokeRect(0, 0, size.x, size.y);
        const nw = this._map.unproject([coords.x * size.x, coords.y * size.y], coords.z);
        ctx.fillStyle = "#8a96a3";
        ctx.font = "10px sans-serif";
        ctx.fillText(`${nw.lng.toPrecision(7)}, ${nw.lat.toPrecision(7)}`, 3, 11);
        return tile;
      },
    });
    return new Grid({ className: "map-grid" });
  }

  // ------------------------------------------------------------ working calendar
  async function renderCalendar(view) {
    const gen = S.gen;
    const year = Number(S.route.params.get("year")) || new Date().getFullYear();
    const panel = h("section", { class: "panel district calendar" }, h("h2", {}, `${tr("calendar")} ${year}`));
    view.append(panel);
    let cal;
    try {
      cal = await api(`/calendar?year=${year}`);
    } catch (e) {
      return panel.append(h("p", { class: "error" }, e.message));
    }
    if (gen !== S.gen) return;
    const official = h("table", { class: "grid official" }, h("tbody", {}, cal.official.map((d) => h("tr",
      { dataset: { date: d.date, kind: d.kind } }, h("td", {}, d.date), h("td", {}, d.name || ""),
      h("td", {}, d.kind === "off" ? tr("day_off") : tr("workday"))))));
    const lists = { days_off: [...cal.days_off], working_days: [...cal.working_days] };
    const editor = (key, label) => {
      const ul = h("ul", { class: `dates ${key}` });
      const render = () => ul.replaceChildren(...lists[key].map((d, i) => h("li", {}, d, " ",
        h("button", { class: "btn small ghost", type: "button", onclick: () => { lists[key].splice(i, 1); render(); } },
          tr("delete")))));
      render();
      const input = h("input", { type: "date", class: `new-${key}` });
      const add = h("button", { type: "button", class: `btn small add-${key}`, onclick: () => {
        if (input.value && !lists[key].includes(input.value)) lists[key].push(input.value);
        lists[key].sort();
        render();
      } }, tr("add"));
      return h("div", { class: "date-editor" }, h("h3", {}, label), ul, h("div", { class: "row" }, input, add));
    };
    const save = h("button", { class: "btn primary", type: "button", id: "calendar-save", onclick: async () => {
      try {
        await api("/calendar", { method: "PUT", body: lists });
        toast(tr("saved_calendar"));
      } catch (e) {
        toast(hubErrorText(e), true);
      }
    } }, tr("save"));
    panel.append(h("h3", {}, `${tr("calendar_official")} (${cal.source})`), official,
      editor("days_off", tr("bureau_off")), editor("working_days", tr("bureau_work")), save);
  }

  // ------------------------------------------------------------ registration
  Object.assign(window.CityEye.views, {
    cameras: renderFleet, camera: renderCamera, map: renderMap, calendar: renderCalendar,
  });
  const nav = document.querySelector(".tabs");
  if (nav) {
    for (const [view, key] of [["cameras", "cameras"], ["map", "map"], ["calendar", "calendar"]]) {
      nav.append(h("a", { href: `#/${view}`, dataset: { view } }, tr(key)));
    }
  }
  if (S.me && window.CityEye.views[parseHash().view]) route(); // app.js routed before these views existed
})();
