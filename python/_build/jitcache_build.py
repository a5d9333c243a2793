"""The build backend of the jitcache Python package (PEP 517, in-tree, no dependencies).

A wheel holds the pure-Python package and, when one can be found, libjitcache.so in
``jitcache/_lib/``; the wheel is then tagged for this platform. The library is:

1. the file named by $JITCACHE_LIBRARY, if set; else
2. when building from a jitcache checkout (``python/`` beside ``capi/``) with cargo on
   PATH (or in $CARGO): built with ``cargo build --release -p jitcache-capi --lib``;
3. else none: the wheel is pure Python (``py3-none-any``), and the package looks for the
   library at run time ($JITCACHE_LIBRARY, then the system's search path).

The backend needs nothing but the standard library, so ``pip install ./python`` works
without fetching a build tool (and with ``--no-index``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # python/
SRC = ROOT / "src"
PACKAGE = "jitcache"


def _project() -> dict:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib  # Python 3.11+

        return tomllib.loads(text)["project"]
    except ImportError:
        fields = dict(re.findall(r'^(name|version|description|requires-python)\s*=\s*"([^"]*)"',
                                 text, re.MULTILINE))
        return fields


def _metadata() -> str:
    project = _project()
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {project['version']}",
        f"Summary: {project.get('description', '')}",
        f"Requires-Python: {project.get('requires-python', '>=3.9')}",
        "License: MIT OR Apache-2.0",
        "Provides-Extra: llvmlite",
        'Requires-Dist: llvmlite; extra == "llvmlite"',
        "Description-Content-Type: text/markdown",
        "",
    ]
    readme = ROOT / "README.md"
    body = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    return "\n".join(lines) + "\n" + body


def _log(message: str) -> None:
    print(f"jitcache build: {message}", file=sys.stderr)


def _cargo() -> str | None:
    return os.environ.get("CARGO") or shutil.which("cargo")


def _native_library() -> Path | None:
    """The libjitcache.so to bundle, built if need be; None if there is none."""
    env = os.environ.get("JITCACHE_LIBRARY")
    if env:
        path = Path(env)
        if not path.is_file():
            raise RuntimeError(f"JITCACHE_LIBRARY={env}: no such file")
        return path
    repo = ROOT.parent
    cargo = _cargo()
    if not (repo / "capi" / "Cargo.toml").is_file():
        _log("not in a jitcache checkout: building a pure-Python wheel (set JITCACHE_LIBRARY)")
        return None
    if cargo is None:
        _log("cargo not found: building a pure-Python wheel (set JITCACHE_LIBRARY)")
        return None
    _log("building libjitcache: cargo build --release -p jitcache-capi --lib")
    subprocess.run(
        [cargo, "build", "--release", "-p", "jitcache-capi", "--lib"],
        cwd=repo,
        check=True,
        stdout=sys.stderr,
    )
    meta = subprocess.run(
        [cargo, "metadata", "--format-version", "1", "--no-deps"],
        cwd=repo,
        check=True,
        capture_output=True,
    )
    target = Path(json.loads(meta.stdout)["target_directory"])
    library = target / "release" / "libjitcache.so"
    if not library.is_file():
        raise RuntimeError(f"{library} was not built")
    return library


def _tag(bundled: bool) -> str:
    if not bundled:
        return "py3-none-any"
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return f"py3-none-{platform}"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _write_wheel(wheel_directory: str, files: dict[str, bytes], tag: str) -> str:
    project = _project()
    name, version = project["name"], project["version"]
    dist_info = f"{name}-{version}.dist-info"
    files = dict(files)
    files[f"{dist_info}/METADATA"] = _metadata().encode("utf-8")
    files[f"{dist_info}/WHEEL"] = (
        "Wheel-Version: 1.0\n"
        "Generator: jitcache_build\n"
        f"Root-Is-Purelib: {'true' if tag.endswith('-any') else 'false'}\n"
        f"Tag: {tag}\n"
    ).encode("utf-8")
    files[f"{dist_info}/top_level.txt"] = f"{PACKAGE}\n".encode("utf-8")
    record = [_record_line(path, data) for path, data in sorted(files.items())]
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode("utf-8")
    filename = f"{name}-{version}-{tag}.whl"
    os.makedirs(wheel_directory, exist_ok=True)
    with zipfile.ZipFile(Path(wheel_directory) / filename, "w", zipfile.ZIP_DEFLATED) as wheel:
        for path, data in files.items():
            info = zipfile.ZipInfo(path, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if path.endswith(".so") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, data)
    return filename


def _package_files() -> dict[str, bytes]:
    files = {}
    for path in sorted((SRC / PACKAGE).rglob("*")):
        if path.is_file() and path.suffix in (".py", ".typed") and "__pycache__" not in path.parts:
            files[path.relative_to(SRC).as_posix()] = path.read_bytes()
    return files


# -- PEP 517 hooks ---------------------------------------------------------------------


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = _package_files()
    library = _native_library()
    if library is not None:
        files[f"{PACKAGE}/_lib/libjitcache.so"] = library.read_bytes()
    return _write_wheel(wheel_directory, files, _tag(library is not None))


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    library = _native_library()
    if library is not None:
        target = SRC / PACKAGE / "_lib" / "libjitcache.so"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(library, target)
    files = {f"_{PACKAGE}_editable.pth": f"{SRC}\n".encode("utf-8")}
    return _write_wheel(wheel_directory, files, _tag(library is not None))


def build_sdist(sdist_directory, config_settings=None):
    project = _project()
    base = f"{project['name']}-{project['version']}"
    filename = f"{base}.tar.gz"
    os.makedirs(sdist_directory, exist_ok=True)
    with tarfile.open(Path(sdist_directory) / filename, "w:gz") as sdist:
        for path in sorted(ROOT.rglob("*")):
            relative = path.relative_to(ROOT)
            if not path.is_file() or "__pycache__" in relative.parts or relative.parts[0] in (
                "build",
                "dist",
            ) or relative.parts[-1] == "libjitcache.so":
                continue
            sdist.add(path, arcname=f"{base}/{relative.as_posix()}")
        info = tarfile.TarInfo(f"{base}/PKG-INFO")
        data = _metadata().encode("utf-8")
        info.size = len(data)
        sdist.addfile(info, io.BytesIO(data))
    return filename
