"""Export a bundle atomically: build in a temp folder, write the manifest, run the parity gate,
then swap it into place (a failed or interrupted export leaves the previous bundle intact)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mobilesam_runtime import contract
from mobilesam_runtime.manifest import MANIFEST, sha256_file

from . import exporters, parity
from .checkpoint import LoadedModel
from .metadata import tool_versions


@dataclass
class ExportOptions:
    """Options shared by every exporter (each reads what applies to it)."""

    calibration_dir: str | None = None
    official_decoder: bool = False  # ONNX: also write SAM's official decoder interface
    image_input: bool = False  # CoreML: encoder takes an ImageType with normalisation baked in
    num_slots: int = 16  # fixed-shape formats: prompt slots of the decoder


def bundle_name(fmt: str, quant: str) -> str:
    return f"{fmt}-{quant}"


def write_manifest(folder: Path, manifest: dict) -> None:
    """Hash every graph file and write manifest.json."""
    files = {}
    for rel in sorted(set(manifest["graphs"].values()) | set(manifest.get("aux_files", []))):
        p = folder / rel
        size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() \
            else p.stat().st_size
        files[rel] = {"sha256": sha256_file(p), "bytes": size}
    manifest["files"] = files
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))


def _swap_into_place(tmp: Path, final: Path) -> None:
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_bundle(loaded: LoadedModel, fmt: str, quant: str | None, out: str | Path,
                  options: ExportOptions | None = None, run_parity: bool = True,
                  parity_gate: bool = True, parity_images: str | None = None) -> Path:
    """Export `fmt`/`quant` into OUT/<fmt>-<quant>/ and return that path."""
    exporter = exporters.get(fmt)
    quant = quant or exporter.DEFAULT_QUANT
    if quant not in exporter.QUANTS:
        raise ValueError(f"{fmt} supports QUANT in {', '.join(exporter.QUANTS)}; got {quant!r}")
    options = options or ExportOptions()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    final = out / bundle_name(fmt, quant)
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=f".{final.name}.tmp-"))
    try:
        t0 = time.perf_counter()
        result = exporter.export(loaded, tmp, quant, options)
        manifest = {
            "format": fmt,
            "precision": quant,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "export_seconds": round(time.perf_counter() - t0, 1),
            "graphs": result["graphs"],
            "aux_files": result.get("aux_files", []),
            "weights": loaded.provenance(),
            "contract": contract.describe(),
            "tool_versions": tool_versions(),
            "notes": result.get("notes", {}),
        }
        write_manifest(tmp, manifest)
        if run_parity and getattr(exporter, "CAN_RUN_HERE", lambda: True)():
            parity.check(tmp, loaded.model, parity_images, gate=parity_gate)
        elif run_parity:
            manifest["parity"] = {"skipped": exporter.CANNOT_RUN_REASON}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
            print(f"parity skipped: {exporter.CANNOT_RUN_REASON}")
        _swap_into_place(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
