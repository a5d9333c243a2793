/* A REPL-like C host: defines f, a caller g, then redefines f again and again
 * with the default binding (stubs), and checks that g and the address of f
 * handed out first both run the latest f, that unloading old definitions
 * keeps them running, and that a handle of an unloaded unit is an error. Then
 * the same with JITCACHE_BINDING_DIRECT, where the first definition wins.
 *
 * Usage: redefine_host CACHE_DIR CC */
#define _POSIX_C_SOURCE 200809L

#include "support.h"

static jitcache_unit *load(jitcache_cache *cache, const char *cc, const char *source) {
    unsigned char *object = NULL;
    size_t len = 0;
    char err[4096];
    if (compile_c(cc, (const unsigned char *)source, strlen(source), &object, &len, err,
                  sizeof err) != 0) {
        fprintf(stderr, "compile failed: %s\n", err);
        failures++;
        return NULL;
    }
    jitcache_object file = {"unit.o", object, len};
    jitcache_unit *unit = NULL;
    OK(jitcache_load_objects(cache, &file, 1, &unit));
    free(object);
    return unit;
}

typedef long (*fn0)(void);

static fn0 symbol(jitcache_unit *unit, const char *name) {
    void *addr = NULL;
    OK(jitcache_unit_symbol(unit, name, &addr));
    return (fn0)addr;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: redefine_host CACHE_DIR CC\n");
        return 2;
    }
    const char *cc = argv[2];
    (void)parts_of; /* helpers of support.h this host does not need */
    (void)test_identity;
    jitcache_config config;
    OK(jitcache_config_init(&config));
    config.persistent = 0;
    jitcache_cache *cache = NULL;
    OK(jitcache_open(argv[1], &config, &cache));
    EXPECT_STATUS(jitcache_set_binding(cache, 7), JITCACHE_ERR_INVALID_ARGUMENT);
    EXPECT_MESSAGE("binding");

    /* Stubs (the default). */
    jitcache_unit *f_unit = load(cache, cc, "long f(void) { return 1; }\n");
    jitcache_unit *g_unit = load(cache, cc, "long f(void);\nlong g(void) { return f(); }\n");
    if (f_unit == NULL || g_unit == NULL) return 1;
    fn0 g = symbol(g_unit, "g");
    void *first_f = NULL;
    OK(jitcache_symbol(cache, "f", &first_f));
    EXPECT(g != NULL && first_f != NULL && g() == 1);
    long seen = 0;
    for (long v = 2; v <= 5 && failures == 0; v++) {
        char source[64];
        snprintf(source, sizeof source, "long f(void) { return %ld; }\n", v);
        jitcache_unit *next = load(cache, cc, source);
        if (next == NULL) return 1;
        EXPECT(g() == v);
        EXPECT(((fn0)first_f)() == v);
        EXPECT(symbol(next, "f") == (fn0)first_f); /* one stub per name */
        /* The old definition is no longer called: unload it. */
        OK(jitcache_unload(f_unit));
        void *stale = (void *)1;
        EXPECT_STATUS(jitcache_unit_symbol(f_unit, "f", &stale), JITCACHE_ERR_STALE_HANDLE);
        EXPECT(stale == NULL);
        EXPECT(g() == v);
        f_unit = next;
        seen = g();
    }
    printf("stubs: g=%ld\n", seen);

    /* Direct: the first definition of k wins. */
    OK(jitcache_set_binding(cache, JITCACHE_BINDING_DIRECT));
    jitcache_unit *k1 = load(cache, cc, "long k(void) { return 1; }\n");
    jitcache_unit *kk_unit = load(cache, cc, "long k(void);\nlong kk(void) { return k(); }\n");
    jitcache_unit *k2 = load(cache, cc, "long k(void) { return 2; }\n");
    if (k1 == NULL || kk_unit == NULL || k2 == NULL) return 1;
    void *exported = NULL;
    OK(jitcache_symbol(cache, "k", &exported));
    EXPECT(exported == (void *)symbol(k1, "k"));
    EXPECT(symbol(k2, "k")() == 2);
    printf("direct: kk=%ld\n", symbol(kk_unit, "kk")());

    OK(jitcache_close(cache));
    if (failures != 0) fprintf(stderr, "%d failure(s)\n", failures);
    return failures == 0 ? 0 : 1;
}
