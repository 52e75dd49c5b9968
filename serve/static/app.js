// edge-genre page: upload a file to /api/classify, or follow /api/live (server-sent events).
// Plain JavaScript, no libraries: the page must work from a Pi with no internet.
"use strict";

const $ = (id) => document.getElementById(id);

// One colour per label, in the model's label order (ten distinguishable hues, then repeats).
const PALETTE = ["#2b6cb0", "#c05621", "#2f855a", "#b83280", "#6b46c1",
                 "#d69e2e", "#c53030", "#319795", "#718096", "#805ad5"];
let labels = [];
const colour = (label) => {
  const i = labels.indexOf(label);
  return i < 0 ? "#a0aec0" : PALETTE[i % PALETTE.length];
};
const percent = (p) => `${(100 * p).toFixed(1)}%`;

// ------------------------------------------------------------------ model info

async function loadModel() {
  let response;
  try {
    response = await fetch("/api/model");
  } catch (err) {
    $("model").textContent = "Cannot reach the server.";
    return;
  }
  let model = {};
  try {
    model = await response.json();
  } catch (err) { /* not JSON: the status says it */ }
  if (!response.ok) { // e.g. 401: this server needs its token
    $("model").textContent = "The server refused this page.";
    showError(model.error || `the server answered ${response.status} ${response.statusText}`);
    return;
  }
  labels = model.labels || [];
  maxUploadBytes = model.limits.max_upload_bytes;
  const mb = maxUploadBytes / 1e6;
  $("limits").textContent = `WAV, AU, FLAC or OGG · up to ${+mb.toPrecision(3)} MB and ` +
    `${Math.round(model.limits.max_seconds / 60 * 10) / 10} min`;
  $("model").textContent = `Model ${model.file} (${model.preset}, ${model.quantization}) on ` +
    `${model.backend} · ${model.window_seconds} s windows every ${model.hop_seconds} s · ` +
    `edge-genre ${model.version}`;
  if (!model.live) $("live-status").textContent = "Live mode is off on this server (--no-mic).";
}

// ------------------------------------------------------------------ shared views

function renderBars(list, probabilities) {
  const entries = Object.entries(probabilities).sort((a, b) => b[1] - a[1]);
  list.replaceChildren(...entries.map(([label, p], i) => {
    const li = document.createElement("li");
    li.className = i === 0 ? "bar first" : "bar";
    li.dataset.genre = label;
    const name = document.createElement("span");
    name.className = "label";
    name.textContent = label;
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.display = "block";
    fill.style.width = percent(p);
    fill.style.background = colour(label);
    track.append(fill);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = percent(p);
    li.append(name, track, value);
    return li;
  }));
}

function segment(window) {
  const seg = document.createElement("span");
  seg.className = window.silent ? "seg silent" : "seg";
  if (!window.silent) seg.style.background = colour(window.genre);
  seg.dataset.genre = window.genre;
  seg.title = `${window.start.toFixed(0)}–${window.end.toFixed(0)} s: ${window.genre}` +
    (window.silent ? "" : ` ${percent(window.confidence)}`);
  return seg;
}

function renderLegend(list, windows) {
  const seen = [...new Set(windows.filter((w) => !w.silent).map((w) => w.genre))];
  list.replaceChildren(...seen.map((genre) => {
    const li = document.createElement("li");
    const swatch = document.createElement("i");
    swatch.style.background = colour(genre);
    li.append(swatch, genre);
    return li;
  }));
}

// ------------------------------------------------------------------ file mode

function show(element, visible) { element.hidden = !visible; }

function showError(message) {
  $("error").textContent = message;
  show($("error"), true);
}

let maxUploadBytes = Infinity;

async function classify(file) {
  show($("error"), false);
  show($("result"), false);
  if (file.size > maxUploadBytes) { // the server would refuse it: save the transfer
    showError(`${file.name}: the file is larger than the ` +
              `${+(maxUploadBytes / 1e6).toPrecision(3)} MB limit`);
    $("file-input").value = "";
    return;
  }
  $("busy-name").textContent = file.name;
  show($("busy"), true);
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const response = await fetch("/api/classify", { method: "POST", body: form });
    let body;
    try {
      body = await response.json();
    } catch (err) {
      body = { error: `the server answered ${response.status} ${response.statusText}` };
    }
    if (!response.ok) throw new Error(body.error || `error ${response.status}`);
    renderResult(body);
  } catch (err) {
    showError(err.message || String(err));
  } finally {
    show($("busy"), false);
    $("file-input").value = "";
  }
}

// A track and each of its windows: genre, confidence, probabilities (the track's are the mean
// of its windows'); window_decisions lists the windows (windows is how many there are).
function renderResult(result) {
  if (result.model && result.model.labels) labels = result.model.labels;
  $("result-file").textContent = `${result.file} · ${result.duration.toFixed(1)} s`;
  $("genre").textContent = result.genre;
  $("confidence").textContent = percent(result.confidence);
  renderBars($("bars"), result.probabilities);
  $("timeline").replaceChildren(...result.window_decisions.map(segment));
  $("timeline-end").textContent = `${result.duration.toFixed(0)} s`;
  renderLegend($("legend"), result.window_decisions);
  show($("result"), true);
}

function setUpFileMode() {
  const input = $("file-input");
  const drop = $("drop");
  input.addEventListener("change", () => { if (input.files.length) classify(input.files[0]); });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => {
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (file) classify(file);
  });
  // "Classify another": one click opens the file picker again.
  $("again").addEventListener("click", () => {
    show($("result"), false);
    show($("error"), false);
    input.click();
  });
}

// ------------------------------------------------------------------ live mode

const LIVE_HISTORY = 30; // decisions kept on the live timeline
let source = null;
let history = [];

function stopLive(message) {
  if (source) source.close();
  source = null;
  $("live-toggle").textContent = "Start listening";
  if (message !== undefined) $("live-status").textContent = message;
}

function startLive() {
  show($("live-error"), false);
  history = [];
  $("live-status").textContent = "Connecting…";
  $("live-toggle").textContent = "Stop";
  source = new EventSource("/api/live");
  source.addEventListener("status", (e) => {
    const s = JSON.parse(e.data);
    $("live-status").textContent = s.state === "listening"
      ? `Listening to ${s.device} (${s.device_rate} Hz) · first decision after ${s.window_seconds} s`
      : s.message;
  });
  // Live mode shows the smoothed decision (smoothed_genre, ...); genre, confidence and
  // probabilities are the last window's own.
  source.addEventListener("decision", (e) => {
    const d = JSON.parse(e.data);
    history.push({ start: d.start, end: d.end, silent: d.silent, genre: d.smoothed_genre,
                   confidence: d.smoothed_confidence });
    if (history.length > LIVE_HISTORY) history.shift();
    $("live-genre").textContent = d.smoothed_genre;
    $("live-confidence").textContent = d.silent ? "" : percent(d.smoothed_confidence);
    renderBars($("live-bars"), d.smoothed_probabilities);
    $("live-timeline").replaceChildren(...history.map(segment));
    $("live-meta").textContent = `window ${d.window} · ${d.start.toFixed(0)}–${d.end.toFixed(0)} s · ` +
      `level ${d.level_dbfs === null ? "silent" : d.level_dbfs + " dBFS"} · ${d.latency_ms} ms`;
    $("live-status").textContent = "Listening";
    show($("live-result"), true);
  });
  // An "error" event carries the server's message; a plain error is a dropped connection.
  source.addEventListener("error", (e) => {
    if (e.data) {
      $("live-error").textContent = JSON.parse(e.data).error;
      show($("live-error"), true);
      stopLive("");
    } else if (source && source.readyState === EventSource.CONNECTING) {
      $("live-status").textContent = "Connection lost, reconnecting…";
    } else if (source && source.readyState === EventSource.CLOSED) { // refused (e.g. no token)
      stopLive("The server refused the live stream: open the address that edge-genre serve printed.");
    }
  });
}

function setUpLiveMode() {
  $("live-toggle").addEventListener("click", () => (source ? stopLive("Stopped.") : startLive()));
}

// ------------------------------------------------------------------ tabs

function selectTab(name) {
  for (const tab of ["file", "live"]) {
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
    show($(`panel-${tab}`), tab === name);
  }
}

$("tab-file").addEventListener("click", () => selectTab("file"));
$("tab-live").addEventListener("click", () => selectTab("live"));
setUpFileMode();
setUpLiveMode();
loadModel();
