"""Damages the cache entries of examples/llvmlite_demo.py, for the test that a damaged
entry is a miss and never a crash (capi/tests/capi/python.rs).

    damage_entries.py flip CACHE       flip bytes of every stored blob (in the index and
                                       in blob files): the store's hash check fails
    damage_entries.py garbage CACHE    store bytes that are no object under each module's key
    damage_entries.py truncate CACHE   store the first half of each module's object
"""

import os
import sqlite3
import sys
from pathlib import Path

import llvmlite.binding as llvm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import llvmlite_demo  # noqa: E402

from jitcache.llvmlite import ObjectCache  # noqa: E402


def flip(cache_dir: Path) -> int:
    damaged = 0
    index = cache_dir / "v1" / "index.sqlite"
    db = sqlite3.connect(index)
    with db:
        for blob, data in db.execute("SELECT blob, data FROM inline_blobs").fetchall():
            data = bytearray(data)
            for i in range(len(data) - 8, len(data)):
                data[i] ^= 0x5A
            db.execute("UPDATE inline_blobs SET data = ? WHERE blob = ?", (bytes(data), blob))
            damaged += 1
    db.close()
    for path in (cache_dir / "v1" / "blobs").rglob("*") if (cache_dir / "v1" / "blobs").exists() else []:
        if path.is_file():
            data = bytearray(path.read_bytes())
            data[-1] ^= 0x5A
            os.chmod(path, 0o644)
            path.write_bytes(bytes(data))
            damaged += 1
    return damaged


def rewrite(cache_dir: Path, how) -> int:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    llvm.initialize_native_asmparser()
    cache = ObjectCache(str(cache_dir), salt="demo-runtime-1")
    # MCJIT gives each module the target's data layout before it asks the cache.
    layout = str(cache.target_machine().target_data)
    # The engine's empty first module keeps its default name.
    modules = [(None, "")] + list(llvmlite_demo.MODULES.items())
    damaged = 0
    for name, text in modules:
        module = llvm.parse_assembly(text)
        if name is not None:
            module.name = name
        module.data_layout = layout
        key = cache.module_key(module)
        old = cache.cache.lookup(key)
        if old is None:
            continue
        cache.cache.insert(key, how(old))
        damaged += 1
    cache.close()
    return damaged


def main(argv):
    mode, cache_dir = argv[1], Path(argv[2])
    if mode == "flip":
        count = flip(cache_dir)
    elif mode == "garbage":
        count = rewrite(cache_dir, lambda old: b"this is not an object file" * 4)
    elif mode == "truncate":
        count = rewrite(cache_dir, lambda old: old[: len(old) // 2])
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(f"damaged={count}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
