/* A C host of the store-related calls of the C API.
 *
 *   store_host background <cache-dir> <cc>  compiles a unit with the background
 *                                           writer on, flushes, and exits without
 *                                           closing the cache
 *   store_host warm <cache-dir> <cc>        asks for the same unit: from the disk
 *   store_host bypassed <cache-dir>         the cache directory is refused (run with
 *                                           JITCACHE_STORE_FSTYPE=nfs): bypassed
 *
 * Exits 0 when every check passed; prints each failed check on stderr. */
#define _POSIX_C_SOURCE 200809L

#include "support.h"

static int calls;

/* The JIT's compiler: C source in, ELF object out, with the compiler in user_data. */
static int32_t compile_unit(void *user_data, const jitcache_compile_request *request,
                            jitcache_compile_output *output) {
    calls++;
    unsigned char *object = NULL;
    size_t len = 0;
    char err[4096];
    if (compile_c(user_data, request->unit, request->unit_len, &object, &len, err,
                  sizeof err) != 0) {
        jitcache_compile_output_set_error(output, err);
        return 1;
    }
    jitcache_status status = jitcache_compile_output_set_object(output, object, len);
    free(object);
    return status == JITCACHE_OK ? 0 : 1;
}

static const char SRC_ADD[] = "long add(long a, long b) { return a + b; }\n";

/* The origin of unit add, compiled or read through a new cache on dir. */
static int32_t origin_of_add(const char *dir, const char *cc, int background) {
    jitcache_cache *cache = NULL;
    jitcache_backend *backend = NULL;
    OK(jitcache_open(dir, NULL, &cache));
    if (background) OK(jitcache_set_background_writes(cache, 1));
    jitcache_backend_identity identity = test_identity();
    OK(jitcache_callback_backend_new(&identity, compile_unit, (void *)cc, &backend));
    jitcache_key_parts parts = parts_of("c", "add", SRC_ADD);
    jitcache_unit *unit = NULL;
    int32_t origin = -1;
    OK(jitcache_get_or_compile(cache, backend, &parts, NULL, &unit));
    OK(jitcache_unit_origin(unit, &origin, NULL));
    void *add = NULL;
    OK(jitcache_unit_symbol(unit, "add", &add));
    if (add != NULL) EXPECT(((long (*)(long, long))add)(20, 22) == 42);
    if (background) {
        uint64_t pending = 99;
        OK(jitcache_flush_writes(cache, 30000, &pending));
        EXPECT(pending == 0);
        OK(jitcache_flush_writes(cache, 0, NULL));
        /* Leave without closing: what the flush wrote must be on disk. */
        fflush(stdout);
        fflush(stderr);
        _exit(failures != 0);
    }
    /* The backend just used is not foreign: nothing to prune. */
    uint64_t evicted = 99;
    OK(jitcache_prune_foreign(cache, &evicted));
    EXPECT(evicted == 0);
    OK(jitcache_unit_free(unit));
    OK(jitcache_backend_free(backend));
    OK(jitcache_close(cache));
    return origin;
}

static int run_bypassed(const char *dir) {
    jitcache_cache *cache = NULL;
    OK(jitcache_open(dir, NULL, &cache));
    jitcache_stats stats;
    OK(jitcache_stats_get(cache, &stats));
    EXPECT(stats.bypassed != 0);
    char *reason = NULL;
    OK(jitcache_bypass_reason(cache, &reason));
    EXPECT(reason != NULL && strstr(reason, "network file system (nfs)") != NULL);
    OK(jitcache_string_free(reason));
    jitcache_key key;
    memset(&key, 7, sizeof key);
    jitcache_bytes bytes;
    EXPECT_STATUS(jitcache_lookup(cache, &key, &bytes), JITCACHE_ERR_BYPASSED);
    EXPECT_STATUS(jitcache_prune_foreign(cache, NULL), JITCACHE_ERR_BYPASSED);
    /* Background writes on a bypassed cache: nothing to flush. */
    OK(jitcache_set_background_writes(cache, 1));
    uint64_t pending = 99;
    OK(jitcache_flush_writes(cache, 0, &pending));
    EXPECT(pending == 0);
    OK(jitcache_close(cache));
    EXPECT(access(dir, F_OK) != 0);
    return failures;
}

int main(int argc, char **argv) {
    if (argc >= 4 && strcmp(argv[1], "background") == 0) {
        origin_of_add(argv[2], argv[3], 1);
        return 1; /* not reached */
    }
    if (argc >= 4 && strcmp(argv[1], "warm") == 0) {
        EXPECT(origin_of_add(argv[2], argv[3], 0) == JITCACHE_ORIGIN_DISK);
        EXPECT(calls == 0);
        printf("ok warm\n");
        return failures != 0;
    }
    if (argc >= 3 && strcmp(argv[1], "bypassed") == 0) {
        int failed = run_bypassed(argv[2]);
        printf("ok bypassed\n");
        return failed != 0;
    }
    fprintf(stderr, "usage: store_host background|warm|bypassed <cache-dir> [<cc>]\n");
    return 2;
}
