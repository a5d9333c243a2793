// jank_pch.cpp: a C++ JIT host in the style of jank whose generated code uses a
// precompiled header of its runtime, compiled through the C API's C++ backend with a
// base directory (the project) and the compiler probe kept in the cache.
//
//   jank_pch <cache-dir> <project-dir> <c++ compiler> <memory|in-place> [<pch flag>...]
//
// The project has include/prelude.hpp (the runtime: it includes core.hpp and <string>),
// its precompiled form (built by the caller: prelude.hpp.gch for GCC, used through
// `-include include/prelude.hpp`; prelude.hpp.pch for Clang, `-include-pch
// include/prelude.hpp.pch`), and include/extra.hpp, which one definition includes.
// The PCH flags are the caller's; every path is relative to the project, where the
// compiler runs. Definitions using the runtime are compiled with them, one that does
// not without. `memory` hands the compiler the generated source; `in-place` writes it to
// gen/ in the project first and has it compiled there (gen/local.hpp, next to it, is
// then found by a quoted include, and one more definition includes it).
//
// For each definition it prints `unit <name> <memory|disk|compiled>[: reason]` and
// `value <name>=<n>`, then the statistics.

#include <jitcache.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

void check(jitcache_status status, const std::string &what) {
    if (status != JITCACHE_OK) {
        throw std::runtime_error(what + ": " + jitcache_status_name(status) + ": " +
                                 jitcache_last_error());
    }
}

struct Cache {
    jitcache_cache *handle = nullptr;
    Cache(const Cache &) = delete;
    Cache &operator=(const Cache &) = delete;
    explicit Cache(const char *dir) { check(jitcache_open(dir, nullptr, &handle), "open"); }
    ~Cache() { jitcache_close(handle); }
};

// A C++ backend compiling in the project with `flags`, its probe remembered in `cache`.
struct Backend {
    jitcache_backend *handle = nullptr;
    Backend(const Backend &) = delete;
    Backend &operator=(const Backend &) = delete;
    Backend(jitcache_cache *cache, const char *project, const char *compiler,
            const std::vector<std::string> &flags) {
        std::vector<const char *> argv;
        for (const std::string &flag : flags) argv.push_back(flag.c_str());
        jitcache_cc_config config{};
        config.compiler = compiler;
        config.language = JITCACHE_LANG_CXX;
        config.flags = argv.data();
        config.flags_count = argv.size();
        jitcache_cc_options options{};
        options.base_dir = project;
        options.probe_cache = cache;
        check(jitcache_cc_backend_new2(&config, &options, &handle), "c++ backend");
    }
    ~Backend() { jitcache_backend_free(handle); }
};

struct Definition {
    std::string name;   // the unit's name
    std::string file;   // where `in-place` writes it, under the project
    std::string symbol; // extern "C": what to call
    bool prelude;       // uses the runtime (its precompiled header)
    std::string source;
};

std::vector<Definition> front_end(bool in_place) {
    std::vector<Definition> defs = {
        {"user/square", "gen/square.cpp", "user_square", true,
         "extern \"C\" long user_square(long x) { return jank::mul(x, x); }\n"},
        {"user/greeting", "gen/greeting.cpp", "user_greeting", true,
         "extern \"C\" long user_greeting(long n) {\n"
         "  return static_cast<long>(jank::str(\"n=\", n).size()) * jank::mul(1, 1);\n"
         "}\n"},
        {"user/describe", "gen/describe.cpp", "user_describe", true,
         "#include \"extra.hpp\"\n"
         "extern \"C\" long user_describe(long x) { return jank::mul(x, EXTRA_FACTOR); }\n"},
        {"user/plain", "gen/plain.cpp", "user_plain", false,
         "extern \"C\" long user_plain(long x) { return x + 1; }\n"},
    };
    if (in_place) {
        defs.push_back({"user/local", "gen/local.cpp", "user_local", false,
                        "#include \"local.hpp\"\n"
                        "extern \"C\" long user_local(long x) { return x + LOCAL_OFFSET; }\n"});
    }
    return defs;
}

// Writes `text` to `path` unless it holds it already (a rewrite would only change times).
void write_if_changed(const std::string &path, const std::string &text) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream old;
    old << in.rdbuf();
    if (in && old.str() == text) return;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw std::runtime_error("cannot write " + path);
}

long call(jitcache_cache *cache, jitcache_backend *backend, const std::string &project,
          bool in_place, const Definition &def) {
    jitcache_key_parts parts{};
    parts.ns = "jank";
    parts.name = def.name.c_str();
    parts.unit = reinterpret_cast<const uint8_t *>(def.source.data());
    parts.unit_len = def.source.size();
    const char *path = nullptr;
    if (in_place) {
        write_if_changed(project + "/" + def.file, def.source);
        path = def.file.c_str(); // relative to the backend's base directory
    }
    jitcache_unit *unit = nullptr;
    check(jitcache_get_or_compile_batch_at(cache, backend, &parts, &path, 1, nullptr, &unit),
          def.name);
    int32_t origin = 0;
    char *reason = nullptr;
    check(jitcache_unit_origin(unit, &origin, &reason), "origin");
    const char *from = origin == JITCACHE_ORIGIN_MEMORY ? "memory"
                       : origin == JITCACHE_ORIGIN_DISK ? "disk"
                                                        : "compiled";
    std::printf("unit %s %s%s%s\n", def.name.c_str(), from, reason ? ": " : "",
                reason ? reason : "");
    jitcache_string_free(reason);
    void *address = nullptr;
    check(jitcache_unit_symbol(unit, def.symbol.c_str(), &address), def.symbol);
    jitcache_unit_free(unit);
    long value = reinterpret_cast<long (*)(long)>(address)(3);
    std::printf("value %s=%ld\n", def.name.c_str(), value);
    return value;
}

} // namespace

int main(int argc, char **argv) {
    if (argc < 5) {
        std::fprintf(stderr,
                     "usage: %s <cache-dir> <project-dir> <c++> <memory|in-place> [<pch flag>...]\n",
                     argv[0]);
        return 2;
    }
    try {
        const std::string project = argv[2];
        const bool in_place = std::string(argv[4]) == "in-place";
        // The PCH must be built with the same options as the code that uses it.
        const std::vector<std::string> common = {"-std=c++17", "-O2", "-fPIC", "-Iinclude"};
        std::vector<std::string> with_prelude = common;
        for (int i = 5; i < argc; ++i) with_prelude.push_back(argv[i]);

        Cache cache(argv[1]);
        Backend prelude(cache.handle, argv[2], argv[3], with_prelude);
        Backend plain(cache.handle, argv[2], argv[3], common);
        for (const Definition &def : front_end(in_place)) {
            call(cache.handle, def.prelude ? prelude.handle : plain.handle, project, in_place,
                 def);
        }
        jitcache_stats stats;
        check(jitcache_stats_get(cache.handle, &stats), "stats");
        std::printf("stats memory_hits=%llu disk_hits=%llu misses=%llu compiles=%llu\n",
                    static_cast<unsigned long long>(stats.memory_hits),
                    static_cast<unsigned long long>(stats.disk_hits),
                    static_cast<unsigned long long>(stats.misses),
                    static_cast<unsigned long long>(stats.compiles));
    } catch (const std::exception &e) {
        std::fprintf(stderr, "jank_pch: %s\n", e.what());
        return 1;
    }
    return 0;
}
