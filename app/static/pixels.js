// The server's preprocessing, in the browser: the same pixels in, the same numbers out (to float32 rounding).
// Dependency-free ES module (Chromium and Node 20); every float32 operation of TensorFlow's kernels is rounded
// with Math.fround in the same order, so that the on-device model and the abstention rule see the server's input.
// Checked against TensorFlow and NumPy by tests/test_web_pixels.py.

const f32 = Math.fround;

export const THUMB = 8; // plant_disease/abstention.py THUMB, HIST_BINS, DESCRIPTOR_SIZE
export const HIST_BINS = 16;
export const DESCRIPTOR_SIZE = THUMB * THUMB * 3 + 5 * HIST_BINS;
// plant_disease/abstention.py EDGE_EDGES = np.r_[0.0, np.geomspace(0.002, 1.0, 16)], as NumPy computes them
// (float64, written to round-trip): the gradient-magnitude bin edges, compared in float64 as np.histogram does.
export const EDGE_EDGES = Object.freeze([
  0.0, 0.002, 0.0030266439158325394, 0.0045802866966230685, 0.0069314484315514645, 0.010489513111631118,
  0.015874010519681993, 0.024022488679628626, 0.03635375960267701, 0.05501494265954059, 0.08325532074018732,
  0.1259921049894873, 0.19066661900468318, 0.2885399811814427, 0.4366538892586245, 0.6607979186246156, 1.0,
]);

// The spans of one axis: TF's ComputeSpansCore (tensorflow/core/kernels/image/scale_and_translate_op.cc) with the
// triangle kernel (radius 1), translation 0, antialias on; scale = out / in in float32 as tf.image.resize gives it.
function triangleSpans(outSize, inSize) {
  const scale = f32(outSize / inSize);
  const invScale = f32(1.0 / scale);
  const kernelScale = Math.max(invScale, 1.0);
  const oneOverKernelScale = f32(1.0 / kernelScale);
  const reach = f32(1.0 * kernelScale); // kernel.Radius() * kernel_scale
  const starts = new Int32Array(outSize);
  const ends = new Int32Array(outSize);
  const weights = [];
  for (let x = 0; x < outSize; ++x) {
    const sampleF = f32(f32(x + 0.5) * invScale);
    let start = Math.ceil(f32(f32(sampleF - reach) - 0.5));
    let end = Math.floor(f32(f32(sampleF + reach) - 0.5));
    start = Math.min(Math.max(start, 0), inSize - 1);
    end = Math.min(Math.max(end, 0), inSize - 1) + 1;
    const w = new Float32Array(end - start);
    let total = 0;
    for (let s = start; s < end; ++s) {
      const pos = Math.abs(f32(f32(f32(s + 0.5) - sampleF) * oneOverKernelScale));
      const v = pos < 1 ? f32(1 - pos) : 0;
      total = f32(total + v);
      w[s - start] = v;
    }
    if (Math.abs(total) >= 1000 * 1.1754943508222875e-38) {
      const inv = f32(1.0 / total);
      for (let i = 0; i < w.length; ++i) w[i] = f32(w[i] * inv);
    } else {
      w.fill(0);
    }
    starts[x] = start;
    ends[x] = end;
    weights.push(w);
  }
  return { starts, ends, weights };
}

// Reproduces plant_disease/pipeline.py decode_and_resize after the decode: tf.image.resize(img_uint8, (size, size),
// method="bilinear", antialias=True) then tf.clip_by_value(.., 0, 255), i.e. TF's ScaleAndTranslate op with the
// triangle kernel (scale_and_translate_op.cc: ComputeSpansCore, then GatherRows (height) before GatherColumns
// (width), accumulating in float32). `rgba`: width*height*4 bytes as from getImageData (alpha ignored).
// Returns a Float32Array of size*size*3, row-major HWC RGB, 0..255.
export function resizeToModel(rgba, width, height, size) {
  if (!(width > 0 && height > 0 && size > 0)) throw new Error(`bad sizes ${width}x${height} -> ${size}`);
  if (rgba.length < width * height * 4) throw new Error(`need ${width * height * 4} RGBA bytes, got ${rgba.length}`);
  const rows = triangleSpans(size, height);
  const cols = triangleSpans(size, width);
  // GatherRows: (size, width, 3)
  const mid = new Float32Array(size * width * 3);
  for (let y = 0; y < size; ++y) {
    const w = rows.weights[y];
    const start = rows.starts[y];
    const outRow = y * width * 3;
    for (let x = 0; x < width; ++x) {
      for (let c = 0; c < 3; ++c) {
        let acc = 0;
        for (let j = 0; j < w.length; ++j) acc = f32(acc + f32(w[j] * rgba[((start + j) * width + x) * 4 + c]));
        mid[outRow + x * 3 + c] = acc;
      }
    }
  }
  // GatherColumns: (size, size, 3), then the clip
  const out = new Float32Array(size * size * 3);
  for (let y = 0; y < size; ++y) {
    const inRow = y * width * 3;
    for (let x = 0; x < size; ++x) {
      const w = cols.weights[x];
      const start = cols.starts[x];
      for (let c = 0; c < 3; ++c) {
        let acc = 0;
        for (let j = 0; j < w.length; ++j) acc = f32(acc + f32(w[j] * mid[inRow + (start + j) * 3 + c]));
        out[(y * size + x) * 3 + c] = Math.min(Math.max(acc, 0), 255);
      }
    }
  }
  return out;
}

// TF's ResizeArea op (tensorflow/core/kernels/image/resize_area_op.cc, ComputeLoop and ComputePatchSumOf3Channels,
// align_corners false) on a float32 (h, w, 3) image: each output pixel averages the input area it covers.
function resizeArea(img, inH, inW, outH, outW) {
  const hScale = f32(inH / outH);
  const wScale = f32(inW / outW);
  const cellScale = (v, lo, hi, s) => (v < lo ? (v + 1 > hi ? s : f32(v + 1 - lo)) : v + 1 > hi ? f32(hi - v) : 1.0);
  const xs = [];
  for (let x = 0; x < outW; ++x) {
    const inX = f32(x * wScale);
    const inX1 = f32((x + 1) * wScale);
    const start = Math.floor(inX);
    const end = Math.ceil(inX1);
    xs.push({ start, end, startScale: cellScale(start, inX, inX1, wScale), endScale: cellScale(end - 1, inX, inX1, wScale) });
  }
  const bound = (v, n) => Math.min(n - 1, Math.max(0, v));
  const scale = f32(1.0 / f32(hScale * wScale));
  const out = new Float32Array(outH * outW * 3);
  for (let y = 0; y < outH; ++y) {
    const inY = f32(y * hScale);
    const inY1 = f32((y + 1) * hScale);
    const yStart = Math.floor(inY);
    const yEnd = Math.ceil(inY1);
    for (let x = 0; x < outW; ++x) {
      const xi = xs[x];
      for (let c = 0; c < 3; ++c) {
        let sum = 0;
        for (let i = yStart; i < yEnd; ++i) {
          const yScale = cellScale(i, inY, inY1, hScale);
          const row = bound(i, inH) * inW * 3;
          let sumY = f32(img[row + bound(xi.start, inW) * 3 + c] * xi.startScale);
          if (xi.start + 1 !== xi.end) {
            for (let k = xi.start + 1; k < xi.end - 1; ++k) sumY = f32(sumY + img[row + bound(k, inW) * 3 + c]);
            sumY = f32(sumY + f32(img[row + bound(xi.end - 1, inW) * 3 + c] * xi.endScale));
          }
          sum = f32(sum + f32(sumY * yScale));
        }
        out[(y * outW + x) * 3 + c] = f32(sum * scale);
      }
    }
  }
  return out;
}

// The bin of np.histogram(values, bins=16, range=(0, 1)), -1 for none: the last bin closed on the right, values
// outside [0, 1] dropped (the k/16 edges are exact, so floor(v * 16) is NumPy's bin).
function uniformBin(v) {
  if (!(v >= 0 && v <= 1)) return -1;
  return Math.min(Math.floor(v * HIST_BINS), HIST_BINS - 1);
}

// np.histogram(values, bins=EDGE_EDGES): edges[k] <= v < edges[k+1] compared in float64, the last bin closed.
function edgeBin(v) {
  if (!(v >= EDGE_EDGES[0] && v <= EDGE_EDGES[HIST_BINS])) return -1;
  let lo = 0;
  let hi = HIST_BINS; // v in [EDGE_EDGES[lo], EDGE_EDGES[hi]]
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (v >= EDGE_EDGES[mid]) lo = mid;
    else hi = mid;
  }
  return lo;
}

// Reproduces image_descriptors (plant_disease/abstention.py) for ONE image: `x` is the model-size image as
// resizeToModel returns it (size*size*3, HWC RGB, 0..255). Returns a Float32Array of DESCRIPTOR_SIZE = 272: the
// 8x8 area thumbnail (tf.image.resize method="area"), hue, saturation and value histograms (tf.image.rgb_to_hsv),
// and histograms of the brightness (tf.image.rgb_to_grayscale) and colour-opponent gradient magnitudes
// (tf.image.image_gradients: |dx| + |dy|, summed over channels, clipped to 0..1), each over the pixel count.
export function imageDescriptors(x, size) {
  const n = size * size;
  if (!(size >= 1) || x.length !== n * 3) throw new Error(`need ${size}x${size}x3 values, got ${x.length}`);
  const img = new Float32Array(n * 3);
  for (let i = 0; i < n * 3; ++i) img[i] = Math.min(Math.max(f32(f32(x[i]) / 255), 0), 1);
  const out = new Float32Array(DESCRIPTOR_SIZE);
  out.set(resizeArea(img, size, size, THUMB, THUMB), 0);
  let o = THUMB * THUMB * 3;

  // tf.image.rgb_to_hsv: tensorflow/core/kernels/image/colorspace_op.h RGBToHSV, in float32
  const counts = new Float64Array(5 * HIST_BINS);
  const sixth = f32(1 / 6);
  const third = f32(2 / 6);
  const twoThirds = f32(4 / 6);
  for (let p = 0; p < n; ++p) {
    const r = img[p * 3];
    const g = img[p * 3 + 1];
    const b = img[p * 3 + 2];
    const v = Math.max(r, g, b);
    const range = f32(v - Math.min(r, g, b));
    const s = v > 0 ? f32(range / v) : 0;
    let h = 0;
    if (range > 0) {
      const norm = f32(f32(1 / range) * sixth);
      if (r === v) h = f32(norm * f32(g - b));
      else if (g === v) h = f32(f32(norm * f32(b - r)) + third);
      else h = f32(f32(norm * f32(r - g)) + twoThirds);
      if (h < 0) h = f32(h + 1);
    }
    const bh = uniformBin(h);
    const bs = uniformBin(s);
    const bv = uniformBin(v);
    if (bh >= 0) counts[bh] += 1;
    if (bs >= 0) counts[HIST_BINS + bs] += 1;
    if (bv >= 0) counts[2 * HIST_BINS + bv] += 1;
  }

  // brightness (0.2989, 0.587, 0.114 in float32) and colour opponents (r - g, (r + g) / 2 - b)
  const w0 = f32(0.2989);
  const w1 = f32(0.587);
  const w2 = f32(0.114);
  const gray = new Float32Array(n);
  const opp = new Float32Array(n * 2);
  for (let p = 0; p < n; ++p) {
    const r = img[p * 3];
    const g = img[p * 3 + 1];
    const b = img[p * 3 + 2];
    gray[p] = f32(f32(f32(r * w0) + f32(g * w1)) + f32(b * w2));
    opp[p * 2] = f32(r - g);
    opp[p * 2 + 1] = f32(f32(f32(r + g) / 2) - b);
  }
  // tf.image.image_gradients: forward differences, 0 on the last row (dy) and the last column (dx)
  const magnitude = (ch, depth, p, row, col) => {
    let m = 0;
    for (let c = 0; c < depth; ++c) {
      const here = ch[p * depth + c];
      const dy = row < size - 1 ? f32(ch[(p + size) * depth + c] - here) : 0;
      const dx = col < size - 1 ? f32(ch[(p + 1) * depth + c] - here) : 0;
      m = f32(m + f32(Math.abs(dx) + Math.abs(dy)));
    }
    return Math.min(Math.max(m, 0), 1);
  };
  for (let row = 0; row < size; ++row) {
    for (let col = 0; col < size; ++col) {
      const p = row * size + col;
      const bg = edgeBin(magnitude(gray, 1, p, row, col));
      if (bg >= 0) counts[3 * HIST_BINS + bg] += 1;
      const bo = edgeBin(magnitude(opp, 2, p, row, col));
      if (bo >= 0) counts[4 * HIST_BINS + bo] += 1;
    }
  }
  for (let i = 0; i < counts.length; ++i) out[o + i] = counts[i] / n;
  o += counts.length;
  return out;
}

// Reproduces domain_score (plant_disease/abstention.py) for one descriptor vector: minus the Mahalanobis distance
// per dimension from the probabilistic PCA model `model` (the JSON dict fit_domain returns), in float64.
export function domainScore(desc, model) {
  const { mean, scale, components, variances } = model;
  const dims = mean.length;
  if (desc.length !== dims) throw new Error(`descriptor has ${desc.length} values, the domain model ${dims}`);
  const d = new Float64Array(dims);
  let total = 0;
  for (let i = 0; i < dims; ++i) {
    d[i] = (desc[i] - mean[i]) / scale[i];
    total += d[i] * d[i];
  }
  let dist = 0;
  let explained = 0;
  for (let k = 0; k < components.length; ++k) {
    const comp = components[k];
    let z = 0;
    for (let i = 0; i < dims; ++i) z += d[i] * comp[i];
    explained += z * z;
    dist += (z * z) / variances[k];
  }
  dist += Math.max(total - explained, 0) / model.residual_variance;
  return -dist / dims;
}
