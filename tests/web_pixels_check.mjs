// Runs app/static/pixels.js on the JSON job on stdin and prints the results as JSON (tests/test_web_pixels.py).
// Arrays travel as base64 of their little-endian bytes: RGBA as uint8, images and descriptors as float32.
// Job: {resize: [{rgba, width, height, size}], descriptors: [{x, size}], domain: {model, descs: [desc]}}.
// Result: {resize: [float32 b64], descriptors: [float32 b64], domain: [number], edges: EDGE_EDGES}.
import { readFileSync } from "node:fs";
import { EDGE_EDGES, domainScore, imageDescriptors, resizeToModel } from "../app/static/pixels.js";

const bytes = (b64) => new Uint8Array(Buffer.from(b64, "base64"));
const floats = (b64) => {
  const b = bytes(b64);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};
const b64 = (arr) => Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength).toString("base64");

const job = JSON.parse(readFileSync(0, "utf8"));
const out = { resize: [], descriptors: [], domain: [], edges: EDGE_EDGES };
for (const r of job.resize || []) out.resize.push(b64(resizeToModel(bytes(r.rgba), r.width, r.height, r.size)));
for (const d of job.descriptors || []) out.descriptors.push(b64(imageDescriptors(floats(d.x), d.size)));
if (job.domain) out.domain = job.domain.descs.map((d) => domainScore(floats(d), job.domain.model));
process.stdout.write(JSON.stringify(out));
