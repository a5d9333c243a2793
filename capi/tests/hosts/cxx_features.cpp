// C++ features of code loaded through the jitcache C API.
//
//   cxx_features <case> <cache-dir> <c++ compiler>
//
// Cases:
//   ctor           static constructors of a loaded unit run when it is loaded
//   throw-out      an exception thrown in loaded code is caught by the host
//   throw-through  an exception thrown by the host unwinds through loaded code
//                  (running its cleanups) and is caught by the host
//   comdat         two units sharing an inline function (a COMDAT group, with a
//                  static local) use one copy of it
//
// Prints "ok <case>" and exits 0 when every check passed.

#include <jitcache.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

namespace {

int failures = 0;

void check(jitcache_status status, const std::string &what) {
    if (status != JITCACHE_OK) {
        throw std::runtime_error(what + ": " + jitcache_status_name(status) + ": " +
                                 jitcache_last_error());
    }
}

void expect(bool ok, const char *what) {
    if (!ok) {
        std::fprintf(stderr, "check failed: %s\n", what);
        ++failures;
    }
}

struct Host {
    jitcache_cache *cache = nullptr;
    jitcache_backend *backend = nullptr;

    Host(const char *dir, const char *compiler) {
        check(jitcache_open(dir, nullptr, &cache), "open");
        static const char *const flags[] = {"-std=c++17", "-O2", "-fPIC"};
        jitcache_cc_config config{};
        config.compiler = compiler;
        config.language = JITCACHE_LANG_CXX;
        config.flags = flags;
        config.flags_count = 3;
        check(jitcache_cc_backend_new(&config, &backend), "backend");
    }
    Host(const Host &) = delete;
    Host &operator=(const Host &) = delete;
    ~Host() {
        jitcache_backend_free(backend);
        jitcache_close(cache);
    }

    // Loads a unit of C++ source and returns the address of `symbol` in it.
    void *load(const char *name, const char *source, const char *symbol) {
        jitcache_key_parts parts{};
        parts.ns = "cxx-features";
        parts.name = name;
        parts.unit = reinterpret_cast<const uint8_t *>(source);
        parts.unit_len = std::strlen(source);
        jitcache_unit *unit = nullptr;
        check(jitcache_get_or_compile(cache, backend, &parts, nullptr, &unit), name);
        void *address = nullptr;
        jitcache_status status = jitcache_unit_symbol(unit, symbol, &address);
        jitcache_unit_free(unit);
        check(status, symbol);
        return address;
    }

    void print_stats() {
        jitcache_stats stats;
        check(jitcache_stats_get(cache, &stats), "stats");
        std::printf("stats memory_hits=%llu disk_hits=%llu misses=%llu compiles=%llu\n",
                    static_cast<unsigned long long>(stats.memory_hits),
                    static_cast<unsigned long long>(stats.disk_hits),
                    static_cast<unsigned long long>(stats.misses),
                    static_cast<unsigned long long>(stats.compiles));
    }
};

template <typename F> F as(void *address) { return reinterpret_cast<F>(address); }

void static_constructors(Host &host) {
    const char *source = R"(
#include <string>
namespace {
struct Registry {
  int value;
  Registry() : value(42) {}
};
Registry registry;                                     // a constructor with code
std::string greeting = std::string("hello, ") + "jank"; // a library constructor
int computed = static_cast<int>(greeting.size()) * 2;   // dynamic initialization
}
extern "C" int ctor_value() { return registry.value; }
extern "C" const char *ctor_greeting() { return greeting.c_str(); }
extern "C" int ctor_computed() { return computed; }
)";
    void *value = host.load("ctor", source, "ctor_value");
    void *greeting = host.load("ctor", source, "ctor_greeting");
    void *computed = host.load("ctor", source, "ctor_computed");
    expect(as<int (*)()>(value)() == 42, "constructor ran");
    expect(std::strcmp(as<const char *(*)()>(greeting)(), "hello, jank") == 0,
           "std::string constructed");
    expect(as<int (*)()>(computed)() == 22, "dynamic initialization ran in order");
}

void throw_out(Host &host) {
    const char *source = R"(
#include <stdexcept>
#include <string>
extern "C" long checked_sqrt(long x) {
  if (x < 0) throw std::invalid_argument("negative: " + std::to_string(x));
  long r = 0;
  while ((r + 1) * (r + 1) <= x) ++r;
  return r;
}
extern "C" long throws_int(long x) { throw static_cast<int>(x * 2); }
)";
    auto checked_sqrt = as<long (*)(long)>(host.load("throw-out", source, "checked_sqrt"));
    auto throws_int = as<long (*)(long)>(host.load("throw-out", source, "throws_int"));
    expect(checked_sqrt(49) == 7, "no exception");
    bool caught = false;
    try {
        checked_sqrt(-4);
    } catch (const std::invalid_argument &e) {
        caught = std::strcmp(e.what(), "negative: -4") == 0;
    }
    expect(caught, "std::invalid_argument from loaded code caught by the host");
    caught = false;
    try {
        throws_int(21);
    } catch (int value) {
        caught = value == 42;
    }
    expect(caught, "int thrown by loaded code caught by the host");
}

long host_callback(long x) {
    if (x > 10) throw std::out_of_range("too big");
    return x * 10;
}

void throw_through(Host &host) {
    const char *source = R"(
int cleanups = 0;
struct Guard { ~Guard() { ++cleanups; } };
extern "C" long call_host(long (*callback)(long), long x) {
  Guard guard;                 // its destructor runs during unwinding
  long result = callback(x);
  return result + 1;
}
extern "C" int cleanup_count() { return cleanups; }
)";
    auto call_host = as<long (*)(long (*)(long), long)>(
        host.load("throw-through", source, "call_host"));
    auto cleanup_count = as<int (*)()>(host.load("throw-through", source, "cleanup_count"));
    expect(call_host(host_callback, 4) == 41, "no exception");
    expect(cleanup_count() == 1, "destructor on return");
    bool caught = false;
    try {
        call_host(host_callback, 11);
    } catch (const std::out_of_range &e) {
        caught = std::strcmp(e.what(), "too big") == 0;
    }
    expect(caught, "host exception unwound through loaded code");
    expect(cleanup_count() == 2, "loaded code's cleanup ran during unwinding");
}

void comdat(Host &host) {
    // Both units define the inline function `counter` (a COMDAT group, with its
    // static local in a group of its own): loaded once, they share one counter.
    const char *first = R"(
inline int &counter() { static int n = 0; return n; }
extern "C" int bump_first() { return ++counter(); }
extern "C" int *counter_first() { return &counter(); }
)";
    const char *second = R"(
inline int &counter() { static int n = 0; return n; }
extern "C" int bump_second() { return ++counter(); }
extern "C" int *counter_second() { return &counter(); }
)";
    auto bump_first = as<int (*)()>(host.load("comdat-first", first, "bump_first"));
    auto counter_first = as<int *(*)()>(host.load("comdat-first", first, "counter_first"));
    auto bump_second = as<int (*)()>(host.load("comdat-second", second, "bump_second"));
    auto counter_second = as<int *(*)()>(host.load("comdat-second", second, "counter_second"));
    expect(counter_first() == counter_second(), "one copy of the inline function's static");
    expect(bump_first() == 1, "first bump");
    expect(bump_second() == 2, "second unit sees the first's counter");
    expect(bump_first() == 3, "and back");
}

} // namespace

int main(int argc, char **argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: %s ctor|throw-out|throw-through|comdat <dir> <c++>\n",
                     argv[0]);
        return 2;
    }
    const std::string which = argv[1];
    try {
        Host host(argv[2], argv[3]);
        if (which == "ctor") {
            static_constructors(host);
        } else if (which == "throw-out") {
            throw_out(host);
        } else if (which == "throw-through") {
            throw_through(host);
        } else if (which == "comdat") {
            comdat(host);
        } else {
            std::fprintf(stderr, "unknown case %s\n", which.c_str());
            return 2;
        }
        host.print_stats();
    } catch (const std::exception &e) {
        std::fprintf(stderr, "cxx_features %s: %s\n", which.c_str(), e.what());
        return 1;
    }
    if (failures == 0) std::printf("ok %s\n", which.c_str());
    return failures == 0 ? 0 : 1;
}
