// recog's web page: pick a model, send an image, draw the answer, keep a history, take corrections.
// Plain browser JavaScript, no build step; all text from the server goes in with textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const PALETTE = [
  "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c",
  "#fabebe", "#008080", "#e6beff", "#9a6324", "#fffac8", "#800000", "#aaffc3", "#808000",
  "#ffd8b1", "#000075", "#808080", "#ffe119",
];

const state = {
  models: [],          // from /v1/models
  current: null,       // {response, image (HTMLImageElement or null), roundTripMs}
  maskIds: null,       // Uint8Array of the decoded mask, for redraws
  images: new Map(),   // prediction id -> object URL (this session only)
  apiKey: sessionStorage.getItem("recog-api-key") || "",
  drag: null,          // a box being drawn for feedback
  file: null,          // the last image sent, for explanations
};

function model(name) {
  return state.models.find((m) => m.name === name) || null;
}

function colour(index) {
  return PALETTE[((index % PALETTE.length) + PALETTE.length) % PALETTE.length];
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function setStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

// ------------------------------------------------------------------ API
async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (state.apiKey) headers.set("X-API-Key", state.apiKey);
  const response = await fetch(path, { ...options, headers });
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (response.status === 401) {
    $("apikey-field").hidden = false;
  }
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : `HTTP ${response.status}`;
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return body;
}

async function loadModels() {
  try {
    const body = await api("/v1/models");
    state.models = body.models;
  } catch (error) {
    setStatus(`Cannot list the models: ${error.message}`, true);
    document.body.dataset.state = "error";
    return;
  }
  const select = $("model");
  select.replaceChildren(
    ...state.models.map((m) => el("option", { value: m.name, text: `${m.name} (${m.task})` })),
  );
  showModelInfo();
  document.body.dataset.state = "ready";
  loadHistory();
}

function showModelInfo() {
  const m = model($("model").value);
  if (!m) return;
  // the server names the main metric (the run's Task decides it); the page keeps no table of its own
  const main = m.main_metric;
  const metric = main && typeof main.value === "number" ? `, ${main.name} ${(main.value * 100).toFixed(1)}%` : "";
  $("model-info").textContent =
    `${m.architecture}, ${m.classes.length} classes, ${m.input_size} px${metric}`;
  $("topk-field").hidden = !m.top_k;
}

// ------------------------------------------------------------------ predicting
async function predictFile(file) {
  if (!file) return;
  if (!state.models.length) {
    setStatus("No model is available.", true);
    return;
  }
  const name = $("model").value;
  const topK = Math.max(1, Math.min(100, parseInt($("topk").value, 10) || 5));
  const form = new FormData();
  form.append("file", file, file.name || "pasted-image");
  setStatus(`Recognizing ${file.name || "the pasted image"}…`);
  document.body.dataset.state = "busy";
  const url = URL.createObjectURL(file);
  const started = performance.now();
  let response;
  try {
    response = await api(
      `/v1/predict?model=${encodeURIComponent(name)}&top_k=${topK}`,
      { method: "POST", body: form },
    );
  } catch (error) {
    URL.revokeObjectURL(url);
    setStatus(`Not recognized: ${error.message}`, true);
    document.body.dataset.state = "error";
    return;
  }
  const roundTripMs = performance.now() - started;
  state.images.set(response.id, url);
  state.file = file;
  const image = await loadImage(url);
  await show(response, image, roundTripMs);
  loadHistory();
  if ($("explain").checked) explainFile();
  if ($("attack").checked) attackFile();
}

// ------------------------------------------------------------------ attacking
// The server attacks the image the model saw (PGD on the task's own loss, the model's own
// answer standing in for the truth) and answers on the result: the clean and adversarial
// images with their answers drawn, and the perturbation magnified around mid-grey.
// The heavy routes (/v1/attack, /v1/explain) answer the picked file in their own box, shown
// while its checkbox is on: `route` is posted the file with the model and `params`, `hint`
// shows while it works, and `refusal` heads an error. Null when there is nothing to show.
async function postHeavy(box, checkbox, route, params, hint, refusal) {
  box.replaceChildren();
  if (!state.file || !$(checkbox).checked) {
    box.hidden = true;
    return null;
  }
  box.hidden = false;
  box.append(el("p", { class: "hint", text: hint }));
  const form = new FormData();
  form.append("file", state.file, state.file.name || "pasted-image");
  const query = Object.entries({ model: $("model").value, ...params })
    .map(([key, value]) => `${key}=${encodeURIComponent(value)}`)
    .join("&");
  try {
    return await api(`${route}?${query}`, { method: "POST", body: form });
  } catch (error) {
    box.replaceChildren(el("p", { class: "error", text: `${refusal}: ${error.message}` }));
    return null;
  }
}

async function attackFile() {
  const box = $("adversarial");
  const eps = $("attack-eps").value;
  const response = await postHeavy(box, "attack", "/v1/attack", { eps },
    `Attacking with PGD at eps ${eps}…`, "No attack");
  if (!response) return;
  const before = summary({ result: response.clean });
  const after = summary({ result: response.adversarial });
  box.replaceChildren(
    el("p", {
      class: "verdict",
      text: response.changed
        ? `At eps ${eps} the answer changes: ${before} → ${after}`
        : `At eps ${eps} the answer holds: ${after}`,
    }),
  );
  for (const [src, caption] of [
    [response.clean_image, `the image the model saw: ${before}`],
    [response.adversarial_image, `adversarial (${response.attack}, eps ${eps}): ${after}`],
    [response.perturbation, "the perturbation, magnified"],
  ]) {
    const img = el("img", { src, alt: caption, class: "heatmap" });
    box.append(el("figure", { class: "explanation" }, img, el("figcaption", { text: caption })));
  }
}

// ------------------------------------------------------------------ explaining
// The heat maps come as PNG overlays on the image the model saw (cropped or letterboxed),
// one per class, box or region, each with its deletion and insertion scores against a
// random map on the same image (lower deletion, higher insertion: more faithful).
async function explainFile() {
  const box = $("explanations");
  const method = $("explain-method").value;
  const response = await postHeavy(box, "explain", "/v1/explain", { method },
    `Explaining with ${method}…`, "No explanation");
  if (!response) return;
  box.replaceChildren();
  if (!response.maps.length) {
    box.append(el("p", { class: "hint", text: "Nothing to explain: the model found nothing." }));
  }
  for (const m of response.maps) {
    const img = el("img", { src: m.overlay, alt: `${method} heat map for ${m.target}`, class: "heatmap" });
    const faithful = m.deletion_auc < m.random_deletion_auc && m.insertion_auc > m.random_insertion_auc;
    const caption = el("figcaption", {
      text: `${m.target}: deletion ${m.deletion_auc.toFixed(3)} (random ${m.random_deletion_auc.toFixed(3)}), ` +
        `insertion ${m.insertion_auc.toFixed(3)} (random ${m.random_insertion_auc.toFixed(3)})` +
        (faithful ? " · beats random" : " · no better than random"),
    });
    box.append(el("figure", { class: "explanation" }, img, caption));
  }
}

function loadImage(url) {
  return new Promise((resolve) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => resolve(null); // the server could read it even if this browser cannot
    img.src = url;
  });
}

// ------------------------------------------------------------------ drawing
async function show(response, image, roundTripMs) {
  state.current = { response, image, roundTripMs };
  state.maskIds = null;
  closeFeedback();
  const result = response.result || {};
  const info = response.image;
  const seg = result.segmentation || null;
  if (seg) state.maskIds = await decodeMask(seg);
  $("stage").hidden = false;
  const canvas = $("canvas");
  // small images are drawn larger (crisp labels and lines), large ones at most 1024 px
  const side = Math.max(info.width, info.height);
  const scale = side < 640 ? 640 / side : Math.min(1, 1024 / side);
  canvas.width = Math.max(1, Math.round(info.width * scale));
  canvas.height = Math.max(1, Math.round(info.height * scale));
  draw();
  renderLists(response);
  const latency = `server ${response.latency_ms.toFixed(1)} ms`;
  $("latency").textContent = roundTripMs
    ? `${latency}, round trip ${roundTripMs.toFixed(1)} ms · ${response.model}`
    : `${latency} · ${response.model} · ${response.created || ""}`;
  $("wrong").hidden = !correctionOf(response);
  $("opacity-field").hidden = !seg;
  setStatus(summary(response));
  document.body.dataset.unknown = result.unknown ? "true" : "false";
  document.body.dataset.state = "done";
  document.body.dataset.task = response.task;
}

function draw() {
  const current = state.current;
  if (!current) return;
  const { response, image } = current;
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.imageSmoothingEnabled = canvas.width < 2 * response.image.width; // keep tiny images' pixels sharp
  if (image) ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
  else {
    ctx.fillStyle = "#ddd";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
  }
  ctx.imageSmoothingEnabled = true;
  const result = response.result || {};
  const sx = canvas.width / response.image.width;
  const sy = canvas.height / response.image.height;
  if (result.segmentation && state.maskIds) drawMask(ctx, result, canvas);
  const detections = result.detections || [];
  const line = Math.max(2, Math.round(canvas.width / 300));
  ctx.font = `${Math.max(12, Math.round(canvas.width / 45))}px system-ui, sans-serif`;
  ctx.textBaseline = "top";
  detections.forEach((d, i) => {
    const c = colour(classIndex(response.model, d.label, i));
    const [x1, y1, x2, y2] = d.box;
    ctx.strokeStyle = c;
    ctx.lineWidth = line;
    ctx.strokeRect(x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy);
    const text = `${d.label} ${(d.score * 100).toFixed(0)}%`;
    const w = ctx.measureText(text).width + 8;
    const h = parseInt(ctx.font, 10) + 6;
    const ty = y1 * sy - h >= 0 ? y1 * sy - h : y1 * sy;
    ctx.fillStyle = c;
    ctx.fillRect(x1 * sx, ty, w, h);
    ctx.fillStyle = "#fff";
    ctx.fillText(text, x1 * sx + 4, ty + 3);
  });
  if (state.drag) {
    const { x1, y1, x2, y2 } = state.drag;
    ctx.setLineDash([6, 4]);
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = line;
    ctx.strokeRect(x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy);
    ctx.setLineDash([]);
  }
}

function classIndex(modelName, label, fallback) {
  const m = model(modelName);
  const i = m ? m.classes.indexOf(label) : -1;
  return i >= 0 ? i : fallback;
}

function decodeMask(seg) {
  return new Promise((resolve) => {
    const img = new Image();
    img.onload = () => {
      const off = document.createElement("canvas");
      off.width = seg.width;
      off.height = seg.height;
      const ctx = off.getContext("2d", { willReadFrequently: true });
      ctx.drawImage(img, 0, 0);
      const rgba = ctx.getImageData(0, 0, seg.width, seg.height).data;
      const ids = new Uint8Array(seg.width * seg.height);
      for (let i = 0; i < ids.length; i += 1) ids[i] = rgba[i * 4];
      resolve(ids);
    };
    img.onerror = () => resolve(null);
    img.src = `data:image/png;base64,${seg.mask_png}`;
  });
}

function maskColours(response) {
  // id -> [r, g, b] or null (not drawn): instances are 1 + detection index, semantic ids are classes
  const result = response.result;
  const m = model(response.model);
  const instances = Array.isArray(result.detections);
  const table = new Array(256).fill(null);
  for (let id = 0; id < 255; id += 1) {
    if (instances) {
      if (id === 0 || id > result.detections.length) continue;
      const d = result.detections[id - 1];
      table[id] = hexToRgb(colour(classIndex(response.model, d.label, id - 1)));
    } else {
      const name = m && m.classes[id];
      if (name === undefined || /^(background|_background_|bg)$/i.test(name || "")) continue;
      table[id] = hexToRgb(colour(id));
    }
  }
  return table;
}

function drawMask(ctx, result, canvas) {
  const seg = result.segmentation;
  const ids = state.maskIds;
  const table = maskColours(state.current.response);
  const alpha = Math.round((parseInt($("opacity").value, 10) / 100) * 255);
  const off = document.createElement("canvas");
  off.width = seg.width;
  off.height = seg.height;
  const octx = off.getContext("2d");
  const data = octx.createImageData(seg.width, seg.height);
  for (let i = 0; i < ids.length; i += 1) {
    const rgb = table[ids[i]];
    if (!rgb) continue;
    data.data[i * 4] = rgb[0];
    data.data[i * 4 + 1] = rgb[1];
    data.data[i * 4 + 2] = rgb[2];
    data.data[i * 4 + 3] = alpha;
  }
  octx.putImageData(data, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
  ctx.imageSmoothingEnabled = true;
}

function hexToRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

function percent(x) {
  return `${(x * 100).toFixed(1)}%`;
}

function renderLists(response) {
  const result = response.result || {};
  const classes = $("classes");
  const detections = $("detections");
  const legend = $("legend");
  classes.replaceChildren();
  detections.replaceChildren();
  legend.replaceChildren();
  classes.classList.toggle("unknown", Boolean(result.unknown));
  if (result.unknown) classes.append(el("li", { class: "none", text: "unknown: the nearest classes were" }));
  for (const t of result.top_k || []) {
    const fill = el("span", { class: "fill" });
    fill.style.width = `${Math.max(0, Math.min(100, t.score * 100))}%`;
    classes.append(
      el(
        "li",
        {},
        el("span", { class: "name", text: t.label, title: t.label }),
        el("span", { class: "track", "aria-hidden": "true" }, fill),
        el("span", { class: "pct", text: percent(t.score) }),
      ),
    );
  }
  (result.detections || []).forEach((d, i) => {
    const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
    swatch.style.background = colour(classIndex(response.model, d.label, i));
    const box = d.box.map((v) => Math.round(v)).join(", ");
    detections.append(
      el(
        "li",
        {},
        swatch,
        el("span", { class: "label", text: d.label }),
        el("span", { class: "score", text: percent(d.score) }),
        el("span", { class: "box", text: `[${box}]` }),
      ),
    );
  });
  if (Array.isArray(result.detections) && !result.detections.length) {
    detections.append(el("li", { class: "none", text: "No objects found." }));
  }
  const seg = result.segmentation;
  if (seg && !Array.isArray(result.detections)) {
    const fractions = Object.entries(seg.pixel_fraction || {}).filter(([, f]) => f > 0);
    fractions.sort((a, b) => b[1] - a[1]);
    const table = maskColours(response);
    const m = model(response.model);
    for (const [name, f] of fractions) {
      const id = m ? m.classes.indexOf(name) : -1;
      const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
      const rgb = id >= 0 ? table[id] : null;
      swatch.style.background = rgb ? `rgb(${rgb.join(",")})` : "transparent";
      legend.append(el("li", {}, swatch, el("span", { text: `${name} ${percent(f)}` })));
    }
  }
}

function summary(response) {
  const r = response.result || {};
  // below the run's out-of-distribution threshold: none of its classes, whatever ranked first
  if (r.unknown) return `unknown (none of these classes; out-of-distribution score ${r.ood_score.toPrecision(4)})`;
  if (r.label !== undefined && r.label !== null) return `${r.label} (${percent(r.score)})`;
  if (Array.isArray(r.detections)) {
    const n = r.detections.length;
    const names = [...new Set(r.detections.map((d) => d.label))].slice(0, 4).join(", ");
    return n ? `${n} object${n === 1 ? "" : "s"}: ${names}` : "No objects found";
  }
  if (r.segmentation) {
    const top = Object.entries(r.segmentation.pixel_fraction || {}).sort((a, b) => b[1] - a[1]);
    return top.length ? `Mostly ${top[0][0]} (${percent(top[0][1])})` : "Segmented";
  }
  return "Done";
}

// ------------------------------------------------------------------ feedback
function openFeedback() {
  const current = state.current;
  if (!current) return;
  const { response } = current;
  const m = model(response.model);
  const classes = m ? m.classes : [];
  $("feedback").hidden = false;
  $("wrong").setAttribute("aria-expanded", "true");
  // the run's Task says what can be corrected (GET /v1/models `correction`)
  const correction = m ? m.correction : null;
  $("feedback-label").hidden = correction !== "label";
  $("feedback-boxes").hidden = correction !== "boxes";
  if (correction === "label") {
    const select = $("feedback-class");
    select.replaceChildren(...classes.map((c) => el("option", { value: c, text: c })));
    const guess = (response.result.top_k || [])[1];
    if (guess) select.value = guess.label;
    select.focus();
  } else {
    $("box-rows").replaceChildren();
    for (const d of response.result.detections || []) addBoxRow(d.label, d.box);
    $("add-box").focus();
  }
}

function closeFeedback() {
  $("feedback").hidden = true;
  $("wrong").setAttribute("aria-expanded", "false");
  state.drag = null;
}

function addBoxRow(label, box) {
  const m = model(state.current.response.model);
  const classes = m ? m.classes : [label];
  const n = $("box-rows").children.length + 1;
  const select = el("select", { "aria-label": `box ${n} label` });
  select.replaceChildren(...classes.map((c) => el("option", { value: c, text: c })));
  select.value = label || classes[0];
  const inputs = ["x1", "y1", "x2", "y2"].map((k, i) => {
    const input = el("input", { type: "number", step: "any", "aria-label": `box ${n} ${k}` });
    input.value = String(Math.round(box[i] * 10) / 10);
    return input;
  });
  const remove = el("button", { type: "button", class: "remove", text: "Remove" });
  const row = el("li", {}, select, ...inputs, remove);
  remove.addEventListener("click", () => {
    row.remove();
    $("add-box").focus();
  });
  $("box-rows").append(row);
  return row;
}

async function sendFeedback(event) {
  event.preventDefault();
  const { response } = state.current;
  const payload = { prediction_id: response.id };
  const comment = $("feedback-comment").value.trim();
  if (comment) payload.comment = comment;
  if (correctionOf(response) === "label") payload.label = $("feedback-class").value;
  else {
    payload.boxes = [...$("box-rows").children].map((row) => {
      const [select, ...inputs] = row.querySelectorAll("select, input");
      return { label: select.value, box: inputs.map((i) => parseFloat(i.value)) };
    });
  }
  try {
    const stored = await api("/v1/feedback", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload),
    });
    closeFeedback();
    setStatus(`Thank you: correction #${stored.id} saved.`);
    document.body.dataset.feedback = "saved";
    $("wrong").focus();
    loadHistory();
  } catch (error) {
    setStatus(`Correction not saved: ${error.message}`, true);
  }
}

function canvasPoint(event) {
  const canvas = $("canvas");
  const rect = canvas.getBoundingClientRect();
  const info = state.current.response.image;
  return [
    ((event.clientX - rect.left) / rect.width) * info.width,
    ((event.clientY - rect.top) / rect.height) * info.height,
  ];
}

function boxDrawingActive() {
  return state.current && !$("feedback").hidden && correctionOf(state.current.response) === "boxes";
}

function correctionOf(response) {
  const m = model(response.model);
  return m ? m.correction : null;
}

// ------------------------------------------------------------------ history
async function loadHistory() {
  let body;
  try {
    body = await api("/v1/history?limit=25");
  } catch (_) {
    return;
  }
  const list = $("history-list");
  list.replaceChildren(
    ...body.items.map((item) => {
      const button = el(
        "button",
        { type: "button" },
        el("span", { text: summary(item) }),
        el("span", { class: "when", text: `${new Date(item.created).toLocaleTimeString()} · ${item.model}` }),
      );
      if (item.feedback) button.append(el("span", { class: "fixed", text: "corrected" }));
      button.addEventListener("click", async () => {
        const url = state.images.get(item.id);
        const image = url ? await loadImage(url) : null;
        await show(item, image, 0);
        $("result").focus();
      });
      return el("li", {}, button);
    }),
  );
}

// ------------------------------------------------------------------ wiring
function wire() {
  const drop = $("drop");
  const file = $("file");
  $("pick").addEventListener("click", () => file.click());
  file.addEventListener("change", () => {
    predictFile(file.files[0]);
    file.value = "";
  });
  ["dragenter", "dragover"].forEach((type) =>
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    }),
  );
  ["dragleave", "drop"].forEach((type) =>
    drop.addEventListener(type, () => drop.classList.remove("over")),
  );
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    const f = [...(event.dataTransfer.files || [])].find((x) => x.type.startsWith("image/"));
    predictFile(f || event.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (event) => {
    const item = [...(event.clipboardData.items || [])].find((x) => x.type.startsWith("image/"));
    if (item) predictFile(item.getAsFile());
  });
  $("model").addEventListener("change", showModelInfo);
  $("explain").addEventListener("change", explainFile);
  $("explain-method").addEventListener("change", explainFile);
  $("attack").addEventListener("change", attackFile);
  $("attack-eps").addEventListener("change", attackFile);
  $("opacity").addEventListener("input", draw);
  $("wrong").addEventListener("click", () => ($("feedback").hidden ? openFeedback() : closeFeedback()));
  $("feedback").addEventListener("submit", sendFeedback);
  $("feedback-cancel").addEventListener("click", () => {
    closeFeedback();
    draw();
    $("wrong").focus();
  });
  $("add-box").addEventListener("click", () => {
    const info = state.current.response.image;
    const row = addBoxRow(null, [info.width * 0.25, info.height * 0.25, info.width * 0.75, info.height * 0.75]);
    row.querySelector("select").focus();
  });
  $("history-refresh").addEventListener("click", loadHistory);
  $("apikey-save").addEventListener("click", () => {
    state.apiKey = $("apikey").value.trim();
    sessionStorage.setItem("recog-api-key", state.apiKey);
    $("apikey-field").hidden = true;
    loadModels();
  });
  const canvas = $("canvas");
  canvas.addEventListener("pointerdown", (event) => {
    if (!boxDrawingActive()) return;
    const [x, y] = canvasPoint(event);
    state.drag = { x0: x, y0: y, x1: x, y1: y, x2: x, y2: y };
    canvas.setPointerCapture(event.pointerId);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!state.drag) return;
    const [x, y] = canvasPoint(event);
    const d = state.drag;
    Object.assign(d, { x1: Math.min(d.x0, x), y1: Math.min(d.y0, y), x2: Math.max(d.x0, x), y2: Math.max(d.y0, y) });
    draw();
  });
  canvas.addEventListener("pointerup", () => {
    const d = state.drag;
    state.drag = null;
    if (d && d.x2 - d.x1 > 2 && d.y2 - d.y1 > 2) addBoxRow(null, [d.x1, d.y1, d.x2, d.y2]);
    draw();
  });
}

wire();
loadModels();
