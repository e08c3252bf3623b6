// MobileSAM inference in a Web Worker (module worker started by mobilesam.js): both ONNX sessions
// are created once, here; the page only posts images and prompts. Messages are handled one at a
// time, in order. Request {id, op, args} -> reply {id, ok, result | error}.
import * as T from './transforms.js';

let ort = null;
let sessions = null; // {encoder, decoder, decoderInputs}
let cfg = null; // {manifest, mean, std, ep, threads, ...}
let image = null; // {embedding: Float32Array, width, height, plans, scratch}

async function sha256Hex(buffer) {
  const digest = await crypto.subtle.digest('SHA-256', buffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Fetch a bundle file and check its sha256 against manifest.json before anyone uses it. */
async function fetchVerified(baseUrl, manifest, name) {
  const info = manifest.files && manifest.files[name];
  if (!info) throw new Error(`manifest.json lists no file ${name}: not a complete web bundle`);
  const res = await fetch(new URL(name, baseUrl), { cache: 'no-cache' });
  if (!res.ok) throw new Error(`${name}: HTTP ${res.status} from ${new URL(name, baseUrl)}`);
  const buffer = await res.arrayBuffer();
  const got = await sha256Hex(buffer);
  if (got !== info.sha256) {
    throw new Error(`${name} does not match manifest.json (sha256 ${got.slice(0, 12)}… != ` +
      `${info.sha256.slice(0, 12)}…): a half-updated or mixed deployment; deploy the whole bundle again`);
  }
  return new Uint8Array(buffer);
}

async function createSessions(args, ep) {
  const { baseUrl, ortUrl, manifest, threads } = args;
  const build = ep === 'webgpu' ? 'ort.webgpu.min.mjs' : 'ort.wasm.min.mjs';
  ort = await import(new URL(build, ortUrl).href);
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.proxy = false; // already off the main thread
  ort.env.wasm.wasmPaths = ortUrl;
  const wasm = ep === 'webgpu' ? 'ort-wasm-simd-threaded.asyncify.wasm' : 'ort-wasm-simd-threaded.wasm';
  const ortDir = new URL(ortUrl).href.slice(new URL(baseUrl).href.length);
  ort.env.wasm.wasmBinary = (await fetchVerified(baseUrl, manifest, ortDir + wasm)).buffer;
  const t0 = performance.now();
  const graphs = {};
  for (const role of ['encoder', 'decoder']) graphs[role] = await fetchVerified(baseUrl, manifest, manifest.graphs[role]);
  const t1 = performance.now();
  const opts = { executionProviders: [ep], graphOptimizationLevel: 'all' };
  const encoder = await ort.InferenceSession.create(graphs.encoder, opts);
  const decoder = await ort.InferenceSession.create(graphs.decoder, opts);
  return {
    encoder, decoder, decoderInputs: decoder.inputNames,
    timings: { fetchVerifyMs: t1 - t0, sessionMs: performance.now() - t1 },
  };
}

async function release() {
  if (sessions) { await sessions.encoder.release(); await sessions.decoder.release(); }
  sessions = null; image = null;
}

async function encode(rgba, width, height) {
  const t0 = performance.now();
  const { tensor, inputSize } = T.preprocess(rgba, width, height, cfg.mean, cfg.std);
  const t1 = performance.now();
  const out = await sessions.encoder.run({ image: new ort.Tensor('float32', tensor, [1, 3, T.IMAGE_SIZE, T.IMAGE_SIZE]) });
  const embedding = out.image_embeddings.data;
  const t2 = performance.now();
  return { embedding, inputSize, timings: { preprocessMs: t1 - t0, encoderMs: t2 - t1 } };
}

async function decode(embedding, coords, labels, n, maskInput) {
  const low = T.LOW_RES;
  const feeds = {
    image_embeddings: new ort.Tensor('float32', embedding, [1, 256, 64, 64]),
    point_coords: new ort.Tensor('float32', coords, [1, n, 2]),
    point_labels: new ort.Tensor('float32', labels, [1, n]),
    mask_input: new ort.Tensor('float32', maskInput || new Float32Array(low * low), [1, 1, low, low]),
    has_mask_input: new ort.Tensor('float32', Float32Array.of(maskInput ? 1 : 0), [1]),
  };
  const used = {};
  for (const name of sessions.decoderInputs) used[name] = feeds[name];
  const out = await sessions.decoder.run(used);
  return { iou: out.iou_predictions.data, lowRes: out.low_res_masks.data };
}

function setImageState(embedding, width, height) {
  const [h, w] = T.preprocessShape(height, width);
  const plans = T.upscalePlans([h, w], [height, width]); // once per image: every click reuses them
  image = { embedding, width, height, plans, scratch: new Float32Array((plans.rows.hi - plans.rows.lo) * width) };
}

/** Run the known input through the whole pipeline and compare with selfcheck.json. */
async function runSelfCheck(expected) {
  const known = T.selfCheckImage(expected.image.width, expected.image.height);
  const { embedding } = await encode(known.data, known.width, known.height);
  const [x, y] = expected.point;
  const { coords, labels, n } = T.promptTokens([[x, y]], [1], null, known.height, known.width);
  const { iou, lowRes } = await decode(embedding, coords, labels, n, null);
  return T.compareSelfCheck(iou, lowRes, expected);
}

const OPS = {
  async init(args) {
    const { manifest, ep, selfCheck } = args;
    cfg = { manifest, baseUrl: args.baseUrl, mean: manifest.contract.pixel_mean, std: manifest.contract.pixel_std };
    const log = [];
    let expected = null;
    if (ep === 'auto' || ep === 'webgpu' || selfCheck) {
      const bytes = await fetchVerified(args.baseUrl, manifest, 'selfcheck.json');
      expected = JSON.parse(new TextDecoder().decode(bytes));
    }
    const candidates = ep === 'auto' ? (self.navigator && navigator.gpu ? ['webgpu', 'wasm'] : ['wasm']) : [ep];
    if (ep === 'auto' && !(self.navigator && navigator.gpu)) log.push('webgpu: navigator.gpu is absent');
    for (const cand of candidates) {
      try {
        if (cand === 'webgpu' && !(await navigator.gpu.requestAdapter())) throw new Error('no WebGPU adapter');
        sessions = await createSessions(args, cand);
        let check = null;
        if (cand === 'webgpu' || selfCheck) {
          check = await runSelfCheck(expected);
          if (!check.passed) {
            log.push(`${cand}: self-check failed (${check.reasons.join('; ')})`);
            await release();
            if (ep !== 'auto') throw new Error(`${cand} failed its self-check on the known input: ${check.reasons.join('; ')}`);
            continue;
          }
        }
        cfg.ep = cand;
        return { ep: cand, threads: ort.env.wasm.numThreads, selfCheck: check, log, timings: sessions.timings };
      } catch (err) {
        if (ep !== 'auto' || cand === 'wasm') throw err;
        log.push(`${cand}: ${err.message || err}`);
        await release();
      }
    }
    throw new Error(`no execution provider worked: ${log.join('; ')}`);
  },

  async setImage({ rgba, width, height }) {
    image = null;
    const { embedding, timings } = await encode(rgba, width, height);
    setImageState(embedding, width, height);
    return { result: { timings } };
  },

  async setEmbedding({ embedding, width, height }) {
    setImageState(embedding, width, height);
    return { result: {} };
  },

  async getEmbedding() {
    if (!image) throw new Error('no image is set: call setImage(imageData) first');
    const copy = image.embedding.slice();
    return { result: { embedding: copy }, transfer: [copy.buffer] };
  },

  async predict({ points, labels, box, maskInput, multimask }) {
    if (!image) throw new Error('no image is set: call setImage(imageData) first');
    const tok = T.promptTokens(points, labels, box, image.height, image.width);
    const t0 = performance.now();
    const { iou, lowRes } = await decode(image.embedding, tok.coords, tok.labels, tok.n, maskInput);
    const t1 = performance.now();
    const plane = T.LOW_RES * T.LOW_RES;
    const picks = multimask ? [1, 2, 3] : [0];
    const scores = Float32Array.from(picks, (i) => iou[i]);
    const lowResLogits = new Float32Array(picks.length * plane);
    picks.forEach((m, k) => lowResLogits.set(lowRes.subarray(m * plane, (m + 1) * plane), k * plane));
    const masks = picks.map((_, k) => T.upscaleMask(lowResLogits.subarray(k * plane, (k + 1) * plane), image.plans, 0.0, image.scratch));
    const t2 = performance.now();
    return {
      result: { masks, scores, lowResLogits, width: image.width, height: image.height,
        timings: { decoderMs: t1 - t0, postprocessMs: t2 - t1 } },
      transfer: [lowResLogits.buffer, ...masks.map((m) => m.buffer)],
    };
  },

  async selfCheck() {
    const bytes = await fetchVerified(cfg.baseUrl, cfg.manifest, 'selfcheck.json');
    return { result: await runSelfCheck(JSON.parse(new TextDecoder().decode(bytes))) };
  },

  async dispose() { await release(); return { result: {} }; },
};

let queue = Promise.resolve();
self.onmessage = (event) => {
  const { id, op, args } = event.data;
  queue = queue.then(async () => {
    try {
      if (!OPS[op]) throw new Error(`unknown worker op ${op}`);
      if (op !== 'init' && !sessions) throw new Error('the predictor is not loaded (or was disposed)');
      const out = await OPS[op](args || {});
      const { result, transfer } = op === 'init' ? { result: out } : out;
      self.postMessage({ id, ok: true, result }, transfer || []);
    } catch (err) {
      self.postMessage({ id, ok: false, error: String((err && err.message) || err) });
    }
  });
};
