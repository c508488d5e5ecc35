// monai_ceph annotator client: plain JavaScript over the app's HTTP/JSON contract (see ../README.md).
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const API = location.pathname.replace(/client\/[^/]*$/, "");  // the server root: this page is <root>/client/
  const canvas = $("canvas"), ctx = canvas.getContext("2d");
  const state = {
    info: null, model: null, imageId: null, image: null, result: null,
    points: [],        // {abbreviation, name, x, y (source px, null = missing), confidence, sigma_mm, covariance_px, fixed}
    undo: [], selected: null, view: { scale: 1, ox: 0, oy: 0 }, drawn: [], refits: 0, saving: false,
  };
  window.cephClient = state;  // for tests and the console

  function message(text, isError) {
    $("message").textContent = text;
    $("message").className = isError ? "error" : "";
  }

  async function request(method, path, body, retried) {
    const options = { method, headers: {} };
    if (body instanceof FormData) options.body = body;
    else if (body !== undefined) { options.body = JSON.stringify(body); options.headers["Content-Type"] = "application/json"; }
    const token = sessionStorage.getItem("monai_ceph_token");  // a server started with a token (see ../README.md)
    if (token) options.headers["Authorization"] = "Bearer " + token;
    const response = await fetch(API + path, options);
    if ((response.status === 401 || response.status === 403) && !retried) {
      const given = window.prompt("This server needs a token for changes:");
      if (given) { sessionStorage.setItem("monai_ceph_token", given); return request(method, path, body, true); }
    }
    let data = null;
    const text = await response.text();
    try { data = JSON.parse(text); } catch (e) { data = text; }
    if (!response.ok) {
      const detail = data && data.detail !== undefined ? data.detail : text;
      const error = new Error(`${method} ${path.split("?")[0]}: HTTP ${response.status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  // ---- uncertainty: sigma_mm when the server gives it, else 1 - confidence -------------------------------
  function uncertainty(p) {
    if (p.x === null) return Infinity;
    if (typeof p.sigma_mm === "number") return p.sigma_mm;
    return typeof p.confidence === "number" ? 1 - p.confidence : 0;
  }
  function colour(rank, n) {  // least certain red, most certain green
    const t = n > 1 ? rank / (n - 1) : 1;
    return `hsl(${Math.round(120 * t)}, 90%, 55%)`;
  }
  function ranked() {
    return state.points.slice().sort((a, b) => uncertainty(b) - uncertainty(a));
  }

  // ---- view: source pixel (x, y) <-> canvas pixel ----------------------------------------------------------
  const toScreen = (x, y) => [x * state.view.scale + state.view.ox, y * state.view.scale + state.view.oy];
  const toSource = (sx, sy) => [(sx - state.view.ox) / state.view.scale, (sy - state.view.oy) / state.view.scale];
  state.toScreen = toScreen;

  function fit() {
    resize();
    if (!state.image) return;
    const s = Math.min(canvas.width / state.image.width, canvas.height / state.image.height);
    state.view = { scale: s, ox: (canvas.width - s * state.image.width) / 2, oy: (canvas.height - s * state.image.height) / 2 };
  }
  function resize() {
    const r = canvas.getBoundingClientRect();
    canvas.width = Math.max(1, Math.round(r.width)); canvas.height = Math.max(1, Math.round(r.height));
  }

  function draw() {
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    state.drawn = [];
    if (!state.image) return;
    const v = state.view;
    ctx.filter = `contrast(${$("contrast").value}) brightness(${$("brightness").value})`;
    // pixel centres at integer coordinates: pixel i covers [i - 0.5, i + 0.5]
    ctx.drawImage(state.image, v.ox - 0.5 * v.scale, v.oy - 0.5 * v.scale, state.image.width * v.scale, state.image.height * v.scale);
    ctx.filter = "none";
    const order = ranked(), n = order.length;
    order.forEach((p, rank) => {
      p.colour = colour(rank, n);
      if (p.x === null) return;
      const [sx, sy] = toScreen(p.x, p.y);
      ctx.strokeStyle = p.colour; ctx.fillStyle = p.colour; ctx.lineWidth = 1.5;
      if (Array.isArray(p.covariance_px)) {  // 2-sigma ellipse of the covariance in source pixels
        const [[a, b], [, c]] = p.covariance_px;
        const tr = (a + c) / 2, d = Math.sqrt(((a - c) / 2) ** 2 + b * b);
        const l1 = Math.max(tr + d, 0), l2 = Math.max(tr - d, 0), angle = 0.5 * Math.atan2(2 * b, a - c);
        ctx.beginPath(); ctx.ellipse(sx, sy, 2 * Math.sqrt(l1) * v.scale, 2 * Math.sqrt(l2) * v.scale, angle, 0, 2 * Math.PI); ctx.stroke();
      } else if (typeof p.confidence === "number") {  // no covariance yet: a circle that grows as confidence falls
        ctx.beginPath(); ctx.arc(sx, sy, 6 + 20 * (1 - p.confidence), 0, 2 * Math.PI); ctx.stroke();
      }
      ctx.beginPath(); ctx.arc(sx, sy, p === state.selected ? 5 : 3.5, 0, 2 * Math.PI); ctx.fill();
      ctx.font = "bold 12px sans-serif"; ctx.lineWidth = 3; ctx.strokeStyle = "rgba(0,0,0,0.8)";
      ctx.strokeText(p.abbreviation, sx + 6, sy - 6); ctx.fillText(p.abbreviation, sx + 6, sy - 6);
      state.drawn.push({ abbreviation: p.abbreviation, sx, sy });
    });
    listLandmarks(order);
  }

  function listLandmarks(order) {
    const ol = $("landmarks"); ol.innerHTML = "";
    for (const p of order) {
      const li = document.createElement("li");
      const u = uncertainty(p);
      const what = p.x === null ? "missing" : typeof p.sigma_mm === "number" ? `σ ${p.sigma_mm.toFixed(2)} mm`
        : typeof p.confidence === "number" ? `conf ${p.confidence.toFixed(2)}` : "";
      li.innerHTML = `<span class="swatch" style="background:${p.colour}"></span>${p.abbreviation} ${p.name || ""} <small>${what}</small>`;
      li.dataset.abbreviation = p.abbreviation;
      li.title = Number.isFinite(u) && p.x !== null ? `(${p.x.toFixed(1)}, ${p.y.toFixed(1)}) px` : "missing";
      if (p.x === null) li.classList.add("missing");
      if (p.fixed) li.classList.add("fixed");
      if (p === state.selected) li.classList.add("selected");
      li.onclick = () => { state.selected = p; draw(); };
      ol.appendChild(li);
    }
  }

  function showMeasurements(measurements) {
    const table = $("measurements"); table.innerHTML = "";
    for (const [key, m] of Object.entries(measurements || {})) {
      if (!m || typeof m !== "object") continue;
      const row = table.insertRow();
      row.insertCell().textContent = key;
      row.insertCell().textContent = m.value === null || m.value === undefined ? "–" : `${Number(m.value).toFixed(1)} ${m.unit || ""}`;
      row.insertCell().textContent = m.class || "";
      if (m.reason) row.title = m.reason;
    }
  }

  // ---- datastore -----------------------------------------------------------------------------------------
  async function loadDatastore() {
    const ds = await request("GET", "datastore/?output=all");
    const objects = ds.objects || {};
    const ul = $("images"); ul.innerHTML = "";
    let labelled = 0;
    for (const id of Object.keys(objects).sort()) {
      const li = document.createElement("li");
      li.textContent = id; li.dataset.image = id;
      if ((objects[id].labels || {}).final) { li.classList.add("labelled"); labelled++; }
      if (id === state.imageId) li.classList.add("current");
      li.onclick = () => openImage(id);
      ul.appendChild(li);
    }
    const total = Object.keys(objects).length;
    $("counts").textContent = `${labelled} labelled, ${total - labelled} unlabelled`;
    return objects;
  }

  function loadBitmap(id) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error(`image '${id}' could not be loaded`));
      img.src = `${API}datastore/image?image=${encodeURIComponent(id)}`;
    });
  }

  function fromResult(result) {
    return result.landmarks.map((l) => ({
      abbreviation: l.abbreviation, name: l.name,
      x: l.x === null || l.x === undefined ? null : l.x, y: l.y === null || l.y === undefined ? null : l.y,
      confidence: l.confidence, sigma_mm: l.sigma_mm, covariance_px: l.covariance_px, fixed: !!l.fixed,
    }));
  }

  async function openImage(id) {
    try {
      message(`loading ${id} ...`);
      state.imageId = id; state.undo = []; state.selected = null;
      const [img, result] = await Promise.all([loadBitmap(id), infer({})]);
      state.image = img; state.result = result; state.points = fromResult(result);
      try {  // a stored final label replaces the prediction's positions
        const label = await request("GET", `datastore/label?label=${encodeURIComponent(id)}&tag=final`);
        applyLabel(label);
      } catch (e) { /* no final label yet */ }
      showMeasurements(result.measurements);
      fit(); draw(); await loadDatastore();
      const warnings = result.warnings || [];
      const model = result.model_description ? ` by the ${result.model_description}` : "";
      message(`${id}: ${state.points.length} landmarks${model}${result.untrained ? " (untrained model: placeholders)" : ""}`
        + warnings.map((w) => ` | WARNING: ${w}`).join(""), warnings.length > 0);
    } catch (e) { message(e.message, true); }
  }

  function applyLabel(label) {
    for (const entry of label.landmarks || []) {
      const p = state.points.find((q) => q.abbreviation === entry.abbreviation);
      if (!p) continue;
      p.x = entry.x === undefined ? null : entry.x; p.y = entry.y === undefined ? null : entry.y;
      p.fixed = true;
    }
  }

  async function infer(params) {
    const form = new FormData();
    form.append("params", JSON.stringify(params));
    return request("POST", `infer/${state.model}?image=${encodeURIComponent(state.imageId)}&output=json`, form);
  }

  // ---- re-fit: the moved points are fixed, the others come back from the app -----------------------------
  async function refit() {
    const fixed = {}, missing = [];
    for (const p of state.points) {
      if (p.x === null) missing.push(p.abbreviation);
      else if (p.fixed) fixed[p.abbreviation] = [p.x, p.y];
    }
    const before = JSON.stringify(state.points.map((p) => [p.x, p.y]));
    try {
      const result = await infer({ fixed, missing });
      if (JSON.stringify(state.points.map((p) => [p.x, p.y])) !== before) return;  // edited meanwhile: stale
      for (const l of fromResult(result)) {
        const p = state.points.find((q) => q.abbreviation === l.abbreviation);
        if (!p) continue;
        p.confidence = l.confidence; p.sigma_mm = l.sigma_mm; p.covariance_px = l.covariance_px;
        if (!p.fixed && p.x !== null) { p.x = l.x; p.y = l.y; }  // fixed and missing stay as the annotator set them
      }
      state.result = result; state.refits++;
      showMeasurements(result.measurements); draw();
    } catch (e) { message(e.message, true); }
  }

  function snapshot() { state.undo.push(state.points.map((p) => ({ ...p }))); }
  function undo() {
    const prev = state.undo.pop();
    if (!prev) return message("nothing to undo");
    state.points = prev; state.selected = null; draw(); refit();
  }
  function markMissing(p) {
    if (!p || p.x === null) return;
    snapshot(); p.x = null; p.y = null; p.fixed = true; draw(); refit();
  }

  // ---- save: the checked label PUT; the edits stay on screen when it fails -----------------------------------
  async function save() {
    if (!state.imageId) return;
    const label = {
      landmark_set: state.result.landmark_set, spacing: state.result.spacing,
      landmarks: state.points.map((p) => ({ abbreviation: p.abbreviation, name: p.name, x: p.x, y: p.y })),
    };
    const form = new FormData();
    form.append("label", new Blob([JSON.stringify(label)], { type: "application/json" }), `${state.imageId}.json`);
    form.append("params", JSON.stringify({ client_id: "monai_ceph-browser" }));
    try {
      await request("PUT", `datastore/label?image=${encodeURIComponent(state.imageId)}&tag=final`, form);
      message(`saved ${state.imageId} (tag final)`);
      await loadDatastore();
    } catch (e) { message(`not saved: ${e.message}`, true); }
  }

  // ---- training ---------------------------------------------------------------------------------------------
  async function showTrainStats() {
    state.info = await request("GET", "info/");
    const stats = (state.info.train_stats || {})[state.model] || {};
    const mre = typeof stats.best_val_mre_mm === "number" ? `validation MRE ${stats.best_val_mre_mm.toFixed(2)} mm` : "no validation MRE yet";
    return stats.last_error ? `${mre}; last error: ${stats.last_error.message || JSON.stringify(stats.last_error)}` : mre;
  }
  async function train() {
    try {
      await request("POST", `train/${state.model}`, { max_epochs: Number($("epochs").value) || 1 });
      pollTraining();
    } catch (e) { message(e.message, true); }
  }
  async function pollTraining() {
    try {
      let status = null;
      try { status = await request("GET", "train/"); } catch (e) { if (e.status !== 404) throw e; }  // 404: no round yet
      const s = status && status.status ? status.status : "no round yet";
      $("train-status").textContent = `training: ${s}`;
      if (s === "SUBMITTED" || s === "RUNNING") { setTimeout(pollTraining, 2000); return; }
      const stats = await showTrainStats();
      $("train-status").textContent = `training: ${s}; ${stats}`;
      if (s === "DONE") await loadDatastore();
      if (s === "ERROR") message(`training failed: ${(status.details || []).slice(-1)[0] || ""}`, true);
    } catch (e) { message(e.message, true); }
  }

  // ---- mouse and keys -----------------------------------------------------------------------------------------
  function hit(sx, sy) {
    let best = null, bestD = 10;
    for (const p of state.points) {
      if (p.x === null) continue;
      const [px, py] = toScreen(p.x, p.y), d = Math.hypot(px - sx, py - sy);
      if (d < bestD) { best = p; bestD = d; }
    }
    return best;
  }
  function canvasXY(ev) {
    const r = canvas.getBoundingClientRect();
    return [(ev.clientX - r.left) * canvas.width / r.width, (ev.clientY - r.top) * canvas.height / r.height];
  }
  let drag = null;
  canvas.addEventListener("mousedown", (ev) => {
    const [sx, sy] = canvasXY(ev);
    if (ev.shiftKey && state.selected && state.selected.x === null) {  // place a missing landmark
      snapshot(); [state.selected.x, state.selected.y] = toSource(sx, sy); state.selected.fixed = true; draw(); refit(); return;
    }
    const p = hit(sx, sy);
    if (p) { snapshot(); state.selected = p; drag = { point: p, moved: false }; }
    else drag = { pan: [sx, sy, state.view.ox, state.view.oy] };
  });
  window.addEventListener("mousemove", (ev) => {
    if (!drag) return;
    const [sx, sy] = canvasXY(ev);
    if (drag.point) { [drag.point.x, drag.point.y] = toSource(sx, sy); drag.point.fixed = true; drag.moved = true; }
    else { state.view.ox = drag.pan[2] + sx - drag.pan[0]; state.view.oy = drag.pan[3] + sy - drag.pan[1]; }
    draw();
  });
  window.addEventListener("mouseup", () => {
    if (drag && drag.point) { if (drag.moved) refit(); else state.undo.pop(); draw(); }
    drag = null;
  });
  canvas.addEventListener("dblclick", (ev) => { const p = hit(...canvasXY(ev)); if (p) markMissing(p); });
  canvas.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const [sx, sy] = canvasXY(ev), [x, y] = toSource(sx, sy), f = Math.exp(-ev.deltaY * 0.001);
    state.view.scale *= f; state.view.ox = sx - x * state.view.scale; state.view.oy = sy - y * state.view.scale; draw();
  }, { passive: false });
  window.addEventListener("keydown", (ev) => {
    if (ev.target.tagName === "INPUT") return;
    if ((ev.ctrlKey || ev.metaKey) && ev.key === "z") { ev.preventDefault(); undo(); }
    else if (ev.key === "m" || ev.key === "Delete") markMissing(state.selected);
    else if (ev.key === "f") { fit(); draw(); }
  });
  window.addEventListener("resize", () => { fit(); draw(); });
  $("contrast").oninput = draw; $("brightness").oninput = draw;
  $("undo").onclick = undo; $("save").onclick = save; $("train").onclick = train;
  $("next").onclick = async () => {
    try {
      const next = await request("POST", "activelearning/random", {});
      if (next && next.id) openImage(next.id); else message("no unlabelled image left");
    } catch (e) { message(e.message, true); }
  };

  state.ready = (async () => {
    try {
      state.info = await request("GET", "info/");
      state.model = Object.keys(state.info.models || {})[0];
      const objects = await loadDatastore();
      pollTraining();
      const first = new URLSearchParams(location.search).get("image") || Object.keys(objects).sort()[0];
      if (first) await openImage(first);
    } catch (e) { message(e.message, true); }
  })();
})();
