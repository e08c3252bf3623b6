// Run by tests/test_web.py under Node: transforms.js against arrays the Python runtime wrote.
// argv: transforms.js path, case folder (cases.json + .bin files). Prints one JSON line.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [modPath, dir] = process.argv.slice(2);
const T = await import(pathToFileURL(modPath).href);
const cases = JSON.parse(fs.readFileSync(path.join(dir, 'cases.json')));
const read = (name, Type) => { const b = fs.readFileSync(path.join(dir, name)); return new Type(b.buffer, b.byteOffset, b.byteLength / Type.BYTES_PER_ELEMENT); };
const out = { resize: [], normalize: [], upscale: [], tokens: [] };

for (const c of cases.images) {
  const rgba = read(c.rgba, Uint8Array), want = read(c.resized, Uint8Array);
  const [h, w] = T.preprocessShape(c.height, c.width);
  const got = T.resizeBilinearPIL(rgba, c.width, c.height, w, h);
  let diff = 0;
  for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) diff++;
  out.resize.push({ name: c.name, shape: [h, w], want_len: want.length, got_len: got.length, diff_bytes: diff });
  if (c.normalized) {
    const x = T.normalizeAndPad(got, w, h, cases.mean, cases.std), wantX = read(c.normalized, Float32Array);
    let bad = 0;
    for (let i = 0; i < wantX.length; i++) if (x[i] !== wantX[i]) bad++;
    out.normalize.push({ name: c.name, len: x.length, want_len: wantX.length, diff: bad });
  }
}
for (const u of cases.upscale) {
  const low = read(u.low, Float32Array), want = read(u.logits, Float32Array);
  const plans = T.upscalePlans(u.input_size, u.original_size);
  const got = T.upscaleLogits(low, plans);
  const mask = T.upscaleMask(low, plans, 0.0, new Float32Array(7)); // a scratch too small is replaced
  let maxAbs = 0, maskSelfDiff = 0, maskDiffMargin = 0;
  for (let i = 0; i < want.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(got[i] - want[i]));
    if (mask[i] !== (got[i] > 0 ? 1 : 0)) maskSelfDiff++; // the mask must be exactly its own logits > 0
    if (mask[i] !== (want[i] > 0 ? 1 : 0)) maskDiffMargin = Math.max(maskDiffMargin, Math.abs(want[i]));
  }
  out.upscale.push({ input_size: u.input_size, original_size: u.original_size, len: got.length, want_len: want.length,
    max_abs: maxAbs, mask_len: mask.length, mask_self_diff: maskSelfDiff, mask_diff_margin: maskDiffMargin });
}
for (const t of cases.tokens) {
  const r = T.promptTokens(t.points, t.labels, t.box, t.height, t.width);
  out.tokens.push({ coords: Array.from(r.coords), labels: Array.from(r.labels) });
}
// the self-check comparator: passes on its own expectation, fails on perturbed or broken outputs
const sc = cases.selfcheck;
const iou = Float32Array.from(sc.iou), lowRes = read(sc.low, Float32Array);
const noisy = lowRes.map((v, i) => (i % 7 === 0 ? -v : v));
const nan = lowRes.slice(); nan[12345] = NaN;
out.selfcheck = {
  same: T.compareSelfCheck(iou, lowRes, sc.expected).passed,
  flipped: T.compareSelfCheck(iou, noisy, sc.expected).passed,
  nan: T.compareSelfCheck(iou, nan, sc.expected).passed,
  scores: T.compareSelfCheck(iou.map((v) => v + 0.5), lowRes, sc.expected).passed,
};
const img = T.selfCheckImage(sc.expected.image.width, sc.expected.image.height);
const wantImg = read(sc.image, Uint8Array);
let imgDiff = 0;
for (let i = 0, j = 0; i < wantImg.length; i += 3, j += 4) for (let c = 0; c < 3; c++) if (img.data[j + c] !== wantImg[i + c]) imgDiff++;
out.selfcheck.image_diff = imgDiff;
console.log(JSON.stringify(out));
