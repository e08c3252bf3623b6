// mobilesam.js: MobileSAM in the browser, mirroring the Python runtime's SamPredictor.
//
//   import { load } from './mobilesam.js';
//   const predictor = await load('./');                // a web bundle's folder (its manifest.json)
//   await predictor.setImage(imageData);               // ImageData, RGBA; alpha is ignored
//   const { masks, scores, lowResLogits, width, height } =
//       await predictor.predict({ points: [[x, y]], labels: [1], box: null, multimask: true });
//
// Coordinates are original-image pixels. Inference runs in a Web Worker (worker.js beside this
// file); sessions are created once, after each graph's sha256 is checked against manifest.json.
// Plain ES module, no bundler: copy mobilesam.js, worker.js and transforms.js into an app.

// 2 added the prompt batch (the page sends one prompt); 3 added the optional split decoder
// graphs, which the page does not use: it reads the encoder and decoder of all three alike.
const CONTRACT_VERSIONS = [1, 2, 3];

export class MobileSamError extends Error {}

function isInt(v) { return Number.isInteger(v) && v > 0; }
function finite(v) { return typeof v === 'number' && Number.isFinite(v); }

function checkImageData(img) {
  const isImageData = typeof ImageData !== 'undefined' && img instanceof ImageData;
  if (!isImageData && !(img && isInt(img.width) && isInt(img.height)
      && (img.data instanceof Uint8ClampedArray || img.data instanceof Uint8Array))) {
    throw new TypeError('setImage(imageData): expected an ImageData (RGBA, e.g. from ' +
      `canvas.getContext('2d').getImageData), got ${img === null ? 'null' : typeof img}`);
  }
  if (!isInt(img.width) || !isInt(img.height)) throw new RangeError(`setImage(imageData): empty image ${img.width}x${img.height}`);
  if (img.data.length !== img.width * img.height * 4) {
    throw new RangeError(`setImage(imageData): data has ${img.data.length} bytes, an RGBA ` +
      `${img.width}x${img.height} image has ${img.width * img.height * 4}`);
  }
}

function checkXY(p, what, w, h) {
  if (!Array.isArray(p) && !ArrayBuffer.isView(p)) throw new TypeError(`${what} must be an [x, y] pair, got ${JSON.stringify(p)}`);
  if (p.length !== 2 || !finite(p[0]) || !finite(p[1])) throw new TypeError(`${what} must be an [x, y] pair of finite numbers, got ${JSON.stringify(Array.from(p))}`);
  if (p[0] < 0 || p[0] > w || p[1] < 0 || p[1] > h) {
    throw new RangeError(`${what} (${p[0]}, ${p[1]}) is outside the ${w}x${h} image (original-image pixels)`);
  }
}

/** Validate a predict() prompt against the current image; returns the normalised prompt. */
export function checkPrompt(prompt, width, height) {
  if (prompt === null || typeof prompt !== 'object') throw new TypeError('predict(prompt): expected an object {points, labels, box, multimask}');
  const { points = null, labels = null, box = null, multimask = true, maskInput = null } = prompt;
  const known = new Set(['points', 'labels', 'box', 'multimask', 'maskInput']);
  for (const k of Object.keys(prompt)) if (!known.has(k)) throw new TypeError(`predict(prompt): unknown option ${k}; known: ${[...known].join(', ')}`);
  if (typeof multimask !== 'boolean') throw new TypeError(`predict: multimask must be true or false, got ${JSON.stringify(multimask)}`);
  const pts = points === null ? [] : points;
  if (!Array.isArray(pts)) throw new TypeError('predict: points must be an array of [x, y] pairs');
  if (pts.length && labels === null) throw new TypeError('predict: labels must be given with points (1 foreground, 0 background)');
  if (labels !== null && (!Array.isArray(labels) && !ArrayBuffer.isView(labels))) throw new TypeError('predict: labels must be an array');
  if (labels !== null && labels.length !== pts.length) throw new RangeError(`predict: ${labels.length} labels for ${pts.length} points`);
  pts.forEach((p, i) => checkXY(p, `predict: point ${i}`, width, height));
  (labels || []).forEach((l, i) => {
    if (l !== 0 && l !== 1) throw new RangeError(`predict: labels[${i}] must be 1 (foreground) or 0 (background), got ${JSON.stringify(l)}`);
  });
  let b = null;
  if (box !== null && box !== undefined) {
    if ((!Array.isArray(box) && !ArrayBuffer.isView(box)) || box.length !== 4 || !Array.from(box).every(finite)) {
      throw new TypeError(`predict: box must be [x1, y1, x2, y2] (finite numbers), got ${JSON.stringify(box)}`);
    }
    b = Array.from(box);
    checkXY([b[0], b[1]], 'predict: box top-left', width, height);
    checkXY([b[2], b[3]], 'predict: box bottom-right', width, height);
    if (b[2] < b[0] || b[3] < b[1]) throw new RangeError(`predict: box [${b}] must have x1 <= x2 and y1 <= y2`);
  }
  if (!pts.length && !b) throw new MobileSamError('predict needs at least one point or a box');
  if (maskInput !== null && !(maskInput instanceof Float32Array && maskInput.length === 256 * 256)) {
    throw new TypeError('predict: maskInput must be a Float32Array(256*256), one map of a previous lowResLogits');
  }
  return { points: pts.map((p) => [p[0], p[1]]), labels: Array.from(labels || []), box: b, multimask, maskInput };
}

class MobileSamPredictor {
  constructor(worker, manifest, info) {
    this.manifest = manifest;
    this.info = info; // {ep, threads, crossOriginIsolated, selfCheck, log, onnxruntimeWeb}
    this.timings = {};
    this._worker = worker;
    this._pending = new Map();
    this._next = 0;
    this._image = null;
    worker.onmessage = (e) => {
      const { id, ok, result, error } = e.data;
      const p = this._pending.get(id);
      this._pending.delete(id);
      if (p) (ok ? p.resolve(result) : p.reject(new MobileSamError(error)));
    };
    worker.onerror = (e) => {
      for (const p of this._pending.values()) p.reject(new MobileSamError(`worker error: ${e.message}`));
      this._pending.clear();
    };
  }

  _call(op, args, transfer = []) {
    if (!this._worker) return Promise.reject(new MobileSamError('the predictor was disposed'));
    const id = this._next++;
    return new Promise((resolve, reject) => {
      this._pending.set(id, { resolve, reject });
      this._worker.postMessage({ id, op, args }, transfer);
    });
  }

  /** Compute the embedding of an image (ImageData, RGBA). */
  async setImage(imageData) {
    checkImageData(imageData);
    this._image = null;
    const rgba = new Uint8ClampedArray(imageData.data); // a copy: the caller keeps its ImageData
    const t0 = performance.now();
    const { timings } = await this._call('setImage', { rgba, width: imageData.width, height: imageData.height }, [rgba.buffer]);
    this.timings = { ...timings, setImageMs: performance.now() - t0 };
    this._image = { width: imageData.width, height: imageData.height };
  }

  /** Use an embedding computed elsewhere (Float32Array(256*64*64)) for an image of width x height. */
  async setImageEmbedding(embedding, width, height) {
    if (!(embedding instanceof Float32Array) || embedding.length !== 256 * 64 * 64) {
      throw new TypeError('setImageEmbedding: embedding must be a Float32Array(256*64*64)');
    }
    if (!isInt(width) || !isInt(height)) throw new RangeError(`setImageEmbedding: bad image size ${width}x${height}`);
    await this._call('setEmbedding', { embedding: embedding.slice(), width, height });
    this._image = { width, height };
  }

  /** The current image's embedding, Float32Array(256*64*64). */
  async getImageEmbedding() {
    if (!this._image) throw new MobileSamError('no image is set: call setImage(imageData) first');
    return (await this._call('getEmbedding')).embedding;
  }

  /**
   * Masks for a prompt on the current image (original-image pixels):
   * {points: [[x, y], ...], labels: [1|0, ...], box: [x1, y1, x2, y2] | null, multimask: true,
   *  maskInput: Float32Array(256*256) | null}
   * -> {masks: [Uint8Array(H*W), ...], scores: Float32Array, lowResLogits: Float32Array(C*256*256),
   *     width, height}; C is 3 with multimask, else 1.
   */
  async predict(prompt) {
    if (!this._image) throw new MobileSamError('no image is set: call setImage(imageData) first');
    const p = checkPrompt(prompt, this._image.width, this._image.height);
    const args = { ...p, maskInput: p.maskInput ? p.maskInput.slice() : null };
    const t0 = performance.now();
    const out = await this._call('predict', args);
    this.timings = { ...this.timings, ...out.timings, predictMs: performance.now() - t0 };
    delete out.timings;
    return out;
  }

  /** Re-run the known-input self-check with the current sessions. */
  selfCheck() { return this._call('selfCheck'); }

  /** Release the sessions and stop the worker. */
  async dispose() {
    if (!this._worker) return;
    try { await this._call('dispose'); } finally { this._worker.terminate(); this._worker = null; }
  }
}

/**
 * Load a web bundle. options: {threads: 'auto' | n, executionProvider: 'auto' | 'wasm' | 'webgpu',
 * selfCheck: false, ortUrl: baseUrl + 'ort/', workerUrl: worker.js beside this module}.
 * WASM threads need a cross-origin isolated page (COOP same-origin + COEP require-corp); else 1.
 * 'auto' uses WebGPU only when navigator.gpu exists and the known-input self-check passes.
 */
export async function load(baseUrl = './', options = {}) {
  const base = new URL(baseUrl, globalThis.location ? globalThis.location.href : undefined);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  const { threads = 'auto', executionProvider = 'auto', selfCheck = false } = options;
  if (!['auto', 'wasm', 'webgpu'].includes(executionProvider)) {
    throw new TypeError(`load: executionProvider must be 'auto', 'wasm' or 'webgpu', got ${JSON.stringify(executionProvider)}`);
  }
  if (threads !== 'auto' && !isInt(threads)) throw new TypeError(`load: threads must be 'auto' or a positive integer, got ${JSON.stringify(threads)}`);
  const res = await fetch(new URL('manifest.json', base), { cache: 'no-cache' });
  if (!res.ok) throw new MobileSamError(`${base}manifest.json: HTTP ${res.status} (is this a web bundle folder?)`);
  let manifest;
  try { manifest = await res.json(); } catch (e) { throw new MobileSamError(`${base}manifest.json is not valid JSON: ${e.message}`); }
  const c = manifest.contract || {};
  if (!CONTRACT_VERSIONS.includes(c.contract_version)) {
    throw new MobileSamError(`${base}: I/O contract version ${c.contract_version}; mobilesam.js reads ${CONTRACT_VERSIONS.join(', ')}. Re-export the bundle.`);
  }
  if (c.image_size !== 1024 || !manifest.graphs || !manifest.graphs.encoder || !manifest.graphs.decoder) {
    throw new MobileSamError(`${base}manifest.json does not describe MobileSAM's two graphs`);
  }
  const isolated = globalThis.crossOriginIsolated === true;
  const wanted = threads === 'auto' ? Math.min(4, (globalThis.navigator && navigator.hardwareConcurrency) || 1) : threads;
  const nThreads = isolated ? wanted : 1;
  const ortUrl = new URL(options.ortUrl || 'ort/', base).href;
  const worker = new Worker(options.workerUrl || new URL('./worker.js', import.meta.url), { type: 'module' });
  const predictor = new MobileSamPredictor(worker, manifest, null);
  let init;
  try {
    init = await predictor._call('init', { baseUrl: base.href, ortUrl, manifest, threads: nThreads, ep: executionProvider, selfCheck });
  } catch (e) {
    worker.terminate();
    throw e;
  }
  predictor.info = {
    ...init, crossOriginIsolated: isolated, threadsRequested: wanted,
    onnxruntimeWeb: (manifest.notes && manifest.notes.onnxruntime_web || {}).version,
  };
  if (!isolated && wanted > 1) predictor.info.log.push('wasm: 1 thread (the page is not cross-origin isolated)');
  return predictor;
}
