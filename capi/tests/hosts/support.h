/* Helpers shared by the C test hosts: status checks and compiling C source to an
 * object with the system compiler (what a C JIT's own compiler would do). */
#ifndef JITCACHE_TEST_SUPPORT_H
#define JITCACHE_TEST_SUPPORT_H

#include <jitcache.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The layouts the Rust side asserts too (capi/src/lib.rs). */
_Static_assert(sizeof(jitcache_config) == 16, "jitcache_config");
_Static_assert(offsetof(jitcache_config, single_flight_timeout_ms) == 8, "config timeout");
_Static_assert(sizeof(jitcache_stats) == 56, "jitcache_stats");
_Static_assert(offsetof(jitcache_stats, bypassed) == 48, "stats bypassed");
_Static_assert(sizeof(jitcache_key) == 32 && _Alignof(jitcache_key) == 1, "jitcache_key");
_Static_assert(sizeof(jitcache_hash) == 32 && _Alignof(jitcache_hash) == 1, "jitcache_hash");
_Static_assert(sizeof(jitcache_key_parts) == 48, "jitcache_key_parts");
_Static_assert(offsetof(jitcache_key_parts, deps_count) == 40, "parts deps_count");
_Static_assert(sizeof(jitcache_backend_identity) == 48, "jitcache_backend_identity");
_Static_assert(offsetof(jitcache_backend_identity, flags_ordered) == 32, "identity flags_ordered");
_Static_assert(offsetof(jitcache_backend_identity, target) == 40, "identity target");
_Static_assert(sizeof(jitcache_cc_config) == 32, "jitcache_cc_config");
_Static_assert(offsetof(jitcache_cc_config, flags) == 16, "cc flags");
_Static_assert(sizeof(jitcache_cc_options) == 16, "jitcache_cc_options");
_Static_assert(offsetof(jitcache_cc_options, probe_cache) == 8, "cc options probe_cache");
_Static_assert(sizeof(jitcache_callback_options) == 16, "jitcache_callback_options");
_Static_assert(offsetof(jitcache_callback_options, base_dir) == 8, "callback options base_dir");
_Static_assert(sizeof(jitcache_compile_request) == 56, "jitcache_compile_request");
_Static_assert(offsetof(jitcache_compile_request, call_data) == 40, "request call_data");
_Static_assert(offsetof(jitcache_compile_request, path) == 48, "request path");
_Static_assert(sizeof(jitcache_bytes) == 16, "jitcache_bytes");
_Static_assert(sizeof(jitcache_object) == 24, "jitcache_object");
_Static_assert(sizeof(jitcache_status) == 4, "jitcache_status");

static int failures;

/* Checks that expr returns `expected`; an error status must come with a message. */
#define EXPECT_STATUS(expr, expected)                                                    \
    do {                                                                                 \
        jitcache_status got_ = (expr);                                                   \
        if (got_ != (expected)) {                                                        \
            fprintf(stderr, "%s:%d: %s: expected %s, got %s: %s\n", __FILE__, __LINE__,  \
                    #expr, jitcache_status_name(expected), jitcache_status_name(got_),   \
                    jitcache_last_error());                                              \
            failures++;                                                                  \
        } else if (got_ > JITCACHE_NOT_FOUND && jitcache_last_error()[0] == '\0') {      \
            fprintf(stderr, "%s:%d: %s: %s without a message\n", __FILE__, __LINE__,     \
                    #expr, jitcache_status_name(got_));                                  \
            failures++;                                                                  \
        }                                                                                \
    } while (0)

#define OK(expr) EXPECT_STATUS(expr, JITCACHE_OK)

#define EXPECT(cond)                                                                     \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond);          \
            failures++;                                                                  \
        }                                                                                \
    } while (0)

/* The last error contains `text`. */
#define EXPECT_MESSAGE(text)                                                             \
    do {                                                                                 \
        if (strstr(jitcache_last_error(), (text)) == NULL) {                             \
            fprintf(stderr, "%s:%d: last error %s does not mention %s\n", __FILE__,      \
                    __LINE__, jitcache_last_error(), (text));                            \
            failures++;                                                                  \
        }                                                                                \
    } while (0)

/* Reads a whole file; returns 0 on success. */
static int read_file(const char *path, unsigned char **out, size_t *out_len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return -1;
    size_t cap = 4096, len = 0;
    unsigned char *buf = malloc(cap);
    size_t n;
    while (buf != NULL && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            unsigned char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf == NULL) return -1;
    *out = buf;
    *out_len = len;
    return 0;
}

/* Compiles C source with `cc -c -O2 -fPIC`; returns 0 and a malloc'ed object, or
 * nonzero with the compiler's diagnostics in err. */
static int compile_c(const char *cc, const unsigned char *source, size_t len,
                     unsigned char **out, size_t *out_len, char *err, size_t err_len) {
    char dir[] = "/tmp/jitcache-host-XXXXXX";
    char src[64], obj[64], log[64], cmd[512];
    int rc = -1;
    err[0] = '\0';
    if (mkdtemp(dir) == NULL) {
        snprintf(err, err_len, "mkdtemp failed");
        return -1;
    }
    snprintf(src, sizeof src, "%s/unit.c", dir);
    snprintf(obj, sizeof obj, "%s/unit.o", dir);
    snprintf(log, sizeof log, "%s/log.txt", dir);
    FILE *f = fopen(src, "wb");
    if (f != NULL && fwrite(source, 1, len, f) == len && fclose(f) == 0) {
        snprintf(cmd, sizeof cmd, "'%s' -c -O2 -fPIC -o '%s' '%s' 2>'%s'", cc, obj, src, log);
        if (system(cmd) == 0 && read_file(obj, out, out_len) == 0) {
            rc = 0;
        } else {
            unsigned char *text = NULL;
            size_t text_len = 0;
            if (read_file(log, &text, &text_len) == 0) {
                snprintf(err, err_len, "%.*s", (int)text_len, (const char *)text);
                free(text);
            } else {
                snprintf(err, err_len, "%s failed", cc);
            }
        }
    } else {
        snprintf(err, err_len, "cannot write %s", src);
        if (f != NULL) fclose(f);
    }
    unlink(src);
    unlink(obj);
    unlink(log);
    rmdir(dir);
    return rc;
}

/* Key parts of a unit whose bytes are a C string. */
static jitcache_key_parts parts_of(const char *ns, const char *name, const char *source) {
    jitcache_key_parts parts;
    memset(&parts, 0, sizeof parts);
    parts.ns = ns;
    parts.name = name;
    parts.unit = (const uint8_t *)source;
    parts.unit_len = strlen(source);
    return parts;
}

static const char *const TEST_FLAGS[] = {"-O2", "-fPIC"};

/* The identity of the callback backends of these hosts. */
static jitcache_backend_identity test_identity(void) {
    jitcache_backend_identity id;
    memset(&id, 0, sizeof id);
    id.name = "test-host-cc";
    id.version = "1";
    id.flags = TEST_FLAGS;
    id.flags_count = 2;
    id.flags_ordered = 1;
    id.target = "x86_64-linux-gnu";
    return id;
}

#endif
