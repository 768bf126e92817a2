// The amberlite web app: plain JavaScript over the /v1 API (no build step).
"use strict";

const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({
  "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const state = { assets: {}, shot: null, notes: [], drawing: null, box: null, jobTimer: null };

async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const data = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
  return data;
}

// SMPTE non-drop-frame timecode HH:MM:SS:FF (as amberlite.core.timecode.smpte)
function smpte(seconds, fps) {
  const rate = Math.max(1, Math.round(fps || 25));
  const frames = Math.round(seconds * (fps || 25));
  const ff = frames % rate, total = Math.floor(frames / rate);
  const p = (n) => String(n).padStart(2, "0");
  return `${p(Math.floor(total / 3600))}:${p(Math.floor(total / 60) % 60)}:${p(total % 60)}:${p(ff)}`;
}
const fpsOf = (asset) => (state.assets[asset] || {}).fps || 25;
const author = () => $("#author").value.trim() || "editor";

async function loadAssets() {
  const { assets } = await api("GET", "/v1/assets");
  for (const a of assets) { state.assets[a.alias] = a; state.assets[a.asset_id] = a; }
  $("#status").textContent = `${assets.length} assets`;
}

// -- routing ------------------------------------------------------------------------------------
function route() {
  const hash = decodeURIComponent(location.hash.slice(1)) || "search";
  const [view, ...rest] = hash.split("/");
  document.querySelectorAll(".view").forEach((v) => v.classList.remove("active"));
  const el = $(`#view-${view}`) || $("#view-search");
  el.classList.add("active");
  clearInterval(state.jobTimer);
  if (view === "shot") openShot(rest.join("/"));
  if (view === "jobs") { refreshJobs(); state.jobTimer = setInterval(refreshJobs, 1000); }
  if (view === "review" && !$("#pairs").children.length) loadPairs();
}

// -- search -------------------------------------------------------------------------------------
async function runQuery(ev) {
  ev && ev.preventDefault();
  $("#search-message").textContent = "";
  $("#results").innerHTML = "";
  try {
    const res = await api("POST", "/v1/query", { aql: $("#aql").value, limit: 500 });
    showResult(res);
  } catch (e) { $("#search-message").textContent = e.message; }
}

function showResult({ columns, rows, truncated }) {
  const col = (r, name) => r[columns.indexOf(name)];
  if (columns.includes("ref") && columns.includes("start_s") && columns.includes("asset")) {
    const cards = rows.map((r) => {
      const ref = col(r, "ref"), asset = col(r, "asset"), fps = fpsOf(asset);
      const end = columns.includes("end_s") ? ` – ${smpte(col(r, "end_s"), fps)}` : "";
      return `<a class="card shot" href="#shot/${encodeURIComponent(ref)}">
        <img alt="${esc(ref)}" src="/v1/shots/strip.jpg?ref=${encodeURIComponent(ref)}&count=1&h=112">
        <div>${esc(ref)}</div><div class="tc">${smpte(col(r, "start_s"), fps)}${end}</div></a>`;
    });
    $("#results").innerHTML = `<div class="grid">${cards.join("")}</div>`;
  } else {
    const head = columns.map((c) => `<th>${esc(c)}</th>`).join("");
    const body = rows.map((r) => `<tr>${r.map((v) =>
      `<td>${esc(typeof v === "object" && v !== null ? JSON.stringify(v) : v)}</td>`).join("")}</tr>`);
    $("#results").innerHTML = `<table id="result-table"><tr>${head}</tr>${body.join("")}</table>`;
  }
  if (truncated) $("#search-message").textContent = "(more rows than shown)";
}

async function textSearch(ev) {
  ev.preventDefault();
  $("#search-message").textContent = "";
  try {
    const q = encodeURIComponent($("#text-q").value);
    const { annotations } = await api("GET", `/v1/annotations?q=${q}&limit=200`);
    const cards = annotations.map((a) => {
      const t = a.start_s, fps = fpsOf(a.asset);
      return `<div class="card note"><img alt="" src="/v1/assets/${encodeURIComponent(a.asset)}/frame.jpg?t=${t}&w=240">
        <div>${esc(a.asset)} <span class="tc">${smpte(t, fps)}</span></div>
        <div>${esc(a.label || "")} ${esc(a.text || "")}</div><small>${esc(a.author)}</small></div>`;
    });
    $("#results").innerHTML = `<div class="grid">${cards.join("") || "no annotations match"}</div>`;
  } catch (e) { $("#search-message").textContent = e.message; }
}

// -- shot view: play the shot, draw annotations over it, draw a box ----------------------------
async function openShot(ref) {
  $("#shot-message").textContent = "";
  try {
    const shot = await api("GET", `/v1/shots/info?ref=${encodeURIComponent(ref)}`);
    state.shot = shot;
    $("#shot-title").textContent = `${shot.ref}  ${smpte(shot.start_s, fpsOf(shot.asset))}`;
    // the asset's own file from the shot's start when the browser plays it, else a clip
    $("#shot-video").src = shot.play.url;
    await loadNotes();
  } catch (e) { $("#shot-message").textContent = e.message; }
}

async function loadNotes() {
  const s = state.shot;
  const q = `asset=${encodeURIComponent(s.asset_id)}&start_s=${s.start_s}&end_s=${s.end_s}`;
  const { annotations } = await api("GET", `/v1/annotations?${q}`);
  state.notes = annotations;
  $("#shot-notes").innerHTML = annotations.map((a) =>
    `<li><span class="tc">${smpte(a.start_s, fpsOf(a.asset))}</span> ${esc(a.type)}
     ${esc(a.label || "")} ${esc(a.text || "")} <small>${esc(a.author)}</small></li>`).join("");
  drawOverlay();
}

function sizeOverlay() {
  const video = $("#shot-video"), canvas = $("#shot-overlay");
  canvas.width = video.clientWidth;
  canvas.height = video.clientHeight;
  return canvas;
}

// the picture's rectangle inside the video element (letterboxing aside)
function pictureRect() {
  const video = $("#shot-video");
  const w = video.clientWidth, h = video.clientHeight;
  const vw = video.videoWidth || 16, vh = video.videoHeight || 9;
  const scale = Math.min(w / vw, h / vh);
  return { x: (w - vw * scale) / 2, y: (h - vh * scale) / 2, w: vw * scale, h: vh * scale };
}

// the asset's time on screen: the video is the asset's file or a clip from the shot's start
function shotTime(video) {
  return state.shot.start_s + video.currentTime - state.shot.play.start;
}

function drawOverlay() {
  const canvas = sizeOverlay(), g = canvas.getContext("2d"), video = $("#shot-video");
  g.clearRect(0, 0, canvas.width, canvas.height);
  if (!state.shot) return;
  const t = shotTime(video), pic = pictureRect();
  $("#shot-tc").textContent = smpte(t, fpsOf(state.shot.asset));
  g.lineWidth = 2; g.font = "13px sans-serif";
  for (const a of state.notes) {
    if (!a.box || t < a.start_s - 0.05 || t > a.end_s + 0.5) continue;
    const [x0, y0, x1, y1] = a.box;
    g.strokeStyle = "#fac85a"; g.fillStyle = "#fac85a";
    g.strokeRect(pic.x + x0 * pic.w, pic.y + y0 * pic.h, (x1 - x0) * pic.w, (y1 - y0) * pic.h);
    g.fillText(a.text || a.label || a.type, pic.x + x0 * pic.w + 3, pic.y + y0 * pic.h + 14);
  }
  if (state.box) {
    const [x0, y0, x1, y1] = state.box;
    g.strokeStyle = "#6cf";
    g.strokeRect(pic.x + x0 * pic.w, pic.y + y0 * pic.h, (x1 - x0) * pic.w, (y1 - y0) * pic.h);
  }
}

function startDrawing() {
  $("#shot-video").pause();
  state.box = null;
  $("#shot-overlay").classList.add("drawing");
  $("#draw").classList.add("on");
  $("#box-save").disabled = true;
}

function pointer(ev) {
  const r = $("#shot-overlay").getBoundingClientRect(), pic = pictureRect();
  const clamp = (v) => Math.min(1, Math.max(0, v));
  return [clamp((ev.clientX - r.left - pic.x) / pic.w), clamp((ev.clientY - r.top - pic.y) / pic.h)];
}

function onDown(ev) { state.drawing = pointer(ev); }
function onMove(ev) {
  if (!state.drawing) return;
  const [x, y] = pointer(ev), [sx, sy] = state.drawing;
  state.box = [Math.min(sx, x), Math.min(sy, y), Math.max(sx, x), Math.max(sy, y)];
  drawOverlay();
}
function onUp(ev) {
  if (!state.drawing) return;
  onMove(ev);
  state.drawing = null;
  $("#shot-overlay").classList.remove("drawing");
  $("#draw").classList.remove("on");
  const b = state.box;
  $("#box-save").disabled = !(b && b[2] - b[0] > 0.01 && b[3] - b[1] > 0.01);
}

async function saveBox() {
  const s = state.shot, video = $("#shot-video");
  const t = Math.min(s.end_s, Math.max(s.start_s, shotTime(video)));
  try {
    await api("POST", "/v1/annotations", {
      type: "comment", asset: s.asset_id, start_s: t, end_s: t,
      box: state.box.map((v) => Math.round(v * 10000) / 10000),
      text: $("#box-text").value, author: author() });
    state.box = null;
    $("#box-save").disabled = true;
    $("#shot-message").textContent = "";
    $("#box-text").value = "";
    await loadNotes();
  } catch (e) { $("#shot-message").textContent = e.message; }
}

// -- match-cut review ---------------------------------------------------------------------------
async function loadPairs(ev) {
  ev && ev.preventDefault();
  $("#review-message").textContent = "finding pairs…";
  $("#pairs").innerHTML = "";
  try {
    const type = encodeURIComponent($("#mc-type").value), top = $("#mc-top").value;
    const across = $("#mc-across").checked;
    const [{ pairs }, { reviews }] = await Promise.all([
      api("GET", `/v1/matchcuts?type=${type}&top=${top}&across=${across}`),
      api("GET", "/v1/matchcuts/reviews")]);
    const decided = Object.fromEntries(reviews.map((r) => [`${r.a} ${r.b}`, r.decision]));
    $("#pairs").innerHTML = pairs.map((p, i) => {
      const d = decided[`${p.ref_a} ${p.ref_b}`] || "";
      const cut = `/v1/cut.mp4?a=${encodeURIComponent(p.ref_a)}&b=${encodeURIComponent(p.ref_b)}`;
      const last = Math.max(p.start_a, p.end_a - 0.5 / fpsOf(p.asset_a));  // A's last frame
      const poster = `/v1/assets/${encodeURIComponent(p.asset_a)}/frame.jpg?t=${last}&w=320`;
      return `<div class="pair" data-a="${esc(p.ref_a)}" data-b="${esc(p.ref_b)}">
        <video class="cut" src="${cut}" poster="${poster}" controls muted playsinline preload="none"></video>
        <div><div>#${i + 1} score ${p.score.toFixed(3)}</div>
        <div>${esc(p.ref_a)} out <span class="tc">${smpte(p.end_a, fpsOf(p.asset_a))}</span></div>
        <div>${esc(p.ref_b)} in <span class="tc">${smpte(p.start_b, fpsOf(p.asset_b))}</span></div>
        <div class="decision ${d ? d + "ed" : ""}">${d ? d + "ed" : "not reviewed"}</div>
        <button type="button" class="accept">Accept</button>
        <button type="button" class="reject">Reject</button></div></div>`;
    }).join("") || "no pairs";
    $("#review-message").textContent = "";
  } catch (e) { $("#review-message").textContent = e.message; }
}

async function decide(ev) {
  const button = ev.target.closest("button.accept, button.reject");
  if (!button) return;
  const pair = button.closest(".pair"), decision = button.classList.contains("accept") ? "accept" : "reject";
  try {
    await api("POST", "/v1/matchcuts/review", { a: pair.dataset.a, b: pair.dataset.b, decision, author: author() });
    const label = pair.querySelector(".decision");
    label.textContent = `${decision}ed`;
    label.className = `decision ${decision}ed`;
  } catch (e) { $("#review-message").textContent = e.message; }
}

// -- jobs ---------------------------------------------------------------------------------------
async function refreshJobs() {
  try {
    const { jobs } = await api("GET", "/v1/jobs");
    $("#jobs tbody").innerHTML = jobs.map((j) => {
      const p = j.progress || {}, total = p.requested || 0, done = (p.stored || 0) + (p.failed || 0);
      const bar = `<progress max="${total || 1}" value="${done}"></progress> ${done}/${total}`;
      const cancel = j.state === "running" ? `<button type="button" class="cancel" data-id="${esc(j.id)}">Cancel</button>` : "";
      return `<tr class="job" data-id="${esc(j.id)}"><td>${esc(j.id)}</td><td>${esc(j.feature)}</td>
        <td class="state">${esc(j.state)}</td><td>${bar}</td><td>${cancel}</td></tr>`;
    }).join("");
  } catch (e) { $("#jobs-message").textContent = e.message; }
}

async function startJob(ev) {
  ev.preventDefault();
  const assets = $("#job-assets").value.split(",").map((s) => s.trim()).filter(Boolean);
  try {
    await api("POST", "/v1/jobs", { feature: $("#job-feature").value.trim(), assets: assets.length ? assets : null });
    $("#jobs-message").textContent = "";
    refreshJobs();
  } catch (e) { $("#jobs-message").textContent = e.message; }
}

async function cancelJob(ev) {
  const b = ev.target.closest("button.cancel");
  if (!b) return;
  try { await api("POST", `/v1/jobs/${b.dataset.id}/cancel`); refreshJobs(); }
  catch (e) { $("#jobs-message").textContent = e.message; }
}

// -- wiring -------------------------------------------------------------------------------------
function init() {
  $("#author").value = localStorage.getItem("amberlite-author") || "editor";
  $("#author").addEventListener("change", () => localStorage.setItem("amberlite-author", author()));
  $("#aql-form").addEventListener("submit", runQuery);
  document.querySelectorAll(".example").forEach((b) => b.addEventListener("click", () => {
    $("#aql").value = b.dataset.aql; runQuery();
  }));
  $("#text-form").addEventListener("submit", textSearch);
  const video = $("#shot-video");
  ["timeupdate", "seeked", "loadedmetadata", "pause"].forEach((e) => video.addEventListener(e, drawOverlay));
  $("#draw").addEventListener("click", startDrawing);
  const overlay = $("#shot-overlay");
  overlay.addEventListener("mousedown", onDown);
  overlay.addEventListener("mousemove", onMove);
  overlay.addEventListener("mouseup", onUp);
  $("#box-save").addEventListener("click", saveBox);
  $("#review-form").addEventListener("submit", loadPairs);
  $("#pairs").addEventListener("click", decide);
  $("#job-form").addEventListener("submit", startJob);
  $("#jobs").addEventListener("click", cancelJob);
  window.addEventListener("hashchange", route);
  window.addEventListener("resize", drawOverlay);
  loadAssets().catch((e) => { $("#status").textContent = e.message; }).finally(route);
}

init();
