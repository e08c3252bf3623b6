"""Drive a web bundle in headless Chromium (Debian's /usr/bin/chromium, via playwright; never a
browser download): a SamPredictor-like object whose calls run `mobilesam.js` in a real page, so
the parity checker and the benchmarks treat a web bundle like any other."""

from __future__ import annotations

import atexit
import base64
import os
import shutil
from pathlib import Path

import numpy as np

from mobilesam_runtime import transforms
from mobilesam_runtime.manifest import read_manifest

from .serve import start_background

CHROMIUM = os.environ.get("MOBILESAM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run")
INSTALL_HINT = "apt-get update && apt-get install -y chromium (and pip install playwright)"
HARNESS = "/_driver.html"
HARNESS_HTML = b"""<!doctype html><meta charset="utf-8"><title>mobilesam driver</title>
<script type="module">
import * as mobilesam from './mobilesam.js';
import * as transforms from './transforms.js';
window.mobilesam = mobilesam;
window.transforms = transforms;
window.b64 = {
  enc(bytes) {
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000) {
      s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(s);
  },
  dec(str) {
    const s = atob(str), out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  },
};
window.driverReady = true;
</script>"""
TIMEOUT_MS = 600_000


class WebDriverError(RuntimeError):
    """Chromium/playwright is missing, or the page failed."""


def chromium_available() -> bool:
    """Chromium at CHROMIUM and the playwright package are both present."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return Path(CHROMIUM).is_file() or shutil.which(CHROMIUM) is not None


def _b64(arr: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode()


def _unb64(s: str, dtype) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), dtype=dtype)


_SHARED: dict = {"playwright": None, "browser": None}


def _shutdown() -> None:
    for key, stop in (("browser", "close"), ("playwright", "stop")):
        obj, _SHARED[key] = _SHARED[key], None
        if obj is not None:
            try:
                getattr(obj, stop)()
            except Exception:  # already gone at interpreter exit
                pass


def shared_browser():
    """One headless Chromium per process (playwright's sync API allows one driver per thread);
    each WebPage gets its own browser context. Closed at exit."""
    from playwright.sync_api import sync_playwright

    if _SHARED["browser"] is None or not _SHARED["browser"].is_connected():
        if _SHARED["playwright"] is None:
            _SHARED["playwright"] = sync_playwright().start()
            atexit.register(_shutdown)
        _SHARED["browser"] = _SHARED["playwright"].chromium.launch(
            executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS))
    return _SHARED["browser"]


class WebPage:
    """A server for the bundle + a fresh page of the harness in the shared headless Chromium.
    Close with .close() (the page's context and the server; the browser stays for the next)."""

    def __init__(self, bundle_dir: str | Path, isolate: bool = True) -> None:
        if not chromium_available():
            raise WebDriverError(f"headless Chromium is not available ({CHROMIUM}): {INSTALL_HINT}")
        self.server, self.url = start_background(bundle_dir, isolate=isolate,
                                                 extra={HARNESS: ("text/html; charset=utf-8", HARNESS_HTML)})
        self.console: list[str] = []
        self.context = None
        try:
            self.context = shared_browser().new_context()
            self.page = self.context.new_page()
            self.page.set_default_timeout(TIMEOUT_MS)
            self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
            self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
            self.goto(HARNESS)
        except BaseException:
            self.close()
            raise

    def goto(self, path: str) -> None:
        self.page.goto(self.url + path.lstrip("/"))
        if path == HARNESS:
            self.page.wait_for_function("window.driverReady === true")

    def evaluate(self, script: str, arg=None):
        """page.evaluate, with the page's message in a WebDriverError."""
        from playwright.sync_api import Error as PlaywrightError

        try:
            return self.page.evaluate(script, arg)
        except PlaywrightError as e:
            raise WebDriverError(str(e).splitlines()[0]) from e

    def close(self) -> None:
        if self.context is not None:
            try:
                self.context.close()
            except Exception:  # the browser is gone already
                pass
            self.context = None
        self.server.shutdown()
        self.server.server_close()


class WebPredictor:
    """SamPredictor's interface (set_image, predict, get_image_embedding, features) over
    mobilesam.js in headless Chromium. predict() returns boolean masks as the page computes
    them (mobilesam.js thresholds in the page), whatever `return_logits` says."""

    def __init__(self, bundle_dir: str | Path, threads: int | str = "auto", execution_provider: str = "wasm",
                 isolate: bool = True, self_check: bool = False, check_preprocess: bool = True) -> None:
        self.bundle_dir = Path(bundle_dir)
        self.check_preprocess = check_preprocess
        self.preprocess_max_abs: float | None = None  # page's encoder input vs the Python runtime's
        self.manifest = read_manifest(self.bundle_dir, verify=True)
        self.web = WebPage(self.bundle_dir, isolate=isolate)
        self.timings: dict[str, float] = {}
        self._size: tuple[int, int] | None = None
        try:
            self.info = self.web.evaluate(
                "async (o) => { window.pred = await mobilesam.load('./', o); return window.pred.info; }",
                {"threads": threads, "executionProvider": execution_provider, "selfCheck": self_check})
        except BaseException:
            self.web.close()
            raise

    def close(self) -> None:
        self.web.close()

    def __enter__(self) -> WebPredictor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def set_image(self, image: np.ndarray) -> None:
        """HxWx3 uint8 RGB, sent to the page as an ImageData."""
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
                and image.shape[2] == 3):
            raise ValueError("image must be an HxWx3 uint8 RGB array")
        h, w = image.shape[:2]
        rgba = np.concatenate([image, np.full((h, w, 1), 255, np.uint8)], axis=2)
        out = self.web.evaluate(
            """async ([data, w, h, check]) => {
                 const img = new ImageData(new Uint8ClampedArray(b64.dec(data).buffer), w, h);
                 await pred.setImage(img);
                 const c = pred.manifest.contract;
                 const x = check ? transforms.preprocess(img.data, w, h, c.pixel_mean, c.pixel_std).tensor
                                 : null;
                 return {timings: pred.timings, x: x && b64.enc(new Uint8Array(x.buffer))}; }""",
            [_b64(rgba), w, h, self.check_preprocess])
        self.timings = out["timings"]
        self._size = (h, w)
        if out["x"] is not None:  # transforms.js (as the worker runs it) vs mobilesam_runtime.transforms
            want = transforms.normalize_and_pad(transforms.resize_image(image))
            got = _unb64(out["x"], np.float32).reshape(want.shape)
            diff = float(np.abs(got - want).max())
            self.preprocess_max_abs = max(diff, self.preprocess_max_abs or 0.0)

    def extra_summary(self) -> dict:
        """For the parity report: the worst pre-processing difference seen by set_image."""
        return {} if self.preprocess_max_abs is None else {"preprocess_max_abs": self.preprocess_max_abs}

    def get_image_embedding(self) -> np.ndarray:
        data = self.web.evaluate(
            "async () => b64.enc(new Uint8Array((await pred.getImageEmbedding()).buffer))")
        return _unb64(data, np.float32).reshape(1, 256, 64, 64).copy()

    @property
    def features(self) -> np.ndarray:
        return self.get_image_embedding()

    @features.setter
    def features(self, embedding: np.ndarray) -> None:
        if self._size is None:
            raise ValueError("set_image() first")
        emb = np.asarray(embedding, np.float32).reshape(-1)
        self.web.evaluate(
            "async ([d, w, h]) => pred.setImageEmbedding(new Float32Array(b64.dec(d).buffer), w, h)",
            [_b64(emb), self._size[1], self._size[0]])

    def predict(self, point_coords=None, point_labels=None, box=None, mask_input=None,
                multimask_output: bool = True, return_logits: bool = False):
        """(masks CxHxW bool, scores C, low_res_logits Cx256x256), computed in the page."""
        prompt: dict = {"multimask": bool(multimask_output)}
        if point_coords is not None:
            prompt["points"] = np.asarray(point_coords, np.float64).reshape(-1, 2).tolist()
            prompt["labels"] = [int(v) for v in np.asarray(point_labels).reshape(-1)]
        if box is not None:
            prompt["box"] = np.asarray(box, np.float64).reshape(4).tolist()
        mask = None if mask_input is None else _b64(np.asarray(mask_input, np.float32).reshape(-1))
        out = self.web.evaluate(
            """async ([prompt, mask]) => {
                 if (mask) prompt.maskInput = new Float32Array(b64.dec(mask).buffer);
                 const r = await pred.predict(prompt);
                 const all = new Uint8Array(r.masks.length * r.width * r.height);
                 r.masks.forEach((m, i) => all.set(m, i * r.width * r.height));
                 return {masks: b64.enc(all), scores: b64.enc(new Uint8Array(r.scores.buffer)),
                         low: b64.enc(new Uint8Array(r.lowResLogits.buffer)), w: r.width, h: r.height,
                         n: r.masks.length, timings: pred.timings}; }""", [prompt, mask])
        self.timings = out["timings"]
        masks = _unb64(out["masks"], np.uint8).reshape(out["n"], out["h"], out["w"]).astype(bool)
        scores = _unb64(out["scores"], np.float32).copy()
        low = _unb64(out["low"], np.float32).reshape(out["n"], 256, 256).copy()
        return masks, scores, low


def load(bundle_dir: str | Path, **options) -> WebPredictor:
    """A WebPredictor for a web bundle (options: threads, execution_provider, isolate, self_check)."""
    return WebPredictor(bundle_dir, **options)


def demo_screenshot(bundle_dir: str | Path, image_path: str | Path, out_png: str | Path,
                    clicks: tuple[tuple[float, float], ...] = ((0.278, 0.3125),),
                    box: tuple[float, float, float, float] | None = None) -> dict:
    """Open the bundle's index.html, load an image through its file picker, click the given
    points (fractions of the image), optionally drag a box, and save a screenshot. Returns what
    the page shows (status, mask buttons, times, overlay pixels)."""
    web = WebPage(bundle_dir)
    try:
        page = web.page
        page.set_viewport_size({"width": 1280, "height": 760})
        web.goto("index.html")
        page.wait_for_function("window.mobilesamReady === true || window.mobilesamError !== undefined")
        if page.evaluate("window.mobilesamError"):
            raise WebDriverError(page.evaluate("window.mobilesamError"))
        page.set_input_files("#file", str(image_path))
        page.wait_for_function("window.mobilesamImageSet === true")
        r = page.locator("#overlay").bounding_box()
        n = 0
        for fx, fy in clicks:
            page.mouse.click(r["x"] + fx * r["width"], r["y"] + fy * r["height"])
            n += 1
            page.wait_for_function(f"(window.mobilesamPredictions || 0) >= {n}")
        if box is not None:
            x0, y0, x1, y1 = box
            page.mouse.move(r["x"] + x0 * r["width"], r["y"] + y0 * r["height"])
            page.mouse.down()
            page.mouse.move(r["x"] + x1 * r["width"], r["y"] + y1 * r["height"], steps=8)
            page.mouse.up()
            n += 1
            page.wait_for_function(f"(window.mobilesamPredictions || 0) >= {n}")
        shown = page.evaluate("""() => {
            const o = document.getElementById('overlay');
            const d = o.getContext('2d').getImageData(0, 0, o.width, o.height).data;
            let masked = 0; for (let i = 3; i < d.length; i += 4) if (d[i] === 120) masked++;
            return {status: document.getElementById('status').textContent,
                    buttons: [...document.querySelectorAll('#masks button')].map((b) => b.textContent),
                    times: document.getElementById('times').innerText,
                    error: document.getElementById('error').textContent,
                    masked_fraction: masked / (o.width * o.height)}; }""")
        page.screenshot(path=str(out_png))
        return shown
    finally:
        web.close()
