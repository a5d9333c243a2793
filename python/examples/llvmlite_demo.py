"""llvmlite with jitcache: three modules of LLVM IR text (and the engine's empty first
module), compiled by MCJIT through a jitcache object cache. Run it twice with the same
cache directory: the second process gets every object from the cache and LLVM generates
no code.

    python3 llvmlite_demo.py /tmp/llvmlite-cache      # codegen=4 hits=0 misses=4 stores=4
    python3 llvmlite_demo.py /tmp/llvmlite-cache      # codegen=0 hits=4 misses=0 stores=0
"""

import ctypes
import sys

import llvmlite.binding as llvm

from jitcache.llvmlite import ObjectCache

MODULES = {
    "math": r"""
define i64 @square(i64 %x) {
  %r = mul i64 %x, %x
  ret i64 %r
}
define i64 @fib(i64 %n) {
entry:
  %small = icmp slt i64 %n, 2
  br i1 %small, label %done, label %recur
recur:
  %a = sub i64 %n, 1
  %fa = call i64 @fib(i64 %a)
  %b = sub i64 %n, 2
  %fb = call i64 @fib(i64 %b)
  %sum = add i64 %fa, %fb
  ret i64 %sum
done:
  ret i64 %n
}
""",
    "poly": r"""
declare i64 @square(i64)
define i64 @poly(i64 %x) {
  %s = call i64 @square(i64 %x)
  %t = mul i64 %x, 3
  %u = add i64 %s, %t
  %v = add i64 %u, 1
  ret i64 %v
}
""",
    "text": r"""
@greeting = private unnamed_addr constant [14 x i8] c"hello, world!\00"
declare i64 @strlen(ptr)
define i64 @greeting_len() {
  %n = call i64 @strlen(ptr @greeting)
  ret i64 %n
}
""",
}


def main(argv):
    cache_dir = argv[1] if len(argv) > 1 else None
    salt = argv[2] if len(argv) > 2 else "demo-runtime-1"
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    llvm.initialize_native_asmparser()

    cache = ObjectCache(cache_dir, salt=salt)
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), cache.target_machine())

    # The logging hook: llvmlite calls notify exactly when LLVM generated an object.
    codegen = []

    def notify(module, data):
        codegen.append(module.name)
        cache.notify(module, data)

    engine.set_object_cache(notify, cache.getbuffer)
    for name, text in MODULES.items():
        module = llvm.parse_assembly(text)
        module.name = name
        module.verify()
        engine.add_module(module)
    engine.finalize_object()

    def function(name, *args):
        fn = ctypes.CFUNCTYPE(ctypes.c_int64, *[ctypes.c_int64] * len(args))
        return fn(engine.get_function_address(name))(*args)

    print(f"square(12)={function('square', 12)} fib(20)={function('fib', 20)} "
          f"poly(5)={function('poly', 5)} greeting_len={function('greeting_len')}")
    print(f"codegen={len(codegen)} hits={cache.hits} misses={cache.misses} "
          f"stores={cache.stores} uncacheable={cache.uncacheable} errors={cache.errors}")
    if cache.last_error:
        print(f"last_error={cache.last_error}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
