/* Bad input through the jitcache C API: every call must return an error status (with a
 * message), never crash or hang the process.
 *
 *   bad_input <case> <cache-dir> <cc>
 *
 * Exits 0 when every check of the case passed. */
#define _POSIX_C_SOURCE 200809L

#include "support.h"

#include <sys/stat.h>

static const char *CC = "cc";

/* A callback compiling C source with the system compiler. */
static int32_t compile_ok(void *user_data, const jitcache_compile_request *request,
                          jitcache_compile_output *output) {
    (void)user_data;
    unsigned char *object = NULL;
    size_t len = 0;
    char err[4096];
    if (compile_c(CC, request->unit, request->unit_len, &object, &len, err, sizeof err) != 0) {
        jitcache_compile_output_set_error(output, err);
        return 1;
    }
    jitcache_status status = jitcache_compile_output_set_object(output, object, len);
    free(object);
    return status == JITCACHE_OK ? 0 : 1;
}

/* A cache, a callback backend and one loaded unit defining `long one(void)`. */
struct fixture {
    jitcache_cache *cache;
    jitcache_backend *backend;
    jitcache_unit *unit;
    jitcache_key_parts parts;
};

static const char SRC_ONE[] = "long one(void) { return 1; }\n";

static struct fixture setup(const char *dir) {
    struct fixture f;
    memset(&f, 0, sizeof f);
    OK(jitcache_open(dir, NULL, &f.cache));
    jitcache_backend_identity identity = test_identity();
    OK(jitcache_callback_backend_new(&identity, compile_ok, NULL, &f.backend));
    f.parts = parts_of("bad", "one", SRC_ONE);
    OK(jitcache_get_or_compile(f.cache, f.backend, &f.parts, NULL, &f.unit));
    return f;
}

static void teardown(struct fixture *f) {
    OK(jitcache_unit_free(f->unit));
    OK(jitcache_backend_free(f->backend));
    OK(jitcache_close(f->cache));
}

static void null_arguments(const char *dir) {
    struct fixture f = setup(dir);
    jitcache_cache *cache = NULL;
    jitcache_unit *unit = (jitcache_unit *)1;
    jitcache_backend *backend = NULL;
    jitcache_key key;
    jitcache_bytes bytes;
    jitcache_stats stats;
    void *address = NULL;
    jitcache_backend_identity identity = test_identity();

    EXPECT_STATUS(jitcache_open(NULL, NULL, &cache), JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_MESSAGE("dir");
    EXPECT(cache == NULL);
    EXPECT_STATUS(jitcache_open(dir, NULL, NULL), JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_config_init(NULL), JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_stats_get(NULL, &stats), JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_stats_get(f.cache, NULL), JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_key_build(NULL, &identity, &key), JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_key_build(&f.parts, NULL, &key), JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_key_build(&f.parts, &identity, NULL), JITCACHE_ERR_NULL_ARGUMENT);
    jitcache_key_parts no_name = f.parts;
    no_name.name = NULL;
    EXPECT_STATUS(jitcache_key_build(&no_name, &identity, &key), JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_MESSAGE("parts.name");
    jitcache_key_parts no_unit = f.parts;
    no_unit.unit = NULL;
    EXPECT_STATUS(jitcache_key_build(&no_unit, &identity, &key), JITCACHE_ERR_NULL_ARGUMENT);
    no_unit.unit_len = 0; /* an empty unit may be NULL */
    OK(jitcache_key_build(&no_unit, &identity, &key));
    jitcache_backend_identity no_target = identity;
    no_target.target = NULL;
    EXPECT_STATUS(jitcache_key_build(&f.parts, &no_target, &key), JITCACHE_ERR_NULL_ARGUMENT);
    jitcache_backend_identity null_flag = identity;
    const char *flags[] = {"-O2", NULL};
    null_flag.flags = flags;
    null_flag.flags_count = 2;
    EXPECT_STATUS(jitcache_key_build(&f.parts, &null_flag, &key), JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_MESSAGE("identity.flags[1]");
    EXPECT_STATUS(jitcache_lookup(f.cache, NULL, &bytes), JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_lookup(f.cache, &key, NULL), JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_insert(f.cache, &key, NULL, 10), JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_hash_bytes(NULL, 3, (jitcache_hash *)&key), JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_key_to_hex(&key, NULL), JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_callback_backend_new(&identity, NULL, NULL, &backend),
                  JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_callback_backend_new(NULL, compile_ok, NULL, &backend),
                  JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_cc_backend_new(NULL, &backend), JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT(backend == NULL);
    EXPECT_STATUS(jitcache_get_or_compile(NULL, f.backend, &f.parts, NULL, &unit),
                  JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT(unit == NULL);
    EXPECT_STATUS(jitcache_get_or_compile(f.cache, NULL, &f.parts, NULL, &unit),
                  JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_get_or_compile(f.cache, f.backend, NULL, NULL, &unit),
                  JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_get_or_compile(f.cache, f.backend, &f.parts, NULL, NULL),
                  JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_get_or_compile_batch(f.cache, f.backend, &f.parts, 1, NULL, NULL),
                  JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_get_or_compile_batch(f.cache, f.backend, NULL, 1, NULL, &unit),
                  JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_unit_symbol(f.unit, NULL, &address), JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_unit_symbol(f.unit, "one", NULL), JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_unit_symbol(NULL, "one", &address), JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_unit_origin(f.unit, NULL, NULL), JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_unit_key(f.unit, NULL), JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_unload(NULL), JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_symbol(f.cache, NULL, &address), JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_load_objects(f.cache, NULL, 1, &unit), JITCACHE_ERR_NULL_ARGUMENT);
    jitcache_object no_data = {"x.o", NULL, 5};
    EXPECT_STATUS(jitcache_load_objects(f.cache, &no_data, 1, &unit), JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_open_library(f.cache, NULL), JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_bypass_reason(f.cache, NULL), JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(jitcache_compile_output_set_object(NULL, (const uint8_t *)"x", 1),
                  JITCACHE_ERR_NULL_ARGUMENT);
    /* Freeing NULL is a no-op, as free(NULL). */
    OK(jitcache_close(NULL));
    OK(jitcache_backend_free(NULL));
    OK(jitcache_unit_free(NULL));
    OK(jitcache_bytes_free(NULL));
    OK(jitcache_string_free(NULL));
    /* The fixture still works. */
    OK(jitcache_unit_symbol(f.unit, "one", &address));
    teardown(&f);
}

static void invalid_utf8(const char *dir) {
    struct fixture f = setup(dir);
    char bad_dir[512];
    snprintf(bad_dir, sizeof bad_dir, "%s/\xff\xfe-not-utf8", dir);
    jitcache_cache *cache = (jitcache_cache *)1;
    EXPECT_STATUS(jitcache_open(bad_dir, NULL, &cache), JITCACHE_ERR_INVALID_ARGUMENT);
    EXPECT_MESSAGE("UTF-8");
    EXPECT(cache == NULL);
    EXPECT_STATUS(jitcache_open("", NULL, &cache), JITCACHE_ERR_INVALID_ARGUMENT);

    jitcache_key key;
    jitcache_backend_identity identity = test_identity();
    jitcache_key_parts bad_name = f.parts;
    bad_name.name = "caf\xc3";
    EXPECT_STATUS(jitcache_key_build(&bad_name, &identity, &key), JITCACHE_ERR_INVALID_ARGUMENT);
    EXPECT_MESSAGE("parts.name");
    jitcache_unit *unit = NULL;
    EXPECT_STATUS(jitcache_get_or_compile(f.cache, f.backend, &bad_name, NULL, &unit),
                  JITCACHE_ERR_INVALID_ARGUMENT);
    jitcache_key_parts batch[2] = {f.parts, f.parts};
    batch[1].ns = "\x80";
    jitcache_unit *units[2];
    EXPECT_STATUS(jitcache_get_or_compile_batch(f.cache, f.backend, batch, 2, NULL, units),
                  JITCACHE_ERR_INVALID_ARGUMENT);
    EXPECT_MESSAGE("parts[1].ns");
    jitcache_backend_identity bad_identity = identity;
    bad_identity.version = "\xc0\xaf";
    jitcache_backend *backend = NULL;
    EXPECT_STATUS(jitcache_callback_backend_new(&bad_identity, compile_ok, NULL, &backend),
                  JITCACHE_ERR_INVALID_ARGUMENT);
    jitcache_cc_config cc;
    memset(&cc, 0, sizeof cc);
    cc.compiler = "/usr/bin/\xff" "cc";
    EXPECT_STATUS(jitcache_cc_backend_new(&cc, &backend), JITCACHE_ERR_INVALID_ARGUMENT);
    void *address = NULL;
    EXPECT_STATUS(jitcache_unit_symbol(f.unit, "\xff", &address), JITCACHE_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(jitcache_symbol(f.cache, "\xff", &address), JITCACHE_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(jitcache_open_library(f.cache, "lib\xff.so"), JITCACHE_ERR_INVALID_ARGUMENT);
    teardown(&f);
}

static void forged_handles(const char *dir) {
    struct fixture f = setup(dir);
    int local = 0;
    jitcache_stats stats;
    jitcache_cache *forged[] = {(jitcache_cache *)1, (jitcache_cache *)&local,
                                (jitcache_cache *)&stats, (jitcache_cache *)(uintptr_t)0x4A43000000000001ull,
                                (jitcache_cache *)(uintptr_t)0x4A43FFFFFFFFFFFFull};
    for (size_t i = 0; i < sizeof forged / sizeof forged[0]; i++) {
        EXPECT_STATUS(jitcache_stats_get(forged[i], &stats), JITCACHE_ERR_INVALID_HANDLE);
        EXPECT_STATUS(jitcache_close(forged[i]), JITCACHE_ERR_INVALID_HANDLE);
    }
    /* A handle of one kind where another is expected. */
    EXPECT_STATUS(jitcache_stats_get((jitcache_cache *)f.backend, &stats), JITCACHE_ERR_INVALID_HANDLE);
    EXPECT_MESSAGE("backend handle");
    EXPECT_STATUS(jitcache_close((jitcache_cache *)f.unit), JITCACHE_ERR_INVALID_HANDLE);
    EXPECT_STATUS(jitcache_backend_free((jitcache_backend *)f.cache), JITCACHE_ERR_INVALID_HANDLE);
    EXPECT_STATUS(jitcache_unit_free((jitcache_unit *)f.backend), JITCACHE_ERR_INVALID_HANDLE);
    jitcache_unit *unit = NULL;
    EXPECT_STATUS(jitcache_get_or_compile(f.cache, (jitcache_backend *)f.cache, &f.parts, NULL, &unit),
                  JITCACHE_ERR_INVALID_HANDLE);
    void *address = NULL;
    EXPECT_STATUS(jitcache_unit_symbol((jitcache_unit *)&local, "one", &address),
                  JITCACHE_ERR_INVALID_HANDLE);
    EXPECT_STATUS(jitcache_compile_output_set_object((jitcache_compile_output *)f.cache,
                                                     (const uint8_t *)"x", 1),
                  JITCACHE_ERR_INVALID_HANDLE);
    /* Nothing was harmed. */
    OK(jitcache_stats_get(f.cache, &stats));
    OK(jitcache_unit_symbol(f.unit, "one", &address));
    teardown(&f);
}

static jitcache_compile_output *kept_output;

static int32_t compile_and_keep_output(void *user_data, const jitcache_compile_request *request,
                                       jitcache_compile_output *output) {
    kept_output = output;
    return compile_ok(user_data, request, output);
}

static void stale_handles(const char *dir) {
    struct fixture f = setup(dir);
    jitcache_stats stats;
    void *address = NULL;
    jitcache_unit *unit = NULL;

    /* A freed unit handle; the code stays loaded for other handles. */
    jitcache_unit *second = NULL;
    OK(jitcache_get_or_compile(f.cache, f.backend, &f.parts, NULL, &second));
    OK(jitcache_unit_free(second));
    EXPECT_STATUS(jitcache_unit_symbol(second, "one", &address), JITCACHE_ERR_STALE_HANDLE);
    EXPECT_STATUS(jitcache_unit_free(second), JITCACHE_ERR_STALE_HANDLE);
    EXPECT_STATUS(jitcache_unload(second), JITCACHE_ERR_STALE_HANDLE);
    OK(jitcache_unit_symbol(f.unit, "one", &address));

    /* A freed backend. */
    jitcache_backend *backend = NULL;
    jitcache_backend_identity identity = test_identity();
    OK(jitcache_callback_backend_new(&identity, compile_ok, NULL, &backend));
    OK(jitcache_backend_free(backend));
    EXPECT_STATUS(jitcache_get_or_compile(f.cache, backend, &f.parts, NULL, &unit),
                  JITCACHE_ERR_STALE_HANDLE);
    EXPECT_STATUS(jitcache_backend_free(backend), JITCACHE_ERR_STALE_HANDLE);

    /* A slot reused by a new handle: the old handle stays stale. */
    jitcache_backend *reused = NULL;
    OK(jitcache_callback_backend_new(&identity, compile_ok, NULL, &reused));
    EXPECT(reused != backend);
    EXPECT_STATUS(jitcache_backend_free(backend), JITCACHE_ERR_STALE_HANDLE);
    OK(jitcache_backend_free(reused));

    /* A compile output kept past its callback. */
    jitcache_backend *keeper = NULL;
    OK(jitcache_callback_backend_new(&identity, compile_and_keep_output, NULL, &keeper));
    jitcache_key_parts other = parts_of("bad", "two", "long two(void) { return 2; }\n");
    OK(jitcache_get_or_compile(f.cache, keeper, &other, NULL, &unit));
    EXPECT(kept_output != NULL);
    EXPECT_STATUS(jitcache_compile_output_set_object(kept_output, (const uint8_t *)"x", 1),
                  JITCACHE_ERR_STALE_HANDLE);
    EXPECT_STATUS(jitcache_compile_output_set_error(kept_output, "late"), JITCACHE_ERR_STALE_HANDLE);
    OK(jitcache_unit_free(unit));
    OK(jitcache_backend_free(keeper));

    /* Unloaded: every handle of the unit goes stale. */
    OK(jitcache_get_or_compile(f.cache, f.backend, &f.parts, NULL, &second));
    OK(jitcache_unload(second));
    EXPECT_STATUS(jitcache_unit_symbol(f.unit, "one", &address), JITCACHE_ERR_STALE_HANDLE);
    EXPECT_MESSAGE("unloaded");
    EXPECT_STATUS(jitcache_unit_free(f.unit), JITCACHE_ERR_STALE_HANDLE);
    /* ... and the unit loads again on request. */
    OK(jitcache_get_or_compile(f.cache, f.backend, &f.parts, NULL, &f.unit));
    OK(jitcache_unit_symbol(f.unit, "one", &address));
    if (address != NULL) EXPECT(((long (*)(void))address)() == 1);
    OK(jitcache_stats_get(f.cache, &stats));
    teardown(&f);
}

static void closed_cache(const char *dir) {
    struct fixture f = setup(dir);
    jitcache_cache *cache = f.cache;
    OK(jitcache_close(cache));
    jitcache_stats stats;
    jitcache_key key;
    jitcache_bytes bytes = {NULL, 0};
    jitcache_unit *unit = NULL;
    void *address = NULL;
    int32_t origin = 0;
    memset(&key, 0, sizeof key);
    EXPECT_STATUS(jitcache_stats_get(cache, &stats), JITCACHE_ERR_CLOSED);
    EXPECT_MESSAGE("closed");
    EXPECT_STATUS(jitcache_lookup(cache, &key, &bytes), JITCACHE_ERR_CLOSED);
    EXPECT_STATUS(jitcache_insert(cache, &key, (const uint8_t *)"x", 1), JITCACHE_ERR_CLOSED);
    EXPECT_STATUS(jitcache_get_or_compile(cache, f.backend, &f.parts, NULL, &unit), JITCACHE_ERR_CLOSED);
    EXPECT_STATUS(jitcache_symbol(cache, "one", &address), JITCACHE_ERR_CLOSED);
    EXPECT_STATUS(jitcache_set_resolver(cache, NULL, NULL), JITCACHE_ERR_CLOSED);
    EXPECT_STATUS(jitcache_open_library(cache, "m"), JITCACHE_ERR_CLOSED);
    EXPECT_STATUS(jitcache_close(cache), JITCACHE_ERR_CLOSED);
    /* Units of the closed cache. */
    EXPECT_STATUS(jitcache_unit_symbol(f.unit, "one", &address), JITCACHE_ERR_CLOSED);
    EXPECT_STATUS(jitcache_unit_origin(f.unit, &origin, NULL), JITCACHE_ERR_CLOSED);
    EXPECT_STATUS(jitcache_unload(f.unit), JITCACHE_ERR_CLOSED);
    EXPECT_STATUS(jitcache_unit_free(f.unit), JITCACHE_ERR_CLOSED);
    /* The backend is independent of the cache; a new cache works with it. */
    OK(jitcache_open(dir, NULL, &cache));
    OK(jitcache_get_or_compile(cache, f.backend, &f.parts, NULL, &unit));
    int32_t from = -1;
    OK(jitcache_unit_origin(unit, &from, NULL));
    EXPECT(from == JITCACHE_ORIGIN_DISK);
    OK(jitcache_unit_free(unit));
    OK(jitcache_close(cache));
    OK(jitcache_backend_free(f.backend));
}

static int32_t fail_with_message(void *user_data, const jitcache_compile_request *request,
                                 jitcache_compile_output *output) {
    (void)user_data;
    (void)request;
    OK(jitcache_compile_output_set_error(output, "the front end rejected this unit"));
    return 3;
}

static int32_t fail_silently(void *user_data, const jitcache_compile_request *request,
                             jitcache_compile_output *output) {
    (void)user_data;
    (void)request;
    (void)output;
    return 7;
}

static int32_t succeed_without_object(void *user_data, const jitcache_compile_request *request,
                                      jitcache_compile_output *output) {
    (void)user_data;
    (void)request;
    (void)output;
    return 0;
}

static int32_t produce_garbage(void *user_data, const jitcache_compile_request *request,
                               jitcache_compile_output *output) {
    (void)user_data;
    (void)request;
    OK(jitcache_compile_output_set_object(output, (const uint8_t *)"not an object", 13));
    return 0;
}

static int32_t check_request(void *user_data, const jitcache_compile_request *request,
                             jitcache_compile_output *output) {
    int *seen = user_data;
    if (strcmp(request->ns, "bad") == 0 && strcmp(request->name, "req") == 0 &&
        request->unit_len == 3 && memcmp(request->unit, "abc", 3) == 0 && request->index == 0 &&
        request->call_data == (void *)seen) {
        *seen = 1;
    }
    return fail_with_message(NULL, request, output);
}

static void callback_failures(const char *dir) {
    struct fixture f = setup(dir);
    jitcache_backend_identity identity = test_identity();
    jitcache_unit *unit = NULL;
    jitcache_stats stats;
    struct {
        jitcache_compile_fn fn;
        jitcache_status status;
        const char *message;
    } cases[] = {
        {fail_with_message, JITCACHE_ERR_CALLBACK, "the front end rejected this unit"},
        {fail_silently, JITCACHE_ERR_CALLBACK, "returned 7"},
        {succeed_without_object, JITCACHE_ERR_CALLBACK, "without setting an object"},
        {produce_garbage, JITCACHE_ERR_COMPILE, "bad/fails"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        jitcache_backend *backend = NULL;
        OK(jitcache_callback_backend_new(&identity, cases[i].fn, NULL, &backend));
        jitcache_key_parts parts = parts_of("bad", "fails", "long fails(void);");
        EXPECT_STATUS(jitcache_get_or_compile(f.cache, backend, &parts, NULL, &unit), cases[i].status);
        EXPECT_MESSAGE(cases[i].message);
        EXPECT(unit == NULL);
        OK(jitcache_backend_free(backend));
    }
    /* The request carries the parts and call_data. */
    int seen = 0;
    jitcache_backend *backend = NULL;
    OK(jitcache_callback_backend_new(&identity, check_request, &seen, &backend));
    jitcache_key_parts parts = parts_of("bad", "req", "abc");
    EXPECT_STATUS(jitcache_get_or_compile(f.cache, backend, &parts, &seen, &unit), JITCACHE_ERR_CALLBACK);
    EXPECT(seen == 1);
    OK(jitcache_backend_free(backend));
    /* Nothing failed was stored: the raw store has no entry for it. */
    jitcache_key key;
    jitcache_bytes bytes;
    jitcache_key_parts failed = parts_of("bad", "fails", "long fails(void);");
    OK(jitcache_key_build(&failed, &identity, &key));
    EXPECT_STATUS(jitcache_lookup(f.cache, &key, &bytes), JITCACHE_NOT_FOUND);
    OK(jitcache_stats_get(f.cache, &stats));
    EXPECT(stats.compiles == 1);
    teardown(&f);
}

static void compile_errors(const char *dir) {
    struct fixture f = setup(dir);
    jitcache_backend *cc = NULL;
    jitcache_cc_config config;
    memset(&config, 0, sizeof config);
    config.compiler = CC;
    config.language = JITCACHE_LANG_C;
    OK(jitcache_cc_backend_new(&config, &cc));
    jitcache_key_parts parts = parts_of("bad", "broken.c", "int broken(void) { return }\n");
    jitcache_unit *unit = NULL;
    EXPECT_STATUS(jitcache_get_or_compile(f.cache, cc, &parts, NULL, &unit), JITCACHE_ERR_COMPILE);
    EXPECT_MESSAGE("broken");
    EXPECT_MESSAGE("error");
    OK(jitcache_backend_free(cc));

    config.compiler = "/nonexistent/bin/cc";
    EXPECT_STATUS(jitcache_cc_backend_new(&config, &cc), JITCACHE_ERR_COMPILE);
    EXPECT_MESSAGE("not found");
    EXPECT(cc == NULL);
    config.compiler = NULL;
    config.language = 7;
    EXPECT_STATUS(jitcache_cc_backend_new(&config, &cc), JITCACHE_ERR_INVALID_ARGUMENT);
    EXPECT_MESSAGE("language");
    teardown(&f);
}

static void link_errors(const char *dir) {
    struct fixture f = setup(dir);
    jitcache_unit *unit = NULL;
    jitcache_object garbage = {"garbage.o", (const uint8_t *)"\177ELF but not really", 20};
    EXPECT_STATUS(jitcache_load_objects(f.cache, &garbage, 1, &unit), JITCACHE_ERR_LINK);
    EXPECT_MESSAGE("garbage.o");
    EXPECT(unit == NULL);
    EXPECT_STATUS(jitcache_load_objects(f.cache, &garbage, 0, &unit), JITCACHE_ERR_INVALID_ARGUMENT);
    /* A unit calling a function nobody defines. */
    jitcache_key_parts parts =
        parts_of("bad", "undefined", "long nowhere_to_be_found(void);\nlong f(void) { return nowhere_to_be_found(); }\n");
    EXPECT_STATUS(jitcache_get_or_compile(f.cache, f.backend, &parts, NULL, &unit), JITCACHE_ERR_LINK);
    EXPECT_MESSAGE("nowhere_to_be_found");
    EXPECT_STATUS(jitcache_open_library(f.cache, "surely-no-such-library"), JITCACHE_ERR_LINK);
    teardown(&f);
}

static void bad_values(const char *dir) {
    jitcache_config config;
    OK(jitcache_config_init(&config));
    config.compression_level = 99;
    jitcache_cache *cache = NULL;
    EXPECT_STATUS(jitcache_open(dir, &config, &cache), JITCACHE_ERR_INVALID_ARGUMENT);
    EXPECT_MESSAGE("compression_level");
    config.compression_level = -1;
    EXPECT_STATUS(jitcache_open(dir, &config, &cache), JITCACHE_ERR_INVALID_ARGUMENT);
    /* A count too large for memory. */
    struct fixture f = setup(dir);
    jitcache_unit *unit = NULL;
    EXPECT_STATUS(jitcache_get_or_compile_batch(f.cache, f.backend, &f.parts, (size_t)-1 / 8, NULL, &unit),
                  JITCACHE_ERR_INVALID_ARGUMENT);
    /* Misaligned output. */
    jitcache_stats stats[2];
    EXPECT_STATUS(jitcache_stats_get(f.cache, (jitcache_stats *)((char *)stats + 1)),
                  JITCACHE_ERR_INVALID_ARGUMENT);
    EXPECT(strcmp(jitcache_status_name((jitcache_status)1234), "unknown status") == 0);
    EXPECT(strcmp(jitcache_status_name(JITCACHE_ERR_CLOSED), "JITCACHE_ERR_CLOSED") == 0);
    teardown(&f);
}

static void bad_frees(const char *dir) {
    struct fixture f = setup(dir);
    uint8_t mine[4] = {1, 2, 3, 4};
    jitcache_bytes forged = {mine, 4};
    EXPECT_STATUS(jitcache_bytes_free(&forged), JITCACHE_ERR_INVALID_HANDLE);
    char literal[] = "not from jitcache";
    EXPECT_STATUS(jitcache_string_free(literal), JITCACHE_ERR_INVALID_HANDLE);

    jitcache_key key;
    OK(jitcache_unit_key(f.unit, &key));
    jitcache_bytes bytes = {NULL, 0};
    OK(jitcache_lookup(f.cache, &key, &bytes));
    jitcache_bytes copy = bytes;
    copy.len -= 1;
    EXPECT_STATUS(jitcache_bytes_free(&copy), JITCACHE_ERR_INVALID_ARGUMENT);
    copy = bytes;
    OK(jitcache_bytes_free(&bytes));
    EXPECT_STATUS(jitcache_bytes_free(&copy), JITCACHE_ERR_INVALID_HANDLE); /* double free */

    char *reason = NULL;
    int32_t origin = 0;
    jitcache_unit *fresh = NULL;
    jitcache_key_parts parts = parts_of("bad", "fresh", "long fresh(void) { return 5; }\n");
    OK(jitcache_get_or_compile(f.cache, f.backend, &parts, NULL, &fresh));
    OK(jitcache_unit_origin(fresh, &origin, &reason));
    EXPECT(reason != NULL);
    OK(jitcache_string_free(reason));
    EXPECT_STATUS(jitcache_string_free(reason), JITCACHE_ERR_INVALID_HANDLE); /* double free */
    OK(jitcache_unit_free(fresh));
    teardown(&f);
}

/* Re-entrance: a resolver, and a constructor of loading code, call back into the same
 * cache while it is loading. */
static jitcache_cache *reentrant_cache;
static jitcache_backend *reentrant_backend;
static jitcache_status seen_in_resolver = JITCACHE_OK;
static jitcache_status seen_in_constructor = JITCACHE_OK;
static jitcache_status seen_other_cache = JITCACHE_ERR_PANIC;
static jitcache_cache *other_cache;

static jitcache_status symbol_from_constructor(void) {
    void *address = NULL;
    seen_other_cache = jitcache_symbol(other_cache, "one", &address);
    return jitcache_symbol(reentrant_cache, "one", &address);
}

static void *reentrant_resolve(void *user_data, const char *name) {
    (void)user_data;
    if (strcmp(name, "symbol_from_constructor") == 0) return (void *)(uintptr_t)&symbol_from_constructor;
    if (strcmp(name, "seen_in_constructor") == 0) return &seen_in_constructor;
    jitcache_unit *unit = NULL;
    jitcache_key_parts parts = parts_of("bad", "inner", "long inner(void) { return 0; }\n");
    seen_in_resolver = jitcache_get_or_compile(reentrant_cache, reentrant_backend, &parts, NULL, &unit);
    return NULL;
}

static void reentrant(const char *dir) {
    struct fixture f = setup(dir);
    char other_dir[512];
    snprintf(other_dir, sizeof other_dir, "%s/other", dir);
    OK(jitcache_open(other_dir, NULL, &other_cache));
    reentrant_cache = f.cache;
    reentrant_backend = f.backend;
    OK(jitcache_set_resolver(f.cache, reentrant_resolve, NULL));
    jitcache_unit *unit = NULL;
    /* The resolver is asked for `missing_symbol`, tries to use the cache, gets
     * JITCACHE_ERR_REENTRANT, and returns NULL: the load fails, nothing hangs. */
    jitcache_key_parts parts = parts_of(
        "bad", "needs", "long missing_symbol(void);\nlong needs(void) { return missing_symbol(); }\n");
    EXPECT_STATUS(jitcache_get_or_compile(f.cache, f.backend, &parts, NULL, &unit), JITCACHE_ERR_LINK);
    EXPECT(seen_in_resolver == JITCACHE_ERR_REENTRANT);
    /* A constructor that calls into the cache being loaded. */
    jitcache_key_parts ctor = parts_of(
        "bad", "ctor",
        "typedef int status;\n"
        "status symbol_from_constructor(void);\n"
        "extern status seen_in_constructor;\n"
        "__attribute__((constructor)) static void init(void) { seen_in_constructor = symbol_from_constructor(); }\n"
        "long ctor_loaded(void) { return 1; }\n");
    OK(jitcache_get_or_compile(f.cache, f.backend, &ctor, NULL, &unit));
    EXPECT(seen_in_constructor == JITCACHE_ERR_REENTRANT);
    EXPECT(seen_other_cache == JITCACHE_NOT_FOUND); /* another cache is fine */
    /* Once the load returned, the same calls work. */
    void *address = NULL;
    OK(jitcache_symbol(f.cache, "ctor_loaded", &address));
    OK(jitcache_unit_free(unit));
    OK(jitcache_close(other_cache));
    teardown(&f);
}

static void not_found(const char *dir) {
    struct fixture f = setup(dir);
    jitcache_key key;
    memset(&key, 0xab, sizeof key);
    jitcache_bytes bytes = {(uint8_t *)1, 1};
    EXPECT_STATUS(jitcache_lookup(f.cache, &key, &bytes), JITCACHE_NOT_FOUND);
    EXPECT(bytes.data == NULL && bytes.len == 0);
    void *address = (void *)1;
    EXPECT_STATUS(jitcache_unit_symbol(f.unit, "two", &address), JITCACHE_NOT_FOUND);
    EXPECT(address == NULL);
    EXPECT_STATUS(jitcache_symbol(f.cache, "nothing_exports_this", &address), JITCACHE_NOT_FOUND);
    /* A success clears the last error. */
    OK(jitcache_unit_symbol(f.unit, "one", &address));
    EXPECT(strcmp(jitcache_last_error(), "") == 0);
    EXPECT(strcmp(jitcache_version(), "0.1.0") == 0);
    teardown(&f);
}

/* What a callback of the `inputs` case tries on its output, with the statuses it got. */
static jitcache_status misuse_seen[8];
static jitcache_compile_output *misuse_output;

static int32_t misuse_inputs(void *user_data, const jitcache_compile_request *request,
                             jitcache_compile_output *output) {
    misuse_output = output;
    misuse_seen[0] = jitcache_compile_output_add_input(output, "/usr/include/stdio.h");
    misuse_seen[1] = jitcache_compile_output_add_absent(output, "/nonexistent/x.h");
    misuse_seen[2] = jitcache_compile_output_set_uncacheable(output, "because");
    misuse_seen[3] = jitcache_compile_output_add_input(output, NULL);
    misuse_seen[4] = jitcache_compile_output_add_input(output, "");
    misuse_seen[5] = jitcache_compile_output_add_input(output, "\xff.h");
    misuse_seen[6] = jitcache_compile_output_set_uncacheable(output, NULL);
    return compile_ok(user_data, request, output);
}

static void inputs(const char *dir) {
    struct fixture f = setup(dir);
    jitcache_backend_identity identity = test_identity();
    jitcache_unit *unit = NULL;

    /* A backend made without reports_inputs refuses inputs (the cache would ignore them). */
    jitcache_backend *plain = NULL;
    OK(jitcache_callback_backend_new(&identity, misuse_inputs, NULL, &plain));
    jitcache_key_parts parts = parts_of("bad", "misuse", "long misuse(void) { return 3; }\n");
    OK(jitcache_get_or_compile(f.cache, plain, &parts, NULL, &unit));
    for (int i = 0; i < 3; i++) EXPECT(misuse_seen[i] == JITCACHE_ERR_INVALID_ARGUMENT);
    OK(jitcache_unit_free(unit));
    OK(jitcache_backend_free(plain));

    /* With reports_inputs: bad paths and reasons are refused, good ones taken. */
    jitcache_callback_options options;
    memset(&options, 0, sizeof options);
    options.reports_inputs = 1;
    jitcache_backend *reporting = NULL;
    OK(jitcache_callback_backend_new2(&identity, &options, misuse_inputs, NULL, &reporting));
    parts.name = "misuse-reporting";
    OK(jitcache_get_or_compile(f.cache, reporting, &parts, NULL, &unit));
    EXPECT(misuse_seen[0] == JITCACHE_OK && misuse_seen[1] == JITCACHE_OK);
    EXPECT(misuse_seen[2] == JITCACHE_OK);
    EXPECT(misuse_seen[3] == JITCACHE_ERR_NULL_ARGUMENT);
    EXPECT(misuse_seen[4] == JITCACHE_ERR_INVALID_ARGUMENT);
    EXPECT(misuse_seen[5] == JITCACHE_ERR_INVALID_ARGUMENT);
    EXPECT(misuse_seen[6] == JITCACHE_ERR_NULL_ARGUMENT);
    /* Past its callback, the output is stale. */
    EXPECT_STATUS(jitcache_compile_output_add_input(misuse_output, "/usr/include/stdio.h"),
                  JITCACHE_ERR_STALE_HANDLE);
    EXPECT_STATUS(jitcache_compile_output_add_absent(misuse_output, "/x.h"),
                  JITCACHE_ERR_STALE_HANDLE);
    EXPECT_STATUS(jitcache_compile_output_set_uncacheable(misuse_output, "late"),
                  JITCACHE_ERR_STALE_HANDLE);
    EXPECT_STATUS(jitcache_compile_output_add_input(NULL, "/x.h"), JITCACHE_ERR_NULL_ARGUMENT);
    OK(jitcache_unit_free(unit));
    OK(jitcache_backend_free(reporting));

    /* Options: a base directory must be an existing directory; NULL options are none. */
    jitcache_backend *backend = (jitcache_backend *)1;
    options.base_dir = "/nonexistent/base";
    EXPECT_STATUS(jitcache_callback_backend_new2(&identity, &options, compile_ok, NULL, &backend),
                  JITCACHE_ERR_INVALID_ARGUMENT);
    EXPECT_MESSAGE("options.base_dir");
    EXPECT(backend == NULL);
    EXPECT_STATUS(jitcache_callback_backend_new2(&identity, &options, NULL, NULL, &backend),
                  JITCACHE_ERR_NULL_ARGUMENT);
    OK(jitcache_callback_backend_new2(&identity, NULL, compile_ok, NULL, &backend));
    OK(jitcache_backend_free(backend));

    jitcache_cc_config cc;
    memset(&cc, 0, sizeof cc);
    cc.compiler = CC;
    jitcache_cc_options cc_options;
    memset(&cc_options, 0, sizeof cc_options);
    cc_options.base_dir = "/nonexistent/base";
    EXPECT_STATUS(jitcache_cc_backend_new2(&cc, &cc_options, &backend),
                  JITCACHE_ERR_INVALID_ARGUMENT);
    EXPECT_MESSAGE("options.base_dir");
    char with_equals[512];
    snprintf(with_equals, sizeof with_equals, "%s/a=b", dir);
    EXPECT(mkdir(with_equals, 0700) == 0);
    cc_options.base_dir = with_equals;
    EXPECT_STATUS(jitcache_cc_backend_new2(&cc, &cc_options, &backend),
                  JITCACHE_ERR_INVALID_ARGUMENT);
    EXPECT_MESSAGE("=");
    cc_options.base_dir = NULL;
    cc_options.probe_cache = (jitcache_cache *)0x1234;
    EXPECT_STATUS(jitcache_cc_backend_new2(&cc, &cc_options, &backend),
                  JITCACHE_ERR_INVALID_HANDLE);
    cc.language = 7;
    EXPECT_STATUS(jitcache_cc_backend_new2(&cc, NULL, &backend), JITCACHE_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(jitcache_cc_backend_new2(NULL, NULL, &backend), JITCACHE_ERR_NULL_ARGUMENT);

    /* Paths of a batch: each NULL or a UTF-8 path that is not empty. */
    const char *paths[2] = {NULL, ""};
    jitcache_key_parts batch[2] = {f.parts, f.parts};
    batch[1].name = "other";
    jitcache_unit *units[2];
    EXPECT_STATUS(jitcache_get_or_compile_batch_at(f.cache, f.backend, batch, paths, 2, NULL, units),
                  JITCACHE_ERR_INVALID_ARGUMENT);
    EXPECT_MESSAGE("paths[1]");
    paths[1] = "\xff.c";
    EXPECT_STATUS(jitcache_get_or_compile_batch_at(f.cache, f.backend, batch, paths, 2, NULL, units),
                  JITCACHE_ERR_INVALID_ARGUMENT);
    EXPECT(units[0] == NULL && units[1] == NULL);
    teardown(&f);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bad_input <case> <cache-dir> <cc>\n");
        return 2;
    }
    CC = argv[3];
    static const struct {
        const char *name;
        void (*run)(const char *dir);
    } cases[] = {
        {"null_arguments", null_arguments}, {"invalid_utf8", invalid_utf8},
        {"forged_handles", forged_handles}, {"stale_handles", stale_handles},
        {"closed_cache", closed_cache},     {"callback_failures", callback_failures},
        {"compile_errors", compile_errors}, {"link_errors", link_errors},
        {"bad_values", bad_values},         {"bad_frees", bad_frees},
        {"reentrant", reentrant},           {"not_found", not_found},
        {"inputs", inputs},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (strcmp(cases[i].name, argv[1]) == 0) {
            cases[i].run(argv[2]);
            if (failures == 0) printf("ok %s\n", argv[1]);
            return failures != 0;
        }
    }
    fprintf(stderr, "unknown case %s\n", argv[1]);
    return 2;
}
