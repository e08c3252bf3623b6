"""Reading a bundle's manifest and verifying its files (no torch)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from . import contract

MANIFEST = "manifest.json"


class BundleError(ValueError):
    """A bundle is missing, incomplete, tampered with, or incompatible with this runtime."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file (or of every file under a directory, e.g. an .mlpackage)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode())
        with open(p, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    return h.hexdigest()


def read_manifest(bundle_dir: str | Path, verify: bool = True) -> dict:
    """The bundle's manifest; with `verify`, every listed file's sha256 is checked."""
    bundle = Path(bundle_dir)
    path = bundle / MANIFEST
    if not path.is_file():
        raise BundleError(f"{bundle} is not a bundle: no {MANIFEST} (export one with "
                          f"`mobilesam-export export`).")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BundleError(f"{path} is not valid JSON: {e}") from e
    version = manifest.get("contract", {}).get("contract_version")
    if version != contract.CONTRACT_VERSION:
        raise BundleError(f"{bundle} uses I/O contract version {version}; this runtime "
                          f"implements version {contract.CONTRACT_VERSION}. Re-export the bundle.")
    if verify:
        for name, info in manifest.get("files", {}).items():
            f = bundle / name
            if not f.exists():
                raise BundleError(f"{bundle}: file {name} listed in the manifest is missing.")
            digest = sha256_file(f)
            if digest != info["sha256"]:
                raise BundleError(f"{bundle}: {name} does not match the manifest (sha256 "
                                  f"{digest[:12]}… != {info['sha256'][:12]}…): the file was "
                                  f"modified or corrupted. Re-export the bundle.")
    return manifest
