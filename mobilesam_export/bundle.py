"""Export a bundle atomically: build in a temp folder, write the manifest, run the parity gate,
then swap it into place (a failed or interrupted export leaves the previous bundle intact).

Filesystem behaviour: an unusable OUT is a clear ValueError before anything is built; our temp
folders left by a killed export (`.<bundle>.tmp-*`, `.<bundle>.old-*`) are removed by the next
export once older than STALE_SECONDS; bundles get 0755 folders / 0644 files under the usual
umask; concurrent exports to one OUT end with one complete bundle (the last to finish)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from mobilesam_runtime import contract
from mobilesam_runtime.manifest import MANIFEST, MANIFEST_VERSION, digest

from . import exporters, formats, parity
from .checkpoint import LoadedModel
from .metadata import tool_versions

# A temp folder of ours untouched this long belongs to a dead export (the slowest export here,
# TFLite int8-static, takes ~10 min; NNCF calibration can leave a folder untouched for minutes).
STALE_SECONDS = 6 * 3600
SWAP_ATTEMPTS = 20


@dataclass
class ExportOptions:
    """Options shared by every exporter (each reads what applies to it)."""

    calibration_dir: str | None = None
    official_decoder: bool = False  # ONNX: also write SAM's official decoder interface
    split_decoder: bool = True  # ONNX, OpenVINO: also the split decoder (contract.DECODER_STATE)
    image_input: bool = False  # CoreML: encoder takes an ImageType with normalisation baked in
    num_slots: int = 16  # fixed-shape formats: prompt slots of the decoder
    prompt_batch: int = 16  # fixed-shape formats: prompt sets of the decoder's batch signature


def bundle_name(fmt: str, quant: str) -> str:
    return f"{fmt}-{quant}"


def write_manifest(folder: Path, manifest: dict) -> None:
    """Hash every graph file and write manifest.json."""
    files = {}
    for rel in sorted(set(manifest["graphs"].values()) | set(manifest.get("aux_files", []))):
        sha, size = digest(folder / rel, rel)
        files[rel] = {"sha256": sha, "bytes": size}
    manifest["files"] = files
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))


def check_out_dir(out: str | Path) -> Path:
    """OUT as a folder we can write into (created if absent); ValueError saying why not."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is an existing file, not a folder: choose a folder "
                         f"(the bundle goes to OUT/FORMAT-QUANT/)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = Path(tempfile.mkdtemp(dir=out, prefix=".write-test-"))
        probe.rmdir()
    except OSError as e:
        raise ValueError(f"--out {out} is not a writable folder: {e.strerror or e}") from None
    return out


def _is_our_temp(child: Path) -> bool:
    m = formats.TEMP_PATTERN.match(child.name)
    if not m:
        return False
    fmt, _, quant = m.group("bundle").partition("-")
    return fmt in formats.PRECISIONS and quant in formats.quants(fmt)


def _last_touched(folder: Path) -> float:
    times = [folder.lstat().st_mtime]
    try:
        times += [c.lstat().st_mtime for c in folder.iterdir()]
    except OSError:
        pass
    return max(times)


def clean_stale(out: Path, max_age: float = STALE_SECONDS) -> list[Path]:
    """Remove our temp folders in `out` (by name pattern) untouched for `max_age` seconds."""
    removed, now = [], time.time()
    for child in out.iterdir():
        try:
            if (not _is_our_temp(child) or not stat.S_ISDIR(child.lstat().st_mode)
                    or now - _last_touched(child) < max_age):
                continue
        except OSError:  # vanished meanwhile (another export cleaned it)
            continue
        shutil.rmtree(child, ignore_errors=True)
        removed.append(child)
    return removed


_umask_lock = threading.Lock()


def _umask() -> int:
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def publishable_modes(folder: Path) -> None:
    """Folders 0777 and files 0666 minus the umask (mkdtemp creates 0700: others could not load)."""
    mask = _umask()
    os.chmod(folder, 0o777 & ~mask)
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o777 & ~mask, follow_symlinks=False)
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                os.chmod(p, 0o666 & ~mask)


def _swap_into_place(tmp: Path, final: Path) -> None:
    """Rename `tmp` to `final`, moving an existing `final` aside first. Retried when another
    export swaps in between (rename onto a non-empty folder fails with ENOTEMPTY/EEXIST)."""
    for _ in range(SWAP_ATTEMPTS):
        try:
            os.replace(tmp, final)
            break
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        old = final.with_name(f".{final.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            os.replace(final, old)
        except FileNotFoundError:  # another export moved it aside first: try again
            continue
        shutil.rmtree(old, ignore_errors=True)
    else:
        raise RuntimeError(f"could not move the new bundle into {final}: other exports kept "
                           f"replacing it ({SWAP_ATTEMPTS} attempts); it is left in {tmp}")


def export_bundle(loaded: LoadedModel, fmt: str, quant: str | None, out: str | Path,
                  options: ExportOptions | None = None, run_parity: bool = True,
                  parity_gate: bool = True, parity_images: str | None = None) -> Path:
    """Export `fmt`/`quant` into OUT/<fmt>-<quant>/ and return that path."""
    exporter = exporters.get(fmt)
    quant = quant or exporter.DEFAULT_QUANT
    if quant not in exporter.QUANTS:
        raise ValueError(f"{fmt} supports QUANT in {', '.join(exporter.QUANTS)}; got {quant!r}")
    options = options or ExportOptions()
    out = check_out_dir(out)
    clean_stale(out)
    final = out / bundle_name(fmt, quant)
    if final.is_symlink() or (final.exists() and not final.is_dir()):
        raise ValueError(f"{final} exists and is not a bundle folder: move it away first")
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=f".{final.name}.tmp-"))
    try:
        t0 = time.perf_counter()
        result = exporter.export(loaded, tmp, quant, options)
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "format": fmt,
            "precision": quant,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "export_seconds": round(time.perf_counter() - t0, 1),
            "graphs": result["graphs"],
            "signatures": result["signatures"],
            "aux_files": result.get("aux_files", []),
            "weights": loaded.provenance(),
            "contract": contract.describe(),
            "tool_versions": tool_versions(),
            "notes": result.get("notes", {}),
        }
        contract.parse_signatures(manifest["signatures"])  # an exporter bug fails here, not later
        write_manifest(tmp, manifest)
        if run_parity and getattr(exporter, "CAN_RUN_HERE", lambda: True)():
            parity.check(tmp, loaded.model, parity_images, gate=parity_gate)
            extra = getattr(exporter, "RUNTIME_PRECISIONS", ())  # e.g. OpenVINO bf16/f16
            if extra:
                parity.check_runtime_precisions(tmp, loaded.model, extra, parity_images)
        elif run_parity:
            manifest["parity"] = {"skipped": exporter.CANNOT_RUN_REASON}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
            print(f"parity skipped: {exporter.CANNOT_RUN_REASON}")
        publishable_modes(tmp)
        _swap_into_place(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
