// SAM's pre- and post-processing in plain JavaScript, mirroring the Python runtime
// (runtimes/mobilesam_runtime/transforms.py and predictor.py). No DOM, no dependencies: it runs
// in a page, a Web Worker and Node alike.

export const IMAGE_SIZE = 1024;
export const LOW_RES = 256;
export const LABEL = Object.freeze({ PADDING: -1, BACKGROUND: 0, FOREGROUND: 1, BOX_TOP_LEFT: 2, BOX_BOTTOM_RIGHT: 3 });

/** [newH, newW] after resizing the longest side to `longSide` (SAM's rounding). */
export function preprocessShape(h, w, longSide = IMAGE_SIZE) {
  const scale = (longSide * 1.0) / Math.max(h, w);
  return [Math.trunc(h * scale + 0.5), Math.trunc(w * scale + 0.5)];
}

// ---- Pillow's bilinear resize (libImaging/Resample.c), reproduced operation by operation -----
// Triangle filter whose support grows with the downscale factor (antialiasing), coefficients
// normalised in double precision, then fixed point with 22 fractional bits; horizontal pass
// first, rounded and clipped to uint8, then the vertical pass on that uint8 intermediate.
const PRECISION_BITS = 32 - 8 - 2;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);

function bilinearFilter(x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

/** Fixed-point coefficients of one axis: {ksize, bounds: Int32Array(2*out), kk: Int32Array}. */
export function pilCoefficients(inSize, outSize) {
  const scale = inSize / outSize;
  const filterscale = scale < 1.0 ? 1.0 : scale;
  const support = 1.0 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const ss = 1.0 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = 0.0 + (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      const w = bilinearFilter((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0.0 ? k[x] / ww : k[x];
      kk[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(v) {
  if (v >= ONE * 256) return 255;
  if (v <= 0) return 0;
  return Math.floor(v / ONE);
}

/**
 * Resize an RGBA (or RGB with channels=3) uint8 buffer like PIL's Image.resize(BILINEAR) on the
 * RGB image; alpha is ignored. Returns RGB Uint8Array(outW*outH*3).
 */
export function resizeBilinearPIL(src, width, height, outW, outH, channels = 4) {
  let img = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < width * height; i++, j += channels) {
    img[i * 3] = src[j]; img[i * 3 + 1] = src[j + 1]; img[i * 3 + 2] = src[j + 2];
  }
  let w = width, h = height;
  if (outW !== w) {
    const { ksize, bounds, kk } = pilCoefficients(w, outW);
    const out = new Uint8Array(outW * h * 3);
    for (let y = 0; y < h; y++) {
      const row = y * w * 3;
      for (let xx = 0; xx < outW; xx++) {
        const xmin = bounds[xx * 2], xmax = bounds[xx * 2 + 1], k0 = xx * ksize;
        let s0 = HALF, s1 = HALF, s2 = HALF;
        for (let x = 0; x < xmax; x++) {
          const p = row + (x + xmin) * 3, c = kk[k0 + x];
          s0 += img[p] * c; s1 += img[p + 1] * c; s2 += img[p + 2] * c;
        }
        const o = (y * outW + xx) * 3;
        out[o] = clip8(s0); out[o + 1] = clip8(s1); out[o + 2] = clip8(s2);
      }
    }
    img = out; w = outW;
  }
  if (outH !== h) {
    const { ksize, bounds, kk } = pilCoefficients(h, outH);
    const out = new Uint8Array(w * outH * 3);
    for (let yy = 0; yy < outH; yy++) {
      const ymin = bounds[yy * 2], ymax = bounds[yy * 2 + 1], k0 = yy * ksize;
      for (let xx = 0; xx < w; xx++) {
        let s0 = HALF, s1 = HALF, s2 = HALF;
        for (let y = 0; y < ymax; y++) {
          const p = ((y + ymin) * w + xx) * 3, c = kk[k0 + y];
          s0 += img[p] * c; s1 += img[p + 1] * c; s2 += img[p + 2] * c;
        }
        const o = (yy * w + xx) * 3;
        out[o] = clip8(s0); out[o + 1] = clip8(s1); out[o + 2] = clip8(s2);
      }
    }
    img = out; h = outH;
  }
  return img;
}

/** Resized RGB uint8 (h x w) -> the encoder input Float32Array(3*1024*1024), CHW, zero-padded. */
export function normalizeAndPad(rgb, w, h, mean, std) {
  const size = IMAGE_SIZE, plane = size * size;
  const out = new Float32Array(3 * plane);
  const m = Float32Array.from(mean), s = Float32Array.from(std);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const p = (y * w + x) * 3, o = y * size + x;
      // float32 (v - mean) / std, rounded exactly as numpy's float32 arithmetic
      for (let c = 0; c < 3; c++) out[c * plane + o] = Math.fround(Math.fround(rgb[p + c] - m[c]) / s[c]);
    }
  }
  return out;
}

/** {tensor, inputSize: [h, w]} from an RGBA buffer of the original image. */
export function preprocess(rgba, width, height, mean, std) {
  const [h, w] = preprocessShape(height, width);
  const rgb = resizeBilinearPIL(rgba, width, height, w, h);
  return { tensor: normalizeAndPad(rgb, w, h, mean, std), inputSize: [h, w] };
}

/** Prompt tokens in the 1024 frame, SAM's order: points, a padding point when there is no box,
 * then the box corners. Inputs are assumed validated (see mobilesam.js). */
export function promptTokens(points, labels, box, height, width) {
  const [newH, newW] = preprocessShape(height, width);
  const sx = newW / width, sy = newH / height;
  const coords = [], labs = [];
  for (let i = 0; i < (points ? points.length : 0); i++) {
    coords.push(points[i][0] * sx, points[i][1] * sy);
    labs.push(labels[i]);
  }
  if (points && points.length && !box) { coords.push(0, 0); labs.push(LABEL.PADDING); }
  if (box) {
    coords.push(box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy);
    labs.push(LABEL.BOX_TOP_LEFT, LABEL.BOX_BOTTOM_RIGHT);
  }
  return { coords: Float32Array.from(coords), labels: Float32Array.from(labs), n: labs.length };
}

// ---- mask upscaling: transforms.upscale_plans as per-axis 3-tap plans -----------------------
// SAM's postprocess (256 -> 1024 bilinear, crop to the resized image, bilinear to the original
// size; torch's align_corners=False) is separable, and on each axis the composition of the two
// 2-tap maps reads at most TAPS consecutive low-res values per output. The plans (start + TAPS
// weights per output, float32 as in the Python runtime) are computed once per image; a mask then
// costs one 3-tap pass over the columns of the low-res rows it needs and one 3-tap pass over the
// output rows, written straight into the Uint8Array mask.

export const TAPS = 3;

/** torch's 1-D bilinear source position (align_corners=False) of output `idx`, clamped at 0:
 * output idx reads floor(src) with weight 1 - frac and the next input with weight frac. */
function bilinearSource(inSize, outSize, idx) {
  return Math.max((idx + 0.5) * (inSize / outSize) - 0.5, 0.0);
}

/** One axis (transforms.axis_taps): 256 -> 1024, crop to `inputLen`, -> `originalLen`.
 * Output j = sum_k w[j*TAPS + k] * low[start[j] + k]. Returns {size, lo, hi, start, w}. */
export function axisPlan(inputLen, originalLen) {
  const start = new Int32Array(originalLen), w = new Float32Array(originalLen * TAPS);
  const acc = new Float64Array(TAPS);
  for (let j = 0; j < originalLen; j++) {
    const src = bilinearSource(inputLen, originalLen, j);
    const k0 = Math.min(Math.floor(src), inputLen - 1), k1 = Math.min(k0 + 1, inputLen - 1), lam = src - k0;
    let s = -1;
    acc.fill(0);
    for (let e = 0; e < 2; e++) { // the two taps of the second map, each through the first map
      const k = e === 0 ? k0 : k1, wk = e === 0 ? 1.0 - lam : lam;
      const src1 = bilinearSource(LOW_RES, IMAGE_SIZE, k);
      const l0 = Math.min(Math.floor(src1), LOW_RES - 1), l1 = Math.min(l0 + 1, LOW_RES - 1), mu = src1 - l0;
      if (s < 0) s = Math.min(l0, LOW_RES - TAPS); // k1 = k0 or k0 + 1 starts at most one later
      acc[l0 - s] += wk * (1.0 - mu);
      acc[l1 - s] += wk * mu;
    }
    start[j] = s;
    for (let t = 0; t < TAPS; t++) w[j * TAPS + t] = acc[t];
  }
  return { size: originalLen, lo: start[0], hi: start[originalLen - 1] + TAPS, start, w };
}

/** {rows, cols} plans for an image of `originalSize` resized to `inputSize` ([h, w] each). */
export function upscalePlans(inputSize, originalSize) {
  return { rows: axisPlan(inputSize[0], originalSize[0]), cols: axisPlan(inputSize[1], originalSize[1]) };
}

/** Columns pass: low-res rows plans.rows.lo..hi of one 256x256 map -> Float32Array((hi-lo)*W). */
function upscaleColumns(low, plans, tmp) {
  const { rows, cols } = plans, W = cols.size, cs = cols.start, cw = cols.w;
  for (let r = rows.lo, o = 0; r < rows.hi; r++) {
    const base = r * LOW_RES;
    for (let j = 0, t = 0; j < W; j++, t += TAPS, o++) {
      const p = base + cs[j];
      tmp[o] = cw[t] * low[p] + cw[t + 1] * low[p + 1] + cw[t + 2] * low[p + 2];
    }
  }
  return tmp;
}

function columnsBuffer(plans, scratch) {
  const n = (plans.rows.hi - plans.rows.lo) * plans.cols.size;
  return scratch && scratch.length >= n ? scratch : new Float32Array(n);
}

/** One 256x256 logit map -> Float32Array(H*W) logits at the original size. */
export function upscaleLogits(low, plans, scratch = null) {
  const { rows, cols } = plans, H = rows.size, W = cols.size, rs = rows.start, rw = rows.w;
  const tmp = upscaleColumns(low, plans, columnsBuffer(plans, scratch));
  const out = new Float32Array(H * W);
  for (let i = 0, t = 0, d = 0; i < H; i++, t += TAPS) {
    const a = rw[t], b = rw[t + 1], c = rw[t + 2];
    const r0 = (rs[i] - rows.lo) * W, r1 = r0 + W, r2 = r1 + W;
    for (let j = 0; j < W; j++, d++) out[d] = a * tmp[r0 + j] + b * tmp[r1 + j] + c * tmp[r2 + j];
  }
  return out;
}

// Columns-pass values all at or below 0, or all above SURE_POSITIVE, decide a mask bit (threshold
// 0) without the 3-tap sum: the row weights are >= 0 and sum to 1 (so one is >= 1/3), hence the
// sum of values <= 0 is <= 0 and the float32 sum of values > 1e-30 is > 0. Exact, not a guess.
const SURE_POSITIVE = 1e-30;

/** One 256x256 logit map -> Uint8Array(H*W) mask (1 where the upscaled logit > threshold), equal
 * to upscaleLogits(...) > threshold without storing the logits. Output rows that read the same
 * three low-res rows (~7 per low-res row when upscaling) share one look at their columns: where
 * the three values agree in sign the bit is copied, and only the other columns are summed (all of
 * them when over a quarter disagree, e.g. a noisy map). `scratch`: a Float32Array to reuse. */
export function upscaleMask(low, plans, threshold = 0.0, scratch = null) {
  const { rows, cols } = plans, H = rows.size, W = cols.size, rs = rows.start, rw = rows.w;
  const tmp = upscaleColumns(low, plans, columnsBuffer(plans, scratch));
  const out = new Uint8Array(H * W);
  const sure = new Uint8Array(W), mixed = new Int32Array(W), limit = threshold === 0.0 ? W >> 2 : -1;
  for (let i0 = 0; i0 < H;) {
    const s = rs[i0];
    let i1 = i0 + 1;
    while (i1 < H && rs[i1] === s) i1++;
    const r0 = (s - rows.lo) * W, r1 = r0 + W, r2 = r1 + W;
    let m = 0;
    for (let j = 0; j < W && m <= limit; j++) {
      const x0 = tmp[r0 + j], x1 = tmp[r1 + j], x2 = tmp[r2 + j];
      if (x0 > SURE_POSITIVE && x1 > SURE_POSITIVE && x2 > SURE_POSITIVE) sure[j] = 1;
      else { sure[j] = 0; if (!(x0 <= 0 && x1 <= 0 && x2 <= 0)) mixed[m++] = j; }
    }
    if (m <= limit) {
      for (let i = i0, t = i0 * TAPS; i < i1; i++, t += TAPS) {
        const a = rw[t], b = rw[t + 1], c = rw[t + 2], d = i * W;
        out.set(sure, d);
        for (let q = 0; q < m; q++) {
          const j = mixed[q];
          out[d + j] = Math.fround(a * tmp[r0 + j] + b * tmp[r1 + j] + c * tmp[r2 + j]) > 0 ? 1 : 0;
        }
      }
    } else { // every pixel summed, two output rows per read of the three input rows
      let i = i0;
      for (; i + 1 < i1; i += 2) {
        const t = i * TAPS, a = rw[t], b = rw[t + 1], c = rw[t + 2], e = rw[t + 3], f = rw[t + 4], g = rw[t + 5];
        const d0 = i * W, d1 = d0 + W;
        for (let j = 0; j < W; j++) {
          const x0 = tmp[r0 + j], x1 = tmp[r1 + j], x2 = tmp[r2 + j];
          out[d0 + j] = Math.fround(a * x0 + b * x1 + c * x2) > threshold ? 1 : 0;
          out[d1 + j] = Math.fround(e * x0 + f * x1 + g * x2) > threshold ? 1 : 0;
        }
      }
      if (i < i1) {
        const t = i * TAPS, a = rw[t], b = rw[t + 1], c = rw[t + 2], d = i * W;
        for (let j = 0; j < W; j++) {
          out[d + j] = Math.fround(a * tmp[r0 + j] + b * tmp[r1 + j] + c * tmp[r2 + j]) > threshold ? 1 : 0;
        }
      }
    }
    i0 = i1;
  }
  return out;
}

// ---- self-check on a known input (used before trusting WebGPU) -------------------------------

/** The known self-check image (RGBA, no resize needed: longest side 1024). */
export function selfCheckImage(width = 1024, height = 768) {
  const data = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 4;
      for (let c = 0; c < 3; c++) data[o + c] = (x * 3 + y * 5 + c * 85 + ((x * y) >> 6)) & 255;
      data[o + 3] = 255;
    }
  }
  return { data, width, height };
}

function b64ToBytes(b64) {
  const s = atob(b64), out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** Compare decoder outputs on the known input with the expectation written at export time
 * (selfcheck.json). Returns {passed, scoresMaxAbs, samplesMaxAbs, signAgreement, reasons}. */
export function compareSelfCheck(iou, lowRes, expected) {
  const tol = expected.tolerance, reasons = [];
  const n = expected.iou_predictions.length, plane = LOW_RES * LOW_RES;
  let finite = true;
  for (let i = 0; i < lowRes.length; i++) if (!Number.isFinite(lowRes[i])) { finite = false; break; }
  let scoresMaxAbs = 0;
  for (let i = 0; i < n; i++) scoresMaxAbs = Math.max(scoresMaxAbs, Math.abs(iou[i] - expected.iou_predictions[i]));
  if (!Array.from(iou).every(Number.isFinite)) scoresMaxAbs = Infinity;
  const stride = expected.sample_stride, samples = expected.low_res_samples;
  let samplesMaxAbs = 0, s = 0;
  for (let m = 0; m < n; m++) {
    for (let y = 0; y < LOW_RES; y += stride) {
      for (let x = 0; x < LOW_RES; x += stride) {
        samplesMaxAbs = Math.max(samplesMaxAbs, Math.abs(lowRes[m * plane + y * LOW_RES + x] - samples[s++]));
      }
    }
  }
  const bits = b64ToBytes(expected.low_res_sign_b64);
  let agree = 0;
  for (let i = 0; i < n * plane; i++) {
    const want = (bits[i >> 3] >> (7 - (i & 7))) & 1;
    if ((lowRes[i] > 0 ? 1 : 0) === want) agree++;
  }
  const signAgreement = agree / (n * plane);
  if (!finite) reasons.push("non-finite logits");
  if (!(scoresMaxAbs <= tol.scores_max_abs)) reasons.push(`scores differ by ${scoresMaxAbs} > ${tol.scores_max_abs}`);
  if (!(samplesMaxAbs <= tol.logits_max_abs)) reasons.push(`logits differ by ${samplesMaxAbs} > ${tol.logits_max_abs}`);
  if (!(signAgreement >= tol.sign_agreement_min)) reasons.push(`mask agreement ${signAgreement} < ${tol.sign_agreement_min}`);
  return { passed: reasons.length === 0, scoresMaxAbs, samplesMaxAbs, signAgreement, reasons };
}
