// A C++ host for unwinding through loaded code with whatever unwinder it is linked with
// (capi/tests/capi/unwinders.rs builds it against libgcc_s, LLVM's libunwind, and with
// -static-libgcc). It loads one C++ object (argv[2]) and throws both ways:
//   - loaded code throws, the host catches;
//   - host code throws through loaded frames (with cleanups on both sides), the host
//     catches, and loaded code catches what the host throws.
// Usage: unwind_host CACHE_DIR OBJECT [add-own-unwinder]
#include <jitcache.h>

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

extern "C" void __register_frame(const void *);
extern "C" void __deregister_frame(const void *);
extern "C" int _Unwind_RaiseException(void *);

static void check(jitcache_status s, const char *what) {
    if (s != JITCACHE_OK) {
        std::fprintf(stderr, "%s: %s (%s)\n", what, jitcache_status_name(s), jitcache_last_error());
        std::exit(2);
    }
}

static const char *object_of(void *p) {
    Dl_info info;
    if (p != nullptr && dladdr(p, &info) != 0 && info.dli_fname != nullptr && *info.dli_fname)
        return info.dli_fname;
    return "(executable)";
}

static long host_cleanups;
struct HostGuard {
    ~HostGuard() { host_cleanups += 1; }
};

// Called by loaded code: throws, with a cleanup in this frame (its landing pad resumes
// with the host's own _Unwind_Resume, which then unwinds through loaded frames).
extern "C" __attribute__((noinline)) long host_throw(long x) {
    HostGuard guard;
    if (x > 0) throw std::runtime_error("host " + std::to_string(x));
    return x;
}

static void *resolve(void *, const char *name) {
    return std::strcmp(name, "host_throw") == 0 ? reinterpret_cast<void *>(&host_throw) : nullptr;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    std::setvbuf(stdout, nullptr, _IOLBF, 0); // lines written before an abort are kept
    // Which unwinder a throw from libstdc++ uses (the global scope's), and the host's own.
    std::printf("global-unwinder %s\n", object_of(dlsym(RTLD_DEFAULT, "_Unwind_RaiseException")));
    std::printf("own-unwinder %s\n", object_of(reinterpret_cast<void *>(&_Unwind_RaiseException)));
    if (argc > 3 && std::strcmp(argv[3], "add-own-unwinder") == 0)
        check(jitcache_add_unwinder(__register_frame, __deregister_frame, JITCACHE_UNWINDER_LIBGCC),
              "add_unwinder");

    jitcache_cache *cache = nullptr;
    check(jitcache_open(argv[1], nullptr, &cache), "open");
    check(jitcache_set_resolver(cache, resolve, nullptr), "set_resolver");
    check(jitcache_open_library(cache, "stdc++"), "open_library");
    std::ifstream in(argv[2], std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    jitcache_object object{"throws.o", bytes.data(), bytes.size()};
    jitcache_unit *unit = nullptr;
    check(jitcache_load_objects(cache, &object, 1, &unit), "load");
    auto fn = [&](const char *name) {
        void *p = nullptr;
        check(jitcache_unit_symbol(unit, name, &p), name);
        return reinterpret_cast<long (*)(long)>(p);
    };
    auto loaded_throws = fn("loaded_throws");
    auto loaded_calls_host = fn("loaded_calls_host");
    auto loaded_catches_host = fn("loaded_catches_host");
    auto loaded_cleanups = fn("loaded_cleanups");

    try {
        loaded_throws(3);
        std::puts("loaded-to-host no exception");
    } catch (const std::runtime_error &e) {
        std::printf("loaded-to-host caught \"%s\" loaded_cleanups=%ld\n", e.what(), loaded_cleanups(0));
    }
    try {
        loaded_calls_host(5);
        std::puts("host-through-loaded no exception");
    } catch (const std::runtime_error &e) {
        std::printf("host-through-loaded caught \"%s\" loaded_cleanups=%ld host_cleanups=%ld\n", e.what(),
                    loaded_cleanups(0), host_cleanups);
    }
    std::printf("loaded-catches-host %ld\n", loaded_catches_host(7));

    check(jitcache_unload(unit), "unload");
    check(jitcache_close(cache), "close");
    std::puts("done");
    return 0;
}
