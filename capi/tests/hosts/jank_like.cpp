// jank_like.cpp: a C++ JIT host in the style of jank, on the jitcache C API.
//
// The "front end" turns each definition of the program into C++ source, the way
// jank does; jitcache compiles it with the system C++ compiler on a miss, keeps
// the object in a persistent cache, links it into this process and hands back
// the address to call. Run it twice with the same cache directory: the second
// process gets every definition from the cache, and never runs the compiler.
//
//   c++ -std=c++17 -I include jank_like.cpp -o jank_like
//       -L target/release -ljitcache -Wl,-rpath,$PWD/target/release
//   ./jank_like /tmp/jank-cache        # compiles: compiles=5 disk_hits=0
//   ./jank_like /tmp/jank-cache        # cached:   compiles=0 disk_hits=5
//
// Usage: jank_like <cache-dir> [<c++ compiler>]

#include <jitcache.h>

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// Every jitcache call returns a status; this host turns failures into exceptions
// carrying jitcache's message for this thread.
void check(jitcache_status status, const std::string &what) {
    if (status != JITCACHE_OK) {
        throw std::runtime_error(what + ": " + jitcache_status_name(status) + ": " +
                                 jitcache_last_error());
    }
}

// Owners of the three kinds of handle (each is freed exactly once).
struct Cache {
    jitcache_cache *handle = nullptr;
    Cache(const Cache &) = delete;
    Cache &operator=(const Cache &) = delete;
    explicit Cache(const char *dir) {
        jitcache_config config;
        check(jitcache_config_init(&config), "config");
        check(jitcache_open(dir, &config, &handle), std::string("open ") + dir);
    }
    ~Cache() { jitcache_close(handle); } // unloads every unit of the cache
};

struct Backend {
    jitcache_backend *handle = nullptr;
    Backend(const Backend &) = delete;
    Backend &operator=(const Backend &) = delete;
    explicit Backend(const char *compiler) {
        // The flags are part of every key: changing them recompiles everything.
        static const char *const flags[] = {"-std=c++17", "-O2", "-fPIC"};
        jitcache_cc_config config{};
        config.compiler = compiler; // nullptr: "c++" from PATH
        config.language = JITCACHE_LANG_CXX;
        config.flags = flags;
        config.flags_count = sizeof flags / sizeof flags[0];
        check(jitcache_cc_backend_new(&config, &handle), "c++ backend");
    }
    ~Backend() { jitcache_backend_free(handle); }
};

struct Unit {
    jitcache_unit *handle = nullptr;
    Unit() = default;
    Unit(const Unit &) = delete;
    Unit &operator=(const Unit &) = delete;
    ~Unit() { jitcache_unit_free(handle); } // the code stays loaded
};

// The host runtime, which generated code calls. A resolver hands its address to
// the linker, so the host need not export it (no -rdynamic).
long runtime_calls = 0;
extern "C" long jank_runtime_track(long value) {
    ++runtime_calls;
    return value;
}

void *resolve_runtime(void *, const char *name) {
    if (std::string(name) == "jank_runtime_track") {
        return reinterpret_cast<void *>(&jank_runtime_track);
    }
    return nullptr; // not ours: the search goes on (host process, libraries)
}

// A definition as the front end produced it.
struct Definition {
    std::string name;                 // the qualified name: the unit's name
    std::string symbol;               // the (mangled) symbol to call
    std::string source;               // generated C++
    std::vector<std::string> depends; // interfaces of what it calls
};

// What a front end like jank would generate for
//   (defn square [x] (* x x))
//   (defn sum-of-squares [n] (reduce + (map square (range 1 (inc n)))))
//   (defn describe [n] (str "n=" n))
//   (defn median [a b c] (nth (sort [a b c]) 1))
//   (defn tracked [x] (runtime/track x))
std::vector<Definition> front_end() {
    return {
        {"user/square", "_ZN4user6squareEl",
         "namespace user { long square(long x) { return x * x; } }\n",
         {}},
        {"user/sum-of-squares", "_ZN4user14sum_of_squaresEl",
         "namespace user {\n"
         "long square(long x);\n"
         "long sum_of_squares(long n) {\n"
         "  long sum = 0;\n"
         "  for (long i = 1; i <= n; ++i) sum += square(i);\n"
         "  return sum;\n"
         "}\n"
         "}\n",
         {"long user::square(long)"}},
        {"user/describe", "_ZN4user8describeEl",
         "#include <string>\n"
         "namespace user {\n"
         "long describe(long n) { return static_cast<long>((\"n=\" + std::to_string(n)).size()); }\n"
         "}\n",
         {}},
        {"user/median", "_ZN4user6medianElll",
         "#include <algorithm>\n"
         "#include <vector>\n"
         "namespace user {\n"
         "long median(long a, long b, long c) {\n"
         "  std::vector<long> v{a, b, c};\n"
         "  std::sort(v.begin(), v.end());\n"
         "  return v[1];\n"
         "}\n"
         "}\n",
         {}},
        {"user/tracked", "_ZN4user7trackedEl",
         "extern \"C\" long jank_runtime_track(long);\n"
         "namespace user { long tracked(long x) { return jank_runtime_track(x) + 1; } }\n",
         {"long jank_runtime_track(long)"}},
    };
}

// Gets a definition's code (from this process, the cache, or the compiler) and
// returns the address of its symbol.
void *load(jitcache_cache *cache, jitcache_backend *backend, const Definition &def) {
    // Interface hashes of the definitions it calls: a change of a callee's
    // signature recompiles this one; a change of its body does not.
    std::vector<jitcache_hash> deps(def.depends.size());
    for (size_t i = 0; i < deps.size(); ++i) {
        check(jitcache_hash_bytes(def.depends[i].data(), def.depends[i].size(), &deps[i]),
              "hash");
    }
    jitcache_key_parts parts{};
    parts.ns = "jank";
    parts.name = def.name.c_str();
    parts.unit = reinterpret_cast<const uint8_t *>(def.source.data());
    parts.unit_len = def.source.size();
    parts.deps = deps.data();
    parts.deps_count = deps.size();

    Unit unit;
    check(jitcache_get_or_compile(cache, backend, &parts, nullptr, &unit.handle), def.name);

    int32_t origin = 0;
    char *reason = nullptr;
    check(jitcache_unit_origin(unit.handle, &origin, &reason), "origin");
    const char *from = origin == JITCACHE_ORIGIN_MEMORY ? "memory"
                       : origin == JITCACHE_ORIGIN_DISK ? "disk"
                                                        : "compiled";
    std::printf("%-22s %s%s%s\n", def.name.c_str(), from, reason ? ": " : "",
                reason ? reason : "");
    jitcache_string_free(reason);

    void *address = nullptr;
    check(jitcache_unit_symbol(unit.handle, def.symbol.c_str(), &address), def.symbol);
    return address;
}

template <typename F> F as(void *address) { return reinterpret_cast<F>(address); }

void expect(bool ok, const char *what) {
    if (!ok) throw std::runtime_error(std::string("wrong result: ") + what);
}

} // namespace

int main(int argc, char **argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s <cache-dir> [<c++ compiler>]\n", argv[0]);
        return 2;
    }
    try {
        Cache cache(argv[1]);
        Backend backend(argc > 2 ? argv[2] : nullptr);
        check(jitcache_set_resolver(cache.handle, resolve_runtime, nullptr), "resolver");

        // Definitions are loaded in order, like a REPL evaluating a file: each one
        // may call those loaded before it.
        std::vector<void *> fns;
        for (const Definition &def : front_end()) {
            fns.push_back(load(cache.handle, backend.handle, def));
        }
        expect(as<long (*)(long)>(fns[0])(12) == 144, "square");
        expect(as<long (*)(long)>(fns[1])(3) == 14, "sum-of-squares");
        expect(as<long (*)(long)>(fns[2])(1234) == 6, "describe");
        expect(as<long (*)(long, long, long)>(fns[3])(9, 1, 5) == 5, "median");
        expect(as<long (*)(long)>(fns[4])(41) == 42 && runtime_calls == 1, "tracked");

        // Asking again in the same process is a memory hit: same code.
        expect(load(cache.handle, backend.handle, front_end()[0]) == fns[0], "memory hit");

        jitcache_stats stats;
        check(jitcache_stats_get(cache.handle, &stats), "stats");
        std::printf("stats memory_hits=%llu disk_hits=%llu misses=%llu compiles=%llu\n",
                    static_cast<unsigned long long>(stats.memory_hits),
                    static_cast<unsigned long long>(stats.disk_hits),
                    static_cast<unsigned long long>(stats.misses),
                    static_cast<unsigned long long>(stats.compiles));
        std::printf("compile %.1f ms, load %.1f ms\n", stats.compile_time_ns / 1e6,
                    stats.load_time_ns / 1e6);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "jank_like: %s\n", e.what());
        return 1;
    }
    return 0;
}
