// load_objects.cpp: loads a set of cached relocatable objects and looks up every symbol
// they define, with jitcache or with LLVM's ORC, for the `llvm` bench (benches/llvm.rs).
//
//   load_objects MODE LIST CACHE
//
// LIST has one line per object, "path symbol...", and one line "undefined name...": the
// names no object defines, which both sides resolve to one dummy function (nothing is
// called). Modes:
//
//   jitcache        jitcache_get_or_compile_batch with a callback backend: every object
//                   read from the cache in CACHE (the callback, which reads the file,
//                   runs only on a cold run) and linked by jitcache's linker; then
//                   jitcache_unit_symbol for every symbol
//   linker          the files read with llvm::MemoryBuffer::getFile, as the orc mode
//                   reads them, and linked with jitcache_load_objects (no store)
//   orc             LLJIT: every file added with addObjectFile, then LLJIT::lookup of
//                   every symbol (which links the objects)
//   fill            jitcache, then closing the cache properly: the cold run that stores
//   *-empty         the same process up to the loading (cache opened, JIT created,
//                   list read) with nothing loaded: what the mode costs without objects
//
// It prints "loaded=N symbols=N us=T" (T: microseconds from after setup to after the
// last lookup).

#include <jitcache.h>

#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/TargetSelect.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <unordered_set>
#include <vector>

namespace {

struct Object {
    std::string path;
    std::vector<std::string> symbols;
    std::string line; // the object's key: a host would key its own source
};

struct List {
    std::vector<Object> objects;
    std::vector<std::string> undefined;
};

extern "C" long bench_dummy() { return 0; }

std::unordered_set<std::string> *undefinedNames = nullptr;

void *resolveDummy(void *, const char *name) {
    if (undefinedNames != nullptr && undefinedNames->count(name) != 0) {
        return reinterpret_cast<void *>(&bench_dummy);
    }
    return nullptr;
}

bool readList(const char *path, List &list) {
    std::ifstream in(path);
    if (!in) {
        std::fprintf(stderr, "cannot read %s\n", path);
        return false;
    }
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream words(line);
        std::string first;
        if (!(words >> first)) {
            continue;
        }
        std::vector<std::string> rest;
        for (std::string word; words >> word;) {
            rest.push_back(word);
        }
        if (first == "undefined") {
            list.undefined = std::move(rest);
        } else {
            list.objects.push_back({first, std::move(rest), line});
        }
    }
    return true;
}

std::string readFile(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    return bytes.str();
}

int32_t compileFromFile(void *, const jitcache_compile_request *request,
                        jitcache_compile_output *output) {
    auto *list = static_cast<const List *>(request->call_data);
    const std::string bytes = readFile(list->objects[request->index].path);
    jitcache_compile_output_set_object(output, reinterpret_cast<const uint8_t *>(bytes.data()),
                                       bytes.size());
    return 0;
}

bool ok(jitcache_status status, const char *what) {
    if (status != JITCACHE_OK) {
        std::fprintf(stderr, "%s: %s: %s\n", what, jitcache_status_name(status),
                     jitcache_last_error());
        return false;
    }
    return true;
}

int runJitcache(const List &list, const char *cacheDir, bool empty, bool store, bool fill) {
    jitcache_cache *cache = nullptr;
    if (!ok(jitcache_open(cacheDir, nullptr, &cache), "open")) {
        return 1;
    }
    jitcache_set_resolver(cache, &resolveDummy, nullptr);
    jitcache_backend_identity identity{};
    identity.name = "bench-objects";
    identity.version = "1";
    identity.target = "x86_64-unknown-linux-gnu";
    jitcache_backend *backend = nullptr;
    if (!ok(jitcache_callback_backend_new(&identity, &compileFromFile, nullptr, &backend),
            "backend")) {
        return 1;
    }
    size_t symbols = 0;
    auto start = std::chrono::steady_clock::now();
    if (!empty) {
        std::vector<jitcache_unit *> units(list.objects.size(), nullptr);
        if (store) {
            std::vector<jitcache_key_parts> parts(list.objects.size());
            for (size_t i = 0; i < parts.size(); ++i) {
                parts[i].ns = "bench";
                parts[i].name = list.objects[i].path.c_str();
                parts[i].unit = reinterpret_cast<const uint8_t *>(list.objects[i].line.data());
                parts[i].unit_len = list.objects[i].line.size();
            }
            if (!ok(jitcache_get_or_compile_batch(cache, backend, parts.data(), parts.size(),
                                                  const_cast<List *>(&list), units.data()),
                    "get_or_compile_batch")) {
                return 1;
            }
        } else {
            std::vector<std::unique_ptr<llvm::MemoryBuffer>> buffers;
            std::vector<jitcache_object> objects(list.objects.size());
            buffers.reserve(list.objects.size());
            for (size_t i = 0; i < objects.size(); ++i) {
                auto buffer = llvm::MemoryBuffer::getFile(list.objects[i].path);
                if (!buffer) {
                    std::fprintf(stderr, "cannot read %s\n", list.objects[i].path.c_str());
                    return 1;
                }
                buffers.push_back(std::move(*buffer));
                objects[i].name = list.objects[i].path.c_str();
                objects[i].data = reinterpret_cast<const uint8_t *>(buffers[i]->getBufferStart());
                objects[i].len = buffers[i]->getBufferSize();
            }
            units.resize(1);
            if (!ok(jitcache_load_objects(cache, objects.data(), objects.size(), &units[0]),
                    "load_objects")) {
                return 1;
            }
            units.resize(list.objects.size(), units[0]);
        }
        for (size_t i = 0; i < list.objects.size(); ++i) {
            for (const std::string &name : list.objects[i].symbols) {
                void *address = nullptr;
                if (!ok(jitcache_unit_symbol(units[i], name.c_str(), &address), name.c_str())) {
                    return 1;
                }
                ++symbols;
            }
        }
    }
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                  std::chrono::steady_clock::now() - start)
                  .count();
    std::printf("loaded=%zu symbols=%zu us=%lld\n", empty ? 0 : list.objects.size(), symbols,
                static_cast<long long>(us));
    std::fflush(stdout);
    if (fill) {
        jitcache_backend_free(backend);
        return ok(jitcache_close(cache), "close") ? 0 : 1;
    }
    std::_Exit(0); // process teardown is not part of either side's figure
}

int runOrc(const List &list, bool empty) {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    auto jit = llvm::orc::LLJITBuilder().create();
    if (!jit) {
        std::fprintf(stderr, "LLJIT: %s\n", llvm::toString(jit.takeError()).c_str());
        return 1;
    }
    llvm::orc::SymbolMap dummies;
    for (const std::string &name : list.undefined) {
        dummies[(*jit)->mangleAndIntern(name)] = {
            llvm::orc::ExecutorAddr::fromPtr(&bench_dummy), llvm::JITSymbolFlags::Exported};
    }
    if (auto err = (*jit)->getMainJITDylib().define(llvm::orc::absoluteSymbols(dummies))) {
        std::fprintf(stderr, "define: %s\n", llvm::toString(std::move(err)).c_str());
        return 1;
    }
    size_t symbols = 0;
    auto start = std::chrono::steady_clock::now();
    if (!empty) {
        for (const Object &object : list.objects) {
            auto buffer = llvm::MemoryBuffer::getFile(object.path);
            if (!buffer) {
                std::fprintf(stderr, "cannot read %s\n", object.path.c_str());
                return 1;
            }
            if (auto err = (*jit)->addObjectFile(std::move(*buffer))) {
                std::fprintf(stderr, "addObjectFile: %s\n", llvm::toString(std::move(err)).c_str());
                return 1;
            }
        }
        for (const Object &object : list.objects) {
            for (const std::string &name : object.symbols) {
                auto address = (*jit)->lookup(name);
                if (!address) {
                    std::fprintf(stderr, "lookup %s: %s\n", name.c_str(),
                                 llvm::toString(address.takeError()).c_str());
                    return 1;
                }
                ++symbols;
            }
        }
    }
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                  std::chrono::steady_clock::now() - start)
                  .count();
    std::printf("loaded=%zu symbols=%zu us=%lld\n", empty ? 0 : list.objects.size(), symbols,
                static_cast<long long>(us));
    std::fflush(stdout);
    std::_Exit(0);
}

} // namespace

int main(int argc, char **argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: load_objects MODE LIST CACHE\n");
        return 2;
    }
    const std::string mode = argv[1];
    List list;
    if (!readList(argv[2], list)) {
        return 1;
    }
    std::unordered_set<std::string> undefined(list.undefined.begin(), list.undefined.end());
    undefinedNames = &undefined;
    if (mode == "fill") {
        return runJitcache(list, argv[3], false, true, true);
    }
    if (mode == "jitcache" || mode == "jitcache-empty") {
        return runJitcache(list, argv[3], mode == "jitcache-empty", true, false);
    }
    if (mode == "linker" || mode == "linker-empty") {
        return runJitcache(list, argv[3], mode == "linker-empty", false, false);
    }
    if (mode == "orc" || mode == "orc-empty") {
        return runOrc(list, mode == "orc-empty");
    }
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
}
