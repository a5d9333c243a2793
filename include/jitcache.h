/*
 * jitcache.h: the C API of jitcache, a persistent, content-addressed cache of
 * compiled machine code for language JITs.
 *
 * Link with -ljitcache (libjitcache.so or libjitcache.a). docs/c-api.md is the
 * guide, with a complete example of a C++ JIT host.
 *
 * Conventions (they hold for every function unless its comment says otherwise):
 *
 * - Every function returns a jitcache_status. JITCACHE_OK is success;
 *   JITCACHE_NOT_FOUND is a plain miss (no entry, no such symbol), not a fault;
 *   everything else is an error. No call aborts the process on bad input: NULL
 *   pointers, forged, freed or wrong-kind handles, a closed cache, strings that
 *   are not UTF-8, and internal errors all give an error status.
 * - jitcache_last_error() gives the calling thread's message of its last call
 *   ("" after a success). The pointer stays valid until the thread's next call.
 * - Handles (jitcache_cache, jitcache_backend, jitcache_unit,
 *   jitcache_compile_output) are opaque values, not pointers to memory:
 *   jitcache checks each one against its registry of live handles, so a handle
 *   that was freed or closed is refused (JITCACHE_ERR_STALE_HANDLE,
 *   JITCACHE_ERR_CLOSED) rather than used.
 * - Output parameters (out_*) must not be NULL unless documented optional. On
 *   failure a handle or pointer output is set to NULL, a jitcache_bytes output
 *   to {NULL, 0}.
 * - Input strings are NUL-terminated UTF-8 and input memory is read only during
 *   the call: jitcache copies what it keeps. An array given as pointer + count
 *   may be NULL when the count is 0.
 * - Memory jitcache returns is the caller's to free with the matching
 *   function: jitcache_bytes with jitcache_bytes_free, char * with
 *   jitcache_string_free. Never with free(). Freeing twice is an error status.
 * - The free functions (jitcache_close, jitcache_backend_free,
 *   jitcache_unit_free, jitcache_bytes_free, jitcache_string_free) accept NULL
 *   and then do nothing, like free().
 * - Compatibility: a struct the caller fills (configs, options, parts,
 *   identities) never changes its layout and a function never changes its
 *   signature; new settings come as a new struct and a new function
 *   (jitcache_cc_backend_new2). A struct jitcache fills for a callback
 *   (jitcache_compile_request) may gain fields at its end.
 *
 * Threads: every handle may be used from any thread, and concurrently, unless
 * said otherwise (a jitcache_compile_output is valid only inside its callback).
 * Callbacks run on the thread of the call that triggers them. The last error
 * message is per thread.
 *
 * Callbacks must return normally: a C++ exception or a longjmp out of a
 * callback into jitcache is undefined behaviour (catch everything inside, or
 * declare the callback noexcept).
 */

#ifndef JITCACHE_H
#define JITCACHE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define JITCACHE_API __attribute__((visibility("default")))
#else
#define JITCACHE_API
#endif

/* ------------------------------------------------------------------------ */
/* Status codes and errors                                                   */
/* ------------------------------------------------------------------------ */

/* What every function returns. Values never change; new ones may be added. */
typedef enum jitcache_status {
    JITCACHE_OK = 0,
    /* A miss: no entry for the key, no such symbol, a unit without a key. */
    JITCACHE_NOT_FOUND = 1,
    /* A required pointer argument was NULL. */
    JITCACHE_ERR_NULL_ARGUMENT = 2,
    /* An argument was out of range, misaligned, or a string not UTF-8. */
    JITCACHE_ERR_INVALID_ARGUMENT = 3,
    /* Not a handle jitcache issued, or a handle of another kind; also a
     * buffer or string given to a free function that jitcache did not return
     * (or that was freed already). */
    JITCACHE_ERR_INVALID_HANDLE = 4,
    /* A handle that was freed, or a unit handle whose code was unloaded. */
    JITCACHE_ERR_STALE_HANDLE = 5,
    /* The cache was closed (the cache handle, or the cache of a unit). */
    JITCACHE_ERR_CLOSED = 6,
    /* Called from code that runs while the same cache loads or unloads code
     * on this thread (a resolver callback, a static constructor or destructor
     * of that code), for an operation that needs the cache's linker. */
    JITCACHE_ERR_REENTRANT = 7,
    /* The persistent cache is not in use (config.persistent == 0, or the
     * directory is unusable: see jitcache_bypass_reason). */
    JITCACHE_ERR_BYPASSED = 8,
    /* The store failed (the message names the path). */
    JITCACHE_ERR_STORE = 9,
    /* A file could not be read or written. */
    JITCACHE_ERR_IO = 10,
    /* A backend could not compile a unit (the message has the compiler's
     * diagnostics), could not be created (compiler not found), or produced
     * bytes that are not a relocatable object. */
    JITCACHE_ERR_COMPILE = 11,
    /* A compile callback reported failure (its message is included). */
    JITCACHE_ERR_CALLBACK = 12,
    /* The linker could not load a unit (undefined symbol, unsupported
     * relocation, malformed object) or open a library. */
    JITCACHE_ERR_LINK = 13,
    /* An internal error (a bug in jitcache), caught at the boundary. */
    JITCACHE_ERR_PANIC = 14
} jitcache_status;

/* The calling thread's message of its last call to this API: "" after a
 * success. Never NULL; valid until the thread's next call (copy it to keep it).
 * Does not itself change the message. */
JITCACHE_API const char *jitcache_last_error(void);

/* The name of a status ("JITCACHE_ERR_CLOSED"), or "unknown status". A static
 * string; does not change the last error. */
JITCACHE_API const char *jitcache_status_name(jitcache_status status);

/* The library's version ("0.1.0"). A static string; does not change the last
 * error. */
JITCACHE_API const char *jitcache_version(void);

/* ------------------------------------------------------------------------ */
/* Handles and plain data                                                    */
/* ------------------------------------------------------------------------ */

/* An open cache. Thread-safe. */
typedef struct jitcache_cache jitcache_cache;
/* A backend: the system compiler, or a compile callback. Thread-safe. */
typedef struct jitcache_backend jitcache_backend;
/* Loaded code. Thread-safe. */
typedef struct jitcache_unit jitcache_unit;
/* Where a compile callback puts its result; valid only during the callback. */
typedef struct jitcache_compile_output jitcache_compile_output;

/* A cache key: 32 bytes of BLAKE3. */
typedef struct jitcache_key {
    uint8_t bytes[32];
} jitcache_key;

/* A 32-byte hash, e.g. the interface hash of a dependency. */
typedef struct jitcache_hash {
    uint8_t bytes[32];
} jitcache_hash;

/* A byte buffer returned by jitcache. Owned by the caller: free it with
 * jitcache_bytes_free. Empty buffers are {NULL, 0}. */
typedef struct jitcache_bytes {
    uint8_t *data;
    size_t len;
} jitcache_bytes;

/* Frees a buffer returned by jitcache and sets it to {NULL, 0}. NULL, or a
 * buffer whose data is NULL, is a no-op. A buffer not returned by jitcache, or
 * freed already, or whose len was changed: an error status, nothing freed. */
JITCACHE_API jitcache_status jitcache_bytes_free(jitcache_bytes *bytes);

/* Frees a string returned by jitcache. NULL is a no-op; a pointer jitcache did
 * not return, or one freed already: JITCACHE_ERR_INVALID_HANDLE. */
JITCACHE_API jitcache_status jitcache_string_free(char *string);

/* ------------------------------------------------------------------------ */
/* Opening and closing a cache                                               */
/* ------------------------------------------------------------------------ */

typedef struct jitcache_config {
    /* zstd level of new entries, 0 (zstd's default) to 22. Default 3. */
    int32_t compression_level;
    /* Nonzero: use the persistent cache in the directory. 0: compile every
     * unit (units are still shared within the process). Default 1. */
    int32_t persistent;
    /* How long a process waits for another one compiling the same unit
     * before compiling it itself, in milliseconds. Default 60000. */
    uint64_t single_flight_timeout_ms;
} jitcache_config;

/* Fills *config with the defaults. */
JITCACHE_API jitcache_status jitcache_config_init(jitcache_config *config);

/* Opens (or creates) the cache in directory dir (UTF-8). config may be NULL
 * for the defaults. On success *out_cache is a new cache handle, to close with
 * jitcache_close.
 *
 * A directory that cannot be used (read-only, full, world-writable, owned by
 * someone else, on a network file system such as NFS or CIFS) is not an error: the cache then compiles without persisting,
 * warns once on stderr, and jitcache_stats_get reports bypassed = 1. */
JITCACHE_API jitcache_status jitcache_open(const char *dir,
                                           const jitcache_config *config,
                                           jitcache_cache **out_cache);

/* Sets the cache directory's own maximum size in bytes (0 removes it). It is
 * kept in the cache and shared by every process using the directory: a process
 * that stores code notices when the blobs take more and trims the least recently
 * used entries in the background (at most once per 5 minutes across processes,
 * never on the thread of a lookup). JITCACHE_MAX_SIZE in the environment
 * overrides it. JITCACHE_ERR_BYPASSED when the persistent cache is not in use. */
JITCACHE_API jitcache_status jitcache_set_max_size(jitcache_cache *cache,
                                                   uint64_t max_size);

/* Whether compiled code is stored by a background writer thread (nonzero) or
 * on the thread that compiled it (0, the default). With the writer, a compile
 * costs a copy into a bounded queue (256 entries; a full queue writes on the
 * caller's thread); the code is usable in this process at once, and other
 * processes see it once written. jitcache_close writes what is queued (waiting
 * 2 s at most); a host that may exit() without closing calls
 * jitcache_flush_writes first, or queued code is lost (compiled again by the
 * next process). It is off by default for that reason. */
JITCACHE_API jitcache_status jitcache_set_background_writes(jitcache_cache *cache,
                                                            int32_t enabled);

/* Waits at most timeout_ms until the background writer has stored everything
 * queued. *out_pending (out_pending may be NULL) is how many writes are still
 * queued: 0 when all are stored. */
JITCACHE_API jitcache_status jitcache_flush_writes(jitcache_cache *cache,
                                                   uint64_t timeout_ms,
                                                   uint64_t *out_pending);

/* Evicts every entry of a foreign backend identity: one no process on this
 * machine has used for 30 days, or not since a newer version of the same
 * backend appeared (an old compiler). A size trim evicts those first anyway.
 * *out_evicted (out_evicted may be NULL) is how many entries went.
 * JITCACHE_ERR_BYPASSED when the persistent cache is not in use. */
JITCACHE_API jitcache_status jitcache_prune_foreign(jitcache_cache *cache,
                                                    uint64_t *out_evicted);

/* Closes a cache: frees the handle and every unit handle of it, and unloads all
 * code loaded through it (destructors run; every address from it dangles).
 * If another thread is inside a call on this cache, that call completes and the
 * code is unloaded when it returns. Later use of the handle, or of its units:
 * JITCACHE_ERR_CLOSED. NULL is a no-op. */
JITCACHE_API jitcache_status jitcache_close(jitcache_cache *cache);

/* This process's statistics of the cache. */
typedef struct jitcache_stats {
    uint64_t memory_hits;     /* units found already loaded in this process */
    uint64_t disk_hits;       /* units read from the persistent cache */
    uint64_t misses;          /* units in neither when asked for */
    uint64_t compiles;        /* units this process compiled */
    uint64_t compile_time_ns; /* time in backends */
    uint64_t load_time_ns;    /* time reading from the cache and linking */
    int32_t bypassed;         /* nonzero: the persistent cache is not in use */
} jitcache_stats;

/* Copies the cache's statistics into *out_stats. */
JITCACHE_API jitcache_status jitcache_stats_get(jitcache_cache *cache,
                                                jitcache_stats *out_stats);

/* Why the persistent cache is bypassed: *out_reason is a new string (free it
 * with jitcache_string_free), or NULL if the cache is in use. */
JITCACHE_API jitcache_status jitcache_bypass_reason(jitcache_cache *cache,
                                                    char **out_reason);

/* ------------------------------------------------------------------------ */
/* Keys                                                                      */
/* ------------------------------------------------------------------------ */

/* What identifies a unit, apart from the backend that compiles it. */
typedef struct jitcache_key_parts {
    const char *ns;           /* namespace: the language ("jank", "c") */
    const char *name;         /* the unit's name, unique in the namespace */
    const uint8_t *unit;      /* the unit's bytes: source or IR */
    size_t unit_len;
    const jitcache_hash *deps; /* interface hashes of compile-time
                                  dependencies; a set: order is ignored */
    size_t deps_count;
} jitcache_key_parts;

/* Everything about a backend that can change the code it produces. */
typedef struct jitcache_backend_identity {
    const char *name;    /* "my-jit" */
    const char *version; /* change it whenever the output may change */
    const char *const *flags; /* options that change the output */
    size_t flags_count;
    int32_t flags_ordered; /* nonzero: flag order matters; 0: sorted, deduped */
    const char *target;  /* target triple and CPU features, never "native" */
} jitcache_backend_identity;

/* The key of parts compiled by a backend of this identity: the key that
 * jitcache_get_or_compile uses with a callback backend of the same identity. */
JITCACHE_API jitcache_status jitcache_key_build(const jitcache_key_parts *parts,
                                                const jitcache_backend_identity *identity,
                                                jitcache_key *out_key);

/* The key jitcache_get_or_compile uses for parts with this backend (of any
 * kind). */
JITCACHE_API jitcache_status jitcache_backend_key(jitcache_backend *backend,
                                                  const jitcache_key_parts *parts,
                                                  jitcache_key *out_key);

/* BLAKE3 of len bytes: a convenient interface hash for jitcache_key_parts. */
JITCACHE_API jitcache_status jitcache_hash_bytes(const void *data, size_t len,
                                                 jitcache_hash *out_hash);

/* Writes the key as 64 lowercase hex digits and a NUL into out (65 bytes). */
JITCACHE_API jitcache_status jitcache_key_to_hex(const jitcache_key *key, char *out);

/* ------------------------------------------------------------------------ */
/* The raw store: object bytes by key                                        */
/* ------------------------------------------------------------------------ */

/* The bytes stored under key: JITCACHE_OK with *out_bytes a new buffer (free
 * it with jitcache_bytes_free), JITCACHE_NOT_FOUND on a miss (*out_bytes is
 * {NULL, 0}). Bytes are verified against their hash: damaged entries are
 * misses. JITCACHE_ERR_BYPASSED if the persistent cache is not in use. */
JITCACHE_API jitcache_status jitcache_lookup(jitcache_cache *cache,
                                             const jitcache_key *key,
                                             jitcache_bytes *out_bytes);

/* Stores len bytes under key (copied), for every later process. */
JITCACHE_API jitcache_status jitcache_insert(jitcache_cache *cache,
                                             const jitcache_key *key,
                                             const uint8_t *data, size_t len);

/* ------------------------------------------------------------------------ */
/* Backends                                                                  */
/* ------------------------------------------------------------------------ */

typedef enum jitcache_language {
    JITCACHE_LANG_C = 0,  /* -x c, default compiler "cc" */
    JITCACHE_LANG_CXX = 1 /* -x c++, default compiler "c++" */
} jitcache_language;

/* How to run the system compiler: `compiler flags... -x lang -c unit -o obj`. */
typedef struct jitcache_cc_config {
    const char *compiler; /* a name looked up in PATH or a path; NULL: default */
    int32_t language;     /* a jitcache_language */
    const char *const *flags; /* e.g. "-O2", "-fPIC", "-std=c++17" */
    size_t flags_count;
} jitcache_cc_config;

/* A backend that compiles C or C++ source with the system compiler. Finds the
 * compiler and runs it to compute its identity (path, binary hash, --version,
 * target and resolved CPU flags), so build it once and reuse it. On success
 * *out_backend is a new handle, to free with jitcache_backend_free.
 * JITCACHE_ERR_COMPILE if the compiler is not found or does not answer. */
JITCACHE_API jitcache_status jitcache_cc_backend_new(const jitcache_cc_config *config,
                                                     jitcache_backend **out_backend);

/* The settings of a system-compiler backend that are not part of its
 * configuration (jitcache_cc_backend_new2). Zero-initialize it: every field is
 * optional, and all zero is what jitcache_cc_backend_new does. */
typedef struct jitcache_cc_options {
    /* The base directory (UTF-8; relative to the current directory), or NULL.
     * Compiles run in it (relative flags such as -Iinclude are relative to it,
     * and so are relative paths of jitcache_get_or_compile_batch_at),
     * -ffile-prefix-map=<base_dir>=. keeps it out of __FILE__ and debug info,
     * and paths under it are keyed relative to it (flags, and the files each
     * compile read), so two checkouts of a project at different paths share
     * cache entries. It must be an existing directory whose path has no '='. */
    const char *base_dir;
    /* A cache whose directory keeps the compiler's probe (the version, target
     * and include search runs, and the toolchain's hashes), reused while the
     * compiler, its files, the flags and the environment are unchanged: a warm
     * start then runs no compiler process to build the backend. NULL: probe
     * every time. A bypassed cache, or one closed later, is fine: only its
     * directory is used, when the backend is built. */
    jitcache_cache *probe_cache;
} jitcache_cc_options;

/* jitcache_cc_backend_new with options (NULL: none). Every compile's object
 * lists what it read: each header (system headers too), precompiled header
 * (.gch used or rejected, -include-pch) and file the flags name, and the paths
 * whose creation would shadow a header it used. The cache keeps them under the
 * unit's key and checks them on every lookup, so editing a header recompiles
 * exactly the units that read it, and putting it back finds the old objects
 * again. A compile that uses __DATE__ or __TIME__ (without SOURCE_DATE_EPOCH),
 * or during which a file it read changed, is used once and not stored.
 * JITCACHE_ERR_INVALID_ARGUMENT for a base directory that cannot be one. */
JITCACHE_API jitcache_status jitcache_cc_backend_new2(const jitcache_cc_config *config,
                                                      const jitcache_cc_options *options,
                                                      jitcache_backend **out_backend);

/* What a compile callback is asked to compile. Pointers are valid during the
 * callback only. Later versions may add fields at the end. */
typedef struct jitcache_compile_request {
    const char *ns;        /* the unit's key parts, as given */
    const char *name;
    const uint8_t *unit;   /* NULL when unit_len is 0 */
    size_t unit_len;
    size_t index;          /* position in the batch (0 for a single unit) */
    void *call_data;       /* the call_data of the get-or-compile call */
    const char *path;      /* the unit's path as given to
                              jitcache_get_or_compile_batch_at, or NULL */
} jitcache_compile_request;

/* A compile callback: compiles request's unit into an ELF relocatable object
 * (what `cc -c` writes) and hands it over with
 * jitcache_compile_output_set_object, then returns 0. On failure it may call
 * jitcache_compile_output_set_error and returns nonzero: the get-or-compile
 * call then fails with JITCACHE_ERR_CALLBACK and the message.
 *
 * It runs on the thread that called jitcache_get_or_compile(_batch), only on
 * a miss, and may use the API, including the same cache. If the backend is
 * used from several threads at once, the callback runs concurrently. It must
 * not throw or longjmp. */
typedef int32_t (*jitcache_compile_fn)(void *user_data,
                                       const jitcache_compile_request *request,
                                       jitcache_compile_output *output);

/* A backend whose compiles are done by compile(user_data, ...). The identity
 * is copied; it goes into every key, so it must change whenever the callback's
 * output may change (compiler version, options). user_data stays the caller's:
 * keep it valid until jitcache_backend_free returns and no call that uses the
 * backend is running. On success *out_backend is a new handle. */
JITCACHE_API jitcache_status jitcache_callback_backend_new(
    const jitcache_backend_identity *identity, jitcache_compile_fn compile,
    void *user_data, jitcache_backend **out_backend);

/* How a callback backend's compiles depend on files (jitcache_callback_backend_new2).
 * Zero-initialize it: all zero is what jitcache_callback_backend_new does. */
typedef struct jitcache_callback_options {
    /* Nonzero: compiles may read files besides the unit (headers, a
     * precompiled header, a module cache), and the callback reports them with
     * jitcache_compile_output_add_input (and _add_absent, _set_uncacheable).
     * The cache then keeps, under each unit's key, a manifest of the files
     * each compile read with their content hashes, and checks them on every
     * lookup: a unit whose files changed is compiled again, one whose files
     * are back to an earlier state finds that compile's object. 0: the object
     * depends on the unit's key alone, and reporting inputs is an error. */
    int32_t reports_inputs;
    /* The base directory (UTF-8; relative to the current directory), or NULL:
     * relative reported paths are taken relative to it (else to the current
     * directory at the time of the report), and paths under it are recorded
     * relative to it, so checkouts at different paths share entries. An
     * existing directory. */
    const char *base_dir;
} jitcache_callback_options;

/* jitcache_callback_backend_new with options (NULL: none). Whether the
 * callback reports inputs is decided here, once: the cache looks for a
 * unit's manifest before it knows whether the unit must be compiled. */
JITCACHE_API jitcache_status jitcache_callback_backend_new2(
    const jitcache_backend_identity *identity, const jitcache_callback_options *options,
    jitcache_compile_fn compile, void *user_data, jitcache_backend **out_backend);

/* In a compile callback: the object (len bytes, copied). Calling it again
 * replaces the object. After the callback returned: JITCACHE_ERR_STALE_HANDLE. */
JITCACHE_API jitcache_status jitcache_compile_output_set_object(
    jitcache_compile_output *output, const uint8_t *data, size_t len);

/* In a compile callback: a message for the failure it is about to return
 * (copied; not UTF-8 is tolerated). */
JITCACHE_API jitcache_status jitcache_compile_output_set_error(
    jitcache_compile_output *output, const char *message);

/* In a compile callback of a backend made with reports_inputs: a file the
 * compile read, besides the unit's bytes (a header, a precompiled header).
 * Report every one: a file left out is one whose changes the cache never
 * sees. path (UTF-8) is copied and made absolute now, relative to the base
 * directory or else the current directory, with "." and ".." removed. The
 * file's contents are hashed when the callback returns; if it cannot be read
 * then, or was modified after the compile started, the object is used once
 * and not stored (it may have read a mix of versions). May be called from any
 * thread while the callback runs, and as often as needed (duplicates are
 * merged). Without reports_inputs: JITCACHE_ERR_INVALID_ARGUMENT. */
JITCACHE_API jitcache_status jitcache_compile_output_add_input(
    jitcache_compile_output *output, const char *path);

/* In a compile callback of a backend made with reports_inputs: a path that
 * did not exist and whose creation would change what the compile reads (a
 * header earlier in the search path than the one found; a missing directory
 * stands for everything below it). If it exists at a later lookup, the object
 * is not used. Copied and made absolute as for jitcache_compile_output_add_input. */
JITCACHE_API jitcache_status jitcache_compile_output_add_absent(
    jitcache_compile_output *output, const char *path);

/* In a compile callback of a backend made with reports_inputs: the object must
 * not be stored (it embeds the time, or a file changed while it compiled);
 * reason (copied; not UTF-8 is tolerated; the first reason is kept) says why.
 * The object is still loaded and used for this call. */
JITCACHE_API jitcache_status jitcache_compile_output_set_uncacheable(
    jitcache_compile_output *output, const char *reason);

/* Frees a backend handle. A call using the backend on another thread at the
 * same time finishes with it. NULL is a no-op. */
JITCACHE_API jitcache_status jitcache_backend_free(jitcache_backend *backend);

/* ------------------------------------------------------------------------ */
/* Get or compile                                                            */
/* ------------------------------------------------------------------------ */

/* Loaded code for parts, from the first level that has it: this process
 * (a memory hit), the persistent cache (a disk hit), or the backend, run once
 * and its object stored for every later process. If several processes miss
 * the same key at once, one compiles and the others wait for it (up to
 * config.single_flight_timeout_ms).
 *
 * With a system-compiler backend, parts->unit is the source text and
 * parts->name names the source file in diagnostics; call_data is unused. With
 * a callback backend, call_data is passed to the callback in its request.
 *
 * On success *out_unit is a new unit handle: free it with jitcache_unit_free
 * (the code stays loaded) or jitcache_unload; jitcache_close frees it too.
 * Each call returns a new handle, also for a memory hit.
 *
 * Symbols the unit does not define resolve, in order, to units loaded before
 * it in this cache, the resolver (jitcache_set_resolver), the host process and
 * the libraries opened with jitcache_open_library. */
JITCACHE_API jitcache_status jitcache_get_or_compile(jitcache_cache *cache,
                                                     jitcache_backend *backend,
                                                     const jitcache_key_parts *parts,
                                                     void *call_data,
                                                     jitcache_unit **out_unit);

/* The same for count units in one call: one lookup each, compiles of the
 * misses in order, and one link of the whole batch, so the units may refer to
 * each other in any order. A batch whose units were all loaded together before
 * is answered from memory; otherwise units already loaded are linked again with
 * the rest (from memory, not from disk), so none stays bound to an old version
 * of a unit the batch replaces. out_units has room for count handles; on
 * success each is a new unit handle (units linked together share their code:
 * unloading one unloads all of them). */
JITCACHE_API jitcache_status jitcache_get_or_compile_batch(jitcache_cache *cache,
                                                           jitcache_backend *backend,
                                                           const jitcache_key_parts *parts,
                                                           size_t count, void *call_data,
                                                           jitcache_unit **out_units);

/* jitcache_get_or_compile_batch for units that are files on disk: paths is
 * NULL (as jitcache_get_or_compile_batch) or has count entries, each NULL or
 * the path (UTF-8) of unit i's source file, relative to the backend's base
 * directory or else the current directory. parts[i].unit must still be the
 * file's bytes: they are the key. A system-compiler backend compiles such a
 * unit in place, in the base directory (or without one, the file's
 * directory), so quoted includes are found next to it as in a build; if the
 * file no longer holds parts[i].unit after the compile, the object is used
 * once and not stored. A callback backend gets the path as given in
 * request->path. The path is not part of the key. */
JITCACHE_API jitcache_status jitcache_get_or_compile_batch_at(
    jitcache_cache *cache, jitcache_backend *backend, const jitcache_key_parts *parts,
    const char *const *paths, size_t count, void *call_data, jitcache_unit **out_units);

/* ------------------------------------------------------------------------ */
/* Units and symbols                                                         */
/* ------------------------------------------------------------------------ */

/* The address of a global symbol the unit defines (C++ names mangled):
 * JITCACHE_NOT_FOUND if it does not define it. Cast it to the function or
 * object type it has; it stays valid until the unit is unloaded or the cache
 * closed. */
JITCACHE_API jitcache_status jitcache_unit_symbol(jitcache_unit *unit, const char *name,
                                                  void **out_address);

typedef enum jitcache_origin {
    JITCACHE_ORIGIN_MEMORY = 0,   /* already loaded in this process */
    JITCACHE_ORIGIN_DISK = 1,     /* read from the persistent cache */
    JITCACHE_ORIGIN_COMPILED = 2, /* compiled by the backend in this call */
    JITCACHE_ORIGIN_OBJECT = 3    /* loaded by jitcache_load_objects */
} jitcache_origin;

/* Where the unit's code came from in the call that returned this handle
 * (*out_origin is a jitcache_origin). out_reason is optional: if not NULL,
 * *out_reason is, for a compiled unit, a new string saying why it missed
 * ("new unit", "source changed", ...; free it with jitcache_string_free), and
 * NULL otherwise. */
JITCACHE_API jitcache_status jitcache_unit_origin(jitcache_unit *unit, int32_t *out_origin,
                                                  char **out_reason);

/* The unit's cache key. JITCACHE_NOT_FOUND for a unit from
 * jitcache_load_objects, which has none. For a backend whose compiles read
 * files (the system compiler, a callback backend with reports_inputs), the
 * cache keeps the unit's manifest under this key, not its object. */
JITCACHE_API jitcache_status jitcache_unit_key(jitcache_unit *unit, jitcache_key *out_key);

/* Frees a unit handle. The code stays loaded (until jitcache_unload through
 * another handle, or jitcache_close). NULL is a no-op. */
JITCACHE_API jitcache_status jitcache_unit_free(jitcache_unit *unit);

/* Unloads the unit's code, with every unit loaded in the same call (a batch):
 * runs its destructors, unmaps it, and frees every handle to it (later use:
 * JITCACHE_ERR_STALE_HANDLE). A later get-or-compile of the same parts loads
 * it again. With JITCACHE_BINDING_STUBS (the default) the stubs of its
 * functions go back to the latest definition still loaded, or, if there is
 * none, trap (a call through them raises SIGILL, never runs freed code); no
 * thread may still be running the unit's own code. With
 * JITCACHE_BINDING_DIRECT its addresses dangle and units loaded later that
 * call into it must be unloaded first. */
JITCACHE_API jitcache_status jitcache_unload(jitcache_unit *unit);

/* One relocatable object to load. */
typedef struct jitcache_object {
    const char *name;    /* for messages */
    const uint8_t *data; /* an ELF relocatable object (copied) */
    size_t len;
} jitcache_object;

/* Links count objects into one unit of the cache's linker, runs their
 * constructors and exports their global symbols to later units; no cache key
 * is involved (use jitcache_lookup / jitcache_insert around it to cache
 * objects by keys of your own). On success *out_unit is a new unit handle. */
JITCACHE_API jitcache_status jitcache_load_objects(jitcache_cache *cache,
                                                   const jitcache_object *objects,
                                                   size_t count, jitcache_unit **out_unit);

/* The address of a symbol exported by any unit loaded in the cache (the
 * latest loaded with JITCACHE_BINDING_STUBS, a function's stub; else the first
 * loaded with JITCACHE_BINDING_DIRECT); JITCACHE_NOT_FOUND if none does. */
JITCACHE_API jitcache_status jitcache_symbol(jitcache_cache *cache, const char *name,
                                             void **out_address);

/* How the units a cache loads reach each other's functions (and what the
 * addresses it hands out are). */
typedef enum jitcache_binding {
    /* The default: each exported function is reached through a stub the
     * cache owns (a jump through a pointer slot). Loading a unit that defines
     * the name again points the slot at the new code, atomically, so every
     * earlier caller, and every address handed out before, runs the new
     * definition on its next call (a REPL redefining f). Old code stays
     * loaded until its unit is unloaded. Data is not redirected: a new
     * definition of a variable is a new object that later units link to. */
    JITCACHE_BINDING_STUBS = 0,
    /* Straight to the code, one jump fewer per call: the first loaded
     * definition of a name wins, as before stubs existed. */
    JITCACHE_BINDING_DIRECT = 1
} jitcache_binding;

/* Sets how units loaded from now on in the cache (get-or-compile and
 * jitcache_load_objects) bind their functions: a jitcache_binding value, else
 * JITCACHE_ERR_INVALID_ARGUMENT. Units already loaded keep theirs. */
JITCACHE_API jitcache_status jitcache_set_binding(jitcache_cache *cache, int32_t binding);

/* A symbol resolver: the address of name, or NULL to let the search go on. */
typedef void *(*jitcache_resolve_fn)(void *user_data, const char *name);

/* Sets the resolver consulted for a loading unit's undefined symbols after the
 * units already loaded and before the host process; NULL removes it. It is
 * called on the loading thread, while the cache's linker is locked: from it,
 * calls that load, unload or look up symbols in the same cache fail with
 * JITCACHE_ERR_REENTRANT. user_data stays the caller's; keep it and the
 * function valid while the cache is open. */
JITCACHE_API jitcache_status jitcache_set_resolver(jitcache_cache *cache,
                                                   jitcache_resolve_fn resolve,
                                                   void *user_data);

/* Opens a shared library whose symbols later loads may use: a short name
 * ("m" for libm.so.6, "stdc++" for libstdc++.so.6), a soname or a path. It is
 * searched after the host process and stays open for the life of the process.
 * JITCACHE_ERR_LINK if it cannot be opened. */
JITCACHE_API jitcache_status jitcache_open_library(jitcache_cache *cache, const char *name);

/* What an unwinder's __register_frame takes. */
typedef enum jitcache_unwinder_kind {
    JITCACHE_UNWINDER_LIBGCC = 0, /* a whole .eh_frame section (libgcc, libgcc_eh.a) */
    JITCACHE_UNWINDER_LLVM = 1    /* one FDE per call (LLVM's libunwind) */
} jitcache_unwinder_kind;

/* Registers every unit loaded from now on (by any cache of the process) with
 * this unwinder too, for a host whose C++ runtime throws with one the linker
 * cannot find: a copy linked into the executable with hidden symbols, as
 * -static-libgcc does. Pass the host's own __register_frame and
 * __deregister_frame (declared extern "C" void f(const void *)), which bind
 * to that copy. Units are always registered with the unwinder the library was
 * linked against and the global scope's (dlsym), each as its kind needs.
 * JITCACHE_OK also if it is one of those already; JITCACHE_ERR_NULL_ARGUMENT
 * for a NULL function, JITCACHE_ERR_INVALID_ARGUMENT for another kind. */
JITCACHE_API jitcache_status jitcache_add_unwinder(void (*register_frame)(const void *),
                                                   void (*deregister_frame)(const void *),
                                                   int32_t kind);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* JITCACHE_H */
