"""Long fuzz run against a real bundle (not part of the default tests):

    python -m benchmarks.fuzz [BUNDLE] [--calls 10000] [--seed 0]

Random prompts (points, labels, boxes, mask_input, flags: any dtype, shape and magnitude,
NaN/inf, values overflowing float32), images (any shape/dtype, too thin) and mutated manifests
(on a copy of the bundle). Each call must give a valid result of the right shape, or a
ValueError/TypeError naming the argument (BundleError naming the bundle for manifests). Prints
counts: calls, results, clear errors, crashes (must be 0), NaN outputs (must be 0). Without
BUNDLE an ONNX fp32 bundle is exported from random weights into a temp folder (needs torch)."""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

PROMPT_ARGS = ("point_coords", "point_labels", "box", "mask_input", "multimask_output",
               "return_logits")
IMAGE_ARGS = ("image", "image_format")


def classify_predict(call, kwargs: dict, image_shape: tuple[int, int]) -> str:
    """'ok', 'clear' (ValueError/TypeError naming an argument), 'nan' or 'crash'."""
    try:
        masks, scores, low = call(**kwargs)
    except (ValueError, TypeError) as e:
        return "clear" if any(a in str(e) for a in PROMPT_ARGS) else "crash"
    except Exception:  # noqa: BLE001 - counting crashes is the point
        return "crash"
    c = 3 if kwargs.get("multimask_output", True) else 1
    if (masks.shape != (c, *image_shape) or scores.shape != (c,) or low.shape != (c, 256, 256)
            or masks.dtype != (np.float32 if kwargs.get("return_logits") else bool)):
        return "crash"
    if not (np.isfinite(scores).all() and np.isfinite(low).all()
            and (masks.dtype == bool or np.isfinite(masks).all())):
        return "nan"
    return "ok"


def classify_set_image(call, image, image_format) -> str:
    try:
        call(image, image_format)
    except (ValueError, TypeError) as e:
        return "clear" if any(a in str(e) for a in IMAGE_ARGS) else "crash"
    except Exception:  # noqa: BLE001
        return "crash"
    return "ok"


def classify_manifest(validate, bundle: Path) -> str:
    from mobilesam_runtime import BundleError

    try:
        validate(bundle)
    except BundleError as e:
        return "clear" if str(bundle) in str(e) else "crash"
    except Exception:  # noqa: BLE001
        return "crash"
    return "ok"


# -- random inputs --------------------------------------------------------------------------------
SCALES = (1.0, 1e3, 1e6, 1e20, 1e38, 1e39, 1e300)
DTYPES = ("float64", "float32", "int64", "uint8", "bool", "complex128", "object", "str", "m8[s]")


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def rand_numbers(rng, shape) -> np.ndarray:
    x = rng.normal(size=shape) * rng.choice(SCALES)
    if rng.random() < 0.1 and x.size:
        x.flat[rng.integers(x.size)] = rng.choice([np.nan, np.inf, -np.inf])
    return x


def rand_array(rng, good_shape: tuple[int, ...], valid_values=None):
    """Mostly well-shaped arrays with odd values, sometimes odd dtypes, shapes or types."""
    r = rng.random()
    if r < 0.05:
        return None
    if r < 0.1:
        return _pick(rng, ["abc", 3, 2.5, {"x": 1}, [1, [2, 3]], [[1.0, 2.0], [3.0]], 1 + 2j])
    shape = good_shape if rng.random() < 0.75 else tuple(rng.integers(0, 5, rng.integers(0, 4)))
    if valid_values is not None and rng.random() < 0.7:
        x = rng.choice(valid_values, size=shape)
    else:
        x = rand_numbers(rng, shape)
        if rng.random() < 0.7:  # plausible pixel coordinates
            x = rng.uniform(-50, 900, size=shape)
    dtype = "float64" if rng.random() < 0.6 else rng.choice(DTYPES)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            x = np.asarray(x).astype(dtype)
    except (ValueError, TypeError, OverflowError):
        pass
    return x.tolist() if rng.random() < 0.1 and hasattr(x, "tolist") else x


def valid_prompt(rng, image_shape, previous_low: np.ndarray | None) -> dict:
    """A prompt SAM accepts: points inside (or far outside) the image, boxes, refinement."""
    h, w = image_shape
    n = int(rng.integers(1, 10))
    scale = 1.0 if rng.random() < 0.9 else _pick(rng, [10.0, 1e4, 1e8])
    kw: dict = {"multimask_output": bool(rng.random() < 0.5),
                "return_logits": bool(rng.random() < 0.3)}
    if rng.random() < 0.8:
        kw["point_coords"] = rng.uniform(-0.1, 1.1, (n, 2)) * [w, h] * scale
        kw["point_labels"] = rng.integers(0, 2, n)
    if "point_coords" not in kw or rng.random() < 0.3:
        x0, x1 = np.sort(rng.uniform(0, w, 2))
        y0, y1 = np.sort(rng.uniform(0, h, 2))
        kw["box"] = np.array([x0, y0, x1, y1], _pick(rng, ["float32", "float64", "int64"]))
    if previous_low is not None and rng.random() < 0.25:
        kw["mask_input"] = previous_low[None]
    return kw


def rand_prompt(rng, previous_low: np.ndarray | None) -> dict:
    n = int(rng.integers(1, 6))
    kw: dict = {}
    if rng.random() < 0.8:
        kw["point_coords"] = rand_array(rng, (n, 2))
        kw["point_labels"] = rand_array(rng, (n,), valid_values=[0, 1, 1, 1, -1, 2, 3, 7, 0.5])
    if rng.random() < 0.35:
        kw["box"] = rand_array(rng, (4,))
    r = rng.random()
    if r < 0.15 and previous_low is not None:
        kw["mask_input"] = previous_low[None]
    elif r < 0.3:
        kw["mask_input"] = rand_array(rng, ((1, 256, 256), (256, 256), (1, 1, 256, 256))[
            int(rng.integers(3))])
    for flag in ("multimask_output", "return_logits"):
        if rng.random() < 0.5:
            kw[flag] = bool(rng.random() < 0.5) if rng.random() < 0.9 else \
                _pick(rng, [0, 1, "yes", None, np.bool_(True)])
    return kw


def rand_image(rng, photos: list[np.ndarray]):
    r = rng.random()
    if r < 0.3:
        return photos[int(rng.integers(len(photos)))], "RGB" if rng.random() < 0.8 else "BGR"
    if r < 0.5:
        h, w = (int(x) for x in rng.integers(1, 300, 2))
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB"
    shape = [tuple(int(x) for x in rng.integers(0, 8, rng.integers(0, 5))),
             (1, int(rng.integers(2049, 6000)), 3), (int(rng.integers(2049, 6000)), 1, 3),
             (10, 10, 4), (0, 10, 3)][int(rng.integers(5))]
    dtype = "uint8" if rng.random() < 0.6 else rng.choice(["float32", "int16", "bool", "object"])
    image = np.zeros(shape, dtype)
    fmt = "RGB" if rng.random() < 0.8 else _pick(rng, ["HSV", "", "bgr", None])
    return (image if rng.random() < 0.9 else image.tolist()), fmt


JSON_VALUES = (None, True, 0, -1, 1.5, 10 ** 30, "", "x", "../../etc/passwd", "/dev/zero",
               [], {}, [1, "a"], {"sha256": "0" * 64, "bytes": 1})


def mutate(rng, m):
    """One random edit somewhere in a JSON tree: replace, delete or add a value."""
    m = copy.deepcopy(m)
    node, path = m, []
    while isinstance(node, (dict, list)) and node and rng.random() < 0.7:
        key = _pick(rng, list(node)) if isinstance(node, dict) else int(rng.integers(len(node)))
        path.append((node, key))
        node = node[key]
    if not path:
        return copy.deepcopy(_pick(rng, JSON_VALUES))
    parent, key = path[-1]
    r = rng.random()
    if r < 0.3 and isinstance(parent, dict):
        del parent[key]
    elif r < 0.4 and isinstance(parent, dict):
        parent[_pick(rng, ["../x", "/etc/passwd", "extra", "encoder.onnx"])] = \
            copy.deepcopy(_pick(rng, JSON_VALUES))
    else:
        parent[key] = copy.deepcopy(_pick(rng, JSON_VALUES))
    return m


# -- the run ------------------------------------------------------------------------------------
def _export_bundle(folder: Path) -> Path:
    from mobilesam_export.bundle import export_bundle
    from mobilesam_export.checkpoint import load_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_bundle(load_model("random"), "onnx", "fp32", folder, run_parity=False)


def run(bundle: Path, calls: int, seed: int) -> Counter:
    import mobilesam_runtime
    from mobilesam_runtime import sample_images, validate_bundle

    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mobilesam_runtime.RandomWeightsWarning)
        pred = mobilesam_runtime.load(bundle)
    photos = [im for split in sample_images.SPLITS for _, im in sample_images.load(split)]
    pred.set_image(photos[0])
    work = Path(tempfile.mkdtemp(prefix="fuzz-manifest-"))
    copy_dir = work / bundle.name
    shutil.copytree(bundle, copy_dir)
    good = json.loads((copy_dir / "manifest.json").read_text())
    counts: Counter = Counter()
    previous_low, t0 = None, time.time()
    try:
        for i in range(calls):
            r = rng.random()
            if r < 0.03:
                image, fmt = rand_image(rng, photos)
                outcome, target = classify_set_image(pred.set_image, image, fmt), "set_image"
            elif r < 0.08:
                m = mutate(rng, good)
                (copy_dir / "manifest.json").write_text(json.dumps(m))
                outcome, target = classify_manifest(validate_bundle, copy_dir), "manifest"
            else:
                kw = valid_prompt(rng, pred.original_size, previous_low) if rng.random() < 0.5 \
                    else rand_prompt(rng, previous_low)
                outcome, target = classify_predict(pred.predict, kw, pred.original_size), "predict"
                if outcome == "ok" and rng.random() < 0.5:
                    previous_low = pred.predict(**{**kw, "return_logits": False})[2][0]
            counts[outcome] += 1
            counts[f"{target}:{outcome}"] += 1
            if (i + 1) % 1000 == 0:
                print(f"{i + 1} calls, {time.time() - t0:.0f} s: {dict(counts)}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    counts["calls"] = calls
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", nargs="?", help="bundle folder (default: export onnx-fp32, random weights)")
    ap.add_argument("--calls", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    tmp = None
    if args.bundle:
        bundle = Path(args.bundle)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="fuzz-bundle-"))
        bundle = _export_bundle(tmp)
    try:
        counts = run(bundle, args.calls, args.seed)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"calls {counts['calls']}, valid results {counts['ok']}, clear errors {counts['clear']}, "
          f"crashes {counts['crash']}, NaN outputs {counts['nan']}")
    print("by target:", {k: v for k, v in sorted(counts.items()) if ":" in k})
    return 1 if counts["crash"] or counts["nan"] else 0


if __name__ == "__main__":
    sys.exit(main())
