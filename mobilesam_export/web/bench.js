// In-page benchmark: session creation, encoder, and predict per click (decoder + 3 masks upscaled
// to the original size), on the WASM backend with a given thread count. Used by
// `python -m benchmarks.web`; also callable from a page: (await import('./bench.js')).runBenchmark(...).
import { load } from './mobilesam.js';

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b), q = (p) => s[Math.min(s.length - 1, Math.round(p * (s.length - 1)))];
  return { p50_ms: q(0.5), p90_ms: q(0.9), min_ms: s[0], runs: s.length };
}

/** {imageData, threads, encoderRuns, clicks, baseUrl} -> timings (ms) and the backend info. */
export async function runBenchmark({ imageData, threads = 1, encoderRuns = 3, clicks = 10, baseUrl = './' }) {
  const t0 = performance.now();
  const p = await load(baseUrl, { threads, executionProvider: 'wasm' });
  const loadMs = performance.now() - t0;
  try {
    const { width: w, height: h } = imageData;
    await p.setImage(imageData); // warm-up (first run pays one-off allocations)
    const enc = [], encWorker = [], click = [], dec = [], beyond = [];
    for (let i = 0; i < encoderRuns; i++) {
      await p.setImage(imageData);
      enc.push(p.timings.setImageMs); encWorker.push(p.timings.encoderMs);
    }
    await p.predict({ points: [[w / 2, h / 2]], labels: [1], multimask: true });
    for (let i = 0; i < clicks; i++) {
      const x = w * (0.1 + 0.8 * ((i * 0.618) % 1)), y = h * (0.2 + 0.6 * ((i * 0.382) % 1));
      const r = await p.predict({ points: [[x, y]], labels: [1], multimask: true });
      if (r.masks.length !== 3 || r.masks[0].length !== w * h) throw new Error('unexpected masks');
      click.push(p.timings.predictMs); dec.push(p.timings.decoderMs);
      beyond.push(p.timings.predictMs - p.timings.decoderMs); // masks upscaled + messages to/from the worker
    }
    return {
      info: p.info, load_ms: loadMs, session_ms: p.info.timings.sessionMs, fetch_verify_ms: p.info.timings.fetchVerifyMs,
      set_image: stats(enc), encoder: stats(encWorker), predict_click: stats(click), decoder: stats(dec),
      beyond_decoder: stats(beyond),
    };
  } finally {
    await p.dispose();
  }
}
