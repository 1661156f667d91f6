// Plant leaf disease diagnosis: the page's only script (no frameworks, no network beyond this service).
// Flow: POST /predict/async -> 202 {task_id, result_url}; poll GET /result/{id}?wait_s=2 until done or failed.
// When the queue is down (503) the page falls back to the synchronous POST /predict.
// Offline mode: a service worker (/sw.js) keeps the page and the production model (GET /models/web) in the browser;
// ondevice.js runs it with LiteRT.js and the service's rule when asked, or when the service cannot be reached.
// Verdicts (Right / Correct it / Not a leaf) and the answers computed on this device wait in the outbox (outbox.js,
// IndexedDB) and are sent to the service when it can be reached: each once, under an idempotency key made here.
"use strict";

(function () {
  const TOKEN_KEY = "plant-disease.token";
  const SMALL_PHOTOS_KEY = "plant-disease.small-photos";
  const SMALL_SIDE = 1024;          // the long side of a photo kept small (the model reads a few hundred pixels)
  const POLL_WAIT_S = 2;            // the server holds each poll up to this long
  const GIVE_UP_MS = 60000;         // stop polling after this long
  const ACCEPTED = ["image/jpeg", "image/png", "image/webp"];

  const $ = (id) => document.getElementById(id);
  const els = {
    form: $("form"), token: $("token"), forget: $("forget-token"), file: $("file"), fileName: $("file-name"),
    drop: $("dropzone"), preview: $("preview"), explain: $("explain"), submit: $("submit"), status: $("status"),
    error: $("error"), result: $("result"), label: $("label"), confidence: $("confidence"), topk: $("topk"),
    heatmap: $("heatmap"), heatmapFigure: $("heatmap-figure"), model: $("model"), advice: $("advice"),
    topkTitle: $("topk-title"), onDevice: $("on-device"), offlineStatus: $("offline-status"), notes: $("notes"),
    notesPoints: $("notes-points"), notesSource: $("notes-source"),
    verdict: $("verdict"), verdictLabel: $("verdict-label"), verdictStatus: $("verdict-status"),
    outbox: $("outbox"), outboxStatus: $("outbox-status"), outboxSend: $("outbox-send"), outboxClear: $("outbox-clear"),
    smallPhotos: $("small-photos"),
  };
  const UNKNOWN_TEXT = "Unknown — retake the photo";
  const TOPK_TITLE = "Most likely classes";
  const GUESSES_TITLE = "The model's guesses";
  const DEFAULT_ADVICE = "This does not look like a leaf the model knows: retake the photo of a single leaf, close up, in even light.";
  let previewUrl = null;
  let busy = false;
  let engine = null;      // the on-device engine (ondevice.js), once the model is loaded
  let preparing = null;   // the promise of preparing it
  let current = null;     // the answer shown: {r, sha256}, what a verdict judges
  const unsaved = [];     // items the device's full storage could not keep: held while the page is open, retried

  // ---------- small helpers ----------
  const pct = (p) => (100 * p).toFixed(p >= 0.995 || p < 0.0005 ? 0 : 1) + "%";
  const words = (s) => String(s || "").replace(/_+/g, " ").replace(/\s+/g, " ").trim();
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const size = (n) => (n < 1024 ? `${n} bytes` : n < 1048576 ? `${Math.round(n / 1024)} KiB` : `${(n / 1048576).toFixed(1)} MiB`);

  function describe(item) {
    // "Tomato: Early blight" / "Apple: healthy" from the API's crop and disease (or its raw label).
    const crop = words(item.crop) || words(String(item.label || "").split("___")[0]);
    const healthy = item.healthy === true || /^healthy$/i.test(words(item.disease));
    const disease = healthy ? "healthy" : words(item.disease) || words(String(item.label || "").split("___")[1]);
    return { crop, disease, healthy, text: crop ? `${crop}: ${disease}` : disease };
  }

  function setStatus(text) { els.status.textContent = text || ""; }

  function showError(message) {
    els.error.textContent = "";
    const strong = document.createElement("strong");
    strong.textContent = "Could not diagnose this photo. ";
    const detail = document.createElement("span");
    detail.className = "detail";
    detail.textContent = message;
    els.error.append(strong, detail);
    els.error.hidden = false;
  }

  function clearError() { els.error.hidden = true; els.error.textContent = ""; }

  function clearResult() {
    current = null;
    els.verdict.hidden = true;
    els.verdict.removeAttribute("data-given");
    els.verdictStatus.textContent = "";
    els.verdict.querySelectorAll("button").forEach((b) => { b.disabled = false; });
    els.result.hidden = true;
    els.result.removeAttribute("data-variant");
    els.result.removeAttribute("data-unknown");
    els.result.classList.remove("is-unknown");
    els.advice.hidden = true;
    els.advice.textContent = "";
    els.topkTitle.textContent = TOPK_TITLE;
    els.label.textContent = "";
    els.label.removeAttribute("data-label");
    els.label.className = "label";
    els.confidence.textContent = "";
    els.topk.textContent = "";
    els.model.textContent = "";
    els.result.removeAttribute("data-on-device");
    els.notes.hidden = true;
    els.notesPoints.textContent = "";
    els.notesSource.textContent = "";
    els.heatmap.hidden = true;
    els.heatmap.removeAttribute("src");
    els.heatmapFigure.hidden = true;
  }

  function setBusy(on) {
    busy = on;
    els.submit.disabled = on;
    els.submit.textContent = on ? "Diagnosing…" : "Diagnose";
    els.form.setAttribute("aria-busy", on ? "true" : "false");
  }

  class ApiError extends Error {
    constructor(status, detail, retryAfter) {
      super(detail);
      this.status = status;
      this.retryAfter = retryAfter;
    }
  }

  function detailText(body, status, statusText) {
    // FastAPI errors are {"detail": "message"}; validation errors carry a list of {loc, msg}.
    const d = body && body.detail;
    if (typeof d === "string" && d) return d;
    if (Array.isArray(d) && d.length) {
      return d.map((e) => (e && e.msg ? `${(e.loc || []).slice(1).join(".") || "request"}: ${e.msg}` : String(e))).join("; ");
    }
    if (d) return JSON.stringify(d);
    return `the service answered ${status}${statusText ? " " + statusText : ""}`;
  }

  function explainStatus(err) {
    // The service's own message first; a short hint for what the user can do about it.
    const hints = {
      401: "Enter a valid access token above.",
      403: "This token may not make predictions.",
      413: "Choose a smaller photo.",
      415: "Choose a JPEG, PNG or WebP photo.",
      422: "The file could not be read as an image.",
      429: err.retryAfter ? `Try again in ${err.retryAfter} s.` : "Try again in a little while.",
      503: "The service is busy or starting; try again shortly.",
    };
    const code = err.status ? ` (HTTP ${err.status})` : "";
    const hint = hints[err.status] ? ` ${hints[err.status]}` : "";
    return `${err.message}${code}${hint ? " —" + hint : ""}`;
  }

  function authHeaders() {
    const t = els.token.value.trim();
    return t ? { Authorization: `Bearer ${t}` } : {};
  }

  async function call(url, options) {
    let resp;
    try {
      resp = await fetch(url, { ...options, headers: { Accept: "application/json", ...authHeaders(), ...(options && options.headers) } });
    } catch (e) {
      throw new ApiError(0, `the service could not be reached (${e.message || e})`);
    }
    let body = null;
    const text = await resp.text();
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
    if (!resp.ok) throw new ApiError(resp.status, detailText(body, resp.status, resp.statusText), resp.headers.get("Retry-After"));
    if (body === null) throw new ApiError(resp.status, "the service sent an answer this page cannot read");
    return { status: resp.status, body };
  }

  // ---------- token ----------
  try { els.token.value = localStorage.getItem(TOKEN_KEY) || ""; } catch (e) { /* storage blocked: fine */ }
  els.token.addEventListener("input", () => {
    try {
      const t = els.token.value.trim();
      if (t) localStorage.setItem(TOKEN_KEY, t); else localStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage blocked */ }
  });
  els.forget.addEventListener("click", () => {
    els.token.value = "";
    outbox().then((o) => o.setToken(null)).catch(() => undefined);
    try { localStorage.removeItem(TOKEN_KEY); } catch (e) { /* storage blocked */ }
    setStatus("Token forgotten.");
    els.token.focus();
  });

  // ---------- file choice, preview, drag and drop ----------
  function showPreview(file) {
    if (previewUrl) { URL.revokeObjectURL(previewUrl); previewUrl = null; }
    els.preview.hidden = true;
    els.preview.removeAttribute("src");
    if (!file) { els.fileName.textContent = ""; return; }
    els.fileName.textContent = `${file.name} — ${size(file.size)}`;
    if (file.size === 0) return;
    previewUrl = URL.createObjectURL(file);
    els.preview.onload = () => { els.preview.hidden = false; };
    els.preview.onerror = () => { els.preview.hidden = true; };  // not an image we can show: the service will say why
    els.preview.src = previewUrl;
  }

  els.file.addEventListener("change", () => {
    clearError();
    showPreview(els.file.files[0]);
  });

  ["dragenter", "dragover"].forEach((ev) => els.drop.addEventListener(ev, (e) => {
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
    els.drop.classList.add("over");
  }));
  ["dragleave", "dragend"].forEach((ev) => els.drop.addEventListener(ev, () => els.drop.classList.remove("over")));
  els.drop.addEventListener("drop", (e) => {
    e.preventDefault();
    els.drop.classList.remove("over");
    const files = e.dataTransfer && e.dataTransfer.files;
    if (!files || !files.length) return;
    if (files.length > 1) setStatus("Several files dropped: using the first one.");
    const dt = new DataTransfer();
    dt.items.add(files[0]);
    els.file.files = dt.files;
    els.file.dispatchEvent(new Event("change", { bubbles: true }));
  });
  // Dropping a file anywhere else must not navigate away from the page.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => { if (!els.drop.contains(e.target)) e.preventDefault(); });

  // ---------- rendering the answer ----------
  function render(r) {
    els.label.dataset.label = r.label;
    if (r.unknown) {
      // Not a leaf the model knows (a hand, a cat, a blurred or unfamiliar photo): say so, and what to do;
      // the guesses below are still shown, as guesses.
      els.label.textContent = UNKNOWN_TEXT;
      els.label.className = "label is-unknown";
      els.confidence.textContent = `best guess only ${pct(r.confidence)}`;
      els.advice.textContent = r.advice || DEFAULT_ADVICE;
      els.advice.hidden = false;
      els.topkTitle.textContent = GUESSES_TITLE;
      els.result.classList.add("is-unknown");
      els.result.dataset.unknown = "true";
    } else {
      const top = describe(r);
      els.label.textContent = top.text;
      els.label.className = "label " + (top.healthy ? "is-healthy" : "is-diseased");
      els.confidence.textContent = `${pct(r.confidence)} confidence`;
    }

    els.topk.textContent = "";
    (r.top_k || []).forEach((k) => {
      const d = describe(k);
      const li = document.createElement("li");
      li.dataset.label = k.label;
      li.dataset.classId = String(k.class_id);
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = d.text;
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.setAttribute("role", "meter");
      bar.setAttribute("aria-valuemin", "0");
      bar.setAttribute("aria-valuemax", "100");
      bar.setAttribute("aria-valuenow", (100 * k.probability).toFixed(1));
      bar.setAttribute("aria-label", `${d.text}: ${pct(k.probability)}`);
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.width = `${Math.max(0, Math.min(100, 100 * k.probability)).toFixed(1)}%`;
      bar.append(fill);
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = pct(k.probability);
      li.append(name, bar, value);
      els.topk.append(li);
    });

    if (r.heatmap_png_base64) {
      els.heatmap.src = `data:image/png;base64,${r.heatmap_png_base64}`;
      els.heatmap.hidden = false;
      els.heatmapFigure.hidden = false;
    }

    if (r.notes && r.notes.points) {
      r.notes.points.forEach((p) => {
        const li = document.createElement("li");
        li.textContent = p;
        els.notesPoints.append(li);
      });
      els.notesSource.textContent = r.notes.source ? `Source: ${r.notes.source}` : "";
      els.notes.hidden = false;
    }

    const parts = [`Model ${r.model_name} v${r.model_version}`, `variant ${r.variant}`];
    if (r.on_device) {
      if (typeof r.latency_ms === "number") parts.push(`${Math.round(r.latency_ms)} ms`);
    } else {
      if (typeof r.latency_ms === "number") parts.push(`${Math.round(r.latency_ms)} ms in the service`);
      if (typeof r.inference_ms === "number") parts.push(`${Math.round(r.inference_ms)} ms inference`);
      if (typeof r.queued_ms === "number") parts.push(`${Math.round(r.queued_ms)} ms queued`);
    }
    els.model.textContent = parts.join(" · ");
    if (r.on_device) {
      const mark = document.createElement("span");
      mark.className = "on-device";
      mark.textContent = " · computed on this device, without the network";
      els.model.append(mark);
      els.result.dataset.onDevice = "true";
    }
    els.result.dataset.variant = r.variant;
    els.result.hidden = false;
  }

  // ---------- the request itself ----------
  async function diagnose(file, explain) {
    const form = new FormData();
    form.append("file", file, file.name);
    const q = `explain=${explain ? "true" : "false"}`;
    let task;
    try {
      task = (await call(`/predict/async?${q}`, { method: "POST", body: form })).body;
    } catch (err) {
      if (err.status !== 503) throw err;
      setStatus("The queue is unavailable: asking the service directly…");
      const form2 = new FormData();
      form2.append("file", file, file.name);
      return (await call(`/predict?${q}`, { method: "POST", body: form2 })).body;
    }
    const started = performance.now();
    const url = task.result_url || `/result/${encodeURIComponent(task.task_id)}`;
    setStatus("Queued; waiting for the model…");
    for (;;) {
      if (performance.now() - started > GIVE_UP_MS) {
        throw new ApiError(0, `no answer after ${GIVE_UP_MS / 1000} s; the service may be overloaded — try again later (task ${task.task_id})`);
      }
      let t;
      try {
        t = (await call(`${url}?wait_s=${POLL_WAIT_S}`, { method: "GET" })).body;
      } catch (err) {
        if (err.status === 0 || err.status === 502 || err.status === 504) { await sleep(1000); continue; }  // transient
        throw err;
      }
      if (t.status === "done" && t.result) return t.result;
      if (t.status === "failed") throw new ApiError(t.status_code || 500, t.error || "the prediction failed");
      setStatus(`Working… ${Math.round((performance.now() - started) / 1000)} s`);
    }
  }

  // ---------- the offline mode ----------
  function setOffline(text, state) {
    // state: preparing | ready | unavailable (data-state, for styles and tests)
    els.offlineStatus.textContent = text;
    els.offlineStatus.classList.toggle("is-ready", state === "ready");
    els.offlineStatus.dataset.state = state;
  }

  async function controlled() {
    // The first visit: wait (up to 5 s) until the service worker controls the page, so that it keeps what the engine
    // fetches as it passes; what goes past it all the same, keepEngineFiles has it keep afterwards.
    await navigator.serviceWorker.register("/sw.js", { type: "module" });
    await navigator.serviceWorker.ready;
    if (navigator.serviceWorker.controller) return;
    await Promise.race([
      new Promise((r) => navigator.serviceWorker.addEventListener("controllerchange", r, { once: true })),
      sleep(5000),
    ]);
  }

  // What the engine fetched (the description, the model's files, the runtime) kept by the service worker, also where
  // it did not see those requests (a page it did not control yet): only then is the page ready offline.
  async function keepEngineFiles(headers, hash) {
    const reg = await navigator.serviceWorker.ready;
    const paths = [...new Set(performance.getEntriesByType("resource")
      .map((e) => new URL(e.name))
      .filter((u) => u.origin === location.origin && /^\/(models|vendor|static)\//.test(u.pathname))
      .map((u) => u.pathname))];
    const channel = new MessageChannel();
    const reply = new Promise((resolve) => { channel.port1.onmessage = (e) => resolve(e.data); });
    reg.active.postMessage({ type: "keep", paths, headers, hash }, [channel.port2]);
    const answer = await Promise.race([reply, sleep(60_000).then(() => null)]);
    if (!answer) throw new Error("the service worker did not answer while keeping the model's files");
    if (answer.missing.length) throw new Error(`could not keep ${answer.missing.join(", ")} on this device`);
    performance.clearResourceTimings();  // kept: the next preparation (a new model) lists only its own requests
  }

  async function prepareOffline() {
    if (!("serviceWorker" in navigator) || !window.isSecureContext) {
      setOffline("Offline mode needs a browser with service workers and a secure page (HTTPS, or localhost).", "unavailable");
      return;
    }
    setOffline("Offline mode: preparing…", "preparing");
    try {
      await controlled();
      const mod = await import("/static/ondevice.js");
      engine = await mod.loadEngine({ headers: authHeaders() });
      const m = engine.meta;
      els.onDevice.disabled = false;
      try {
        await keepEngineFiles(authHeaders(), m.hash);
      } catch (err) {  // this page diagnoses on the device; a later visit without a network would not
        setOffline("Diagnosis on this device works while this page stays open, but not after a reload without a " +
          `network: ${err.message || err}.`, "unavailable");
        return;
      }
      const bytes = Object.values(m.files).reduce((a, f) => a + f.bytes, 0);
      setOffline(`Ready offline: model ${m.model_name} v${m.model_version} (${size(bytes)}) is kept on this device.`, "ready");
    } catch (err) {
      const hint = err.status === 401 || err.status === 403 ? " Enter a valid access token to prepare it." : "";
      setOffline(`Offline mode unavailable: ${err.message || err}.${hint}`, "unavailable");
    }
  }

  function startOffline() {
    if (!preparing) preparing = prepareOffline().finally(() => { if (!engine) preparing = null; });
    return preparing;
  }

  async function diagnoseOnDevice(file) {
    if (!engine) await startOffline();
    if (!engine) throw new Error(`${els.offlineStatus.textContent} Connect to the network, then try again.`);
    setStatus("Diagnosing on this device…");
    try {
      return await engine.diagnose(file);
    } catch (err) {
      throw new ApiError(err.status || 0, err.message || String(err));
    }
  }

  // ---------- the outbox: answers computed here and verdicts, until the service has them ----------
  let outboxModule = null;
  const outbox = () => (outboxModule = outboxModule || import("/static/outbox.js"));
  let flushing = null;
  let again = false;

  function plural(n, one, many) { return `${n} ${n === 1 ? one : many}`; }

  function showOutbox(items, problem) {
    const answers = items.filter((i) => i.kind === "answer").length + unsaved.filter((i) => i.kind === "answer").length;
    const verdicts = items.length + unsaved.length - answers;
    const total = answers + verdicts;
    els.outbox.dataset.count = String(items.length);
    els.outbox.dataset.unsaved = String(unsaved.length);
    els.outbox.dataset.problem = problem ? problem.kind : "";
    els.outboxSend.hidden = els.outboxClear.hidden = total === 0;
    if (total === 0) {
      els.outboxStatus.textContent = "Nothing waits to be sent.";
      return;
    }
    const what = [answers && plural(answers, "diagnosis made on this device", "diagnoses made on this device"),
      verdicts && plural(verdicts, "verdict", "verdicts")].filter(Boolean).join(" and ");
    const parts = [`${what} ${total === 1 ? "waits" : "wait"} to be sent to the service.`];
    if (problem) parts.push(`Not sent: ${problem.message}.`);
    else if (!navigator.onLine) parts.push("This device is offline: they are sent when the connection returns.");
    const held = items.filter((i) => i.held);
    if (held.length) parts.push(`${plural(held.length, "item was", "items were")} refused for now (${held[0].held.reason}); kept, and tried again each time.`);
    if (unsaved.length) parts.push(`${plural(unsaved.length, "item is", "items are")} kept only while this page stays open: this device's storage is full.`);
    els.outboxStatus.textContent = parts.join(" ");
  }

  async function refreshOutbox(problem) {
    try {
      showOutbox(await (await outbox()).list(), problem);
    } catch (e) {
      els.outbox.dataset.problem = "storage";
      els.outboxStatus.textContent = `The waiting items cannot be read (${e.message || e}).`;
    }
  }

  // Send what waits (one flush at a time; a request during one runs another after it).
  async function sendOutbox() {
    if (flushing) { again = true; return flushing; }
    flushing = (async () => {
      do {
        again = false;
        const o = await outbox();
        const token = els.token.value.trim();
        try { await o.setToken(token || null); } catch (e) { /* storage blocked: the page sends with its own */ }
        for (const item of unsaved.splice(0)) {
          try { await o.add(item); } catch (e) { unsaved.push(item); }
        }
        const { sent, items, problem } = await o.flush({ token: token || null });
        showOutbox(items, problem);
        if (sent) els.outbox.dataset.sent = String(Number(els.outbox.dataset.sent || 0) + sent);
        if (items.length && problem && problem.kind !== "token") await wakeLater();
      } while (again);
    })().catch((e) => {
      els.outbox.dataset.problem = "storage";
      els.outboxStatus.textContent = `The waiting items could not be sent (${e.message || e}); they are kept.`;
    }).finally(() => { flushing = null; });
    return flushing;
  }

  // Background Sync sends the outbox when the connection returns, also with the page closed (where the browser has it).
  async function wakeLater() {
    try {
      const reg = await navigator.serviceWorker.ready;
      if (reg.sync) await reg.sync.register((await outbox()).SYNC_TAG);
    } catch (e) { /* no Background Sync here: the page sends on its next visit, or when it sees the connection return */ }
  }

  async function keep(item) {
    const o = await outbox();
    try {
      await o.add(item);
      await wakeLater();  // sent by the service worker when the connection returns, even if this page is closed
    } catch (e) {
      unsaved.push(item);
      throw e;
    } finally {
      await refreshOutbox();
    }
  }

  async function sha256(blob) {
    const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
    return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // ---------- photos kept small (an option) ----------
  try { els.smallPhotos.checked = localStorage.getItem(SMALL_PHOTOS_KEY) === "1"; } catch (e) { /* storage blocked */ }
  els.smallPhotos.addEventListener("change", () => {
    try { localStorage.setItem(SMALL_PHOTOS_KEY, els.smallPhotos.checked ? "1" : "0"); } catch (e) { /* storage blocked */ }
  });

  // The photo redrawn with its long side at most `side` pixels (JPEG, quality 90 %, upright as it is shown); the photo
  // itself where it is small already, where the copy would not be smaller, or where it cannot be redrawn: it is never
  // lost for want of a smaller copy.
  async function smallerPhoto(file, side = SMALL_SIDE) {
    try {
      const bitmap = await createImageBitmap(file);
      const scale = side / Math.max(bitmap.width, bitmap.height);
      if (scale >= 1) { bitmap.close(); return file; }
      const canvas = new OffscreenCanvas(Math.round(bitmap.width * scale), Math.round(bitmap.height * scale));
      const ctx = canvas.getContext("2d");
      ctx.imageSmoothingQuality = "high";
      ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      bitmap.close();
      const blob = await canvas.convertToBlob({ type: "image/jpeg", quality: 0.9 });
      if (blob.size >= file.size) return file;
      const name = `${(file.name || "photo").replace(/\.[^.]*$/, "")}.jpg`;
      return new File([blob], name, { type: "image/jpeg", lastModified: file.lastModified });
    } catch (e) {
      return file;
    }
  }

  // An answer computed on this device joins the prediction log like the service's own: it waits in the outbox.
  async function keepDeviceAnswer(original, r) {
    const id = crypto.randomUUID();
    const file = els.smallPhotos.checked ? await smallerPhoto(original) : original;
    r.request_id = id;
    r.image_sha256 = await sha256(file);
    const answer = {
      label: r.label, class_id: r.class_id, confidence: r.confidence, unknown: r.unknown,
      top_k: r.top_k.map((t) => ({ class_id: t.class_id, label: t.label, probability: t.probability, crop: t.crop || null, disease: t.disease || null })),
      ood_score: r.ood_score, domain_score: r.domain_score, feature_score: r.feature_score, variant: r.variant,
      model_name: r.model_name, model_version: String(r.model_version), model_hash: r.model_hash || null,
      diagnosed_at: new Date().toISOString(), latency_ms: Math.round(r.latency_ms * 100) / 100, filename: file.name || null,
    };
    await keep({ id, kind: "answer", photo: file, answer });
  }

  function showVerdict(r) {
    els.verdictLabel.textContent = "";
    const seen = new Set();
    const classes = engine ? engine.meta.classes : r.top_k;
    classes.forEach((c) => {
      if (!c.label || seen.has(c.label)) return;
      seen.add(c.label);
      const o = document.createElement("option");
      o.value = c.label;
      o.textContent = describe(c).text;
      els.verdictLabel.append(o);
    });
    els.verdictLabel.value = r.unknown ? (r.top_k[0] || {}).label || "" : r.label;
    els.verdict.hidden = false;
  }

  async function giveVerdict(verdict) {
    if (!current) return;
    const { r } = current;
    const label = verdict === "corrected" ? els.verdictLabel.value : null;
    const item = { id: crypto.randomUUID(), kind: "verdict", request_id: r.request_id, image_sha256: r.image_sha256 || null, verdict, label };
    els.verdict.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    const said = { confirmed: "Right", corrected: `Corrected to ${describe({ label }).text}`, not_a_leaf: "Not a leaf" }[verdict];
    try {
      await keep(item);
      els.verdictStatus.textContent = `${said}: kept on this device; it is sent to the service when it can be reached.`;
    } catch (e) {
      els.verdictStatus.textContent = `${said}: ${e.message || e}.`;
    }
    els.verdict.dataset.given = verdict;
    if (navigator.onLine) await sendOutbox();
    if (!(await (await outbox()).list()).some((i) => i.id === item.id) && !unsaved.includes(item)) {
      els.verdictStatus.textContent = `${said}: recorded by the service. Thank you.`;
    }
  }

  els.verdict.querySelectorAll("button[data-verdict]").forEach((b) => b.addEventListener("click", () => giveVerdict(b.dataset.verdict)));
  els.outboxSend.addEventListener("click", () => sendOutbox());
  els.outboxClear.addEventListener("click", async () => {
    if (!window.confirm("Discard the diagnoses and verdicts waiting on this device? They will never reach the service.")) return;
    unsaved.splice(0);
    await (await outbox()).clear();
    await refreshOutbox();
  });
  window.addEventListener("online", () => sendOutbox());
  window.addEventListener("offline", () => refreshOutbox());
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.addEventListener("message", (e) => { if (e.data && e.data.type === "outbox") refreshOutbox(e.data.problem); });
  }
  let tokenTimer = null;
  els.token.addEventListener("input", () => { clearTimeout(tokenTimer); tokenTimer = setTimeout(() => sendOutbox(), 500); });
  if ("indexedDB" in window) sendOutbox(); else els.outboxStatus.textContent = "This browser cannot keep items for sending (no IndexedDB).";

  els.token.addEventListener("change", () => { if (!engine) startOffline(); });
  startOffline();

  els.form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (busy) return;
    clearError();
    const file = els.file.files[0];
    if (!file) { showError("Choose a photo of a leaf first."); els.file.focus(); return; }
    if (file.type && !ACCEPTED.includes(file.type)) setStatus(`"${file.type}" may not be accepted; sending it anyway…`);
    clearResult();
    setBusy(true);
    const t0 = performance.now();
    setStatus("Uploading…");
    try {
      let r;
      if (els.onDevice.checked || !navigator.onLine) {
        r = await diagnoseOnDevice(file);
      } else {
        try {
          r = await diagnose(file, els.explain.checked);
        } catch (err) {
          if (!(err instanceof ApiError && err.status === 0 && engine)) throw err;
          setStatus("The service cannot be reached: diagnosing on this device…");
          r = await diagnoseOnDevice(file);
        }
      }
      render(r);
      current = { r };
      if (r.on_device) {
        try {
          await keepDeviceAnswer(file, r);
        } catch (e) {
          setStatus(`Not kept for the service: ${e.message || e}`);
        }
        if (navigator.onLine) sendOutbox();
      }
      if (r.request_id) showVerdict(r);
      const took = performance.now() - t0;
      setStatus(`Done in ${took < 1000 ? `${Math.round(took)} ms` : `${(took / 1000).toFixed(1)} s`}.`);
    } catch (err) {
      setStatus("");
      showError(err instanceof ApiError ? explainStatus(err) : String(err && err.message || err));
    } finally {
      setBusy(false);
    }
  });
})();
