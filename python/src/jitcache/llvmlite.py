"""An object cache for llvmlite's MCJIT ``ExecutionEngine``, backed by jitcache.

llvmlite calls ``getbuffer(module)`` before it generates a module's code and
``notify(module, object)`` after; :class:`ObjectCache` answers the first from the cache
and stores the second::

    import llvmlite.binding as llvm
    from jitcache.llvmlite import ObjectCache

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    cache = ObjectCache("/home/me/.cache/myjit", salt="myjit-runtime-3")
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), cache.target_machine())
    cache.attach(engine)             # engine.set_object_cache(cache.notify, cache.getbuffer)
    engine.add_module(module)
    engine.finalize_object()         # generates code only for modules the cache lacks

The key of a module covers its IR as LLVM prints it (``str(module)``: every function,
global, attribute and metadata node, the triple and the data layout), the target
machine (triple, CPU, features, relocation model, code model, optimisation level, ABI
name), the LLVM version llvmlite carries, this adapter's revision and the salt (what
LLVM cannot see: the host runtime's ABI, a system image id). llvmlite's TargetMachine
does not report its options, so the cache creates it (:meth:`ObjectCache.target_machine`)
from the options it keys with.

Nothing here raises into llvmlite: any problem (an unusable cache, a damaged or
foreign entry) is a miss, counted, and the module is compiled as without a cache.
"""

from __future__ import annotations

import re
import struct
import threading
from typing import Optional

import llvmlite.binding as llvm

from . import Cache, JitcacheError, build_key

__all__ = ["ObjectCache", "is_loadable_object", "ADAPTER_REVISION"]

#: The revision of this adapter's key scheme (part of every key).
ADAPTER_REVISION = "1"

#: The namespace of the keys (the C++ adapter's, include/jitcache_llvm.hpp).
NAMESPACE = "llvm"

#: The module flag that marks a module uncacheable (as in the C++ adapter).
UNCACHEABLE_FLAG = "jitcache.uncacheable"

_UNCACHEABLE = re.compile(r'!"' + re.escape(UNCACHEABLE_FLAG) + r'", i32 [1-9]')


def _elf_is_sound(data: bytes) -> bool:
    """Whether an ELF relocatable object's header and section table are consistent:
    every section the file holds lies inside it."""
    if len(data) < 64 or data[4] != 2 or data[5] not in (1, 2):
        return False  # only 64-bit ELF is loaded here
    order = "<" if data[5] == 1 else ">"
    (e_type, _machine, _version, _entry, _phoff, shoff, _flags, ehsize, _phentsize,
     _phnum, shentsize, shnum, shstrndx) = struct.unpack_from(order + "HHIQQQIHHHHHH", data, 16)
    if e_type != 1 or ehsize != 64 or shentsize != 64 or shnum == 0 or shstrndx >= shnum:
        return False
    if shoff + shnum * shentsize > len(data):
        return False
    for i in range(shnum):
        (_name, sh_type, _sflags, _addr, offset, size, _link, _info, _align,
         _entsize) = struct.unpack_from(order + "IIQQQQIIQQ", data, shoff + i * 64)
        if sh_type != 8 and offset + size > len(data):  # SHT_NOBITS holds nothing
            return False
    return True


def is_loadable_object(data: bytes) -> bool:
    """Whether ``data`` looks like an object file MCJIT can load: a sound 64-bit ELF
    relocatable object, or a Mach-O or COFF object by its magic. A damaged or foreign
    cache entry fails this and is a miss."""
    if data[:4] == b"\x7fELF":
        try:
            return _elf_is_sound(data)
        except struct.error:
            return False
    if data[:4] in (b"\xcf\xfa\xed\xfe", b"\xfe\xed\xfa\xcf"):
        return len(data) >= 32
    return len(data) >= 20 and data[:2] in (b"\x64\x86", b"\x64\xaa")  # COFF x64, arm64


class ObjectCache:
    """llvmlite's object cache callbacks on a jitcache cache directory. Thread-safe.

    ``directory`` None is the command-line tool's default directory; ``cache`` is an
    open :class:`jitcache.Cache` to use instead. ``cpu`` None is the host's CPU, and
    then ``features`` None is the host's features; ``opt``, ``reloc``, ``codemodel``
    and ``abiname`` are those of llvmlite's ``Target.create_target_machine``.
    """

    def __init__(
        self,
        directory: Optional[str] = None,
        *,
        salt: str = "",
        triple: Optional[str] = None,
        cpu: Optional[str] = None,
        features: Optional[str] = None,
        opt: int = 2,
        reloc: str = "default",
        codemodel: str = "jitdefault",
        abiname: str = "",
        cache: Optional[Cache] = None,
    ):
        self.salt = salt
        self.triple = triple if triple is not None else llvm.get_process_triple()
        if cpu is None:
            cpu = llvm.get_host_cpu_name()
            if features is None:
                features = llvm.get_host_cpu_features().flatten()
        self.cpu = cpu
        self.features = features or ""
        self.opt = int(opt)
        self.reloc = reloc
        self.codemodel = codemodel
        self.abiname = abiname
        self.llvm_version = ".".join(str(p) for p in llvm.llvm_version_info)
        self._flags = [
            f"cpu={self.cpu}",
            f"features={self.features}",
            f"reloc={self.reloc}",
            f"code-model={self.codemodel}",
            f"opt={self.opt}",
            "jit=1",
            f"abi={self.abiname}",
            f"salt={self.salt}",
        ]
        self._lock = threading.Lock()
        self._pending: dict[int, bytes] = {}
        self._uncacheable_names: set[str] = set()
        self._counts = {"hits": 0, "misses": 0, "stores": 0, "uncacheable": 0, "errors": 0}
        self.last_error: Optional[str] = None
        self._owns_cache = cache is None
        self._cache: Optional[Cache]
        try:
            self._cache = cache if cache is not None else Cache(directory)
        except (JitcacheError, ValueError, OSError) as err:
            self._cache = None
            self.last_error = str(err)

    # -- the target machine ---------------------------------------------------------

    def target_machine(self):
        """A new llvmlite TargetMachine with exactly the options this cache keys with
        (``jit=True``). Call llvm.initialize_native_target() and
        initialize_native_asmprinter() first."""
        target = llvm.Target.from_triple(self.triple)
        return target.create_target_machine(
            cpu=self.cpu,
            features=self.features,
            opt=self.opt,
            reloc=self.reloc,
            codemodel=self.codemodel,
            jit=True,
            abiname=self.abiname,
        )

    def attach(self, engine) -> None:
        """Makes this the object cache of an llvmlite ExecutionEngine."""
        engine.set_object_cache(self.notify, self.getbuffer)

    # -- uncacheable modules --------------------------------------------------------

    def mark_uncacheable(self, module) -> None:
        """Never look up or store the module (by its name): one that embeds
        process-specific addresses. A module carrying the module flag
        ``!"jitcache.uncacheable", i32 1`` is uncacheable too."""
        with self._lock:
            self._uncacheable_names.add(module if isinstance(module, str) else module.name)

    def _is_uncacheable(self, module, text: str) -> bool:
        with self._lock:
            if module.name in self._uncacheable_names:
                return True
        return _UNCACHEABLE.search(text) is not None

    # -- keys -----------------------------------------------------------------------

    def module_key(self, module) -> bytes:
        """The key of a module (its printed IR with the target, versions and salt)."""
        return self._key(module.name, str(module))

    def _key(self, name: str, text: str) -> bytes:
        return build_key(
            NAMESPACE,
            name,
            text.encode("utf-8"),
            backend="llvmlite-object",
            backend_version=f"LLVM {self.llvm_version}; adapter {ADAPTER_REVISION}",
            target=self.triple,
            flags=self._flags,
            flags_ordered=True,
        )

    def _count(self, what: str) -> None:
        with self._lock:
            self._counts[what] += 1

    # -- llvmlite's callbacks -------------------------------------------------------

    def getbuffer(self, module) -> Optional[bytes]:
        """llvmlite's getbuffer: the module's object from the cache, or None (a miss:
        llvmlite compiles it and calls :meth:`notify`)."""
        try:
            text = str(module)
            if self._cache is None or self._is_uncacheable(module, text):
                self._count("uncacheable")
                return None
            key = self._key(module.name, text)
            with self._lock:
                self._pending[id(module)] = key
            data = self._cache.lookup(key)
            if data is None or not is_loadable_object(data):
                self._count("misses")
                return None
            with self._lock:
                self._pending.pop(id(module), None)
            self._count("hits")
            return data
        except Exception as err:  # never into llvmlite: a miss
            self.last_error = f"getbuffer: {err}"
            self._count("errors")
            self._count("misses")
            return None

    def notify(self, module, data: bytes) -> None:
        """llvmlite's notify: stores the object it generated for the module, under the
        key :meth:`getbuffer` computed before code generation."""
        try:
            with self._lock:
                key = self._pending.pop(id(module), None)
            if self._cache is None:
                return
            if key is None:
                text = str(module)
                if self._is_uncacheable(module, text):
                    return
                key = self._key(module.name, text)
            self._cache.insert(key, bytes(data))
            self._count("stores")
        except Exception as err:
            self.last_error = f"notify: {err}"
            self._count("errors")

    # -- counters -------------------------------------------------------------------

    @property
    def hits(self) -> int:
        """Modules whose object came from the cache."""
        return self._counts["hits"]

    @property
    def misses(self) -> int:
        """Cacheable modules the cache did not hold (or held damaged): compiled."""
        return self._counts["misses"]

    @property
    def stores(self) -> int:
        """Objects stored."""
        return self._counts["stores"]

    @property
    def uncacheable(self) -> int:
        """Modules neither looked up nor stored (marked, or no cache open)."""
        return self._counts["uncacheable"]

    @property
    def errors(self) -> int:
        """Problems turned into misses or skipped stores (``last_error`` has the last)."""
        return self._counts["errors"]

    @property
    def cache(self) -> Optional[Cache]:
        """The jitcache cache (None if none could be opened; ``last_error`` says why)."""
        return self._cache

    def close(self) -> None:
        """Closes the cache if this object opened it."""
        if self._owns_cache and self._cache is not None:
            self._cache.close()
