"""Reading and verifying a bundle (no torch): `validate_bundle` is the one gate every reader of a
bundle goes through (`load`, `inspect`, `parity`).

What it guarantees, or raises `BundleError` (a ValueError) naming the file and the problem:
- manifest.json is a regular file of bounded size holding an object whose fields have the types
  this runtime reads (see `check_schema`); `signatures` parse as typed graph signatures;
- every file the runtime opens is listed in `files` with its size and sha256: the `graphs`, an
  OpenVINO graph's .bin, an ONNX graph's external data; `files` is not empty;
- every listed file is a plain relative path inside the bundle (no `..`, no absolute path, no
  symlink anywhere on the way) naming a regular file (an `.mlpackage` may be a directory of
  regular files); sizes are compared before hashing and capped; with `verify` the sha256 too.
Error messages never print the hash of a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path, PurePosixPath

from . import contract
from .onnx_refs import external_data_locations

MANIFEST = "manifest.json"
MANIFEST_VERSION = 2  # 2: typed `signatures`; bundles without them must be re-exported
MAX_MANIFEST_BYTES = 16 << 20
MAX_FILE_BYTES = 4 << 30  # a listed file (or .mlpackage); our graphs are < 50 MB each
MAX_PACKAGE_ENTRIES = 10_000  # entries inside one .mlpackage directory
PACKAGE_SUFFIX = ".mlpackage"
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")  # no leading dot: no '..', no hidden
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


class BundleError(ValueError):
    """A bundle is missing, incomplete, malformed, tampered with, or incompatible with this runtime."""


# -- hashing (shared with the exporter, so the algorithm is defined once) ----------------------
def _hash_fd(fd: int, size: int, h, name: str) -> None:
    left = size
    while left:
        block = os.read(fd, min(_CHUNK, left))
        if not block:
            raise BundleError(f"{name} shrank while it was read ({size} bytes expected)")
        h.update(block)
        left -= len(block)
    if os.read(fd, 1):
        raise BundleError(f"{name} grew while it was read ({size} bytes expected)")


def _read_all(fd: int, limit: int) -> bytes:
    chunks, left = [], limit
    while left > 0 and (block := os.read(fd, min(_CHUNK, left))):
        chunks.append(block)
        left -= len(block)
    return b"".join(chunks)


def _open_regular(path: Path, name: str) -> tuple[int, os.stat_result]:
    """An fd on a regular file, never following a symlink nor blocking on a FIFO."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) \
        | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise BundleError(f"{name} cannot be opened: {e.strerror}") from e
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise BundleError(f"{name} is not a regular file")
    return fd, st


def _package_files(path: Path, name: str) -> list[tuple[str, Path, int]]:
    """(relative posix path, path, size) of every file in an .mlpackage; only dirs and regular
    files are allowed inside."""
    out, stack, entries = [], [(path, "")], 0
    while stack:
        folder, prefix = stack.pop()
        with os.scandir(folder) as it:
            for e in it:
                entries += 1
                if entries > MAX_PACKAGE_ENTRIES:
                    raise BundleError(f"{name} has more than {MAX_PACKAGE_ENTRIES} entries")
                rel = f"{prefix}{e.name}"
                st = e.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    stack.append((Path(e.path), rel + "/"))
                elif stat.S_ISREG(st.st_mode):
                    out.append((rel, Path(e.path), st.st_size))
                else:
                    raise BundleError(f"{name}/{rel} is not a regular file or folder "
                                      f"({_kind(st.st_mode)})")
    return sorted(out)


def digest(path: str | os.PathLike, name: str | None = None) -> tuple[str, int]:
    """(sha256 hex, size in bytes) of a bundle entry: a regular file, or an .mlpackage directory
    (its files in sorted order, each as path NUL size content, so names and contents cannot
    be shifted into one another)."""
    path, name = Path(path), name or Path(path).name
    st = os.lstat(path)
    h = hashlib.sha256()
    if stat.S_ISDIR(st.st_mode) and name.endswith(PACKAGE_SUFFIX):
        total = 0
        for rel, p, size in _package_files(path, name):
            total += size
            if total > MAX_FILE_BYTES:
                raise BundleError(f"{name} is larger than the {MAX_FILE_BYTES >> 20} MB cap")
            h.update(os.fsencode(rel) + b"\0" + str(size).encode() + b"\0")
            fd, _ = _open_regular(p, f"{name}/{rel}")
            try:
                _hash_fd(fd, size, h, f"{name}/{rel}")
            finally:
                os.close(fd)
        return h.hexdigest(), total
    fd, st = _open_regular(path, name)
    try:
        if st.st_size > MAX_FILE_BYTES:
            raise BundleError(f"{name} is larger than the {MAX_FILE_BYTES >> 20} MB cap")
        _hash_fd(fd, st.st_size, h, name)
    finally:
        os.close(fd)
    return h.hexdigest(), st.st_size


def sha256_file(path: Path) -> str:
    """Hex sha256 of a bundle entry (see `digest`)."""
    return digest(path)[0]


# -- paths ---------------------------------------------------------------------------------------
def _kind(mode: int) -> str:
    for test, label in ((stat.S_ISLNK, "a symlink"), (stat.S_ISDIR, "a directory"),
                        (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                        (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return label
    return "not a regular file"


def plain_relative(name, what: str = "file name") -> PurePosixPath:
    """`name` as a plain relative path: parts of letters, digits, '._-', none starting with '.'."""
    if not isinstance(name, str):
        raise BundleError(f"{what} must be a string, got {type(name).__name__}")
    parts = name.split("/")
    if len(name) > 1024 or not all(_PART.match(p) for p in parts):
        raise BundleError(f"{what} {name!r} is not a plain relative path inside the bundle "
                          f"(no absolute paths, '..', hidden or empty parts, backslashes)")
    if name == MANIFEST:
        raise BundleError(f"{what} {name!r}: the manifest cannot list itself")
    return PurePosixPath(name)


def _entry(root: Path, name: str) -> tuple[Path, os.stat_result]:
    """lstat of a listed entry; every parent folder on the way must be a real folder."""
    path = root
    parts = plain_relative(name).parts
    for i, part in enumerate(parts):
        path = path / part
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise BundleError(f"file {name} listed in the manifest is missing.") from None
        except OSError as e:
            raise BundleError(f"{name}: {e.strerror}") from e
        if i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
            raise BundleError(f"{name}: {'/'.join(parts[:i + 1])} is {_kind(st.st_mode)}, "
                              f"not a folder of the bundle")
    return path, st


def check_entry(root: Path, name: str, info: dict, verify: bool) -> None:
    """One `files` entry: inside the bundle, of the right kind and size, and (verify) its sha256."""
    path, st = _entry(root, name)
    if stat.S_ISDIR(st.st_mode):
        if not name.endswith(PACKAGE_SUFFIX):
            raise BundleError(f"{name} is a directory; only {PACKAGE_SUFFIX} packages may be")
    elif not stat.S_ISREG(st.st_mode):
        raise BundleError(f"{name} is {_kind(st.st_mode)}, not a regular file: refused")
    elif st.st_size != info["bytes"]:
        raise BundleError(f"{name} has {st.st_size} bytes, the manifest says {info['bytes']}: "
                          f"the file was modified or truncated. Re-export the bundle.")
    if info["bytes"] > MAX_FILE_BYTES:
        raise BundleError(f"{name}: {info['bytes']} bytes exceeds the {MAX_FILE_BYTES >> 20} MB cap")
    if not verify:
        if stat.S_ISDIR(st.st_mode):  # still refuse links/devices inside, and check the size
            size = sum(s for _, _, s in _package_files(path, name))
            if size != info["bytes"]:
                raise BundleError(f"{name} has {size} bytes, the manifest says {info['bytes']}: "
                                  f"the package was modified. Re-export the bundle.")
        return
    sha, size = digest(path, name)
    if size != info["bytes"]:
        raise BundleError(f"{name} has {size} bytes, the manifest says {info['bytes']}: "
                          f"the file was modified or truncated. Re-export the bundle.")
    if verify and sha != info["sha256"]:
        raise BundleError(f"{name} does not match the manifest (sha256 differs): the file was "
                          f"modified or corrupted. Re-export the bundle.")


# -- schema --------------------------------------------------------------------------------------
def _want(obj: dict, key: str, types, where: str, required: bool = True):
    if key not in obj:
        if required:
            raise BundleError(f"{where}: missing field {key!r}")
        return None
    value = obj[key]
    bad_bool = isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,))
    if not isinstance(value, types) or bad_bool:
        names = " or ".join(t.__name__ if t is not type(None) else "null"
                            for t in (types if isinstance(types, tuple) else (types,)))
        raise BundleError(f"{where}: field {key!r} must be {names}, got {type(value).__name__}")
    return value


def check_schema(m) -> None:
    """Types of every manifest field the runtime, `inspect` and `parity` read."""
    if not isinstance(m, dict):
        raise BundleError(f"{MANIFEST} must hold an object, got {type(m).__name__}")
    version = m.get("manifest_version")
    if version != MANIFEST_VERSION:
        raise BundleError(f"manifest version {version!r} (this runtime reads {MANIFEST_VERSION}: "
                          f"typed graph signatures). Re-export the bundle.")
    c = _want(m, "contract", dict, MANIFEST)
    if c.get("contract_version") not in contract.SUPPORTED_CONTRACT_VERSIONS:
        raise BundleError(f"I/O contract version {c.get('contract_version')!r}; this runtime "
                          f"reads versions {list(contract.SUPPORTED_CONTRACT_VERSIONS)}. "
                          f"Re-export the bundle.")
    for key in ("format", "precision"):
        if not _want(m, key, str, MANIFEST):
            raise BundleError(f"{MANIFEST}: field {key!r} is empty")
    _want(m, "created", str, MANIFEST, required=False)
    _want(m, "notes", dict, MANIFEST, required=False)
    w = _want(m, "weights", dict, MANIFEST)
    _want(w, "random_weights", bool, "weights")
    _want(w, "source", str, "weights")
    _want(w, "sha256", (str, type(None)), "weights")
    files = _want(m, "files", dict, MANIFEST)
    if not files:
        raise BundleError(f"{MANIFEST}: 'files' is empty: nothing could be verified")
    for name, info in files.items():
        plain_relative(name, "files entry")
        if not isinstance(info, dict):
            raise BundleError(f"files.{name} must be an object with sha256 and bytes")
        sha = _want(info, "sha256", str, f"files.{name}")
        size = _want(info, "bytes", int, f"files.{name}")
        if not _SHA256.match(sha) or size < 0:
            raise BundleError(f"files.{name}: sha256 must be 64 lowercase hex digits and bytes >= 0")
    graphs = _want(m, "graphs", dict, MANIFEST)
    for role in contract.REQUIRED_ROLES:
        _want(graphs, role, str, "graphs")
    split = [r for r in contract.SPLIT_DECODER_ROLES if r in graphs]
    if split and len(split) != len(contract.SPLIT_DECODER_ROLES):
        raise BundleError(f"graphs: the split decoder needs both {contract.SPLIT_DECODER_ROLES}, "
                          f"this manifest has only {split[0]!r}")
    for role, name in graphs.items():
        if not isinstance(name, str) or name not in files:
            raise BundleError(f"graphs.{role} ({name!r}) is not listed in 'files': it cannot be "
                              f"verified, refused")
    try:
        contract.parse_signatures(_want(m, "signatures", dict, MANIFEST))
    except ValueError as e:
        raise BundleError(str(e)) from None
    p = _want(m, "parity", dict, MANIFEST, required=False)
    if p and "summary" in p:
        _want(p, "passed", bool, "parity")
        for k, v in _want(p, "summary", dict, "parity").items():
            _want({k: v}, k, (int, float), "parity.summary")


def implied_files(root: Path, graphs: dict[str, str], files: dict) -> dict[str, str]:
    """Files the runtime libraries open on their own, by graph: {file: graph}."""
    out = {}
    for name in graphs.values():
        if name.endswith(".xml"):  # OpenVINO reads <stem>.bin beside the .xml
            out[name[:-4] + ".bin"] = name
        elif name.endswith(".onnx"):
            fd, st = _open_regular(root / name, name)
            try:
                data = _read_all(fd, min(st.st_size, MAX_FILE_BYTES))
            finally:
                os.close(fd)
            try:
                locations = external_data_locations(data)
            except ValueError as e:
                raise BundleError(f"{name} is not a well-formed ONNX model: {e}") from None
            base = PurePosixPath(name).parent
            for loc in locations:
                rel = str(base / plain_relative(loc, f"{name}: external data location"))
                out[rel] = name
    return out


def validate_bundle(bundle_dir: str | os.PathLike, verify: bool = True) -> dict:
    """The bundle's manifest after every check above; `verify` also compares sha256 hashes
    (without it, sizes, kinds and paths are still checked)."""
    bundle = Path(bundle_dir)
    path = bundle / MANIFEST
    try:
        st = os.lstat(path)
    except OSError:
        raise BundleError(f"{bundle} is not a bundle: no {MANIFEST} (export one with "
                          f"`mobilesam-export export`).") from None
    if not stat.S_ISREG(st.st_mode):
        raise BundleError(f"{path} is {_kind(st.st_mode)}, not a regular file: refused")
    if st.st_size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{path} is {st.st_size} bytes, over the {MAX_MANIFEST_BYTES >> 20} MB cap")
    fd, st = _open_regular(path, str(path))
    try:
        raw = _read_all(fd, MAX_MANIFEST_BYTES + 1)
    finally:
        os.close(fd)
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # JSON, UTF-8, huge integers, absurd nesting
        raise BundleError(f"{path} is not valid JSON: {str(e)[:200]}") from None
    try:
        check_schema(manifest)
        files = manifest["files"]
        for name, info in files.items():
            check_entry(bundle, name, info, verify)
        for name, graph in implied_files(bundle, manifest["graphs"], files).items():
            if name not in files:
                raise BundleError(f"{graph} makes the runtime open {name}, which is not listed in "
                                  f"'files': refused")
    except BundleError as e:
        raise BundleError(f"{bundle}: {e}") from None
    except OSError as e:  # unreadable folder inside a package, I/O error
        raise BundleError(f"{bundle}: cannot read {e.filename or 'a listed file'}: "
                          f"{e.strerror}") from None
    return manifest


def signatures(manifest: dict) -> dict[str, contract.GraphSignature]:
    """The typed graph signatures of a validated manifest."""
    try:
        return contract.parse_signatures(manifest.get("signatures"))
    except ValueError as e:
        raise BundleError(str(e)) from None


def read_manifest(bundle_dir: str | os.PathLike, verify: bool = True) -> dict:
    """Alias of `validate_bundle` (older name)."""
    return validate_bundle(bundle_dir, verify)
