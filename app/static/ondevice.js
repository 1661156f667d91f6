// On-device diagnosis: the service's production model run in this browser by LiteRT.js (WebAssembly), with the
// service's own rule, so that a photo gets the server's answer without a network.
// What it runs comes from GET /models/web (plant_disease.web_model, notebook 14a): the .tflite file, the class names
// in words, the calibration temperature, the abstention rule with its feature bank (and domain model), the notes.
// The service worker (sw.js) keeps all of it, with this module and the runtime, for the offline visits.
import { domainScore, imageDescriptors, resizeToModel } from "./pixels.js";

const LITERT = "/vendor/@litertjs/core/dist/index.js";
const LITERT_WASM = "/vendor/@litertjs/core/wasm/";
const MAX_PIXELS = 40_000_000; // when the description gives none (plant_disease.inference.DEFAULT_MAX_PIXELS)

let litert = null; // the LiteRT.js module, loaded once per page

async function runtime() {
  if (!litert) {
    let mod;
    try {
      mod = await import(LITERT);
    } catch (e) {
      throw new Error(`the in-browser runtime is not installed on this service (${e.message || e}; run make install)`);
    }
    await mod.loadLiteRt(LITERT_WASM);
    litert = mod;
  }
  return litert;
}

async function fetchOk(url, headers) {
  const resp = await fetch(url, { headers });
  if (!resp.ok) {
    let detail = "";
    try { detail = (await resp.json()).detail || ""; } catch (e) { /* not JSON */ }
    const err = new Error(detail || `${url} answered ${resp.status}`);
    err.status = resp.status;
    throw err;
  }
  return resp;
}

// IEEE half floats (the feature bank, little-endian) -> Float32Array.
export function halfToFloat(u16) {
  const out = new Float32Array(u16.length);
  for (let i = 0; i < u16.length; i++) {
    const h = u16[i], s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
    out[i] = e === 0 ? s * f * 2 ** -24 : e === 31 ? (f ? NaN : s * Infinity) : s * (1 + f / 1024) * 2 ** (e - 15);
  }
  return out;
}

// plant_disease.calibration.apply_temperature
export function applyTemperature(probs, t) {
  if (t === 1) return Float32Array.from(probs);
  const z = Array.from(probs, (p) => Math.log(Math.min(Math.max(p, 1e-12), 1)) / t);
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const sum = e.reduce((a, b) => a + b, 0);
  return Float32Array.from(e, (v) => v / sum);
}

// plant_disease.abstention.ood_score, for one photo's calibrated probabilities
export function oodScore(p, kind) {
  if (kind === "msp") return Math.max(...p);
  if (kind === "margin") {
    const s = Array.from(p).sort((a, b) => b - a);
    return s.length > 1 ? s[0] - s[1] : s[0];
  }
  if (kind === "neg_entropy") return Array.from(p).reduce((a, v) => a + v * Math.log(Math.min(Math.max(v, 1e-12), 1)), 0);
  throw new Error(`unknown score ${kind}`);
}

// plant_disease.abstention.feature_score: minus the distance of the L2-normalised features to the k-th nearest
// training photo's (the bank's rows are normalised already).
export function featureScore(features, bank, n, dim, k) {
  let norm = 0;
  for (let j = 0; j < dim; j++) norm += features[j] * features[j];
  norm = Math.max(Math.sqrt(norm), 1e-12);
  const d2 = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let dot = 0;
    const row = i * dim;
    for (let j = 0; j < dim; j++) dot += features[j] * bank[row + j];
    d2[i] = Math.max(2 - (2 * dot) / norm, 0);
  }
  d2.sort();
  return -Math.sqrt(d2[k - 1]);
}

// plant_disease.abstention.abstains, for one photo
export function abstains(p, rule, domain, feature) {
  if (!rule) return false;
  let out = oodScore(p, rule.score) < rule.threshold;
  if (domain !== null && rule.domain_threshold !== null && rule.domain_threshold !== undefined) out ||= domain < rule.domain_threshold;
  if (rule.feature_threshold !== null && rule.feature_threshold !== undefined) {
    if (feature === null) throw new Error("this abstention rule has a feature check: the feature scores are needed");
    out ||= feature < rule.feature_threshold;
  }
  return out;
}

// A photo (Blob) -> its RGBA pixels as the server decodes them: no colour conversion, no premultiplied alpha
// (the server's JPEG decode is libjpeg's accurate integer DCT, as Chromium's); refused over the server's pixel limit.
export async function photoPixels(blob, maxPixels = MAX_PIXELS) {
  let bmp;
  try {
    bmp = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  } catch (e) {
    const err = new Error("the file could not be read as an image");
    err.status = 422;
    throw err;
  }
  const { width, height } = bmp;
  if (width * height > maxPixels) {
    bmp.close();
    const err = new Error(`too many pixels: ${width}x${height}`);
    err.status = 413;
    throw err;
  }
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bmp, 0, 0);
  bmp.close();
  return { rgba: ctx.getImageData(0, 0, width, height).data, width, height };
}

export class Engine {
  constructor(meta, model, bank) {
    this.meta = meta;
    this.model = model;
    this.bank = bank; // Float32Array n x dim, or null
    this.outputs = model.getOutputDetails().map((d) => Array.from(d.shape));
  }

  // The model's outputs for one model-size input: the probabilities and the pooled features (null without), told
  // apart by their width as plant_disease.runtimes._split_outputs does.
  async run(x) {
    const size = this.meta.image_size;
    const input = new litert.Tensor(x, [1, size, size, 3]);
    let outs;
    try {
      outs = await this.model.run(input);
    } finally {
      input.delete();
    }
    const arrays = outs.map((t) => Float32Array.from(t.toTypedArray()));
    outs.forEach((t) => t.delete());
    const dim = this.meta.feature ? this.meta.feature.dim : null;
    if (arrays.length === 1) return { probs: arrays[0], features: null };
    const fi = arrays.findIndex((a) => a.length === dim);
    if (arrays.length !== 2 || fi < 0) throw new Error(`unexpected model outputs ${this.outputs}`);
    return { probs: arrays[1 - fi], features: arrays[fi] };
  }

  // The answer for one photo, in the API's shape (app.schemas.PredictionOut), marked as computed on this device.
  async diagnose(blob, topK) {
    const t0 = performance.now();
    const m = this.meta;
    const { rgba, width, height } = await photoPixels(blob, m.max_pixels || MAX_PIXELS);
    const x = resizeToModel(rgba, width, height, m.image_size);
    const t1 = performance.now();
    const out = await this.run(x);
    const t2 = performance.now();
    const probs = applyTemperature(out.probs, m.temperature);
    const rule = m.abstain;
    const domain = rule && m.domain ? domainScore(imageDescriptors(x, m.image_size), m.domain) : null;
    const f = m.feature;
    const feature = out.features && f && this.bank ? featureScore(out.features, this.bank, f.n, f.dim, f.k) : null;
    const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a]).slice(0, Math.min(topK || m.top_k, probs.length));
    const top = order.map((i) => ({ class_id: i, ...m.classes[i], probability: probs[i] }));
    top.forEach((t) => delete t.healthy);
    const best = m.classes[order[0]];
    const unknown = abstains(probs, rule, domain, feature);
    return {
      class_id: unknown ? null : order[0],
      label: unknown ? m.unknown.label : best.label,
      crop: unknown ? null : best.crop,
      disease: unknown ? null : best.disease,
      healthy: unknown ? null : best.healthy,
      confidence: probs[order[0]],
      top_k: top,
      unknown,
      advice: unknown ? m.unknown.advice : null,
      ood_score: rule ? oodScore(probs, rule.score) : null,
      domain_score: domain,
      feature_score: feature,
      model_name: m.model_name,
      model_version: m.model_version,
      variant: m.variant,
      notes: unknown ? null : m.notes[best.label] || null,
      on_device: true,
      model_hash: m.hash,
      preprocess_ms: t1 - t0,
      inference_ms: t2 - t1,
      latency_ms: performance.now() - t0,
    };
  }
}

// The engine for the service's browser model (`url`, default the first variant that has one): its description,
// the runtime, the model and the feature bank; every request goes through the service worker, which keeps them.
export async function loadEngine({ url = "/models/web", headers = {} } = {}) {
  const meta = await (await fetchOk(url, headers)).json();
  const rt = await runtime();
  const modelBytes = new Uint8Array(await (await fetchOk(meta.files["model.tflite"].url, headers)).arrayBuffer());
  const model = await rt.loadAndCompile(modelBytes, { accelerator: "wasm" });
  let bank = null;
  if (meta.feature) {
    const buf = await (await fetchOk(meta.files[meta.feature.file].url, headers)).arrayBuffer();
    bank = halfToFloat(new Uint16Array(buf));
  }
  return new Engine(meta, model, bank);
}
