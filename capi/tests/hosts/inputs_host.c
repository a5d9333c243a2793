/* A C host whose own compiler reads headers, and says so: a callback backend made with
 * reports_inputs (jitcache_callback_backend_new2) reports every file each compile read
 * (from the compiler's depfile), the paths that would shadow them, and marks a compile
 * that uses __TIME__ uncacheable. The cache keys each unit's object by those files'
 * contents from then on.
 *
 *   inputs_host <cache-dir> <project-dir> <cc>
 *
 * The project has include/config.h (CONFIG_VALUE) and include/other.h (OTHER_VALUE);
 * compiles run in the project directory (the backend's base directory) with
 * -Ioverride -Iinclude, so override/<header> would shadow include/<header>. For each
 * unit the host prints `unit <name> <memory|disk|compiled>[: reason]` and its value,
 * then `callbacks=<n> compiled=<names>` and the statistics.
 *
 * Exits 0 when every check passed; prints each failed check on stderr. */
#define _POSIX_C_SOURCE 200809L

#include "support.h"

#include <pthread.h>
#include <sys/stat.h>

struct compiler {
    const char *cc;
    const char *project;
    pthread_mutex_t lock;
    int calls;
    char compiled[256]; /* names of the units compiled, space-separated */
};

/* Reports the prerequisites of a depfile (`target: source header...`) except the
 * source, and for each header under include/ the path in override/ that would shadow
 * it. Paths are as the compiler wrote them: relative to the project directory (the
 * backend's base directory, which jitcache resolves them against) or absolute. */
static int report_inputs(jitcache_compile_output *output, const char *depfile) {
    unsigned char *text = NULL;
    size_t len = 0;
    if (read_file(depfile, &text, &len) != 0) return -1;
    char *buf = malloc(len + 1);
    if (buf == NULL) {
        free(text);
        return -1;
    }
    /* Continuation lines ("\\\n") are whitespace. */
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\\' && i + 1 < len && text[i + 1] == '\n') {
            buf[n++] = ' ';
            i++;
        } else {
            buf[n++] = (char)text[i];
        }
    }
    buf[n] = '\0';
    free(text);
    int index = 0, rc = 0;
    for (char *save = NULL, *word = strtok_r(buf, " \t\n", &save); word != NULL;
         word = strtok_r(NULL, " \t\n", &save), index++) {
        if (index < 2) continue; /* the target, then the unit's own (temporary) source */
        if (jitcache_compile_output_add_input(output, word) != JITCACHE_OK) rc = -1;
        if (strncmp(word, "include/", 8) == 0) {
            char shadow[512];
            snprintf(shadow, sizeof shadow, "override/%s", word + 8);
            if (jitcache_compile_output_add_absent(output, shadow) != JITCACHE_OK) rc = -1;
        }
    }
    free(buf);
    return rc;
}

/* Whether len bytes at data contain the string text. */
static int contains(const uint8_t *data, size_t len, const char *text) {
    size_t n = strlen(text);
    for (size_t i = 0; i + n <= len; i++) {
        if (memcmp(data + i, text, n) == 0) return 1;
    }
    return 0;
}

/* The JIT's compiler: runs `cc` in the project directory on a temporary copy of the
 * unit, with a depfile, and reports what it read. */
static int32_t compile_unit(void *user_data, const jitcache_compile_request *request,
                            jitcache_compile_output *output) {
    struct compiler *compiler = user_data;
    pthread_mutex_lock(&compiler->lock);
    compiler->calls++;
    strncat(compiler->compiled, request->name,
            sizeof compiler->compiled - strlen(compiler->compiled) - 2);
    strcat(compiler->compiled, " ");
    pthread_mutex_unlock(&compiler->lock);

    char dir[] = "/tmp/jitcache-inputs-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        jitcache_compile_output_set_error(output, "mkdtemp failed");
        return 1;
    }
    char src[64], obj[64], dep[64], log[64], cmd[1024];
    snprintf(src, sizeof src, "%s/unit.c", dir);
    snprintf(obj, sizeof obj, "%s/unit.o", dir);
    snprintf(dep, sizeof dep, "%s/unit.d", dir);
    snprintf(log, sizeof log, "%s/log.txt", dir);
    int32_t rc = 1;
    FILE *f = fopen(src, "wb");
    if (f == NULL || fwrite(request->unit, 1, request->unit_len, f) != request->unit_len ||
        fclose(f) != 0) {
        jitcache_compile_output_set_error(output, "cannot write the unit");
        goto done;
    }
    snprintf(cmd, sizeof cmd,
             "cd '%s' && '%s' -c -O2 -fPIC -Ioverride -Iinclude -MD -MF '%s' -o '%s' '%s' "
             "2>'%s'",
             compiler->project, compiler->cc, dep, obj, src, log);
    unsigned char *object = NULL;
    size_t len = 0;
    if (system(cmd) != 0 || read_file(obj, &object, &len) != 0) {
        unsigned char *text = NULL;
        size_t text_len = 0;
        char err[4096] = "the compiler failed";
        if (read_file(log, &text, &text_len) == 0) {
            snprintf(err, sizeof err, "%.*s", (int)text_len, (const char *)text);
            free(text);
        }
        jitcache_compile_output_set_error(output, err);
        goto done;
    }
    if (report_inputs(output, dep) != 0) {
        jitcache_compile_output_set_error(output, jitcache_last_error());
        free(object);
        goto done;
    }
    /* The object embeds the time of the compile: use it once, never store it. */
    if (contains(request->unit, request->unit_len, "__TIME__")) {
        jitcache_compile_output_set_uncacheable(output, "uses __TIME__");
    }
    if (request->path != NULL) printf("path %s=%s\n", request->name, request->path);
    rc = jitcache_compile_output_set_object(output, object, len) == JITCACHE_OK ? 0 : 1;
    free(object);
done:
    unlink(src);
    unlink(obj);
    unlink(dep);
    unlink(log);
    rmdir(dir);
    return rc;
}

static const char SRC_CONFIG[] =
    "#include \"config.h\"\nlong config_value(void) { return CONFIG_VALUE; }\n";
static const char SRC_OTHER[] =
    "#include \"other.h\"\nlong other_value(void) { return OTHER_VALUE; }\n";
static const char SRC_PLAIN[] = "long plain_value(void) { return 7; }\n";
static const char SRC_STAMPED[] =
    "long stamped_value(void) { return sizeof(__TIME__) == 9 ? 9 : -1; }\n";

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: inputs_host <cache-dir> <project-dir> <cc>\n");
        return 2;
    }
    (void)compile_c; /* support.h's compiler runs elsewhere; this host runs its own */
    struct compiler compiler = {argv[3], argv[2], PTHREAD_MUTEX_INITIALIZER, 0, ""};
    jitcache_cache *cache = NULL;
    jitcache_backend *backend = NULL;
    OK(jitcache_open(argv[1], NULL, &cache));
    jitcache_backend_identity identity = test_identity();
    jitcache_callback_options options;
    memset(&options, 0, sizeof options);
    options.reports_inputs = 1;
    options.base_dir = argv[2];
    OK(jitcache_callback_backend_new2(&identity, &options, compile_unit, &compiler, &backend));

    static const char *const names[] = {"config", "other", "plain", "stamped"};
    static const char *const symbols[] = {"config_value", "other_value", "plain_value",
                                          "stamped_value"};
    jitcache_key_parts parts[4] = {
        parts_of("c", names[0], SRC_CONFIG), parts_of("c", names[1], SRC_OTHER),
        parts_of("c", names[2], SRC_PLAIN), parts_of("c", names[3], SRC_STAMPED)};
    /* A callback gets a unit's path as given (this one is not a real file: the callback
     * compiles the bytes). */
    const char *paths[4] = {NULL, NULL, "gen/plain.c", NULL};
    jitcache_unit *units[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < 4; i++) {
        OK(jitcache_get_or_compile_batch_at(cache, backend, &parts[i], &paths[i], 1, NULL,
                                            &units[i]));
        int32_t origin = -1;
        char *reason = NULL;
        void *address = NULL;
        OK(jitcache_unit_origin(units[i], &origin, &reason));
        OK(jitcache_unit_symbol(units[i], symbols[i], &address));
        const char *from = origin == JITCACHE_ORIGIN_MEMORY ? "memory"
                           : origin == JITCACHE_ORIGIN_DISK ? "disk"
                                                            : "compiled";
        long value = address != NULL ? ((long (*)(void))address)() : -1;
        printf("unit %s %s%s%s\nvalue %s=%ld\n", names[i], from, reason ? ": " : "",
               reason ? reason : "", names[i], value);
        OK(jitcache_string_free(reason));
    }
    /* Asking again in this process: a unit is in memory; the uncacheable one was used
     * once, and compiles again (the test counts this second compile). */
    jitcache_unit *again = NULL;
    int32_t origin = -1;
    OK(jitcache_get_or_compile(cache, backend, &parts[0], NULL, &again));
    OK(jitcache_unit_origin(again, &origin, NULL));
    EXPECT(origin == JITCACHE_ORIGIN_MEMORY);
    OK(jitcache_unit_free(again));
    OK(jitcache_get_or_compile(cache, backend, &parts[3], NULL, &again));
    OK(jitcache_unit_origin(again, &origin, NULL));
    EXPECT(origin == JITCACHE_ORIGIN_COMPILED);
    OK(jitcache_unit_free(again));

    printf("callbacks=%d compiled=%s\n", compiler.calls, compiler.compiled);
    jitcache_stats stats;
    OK(jitcache_stats_get(cache, &stats));
    printf("stats memory_hits=%llu disk_hits=%llu misses=%llu compiles=%llu\n",
           (unsigned long long)stats.memory_hits, (unsigned long long)stats.disk_hits,
           (unsigned long long)stats.misses, (unsigned long long)stats.compiles);
    for (int i = 0; i < 4; i++) OK(jitcache_unit_free(units[i]));
    OK(jitcache_backend_free(backend));
    OK(jitcache_close(cache));
    return failures != 0;
}
