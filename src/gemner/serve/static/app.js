// The gemner page: send a post (and its image) to /v1/entities, show the entities in the text and on the image.
"use strict";

const $ = (id) => document.getElementById(id);
let imageFile = null;
let photoUrl = null;

function hue(label) {  // a stable colour per type
  let h = 0;
  for (const ch of label) h = (h * 31 + ch.codePointAt(0)) % 360;
  return String(h);
}

function element(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== null) node.textContent = text;
  return node;
}

// The entity's score: `score` when the record has it, else the recogniser's probability of the chosen type.
function scoreOf(entity) {
  if (typeof entity.score === "number") return entity.score;
  const pair = (entity.scores?.topk || []).find(([label]) => label === entity.type);
  return pair ? pair[1] : null;
}

function headers() {
  const token = $("token").value.trim();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function setStatus(message, isError = false) {
  $("status").textContent = message;
  $("status").className = isError ? "error" : "muted";
}

function entityMark(entity, index) {
  const mark = element("mark", {
    class: "entity", "data-index": String(index), "data-type": entity.type, "data-coarse": entity.coarse,
    title: `${entity.type} (${entity.coarse})` + (scoreOf(entity) === null ? "" : ` · score ${scoreOf(entity).toFixed(3)}`),
  }, entity.text);
  mark.style.setProperty("--hue", hue(entity.type));
  mark.append(element("span", { class: "label" }, `${entity.type} · ${entity.coarse}`));
  mark.addEventListener("mouseenter", () => highlight(index, true));
  mark.addEventListener("mouseleave", () => highlight(index, false));
  return mark;
}

// Character offsets when the record has them, else token spans (the text joined by spaces).
function renderText(record, text) {
  const target = $("tagged");
  target.replaceChildren();
  const entities = record.entities.map((e, i) => [e, i]);
  const byChars = entities.every(([e]) => Number.isInteger(e.start_char) && Number.isInteger(e.end_char));
  if (byChars) {
    const source = typeof record.text === "string" ? record.text : text;
    let at = 0;
    for (const [e, i] of entities.sort((a, b) => a[0].start_char - b[0].start_char)) {
      if (e.start_char < at) continue;
      target.append(source.slice(at, e.start_char), entityMark(e, i));
      at = e.end_char;
    }
    target.append(source.slice(at));
    return;
  }
  const starts = new Map(entities.map(([e, i]) => [e.start, [e, i]]));
  for (let t = 0; t < record.tokens.length;) {
    if (t > 0) target.append(" ");
    if (starts.has(t)) {
      const [e, i] = starts.get(t);
      target.append(entityMark({ ...e, text: record.tokens.slice(e.start, e.end).join(" ") }, i));
      t = Math.max(e.end, t + 1);
    } else {
      target.append(record.tokens[t]);
      t += 1;
    }
  }
}

function renderTable(record) {
  const body = $("entities").querySelector("tbody");
  body.replaceChildren();
  record.entities.forEach((e, i) => {
    const row = element("tr", { "data-index": String(i) });
    const name = element("td");
    const swatch = element("span", { class: "swatch" });
    swatch.style.setProperty("--hue", hue(e.type));
    name.append(swatch, e.text);
    const score = scoreOf(e);
    const box = e.box ? e.box.map((v) => Math.round(v)).join(", ")
      : (e.box_status === "computed" ? "not in the image" : "not computed");
    row.append(name, element("td", {}, e.type), element("td", {}, e.coarse),
      element("td", {}, score === null ? "–" : score.toFixed(3)), element("td", {}, box));
    const toggle = element("td");
    const heat = record.heatmaps?.[String(i)];
    if (heat) {
      const input = element("input", { type: "checkbox", class: "heat-toggle", "data-index": String(i),
        "aria-label": `heat map of ${e.text}` });
      input.addEventListener("change", () => showHeat(i, input.checked));
      toggle.append(input);
    } else {
      toggle.textContent = "–";
    }
    row.append(toggle);
    body.append(row);
  });
}

function renderImage(record) {
  const overlays = $("overlays");
  overlays.replaceChildren();
  $("figure").hidden = !photoUrl;
  if (!photoUrl) return;
  const photo = $("photo");
  const draw = () => {
    const [w, h] = [photo.naturalWidth, photo.naturalHeight];
    record.entities.forEach((e, i) => {
      const heat = record.heatmaps?.[String(i)];
      if (heat) overlays.append(element("img", { class: "heat", "data-index": String(i), src: heat, alt: "", hidden: "" }));
      if (!e.box) return;
      const [x1, y1, x2, y2] = e.box;
      const box = element("div", { class: "box", "data-index": String(i) });
      box.style.setProperty("--hue", hue(e.type));
      Object.assign(box.style, { left: `${(100 * x1) / w}%`, top: `${(100 * y1) / h}%`,
        width: `${(100 * (x2 - x1)) / w}%`, height: `${(100 * (y2 - y1)) / h}%` });
      box.append(element("span", {}, `${e.text} · ${e.type}`));
      overlays.append(box);
    });
  };
  if (photo.src === photoUrl && photo.complete) draw();
  else { photo.onload = draw; photo.src = photoUrl; }
}

function showHeat(index, on) {
  for (const img of document.querySelectorAll(`.heat[data-index="${index}"]`)) img.hidden = !on;
}

function highlight(index, on) {
  for (const node of document.querySelectorAll(`[data-index="${index}"]`)) node.classList.toggle("active", on);
}

function render(record, text) {
  renderText(record, text);
  renderTable(record);
  renderImage(record);
  $("post-error").hidden = !record.error;
  $("post-error").textContent = record.error || "";
  $("raw").textContent = JSON.stringify({ ...record, heatmaps: record.heatmaps ? "(PNG data)" : undefined }, null, 2);
  $("result").hidden = false;
}

async function submit(event) {
  event.preventDefault();
  const text = $("text").value;
  let request;
  if (imageFile) {
    const form = new FormData();
    form.append("text", text);
    form.append("image", imageFile);
    form.append("heatmaps", "true");
    request = { method: "POST", headers: headers(), body: form };
  } else {
    request = { method: "POST", headers: { ...headers(), "Content-Type": "application/json" },
      body: JSON.stringify({ text }) };
  }
  $("submit").disabled = true;
  setStatus("finding entities…");
  try {
    const response = await fetch("/v1/entities", request);
    const answer = await response.json();
    if (response.status === 401) $("token-row").hidden = false;
    if (!response.ok) {
      setStatus(`${response.status}: ${answer.error} (request ${answer.request_id})`, true);
      return;
    }
    render(answer, text);
    setStatus(`${answer.entities.length} entities`);
  } catch (err) {
    setStatus(`the server did not answer: ${err}`, true);
  } finally {
    $("submit").disabled = false;
  }
}

function chooseImage(file) {
  imageFile = file || null;
  if (photoUrl) URL.revokeObjectURL(photoUrl);
  photoUrl = imageFile ? URL.createObjectURL(imageFile) : null;
  $("image-name").textContent = imageFile ? imageFile.name : "";
  $("clear-image").hidden = !imageFile;
}

async function describe() {
  const response = await fetch("/v1/config", { headers: headers() });
  if (response.status === 401) { $("token-row").hidden = false; return; }
  const config = await response.json();
  // Each stage's state word; why a stage is off or unavailable shows on hover.
  const stages = config.stages ? Object.entries(config.stages).map(([k, v]) => `${k}: ${v.split(":")[0]}`).join(" · ")
    : "loading the models…";
  $("stages").textContent = `pipeline ${config.preset} · ${stages}`;
  $("stages").title = config.stages ? Object.entries(config.stages).map(([k, v]) => `${k}: ${v}`).join("\n") : "";
}

function main() {
  $("post-form").addEventListener("submit", submit);
  $("image").addEventListener("change", () => chooseImage($("image").files[0]));
  $("clear-image").addEventListener("click", () => { $("image").value = ""; chooseImage(null); });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) chooseImage(e.dataTransfer.files[0]);
  });
  describe().catch(() => setStatus("the server did not answer", true));
}

main();
