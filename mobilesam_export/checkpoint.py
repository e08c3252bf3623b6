"""Building MobileSAM from a checkpoint (or seeded random weights) with loud, specific errors."""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from mobilesam_runtime import RandomWeightsWarning

from .modeling import MobileSAM

OFFICIAL_URL = "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt"
DEFAULT_PATH = Path("weights/mobile_sam.pt")
RANDOM = "random"
RANDOM_SEED = 0
# A trained MobileSAM produces mask logits of roughly +-10; default init gives ~0.1, where every
# mask is a coin flip and IoU parity would mean nothing. The random model scales the hypernetwork
# output layers by this factor (and says so in every manifest).
RANDOM_LOGIT_SCALE = 100.0


class CheckpointError(ValueError):
    """A checkpoint could not be used; the message says why and what to do."""


@dataclass(frozen=True)
class LoadedModel:
    """The eager reference model and where its weights came from."""

    model: MobileSAM
    source: str  # a path, or "random"
    sha256: str | None  # of the checkpoint file; None for random weights
    random_weights: bool

    def provenance(self) -> dict:
        """The weights' identity as written into manifests and model metadata."""
        d = {"source": self.source, "sha256": self.sha256, "random_weights": self.random_weights}
        if self.random_weights:
            d["random_seed"] = RANDOM_SEED
            d["warning"] = ("RANDOM WEIGHTS: pipeline test only, masks are meaningless; "
                            f"hypernetwork output layers scaled x{RANDOM_LOGIT_SCALE:g}")
        return d


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def random_model(seed: int = RANDOM_SEED) -> MobileSAM:
    """Seeded random weights in the official layout, with realistic statistics: BatchNorm running
    stats and norm affine parameters perturbed (so fusing or dropping them shows in parity), and
    mask logits scaled to a trained model's magnitude."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = MobileSAM()
    sd = model.state_dict()
    with torch.no_grad():
        for name, t in sd.items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen))
            elif name.endswith("running_mean"):
                t.copy_(0.1 * torch.randn(t.shape, generator=gen))
            elif name.endswith("attention_biases"):
                t.copy_(0.5 * torch.randn(t.shape, generator=gen))
            elif t.ndim == 1 and ("norm" in name or ".bn." in name or "neck" in name
                                  or "mask_downscaling.1" in name or "mask_downscaling.4" in name
                                  or "output_upscaling.1" in name):
                base = 1.0 if name.endswith("weight") else 0.0
                t.copy_(base + 0.1 * torch.randn(t.shape, generator=gen))
        for mlp in model.mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(RANDOM_LOGIT_SCALE)
            mlp.layers[-1].bias.mul_(RANDOM_LOGIT_SCALE)
    return model.eval()


# torch.save's two layouts: a zip archive, or (legacy) pickles that start with this magic number
ZIP_MAGIC = b"PK\x03\x04"
LEGACY_MAGIC = b"\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"  # pickled long 0x1950a86a20f9469cfc6c
SAM_VIT_WIDTHS = {768: "ViT-B", 1024: "ViT-L", 1280: "ViT-H"}  # segment-anything's encoders


def sniff(head: bytes) -> str:
    """What the first bytes of a file look like: "zip", "legacy" (torch.save layouts) or a
    description of something else."""
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head[:1] == b"\x80" and LEGACY_MAGIC in head[:32]:
        return "legacy"
    if not head:
        return "an empty file"
    if head.startswith(b"\xff\xd8\xff"):
        return "a JPEG image"
    if head.startswith(b"\x89PNG"):
        return "a PNG image"
    if head[:1] == b"\x08" and len(head) > 2 and head[1] < 0x80 and head[2] in b"\x12\x1a\x22\x3a\x42":
        return "an ONNX model (export bundles are loaded with mobilesam_runtime, not as weights)"
    if len(head) > 9 and head[8:10] == b'{"':
        return "a safetensors file (not supported: convert it with torch.save(state_dict))"
    if head[:1] == b"\x80":
        return "a Python pickle that is not a torch.save file"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:  # a multi-byte character cut at the end of `head` is fine
        text = head[:e.start].decode("utf-8") if e.start >= len(head) - 3 else None
    if text and all(c.isprintable() or c in "\r\n\t" for c in text):
        return f"a text file (starting {text[:24]!r})"
    return "unrecognised binary data"


def _is_truncation(e: Exception) -> bool:
    text = str(e).lower()
    return isinstance(e, EOFError) or any(w in text for w in ("eof", "truncated", "corrupted"))


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint safely (`weights_only=True`); accepts a bare state dict or {'model': sd}.
    Tells apart: not a PyTorch checkpoint, truncated/corrupted, a pickle that needs code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint not found: {path}. Pass WEIGHTS=/path/to/mobile_sam.pt, download it from "
            f"{OFFICIAL_URL}, or use WEIGHTS=random to try the pipeline with random weights.")
    with open(path, "rb") as f:
        head = f.read(512)
    kind = sniff(head)
    if kind not in ("zip", "legacy"):
        raise CheckpointError(f"{path} is not a PyTorch checkpoint: it looks like {kind}. Pass the "
                              f"MobileSAM weights (mobile_sam.pt, from {OFFICIAL_URL}).")
    if kind == "zip" and not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is truncated: it starts like a torch.save zip archive but "
                              f"has no central directory (an interrupted download or copy?). "
                              f"Download it again.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if _is_truncation(e):
            raise CheckpointError(f"{path} is truncated or corrupted: {_first_line(e)}") from e
        raise CheckpointError(
            f"{path} is a pickle that needs code to load (refused for safety with "
            f"weights_only=True): {_first_line(e)}. Re-save it with "
            f"torch.save(model.state_dict(), ...).") from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path} is truncated or corrupted ({kind} torch.save layout): "
                              f"{type(e).__name__}: {_first_line(e)}") from e
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors "
                              f"(found {type(obj).__name__}).")
    return obj


def _first_line(e: Exception) -> str:
    lines = [ln for ln in str(e).splitlines() if ln.strip()]
    for ln in lines:  # torch's weights_only message: the reason is on a later line
        if "Unsupported global" in ln or "GLOBAL" in ln:
            return ln.strip()[:300]
    return (lines[0] if lines else repr(e))[:300]


def check_finite(sd: dict[str, torch.Tensor], origin: str) -> None:
    """Raise a CheckpointError naming the tensors that hold NaN or infinity."""
    bad = [k for k, v in sd.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        shown = ", ".join(bad[:5]) + (f" … (+{len(bad) - 5})" if len(bad) > 5 else "")
        raise CheckpointError(f"{origin}: {len(bad)} tensors hold NaN or infinity: {shown}. "
                              f"The checkpoint is damaged; download it again.")


def check_layout(sd: dict[str, torch.Tensor], model: MobileSAM, origin: str) -> None:
    """Raise a CheckpointError naming mismatched keys unless `sd` is MobileSAM's exact layout."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in sd.items()}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    if not (missing or unexpected or wrong):
        return
    kind = "this is not a MobileSAM (Tiny-ViT) checkpoint"
    if any(k.startswith("image_encoder.blocks.") for k in got):
        width = got.get("image_encoder.pos_embed", (0,))[-1]
        name = SAM_VIT_WIDTHS.get(width, "ViT-B/L/H")
        kind = (f"this is a foreign model: a SAM {name} checkpoint (segment-anything's ViT "
                f"encoder), not MobileSAM (Tiny-ViT)")
    parts = [f"{origin}: {kind}."]
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if keys:
            shown = ", ".join(keys[:4]) + (f" … (+{len(keys) - 4})" if len(keys) > 4 else "")
            parts.append(f"{len(keys)} {label} keys: {shown}")
    raise CheckpointError(" ".join(parts))


def download_official(dest: Path) -> Path:
    """Download the official checkpoint into `dest` (atomically) with a progress bar."""
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
    try:
        with urllib.request.urlopen(OFFICIAL_URL, timeout=30) as r, os.fdopen(fd, "wb") as f:
            total = int(r.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="mobile_sam.pt") as bar:
                while block := r.read(1 << 16):
                    f.write(block)
                    bar.update(len(block))
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        Path(tmp).unlink(missing_ok=True)
        raise CheckpointError(
            f"could not download the official checkpoint ({e}). Offline? Download {OFFICIAL_URL} "
            f"on a connected machine, copy it to {DEFAULT_PATH} (or pass WEIGHTS=/path), or use "
            f"WEIGHTS=random to try the pipeline with random weights.") from e
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def resolve_weights(weights: str | os.PathLike | None) -> str | Path:
    """`random`, an explicit path, or the default path (downloaded into the cache when absent)."""
    if weights is not None and str(weights) == RANDOM:
        return RANDOM
    if weights:
        return Path(weights)
    if DEFAULT_PATH.is_file():
        return DEFAULT_PATH
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mobilesam-export"
    cached = cache / "mobile_sam.pt"
    return cached if cached.is_file() else download_official(cached)


def load_model(weights: str | os.PathLike | None = None) -> LoadedModel:
    """The eager MobileSAM in eval mode, from a checkpoint path, `random`, or the default."""
    resolved = resolve_weights(weights)
    if resolved == RANDOM:
        warnings.warn("Using RANDOM weights: the exported model is for testing the pipeline only "
                      "and is flagged as such in its manifest and metadata.", RandomWeightsWarning,
                      stacklevel=2)
        return LoadedModel(random_model(), RANDOM, None, True)
    sd = load_state_dict(resolved)
    model = MobileSAM()
    check_layout(sd, model, str(resolved))
    check_finite(sd, str(resolved))
    model.load_state_dict(sd, strict=True)
    return LoadedModel(model.eval(), str(resolved), sha256_file(resolved), False)
