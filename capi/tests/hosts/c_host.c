/* A C host of the jitcache C API: a small C JIT whose own compiler is a callback.
 *
 *   c_host callback <cache-dir> <cc>   get-or-compile with a compile callback; prints
 *                                      the statistics and the number of compiles
 *   c_host raw <cache-dir> <cc> <lib>  raw store, loading objects, resolver, libraries,
 *                                      unload, a bypassed cache
 *   c_host threads <cache-dir> <cc>    8 threads asking for the same units at once
 *
 * Exits 0 when every check passed; prints each failed check on stderr. */
#define _POSIX_C_SOURCE 200809L

#include "support.h"

#include <pthread.h>

struct compiler {
    const char *cc;
    pthread_mutex_t lock;
    int calls;
};

/* The JIT's compiler: C source in, ELF object out. */
static int32_t compile_unit(void *user_data, const jitcache_compile_request *request,
                            jitcache_compile_output *output) {
    struct compiler *compiler = user_data;
    pthread_mutex_lock(&compiler->lock);
    compiler->calls++;
    pthread_mutex_unlock(&compiler->lock);
    unsigned char *object = NULL;
    size_t len = 0;
    char err[4096];
    if (compile_c(compiler->cc, request->unit, request->unit_len, &object, &len, err,
                  sizeof err) != 0) {
        jitcache_compile_output_set_error(output, err);
        return 1;
    }
    jitcache_status status = jitcache_compile_output_set_object(output, object, len);
    free(object);
    return status == JITCACHE_OK ? 0 : 1;
}

static const char SRC_ADD[] = "long add(long a, long b) { return a + b; }\n";
static const char SRC_TWICE[] = "long add(long, long);\nlong twice(long x) { return add(x, x); }\n";
static const char SRC_HELLO[] =
    "#include <string.h>\nlong hello_len(void) { return (long)strlen(\"hello, jitcache\"); }\n";

static void print_stats(jitcache_cache *cache, int calls) {
    jitcache_stats stats;
    OK(jitcache_stats_get(cache, &stats));
    printf("stats memory_hits=%llu disk_hits=%llu misses=%llu compiles=%llu callbacks=%d\n",
           (unsigned long long)stats.memory_hits, (unsigned long long)stats.disk_hits,
           (unsigned long long)stats.misses, (unsigned long long)stats.compiles, calls);
}

static int run_callback(const char *dir, const char *cc) {
    struct compiler compiler = {cc, PTHREAD_MUTEX_INITIALIZER, 0};
    jitcache_cache *cache = NULL;
    jitcache_backend *backend = NULL;
    OK(jitcache_open(dir, NULL, &cache));
    jitcache_backend_identity identity = test_identity();
    OK(jitcache_callback_backend_new(&identity, compile_unit, &compiler, &backend));

    /* add and twice in one batch (twice calls add); twice depends on add's interface. */
    jitcache_hash add_interface;
    const char add_signature[] = "long add(long, long)";
    OK(jitcache_hash_bytes(add_signature, strlen(add_signature), &add_interface));
    jitcache_key_parts parts[2] = {parts_of("c", "add", SRC_ADD),
                                   parts_of("c", "twice", SRC_TWICE)};
    parts[1].deps = &add_interface;
    parts[1].deps_count = 1;
    jitcache_unit *units[2] = {NULL, NULL};
    OK(jitcache_get_or_compile_batch(cache, backend, parts, 2, NULL, units));

    jitcache_key_parts hello = parts_of("c", "hello", SRC_HELLO);
    jitcache_unit *hello_unit = NULL;
    OK(jitcache_get_or_compile(cache, backend, &hello, NULL, &hello_unit));

    void *add = NULL, *twice = NULL, *hello_len = NULL;
    OK(jitcache_unit_symbol(units[0], "add", &add));
    OK(jitcache_unit_symbol(units[1], "twice", &twice));
    OK(jitcache_unit_symbol(hello_unit, "hello_len", &hello_len));
    if (add != NULL && twice != NULL && hello_len != NULL) {
        EXPECT(((long (*)(long, long))add)(2, 3) == 5);
        EXPECT(((long (*)(long))twice)(21) == 42);
        EXPECT(((long (*)(void))hello_len)() == 15);
    }

    /* Keys: built from the parts and identity, from the backend, and the unit's own
     * all agree, and the raw store has the object under it. */
    jitcache_key built, from_backend, of_unit;
    OK(jitcache_key_build(&parts[1], &identity, &built));
    OK(jitcache_backend_key(backend, &parts[1], &from_backend));
    OK(jitcache_unit_key(units[1], &of_unit));
    EXPECT(memcmp(built.bytes, of_unit.bytes, 32) == 0);
    EXPECT(memcmp(from_backend.bytes, of_unit.bytes, 32) == 0);
    jitcache_bytes object = {NULL, 0};
    OK(jitcache_lookup(cache, &built, &object));
    EXPECT(object.len > 4 && memcmp(object.data, "\177ELF", 4) == 0);
    OK(jitcache_bytes_free(&object));
    EXPECT(object.data == NULL && object.len == 0);

    /* A changed dependency interface is another key. */
    jitcache_hash other_interface;
    OK(jitcache_hash_bytes("long add(int, int)", 18, &other_interface));
    parts[1].deps = &other_interface;
    jitcache_key changed;
    OK(jitcache_key_build(&parts[1], &identity, &changed));
    EXPECT(memcmp(changed.bytes, built.bytes, 32) != 0);
    char hex[65];
    OK(jitcache_key_to_hex(&built, hex));
    EXPECT(strlen(hex) == 64);

    /* Origins: compiled in a cold cache, from disk in a warm one. */
    int32_t origin = -1;
    char *reason = NULL;
    OK(jitcache_unit_origin(hello_unit, &origin, &reason));
    if (origin == JITCACHE_ORIGIN_COMPILED) {
        EXPECT(reason != NULL && strcmp(reason, "new unit") == 0);
    } else {
        EXPECT(origin == JITCACHE_ORIGIN_DISK && reason == NULL);
    }
    OK(jitcache_string_free(reason));
    printf("origin hello=%d\n", origin);

    /* The same unit again in this process: a memory hit, same code. */
    jitcache_unit *again = NULL;
    void *add_again = NULL;
    OK(jitcache_get_or_compile(cache, backend, &parts[0], NULL, &again));
    OK(jitcache_unit_symbol(again, "add", &add_again));
    EXPECT(add_again == add);
    OK(jitcache_unit_origin(again, &origin, NULL));
    EXPECT(origin == JITCACHE_ORIGIN_MEMORY);

    print_stats(cache, compiler.calls);
    OK(jitcache_unit_free(again));
    OK(jitcache_unit_free(units[0]));
    OK(jitcache_unit_free(units[1]));
    OK(jitcache_unit_free(hello_unit));
    OK(jitcache_backend_free(backend));
    OK(jitcache_close(cache));
    return failures;
}

static long host_secret(void) { return 42; }

struct resolver {
    int calls;
};

static void *resolve(void *user_data, const char *name) {
    struct resolver *resolver = user_data;
    resolver->calls++;
    if (strcmp(name, "host_secret") == 0) return (void *)(uintptr_t)&host_secret;
    return NULL;
}

/* Compiles source and loads it as a unit of raw objects. */
static jitcache_status load_source(jitcache_cache *cache, const char *cc, const char *source,
                                   jitcache_unit **unit) {
    unsigned char *object = NULL;
    size_t len = 0;
    char err[4096];
    if (compile_c(cc, (const unsigned char *)source, strlen(source), &object, &len, err,
                  sizeof err) != 0) {
        fprintf(stderr, "compile failed: %s\n", err);
        failures++;
        return JITCACHE_ERR_COMPILE;
    }
    jitcache_object file = {"unit.o", object, len};
    jitcache_status status = jitcache_load_objects(cache, &file, 1, unit);
    free(object);
    return status;
}

static int run_raw(const char *dir, const char *cc, const char *library) {
    jitcache_cache *cache = NULL;
    jitcache_config config;
    OK(jitcache_config_init(&config));
    EXPECT(config.compression_level == 3 && config.persistent == 1 &&
           config.single_flight_timeout_ms == 60000);
    config.compression_level = 19;
    OK(jitcache_open(dir, &config, &cache));

    /* The raw store: bytes in, the same bytes out. */
    const char source[] = "long triple(long x) { return 3 * x; }\n";
    unsigned char *object = NULL;
    size_t len = 0;
    char err[4096];
    EXPECT(compile_c(cc, (const unsigned char *)source, strlen(source), &object, &len, err,
                     sizeof err) == 0);
    jitcache_key_parts parts = parts_of("raw", "triple", source);
    jitcache_backend_identity identity = test_identity();
    jitcache_key key;
    OK(jitcache_key_build(&parts, &identity, &key));
    jitcache_bytes found = {NULL, 0};
    EXPECT_STATUS(jitcache_lookup(cache, &key, &found), JITCACHE_NOT_FOUND);
    OK(jitcache_insert(cache, &key, object, len));
    OK(jitcache_lookup(cache, &key, &found));
    EXPECT(found.len == len && memcmp(found.data, object, len) == 0);

    /* Load what the store returned; call it. */
    jitcache_object file = {"triple.o", found.data, found.len};
    jitcache_unit *unit = NULL;
    OK(jitcache_load_objects(cache, &file, 1, &unit));
    OK(jitcache_bytes_free(&found));
    OK(jitcache_bytes_free(&found)); /* {NULL, 0} now: a no-op */
    free(object);
    void *triple = NULL, *exported = NULL;
    OK(jitcache_unit_symbol(unit, "triple", &triple));
    OK(jitcache_symbol(cache, "triple", &exported));
    EXPECT(triple != NULL && triple == exported);
    if (triple != NULL) EXPECT(((long (*)(long))triple)(7) == 21);
    int32_t origin = -1;
    OK(jitcache_unit_origin(unit, &origin, NULL));
    EXPECT(origin == JITCACHE_ORIGIN_OBJECT);
    jitcache_key no_key;
    EXPECT_STATUS(jitcache_unit_key(unit, &no_key), JITCACHE_NOT_FOUND);
    void *missing = (void *)1;
    EXPECT_STATUS(jitcache_unit_symbol(unit, "quadruple", &missing), JITCACHE_NOT_FOUND);
    EXPECT(missing == NULL);

    /* Unload: the handle goes stale, the symbol is gone. */
    OK(jitcache_unload(unit));
    EXPECT_STATUS(jitcache_unit_symbol(unit, "triple", &triple), JITCACHE_ERR_STALE_HANDLE);
    EXPECT_STATUS(jitcache_symbol(cache, "triple", &exported), JITCACHE_NOT_FOUND);

    /* A resolver provides a symbol the host does not export. */
    struct resolver resolver = {0};
    OK(jitcache_set_resolver(cache, resolve, &resolver));
    jitcache_unit *reveal_unit = NULL;
    OK(load_source(cache, cc, "long host_secret(void);\nlong reveal(void) { return host_secret() + 1; }\n",
                   &reveal_unit));
    void *reveal = NULL;
    OK(jitcache_unit_symbol(reveal_unit, "reveal", &reveal));
    if (reveal != NULL) EXPECT(((long (*)(void))reveal)() == 43);
    EXPECT(resolver.calls > 0);
    OK(jitcache_set_resolver(cache, NULL, NULL));

    /* A library: its symbols are not found before it is opened. */
    const char magic_source[] = "int jctest_magic(void);\nint call_magic(void) { return jctest_magic(); }\n";
    jitcache_unit *magic_unit = NULL;
    EXPECT_STATUS(load_source(cache, cc, magic_source, &magic_unit), JITCACHE_ERR_LINK);
    EXPECT_MESSAGE("jctest_magic");
    EXPECT(magic_unit == NULL);
    OK(jitcache_open_library(cache, library));
    OK(load_source(cache, cc, magic_source, &magic_unit));
    void *call_magic = NULL;
    OK(jitcache_unit_symbol(magic_unit, "call_magic", &call_magic));
    if (call_magic != NULL) EXPECT(((int (*)(void))call_magic)() == 1234);
    EXPECT_STATUS(jitcache_open_library(cache, "/nonexistent/libnothing.so"), JITCACHE_ERR_LINK);

    jitcache_stats stats;
    OK(jitcache_stats_get(cache, &stats));
    EXPECT(stats.bypassed == 0);
    char *reason = (char *)1;
    OK(jitcache_bypass_reason(cache, &reason));
    EXPECT(reason == NULL);
    OK(jitcache_close(cache));

    /* A cache with persistence off: compiles work, the raw store is bypassed. */
    config.persistent = 0;
    OK(jitcache_open(dir, &config, &cache));
    OK(jitcache_stats_get(cache, &stats));
    EXPECT(stats.bypassed != 0);
    OK(jitcache_bypass_reason(cache, &reason));
    EXPECT(reason != NULL && strstr(reason, "disabled") != NULL);
    OK(jitcache_string_free(reason));
    EXPECT_STATUS(jitcache_lookup(cache, &key, &found), JITCACHE_ERR_BYPASSED);
    EXPECT_STATUS(jitcache_insert(cache, &key, (const uint8_t *)"x", 1), JITCACHE_ERR_BYPASSED);
    OK(jitcache_close(cache));
    return failures;
}

#define THREADS 8
#define UNITS 4

struct shared {
    jitcache_cache *cache;
    jitcache_backend *backend;
    char sources[UNITS][128];
    char names[UNITS][16];
};

static void *worker(void *arg) {
    struct shared *shared = arg;
    jitcache_key_parts parts[UNITS];
    for (int i = 0; i < UNITS; i++) parts[i] = parts_of("threads", shared->names[i], shared->sources[i]);
    jitcache_unit *units[UNITS];
    jitcache_status status = jitcache_get_or_compile_batch(shared->cache, shared->backend, parts,
                                                           UNITS, NULL, units);
    if (status != JITCACHE_OK) {
        fprintf(stderr, "batch: %s: %s\n", jitcache_status_name(status), jitcache_last_error());
        return (void *)1;
    }
    intptr_t bad = 0;
    for (int i = 0; i < UNITS; i++) {
        void *f = NULL;
        if (jitcache_unit_symbol(units[i], shared->names[i], &f) != JITCACHE_OK ||
            ((long (*)(void))f)() != 100 + i) {
            bad = 1;
        }
        jitcache_unit_free(units[i]);
    }
    return (void *)bad;
}

static int run_threads(const char *dir, const char *cc) {
    struct compiler compiler = {cc, PTHREAD_MUTEX_INITIALIZER, 0};
    struct shared shared;
    memset(&shared, 0, sizeof shared);
    OK(jitcache_open(dir, NULL, &shared.cache));
    jitcache_backend_identity identity = test_identity();
    OK(jitcache_callback_backend_new(&identity, compile_unit, &compiler, &shared.backend));
    for (int i = 0; i < UNITS; i++) {
        snprintf(shared.names[i], sizeof shared.names[i], "value%d", i);
        snprintf(shared.sources[i], sizeof shared.sources[i], "long value%d(void) { return %d; }\n",
                 i, 100 + i);
    }
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&threads[i], NULL, worker, &shared);
    for (int i = 0; i < THREADS; i++) {
        void *bad = NULL;
        pthread_join(threads[i], &bad);
        EXPECT(bad == NULL);
    }
    jitcache_stats stats;
    OK(jitcache_stats_get(shared.cache, &stats));
    EXPECT(stats.memory_hits + stats.disk_hits + stats.compiles == THREADS * UNITS);
    print_stats(shared.cache, compiler.calls);
    OK(jitcache_backend_free(shared.backend));
    OK(jitcache_close(shared.cache));
    return failures;
}

int main(int argc, char **argv) {
    if (argc >= 4 && strcmp(argv[1], "callback") == 0) return run_callback(argv[2], argv[3]) != 0;
    if (argc >= 5 && strcmp(argv[1], "raw") == 0) return run_raw(argv[2], argv[3], argv[4]) != 0;
    if (argc >= 4 && strcmp(argv[1], "threads") == 0) return run_threads(argv[2], argv[3]) != 0;
    fprintf(stderr, "usage: c_host callback|raw|threads <cache-dir> <cc> [<library>]\n");
    return 2;
}
