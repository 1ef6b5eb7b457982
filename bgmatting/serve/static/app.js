// bgmatting web page: single photo, batch with progress and summary, history, server status. Talks only to this
// server's /api.
"use strict";
const $ = (id) => document.getElementById(id);
let guide = "bgr";

async function errorText(response) {
  try { return (await response.json()).detail; } catch (e) { return `${response.status} ${response.statusText}`; }
}

function showPanel(name) {
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.panel === name));
  document.querySelectorAll(".panel").forEach((p) => { p.hidden = p.id !== name; });
  if (name === "history") loadHistory();
  if (name === "server") loadStatus();
}

function summaryText(summary) {
  const mean = summary.mean_seconds === null ? "" : `, ${summary.mean_seconds.toFixed(2)} s per image`;
  return `${summary.total} image(s): ${summary.succeeded} succeeded, ${summary.failed} failed${mean}`;
}

async function loadStatus() {
  const response = await fetch("/api/status");
  if (!response.ok) return;
  const s = await response.json();
  const options = Object.entries(s.model.options).map(([k, v]) => `${k}=${v}`).join(", ");
  const versions = Object.entries(s.versions).filter(([, v]) => v).map(([k, v]) => `${k} ${v}`).join(" · ");
  const rows = [
    ["model", "Model", s.model.kind + (s.model.random_weights ? " (random weights)" : "")],
    ["checkpoint", "Checkpoint", s.model.checkpoint || "none"],
    ["settings", "Settings", options],
    ["provenance", "Provenance", s.model.provenance ? JSON.stringify(s.model.provenance) : "—"],
    ["runtime", "Runtime", s.runtime.backend],
    ["threads", "Threads", `${s.runtime.omp_num_threads || "all"} of ${s.runtime.cpu_count} CPUs`],
    ["device", "Device", s.runtime.device || "?"],
    ["versions", "Versions", versions],
    ["batches", "Batches", `${s.batches.jobs} job(s), ${summaryText(s.batches)}`],
  ];
  $("server-facts").replaceChildren(...rows.map(([key, label, value]) => {
    const row = document.createElement("tr");
    row.dataset.fact = key;
    row.append(document.createElement("th"), document.createElement("td"));
    row.children[0].textContent = label;
    row.children[1].textContent = value;
    return row;
  }));
}

function card(item, link) {
  const div = document.createElement("div");
  div.className = "card";
  div.innerHTML = `<a href="${link}" target="_blank"><div class="checker"><img alt="thumbnail"></div></a>` +
    `<div class="name"></div><div class="muted"></div>`;
  div.querySelector("img").src = item.links.thumb;
  div.querySelector(".name").textContent = item.name;
  div.querySelector(".muted").textContent = item.created
    ? `${new Date(item.created * 1000).toLocaleString()} · ${item.width}×${item.height}` : "";
  return div;
}

function loaded(img, url) {
  return new Promise((resolve, reject) => {
    img.onload = resolve;
    img.onerror = () => reject(new Error(`cannot load ${url}`));
    img.src = url;
  });
}

async function matte(event) {
  event.preventDefault();
  const status = $("status");
  const form = new FormData();
  form.append("src", $("src").files[0]);
  form.append(guide, $("guide").files[0]);
  form.append("output", "com");
  form.append("align", $("align").checked ? "true" : "false");
  status.className = ""; status.textContent = "Working…"; $("submit").disabled = true;
  try {
    const response = await fetch("/api/matte", { method: "POST", body: form });
    if (!response.ok) throw new Error(await errorText(response));
    const id = response.headers.get("X-Result-Id");
    const links = (kind) => `/api/results/${id}/${kind}.png`;
    await Promise.all([["view-src", "src"], ["view-pha", "pha"], ["view-com", "com"]]
      .map(([el, kind]) => loaded($(el), links(kind))));
    $("download").href = links("com") + "?download=true";
    $("download-pha").href = links("pha") + "?download=true";
    $("download-fgr").href = links("fgr") + "?download=true";
    $("result").dataset.resultId = id;
    $("result").hidden = false;
    status.textContent = "Done.";
  } catch (error) {
    status.className = "error"; status.textContent = `Error: ${error.message}`;
  } finally {
    $("submit").disabled = false;
  }
}

async function pollJob(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(await errorText(response));
  const job = await response.json();
  $("batch-progress").value = job.progress;
  $("batch-text").textContent = `${job.done} / ${job.total} (${job.status})` + (job.error ? `: ${job.error}` : "");
  $("batch-errors").replaceChildren(...job.errors.map((e) => {
    const li = document.createElement("li"); li.textContent = `${e.name}: ${e.error}`; return li;
  }));
  $("batch-results").replaceChildren(...job.results.map((r) => card(r, r.links.com)));
  $("batch-summary").textContent = summaryText(job.summary);
  if (job.archive) { $("batch-download").href = job.archive; $("batch-download").hidden = false; }
  if (job.status === "queued" || job.status === "running") setTimeout(() => pollJob(url).catch(batchError), 500);
}

function batchError(error) {
  $("batch-text").textContent = `Error: ${error.message}`;
  $("batch-text").className = "error";
}

async function startBatch(event) {
  event.preventDefault();
  const form = new FormData();
  if ($("archive").files.length) form.append("archive", $("archive").files[0]);
  else form.append("folder", $("folder").value);
  form.append("align", $("batch-align").checked ? "true" : "false");
  $("batch-job").hidden = false; $("batch-download").hidden = true; $("batch-text").className = "";
  $("batch-progress").value = 0; $("batch-text").textContent = "Uploading…";
  try {
    const response = await fetch("/api/batch", { method: "POST", body: form });
    if (!response.ok) throw new Error(await errorText(response));
    await pollJob((await response.json()).url);
  } catch (error) { batchError(error); }
}

async function pollVideo(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(await errorText(response));
  const job = await response.json();
  $("video-progress").value = job.progress;
  const phase = job.phase === "plate" ? "estimating the plate" : `${job.done} / ${job.total || "?"} frames`;
  $("video-text").textContent = job.status === "failed" ? `Error: ${job.error}` : `${phase} (${job.status})`;
  $("video-text").className = job.status === "failed" ? "error" : "";
  if (job.status === "done") {
    $("video-text").textContent = `${job.done} frames done in ${job.seconds.toFixed(1)} s`;
    $("video-download-com").href = job.links.com + "?download=true";
    $("video-download-pha").href = job.links.pha + "?download=true";
    $("video-download-com").hidden = false; $("video-download-pha").hidden = false;
    if (job.links.plate) { $("video-plate-link").href = job.links.plate; $("video-plate-link").hidden = false; }
    $("video-view").src = job.links.com; $("video-view").hidden = false;
  }
  if (job.status === "queued" || job.status === "running") setTimeout(() => pollVideo(url).catch(videoError), 500);
}

function videoError(error) {
  $("video-text").textContent = `Error: ${error.message}`;
  $("video-text").className = "error";
}

async function startVideo(event) {
  event.preventDefault();
  const form = new FormData();
  form.append("video", $("video-file").files[0]);
  const auto = $("video-auto").checked;
  form.append("plate", auto ? "auto" : "file");
  if (!auto && $("video-plate").files.length) form.append("bgr", $("video-plate").files[0]);
  form.append("align", $("video-align").checked ? "true" : "false");
  $("video-job").hidden = false; $("video-progress").value = 0; $("video-text").className = "";
  ["video-download-com", "video-download-pha", "video-plate-link", "video-view"].forEach((id) => { $(id).hidden = true; });
  $("video-text").textContent = "Uploading…";
  try {
    const response = await fetch("/api/video", { method: "POST", body: form });
    if (!response.ok) throw new Error(await errorText(response));
    await pollVideo((await response.json()).url);
  } catch (error) { videoError(error); }
}

async function loadHistory() {
  const response = await fetch("/api/history?limit=50");
  if (!response.ok) return;
  const items = (await response.json()).items;
  $("history-list").replaceChildren(...items.map((item) => card(item, item.links.com)));
}

async function init() {
  // opened as /?token=...: the server has set its cookie; keep the token out of the address bar and history
  if (new URLSearchParams(location.search).has("token")) history.replaceState(null, "", location.pathname);
  document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click", () => showPanel(t.dataset.panel)));
  $("matte-form").addEventListener("submit", matte);
  $("batch-form").addEventListener("submit", startBatch);
  $("video-form").addEventListener("submit", startVideo);
  $("video-auto").addEventListener("change", () => { $("video-plate").disabled = $("video-auto").checked; });
  $("history-refresh").addEventListener("click", loadHistory);
  $("server-refresh").addEventListener("click", loadStatus);
  const health = await (await fetch("/healthz")).json();
  guide = health.model.guide;
  $("guide-label").textContent = guide === "bgr" ? "Clean plate" : "Trimap";
  $("batch-guide").textContent = `${guide}/`;
  $("batch-guide-text").textContent = guide === "bgr" ? "clean plates" : "trimaps";
  $("align").parentElement.hidden = guide !== "bgr";
  $("batch-align").parentElement.hidden = guide !== "bgr";
  $("tab-video").hidden = guide !== "bgr";  // videos need a clean-plate model
  $("folder-label").hidden = !health.batch_folders;
  $("random-warning").hidden = !health.model.random_weights;
  $("model-info").textContent = `${health.model.model_type} · ${health.model.backbone}`;
  const millions = (x) => +(x / 1e6).toFixed(2);
  $("limits").textContent = `Up to ${millions(health.limits.max_upload_bytes)} MB and ` +
    `${millions(health.limits.max_pixels)} MP per image.`;
  document.body.dataset.ready = "true";
}

init();
