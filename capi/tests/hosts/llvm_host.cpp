// llvm_host.cpp: an LLVM JIT host on jitcache, both ways (include/jitcache_llvm.hpp).
//
// Its "front end" turns a small program (a few definitions, each one unit) into LLVM IR
// modules that call each other and libc. It runs the program in one of these modes:
//
//   orc DIR             LLJIT with jitcache::llvm::ObjectCache under SimpleCompiler:
//                       LLVM parses and optimizes every module; its code generator runs
//                       only for modules the cache does not hold.
//   orc-concurrent DIR  the same with ConcurrentIRCompiler, --threads compile threads,
//                       and as many host threads looking symbols up at once.
//   direct DIR          jitcache::llvm::Loader: each unit looked up by the host's own
//                       key (its source) before any IR exists; on a hit the object is
//                       loaded by jitcache's linker and LLVM does nothing at all.
//   mcjit DIR           MCJIT with the adapter as its ObjectCache (setObjectCache).
//   nocache             LLJIT as it comes, no cache (the baseline).
//
// Options: --opt N (0-3, default 2), --cpu NAME (default: the host's), --salt TEXT,
// --variant N (changes the body of one definition), --threads N (default 4),
// --ir-dir DIR (run the .ll files of DIR instead, calling int main(void)).
//
// It prints the entry's result and the counters the tests read:
//   entry=N                       what the program returned
//   adapter hits=.. misses=.. stores=.. uncacheable=..   (orc modes)
//   codegen=N ir=N                modules LLVM generated code for; modules parsed
//   stats memory_hits=.. disk_hits=.. misses=.. compiles=..   (direct)
// and appends "codegen <module>" to $JITCACHE_TEST_COMPILE_LOG for each code
// generation (a hook on LLVM's notification that it compiled a module).
// $JITCACHE_TEST_DAMAGE (garbage, truncate) damages each entry before it is looked up.
//
// Usage: llvm_host MODE [DIR] [options]

#include <jitcache_llvm.hpp>

#include <llvm/ExecutionEngine/ExecutionEngine.h>
#include <llvm/ExecutionEngine/MCJIT.h>
#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/IRReader/IRReader.h>
#include <llvm/Support/DynamicLibrary.h>
#include <llvm/Support/SourceMgr.h>
#include <llvm/Support/TargetSelect.h>

#include <atomic>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Options {
    std::string mode;
    std::string dir;
    int opt = 2;
    std::string cpu;
    std::string salt;
    long variant = 0;
    unsigned threads = 4;
    std::string irDir;
};

// State of the host runtime that one module reads through its absolute address: that
// module is process-specific, so the host marks it uncacheable.
int64_t host_state = 4242;

std::atomic<uint64_t> codegens{0};
std::atomic<uint64_t> irParsed{0};
std::mutex logMutex;

// The logging hook: one line per module LLVM generated code for.
void logCodegen(const std::string &module) {
    codegens.fetch_add(1);
    const char *path = std::getenv("JITCACHE_TEST_COMPILE_LOG");
    if (path == nullptr || path[0] == '\0') {
        return;
    }
    std::lock_guard<std::mutex> lock(logMutex);
    if (FILE *log = std::fopen(path, "a")) {
        std::fprintf(log, "codegen %s\n", module.c_str());
        std::fclose(log);
    }
}

// The adapter with the logging hook: LLVM calls notifyObjectCompiled exactly when its
// code generator has produced an object.
class LoggedCache : public jitcache::llvm::ObjectCache {
public:
    using jitcache::llvm::ObjectCache::ObjectCache;
    // With $JITCACHE_TEST_DAMAGE set, the test's damage: before each lookup, bytes that
    // are no object (or, with "truncate", the stored object's first half) go under the
    // module's key. The adapter must take them for a miss.
    std::unique_ptr<llvm::MemoryBuffer> getObject(const llvm::Module *module) override {
        const char *damage = std::getenv("JITCACHE_TEST_DAMAGE");
        jitcache_key key;
        if (damage != nullptr && module != nullptr && !isUncacheable(*module) &&
            moduleKey(*module, &key)) {
            std::string bytes = "this is not an object file";
            jitcache_bytes stored{};
            if (std::string(damage) == "truncate" &&
                jitcache_lookup(handle(), &key, &stored) == JITCACHE_OK) {
                bytes.assign(reinterpret_cast<const char *>(stored.data), stored.len / 2);
                jitcache_bytes_free(&stored);
            }
            jitcache_insert(handle(), &key, reinterpret_cast<const uint8_t *>(bytes.data()),
                            bytes.size());
        }
        return jitcache::llvm::ObjectCache::getObject(module);
    }
    void notifyObjectCompiled(const llvm::Module *module, llvm::MemoryBufferRef object) override {
        logCodegen(module->getModuleIdentifier());
        jitcache::llvm::ObjectCache::notifyObjectCompiled(module, object);
    }
};

// ---------------------------------------------------------------------------------
// The front end: each definition is a unit with source text (the host's own key) and
// the IR generated from it.

struct Definition {
    std::string name;   // the unit's name and its module's identifier
    std::string source; // what the host keys on
    std::string ir;     // what the front end generates from it
    bool uncacheable = false;
};

// An IR constant for a C string.
std::string cstring(const std::string &name, const std::string &text) {
    std::string escaped;
    for (char c : text) {
        if (c == '\n') {
            escaped += "\\0A";
        } else {
            escaped += c;
        }
    }
    return "@" + name + " = private unnamed_addr constant [" + std::to_string(text.size() + 1) +
           " x i8] c\"" + escaped + "\\00\"\n";
}

std::vector<Definition> frontEnd(long variant) {
    std::vector<Definition> defs;
    const std::string v = std::to_string(variant);
    defs.push_back({"math",
                    "(defn square [x] (+ (* x x) " + v + "))\n(defn fib [n] (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))\n",
                    "define i64 @square(i64 %x) {\n"
                    "  %r = mul i64 %x, %x\n"
                    "  %s = add i64 %r, " + v + "\n"
                    "  ret i64 %s\n"
                    "}\n"
                    "define i64 @fib(i64 %n) {\n"
                    "entry:\n"
                    "  %small = icmp slt i64 %n, 2\n"
                    "  br i1 %small, label %done, label %recur\n"
                    "recur:\n"
                    "  %a = sub i64 %n, 1\n"
                    "  %fa = call i64 @fib(i64 %a)\n"
                    "  %b = sub i64 %n, 2\n"
                    "  %fb = call i64 @fib(i64 %b)\n"
                    "  %sum = add i64 %fa, %fb\n"
                    "  ret i64 %sum\n"
                    "done:\n"
                    "  ret i64 %n\n"
                    "}\n"});
    defs.push_back({"even", "(defn is-even [n] (if (= n 0) 1 (is-odd (- n 1))))\n",
                    "declare i64 @is_odd(i64)\n"
                    "define i64 @is_even(i64 %n) {\n"
                    "entry:\n"
                    "  %z = icmp eq i64 %n, 0\n"
                    "  br i1 %z, label %yes, label %no\n"
                    "yes:\n"
                    "  ret i64 1\n"
                    "no:\n"
                    "  %m = sub i64 %n, 1\n"
                    "  %r = call i64 @is_odd(i64 %m)\n"
                    "  ret i64 %r\n"
                    "}\n"});
    defs.push_back({"odd", "(defn is-odd [n] (if (= n 0) 0 (is-even (- n 1))))\n",
                    "declare i64 @is_even(i64)\n"
                    "define i64 @is_odd(i64 %n) {\n"
                    "entry:\n"
                    "  %z = icmp eq i64 %n, 0\n"
                    "  br i1 %z, label %yes, label %no\n"
                    "yes:\n"
                    "  ret i64 0\n"
                    "no:\n"
                    "  %m = sub i64 %n, 1\n"
                    "  %r = call i64 @is_even(i64 %m)\n"
                    "  ret i64 %r\n"
                    "}\n"});
    defs.push_back({"text", "(defn describe [n] (count (format \"n=%d:%s\" (square n) \"hello\")))\n",
                    cstring("fmt", "n=%ld:%s") + cstring("word", "hello") +
                        "declare i32 @snprintf(ptr, i64, ptr, ...)\n"
                        "declare i64 @strlen(ptr)\n"
                        "declare i64 @square(i64)\n"
                        "define i64 @describe(i64 %n) {\n"
                        "  %buf = alloca [64 x i8]\n"
                        "  %sq = call i64 @square(i64 %n)\n"
                        "  %c = call i32 (ptr, i64, ptr, ...) @snprintf(ptr %buf, i64 64, ptr @fmt, i64 %sq, ptr @word)\n"
                        "  %len = call i64 @strlen(ptr %buf)\n"
                        "  ret i64 %len\n"
                        "}\n"});
    defs.push_back({"table", "(def counter (atom 0))\n(defn bump [i] (swap! counter + (nth [2 3 5 7 11] (mod i 5))))\n",
                    "@counter = global i64 0\n"
                    "@primes = constant [5 x i64] [i64 2, i64 3, i64 5, i64 7, i64 11]\n"
                    "define i64 @bump(i64 %i) {\n"
                    "  %old = load i64, ptr @counter\n"
                    "  %idx = urem i64 %i, 5\n"
                    "  %p = getelementptr [5 x i64], ptr @primes, i64 0, i64 %idx\n"
                    "  %v = load i64, ptr %p\n"
                    "  %new = add i64 %old, %v\n"
                    "  store i64 %new, ptr @counter\n"
                    "  ret i64 %new\n"
                    "}\n"});
    defs.push_back({"main",
                    "(defn entry [] (println ...) (checksum (fib 20) (square 12) (describe 12345) (is-even 10) (bump 3) (bump 4)))\n",
                    cstring("line", "entry: fib=%ld square=%ld describe=%ld even=%ld bump=%ld\n") +
                        "declare i32 @printf(ptr, ...)\n"
                        "declare i64 @fib(i64)\n"
                        "declare i64 @square(i64)\n"
                        "declare i64 @describe(i64)\n"
                        "declare i64 @is_even(i64)\n"
                        "declare i64 @bump(i64)\n"
                        "define i64 @entry() {\n"
                        "  %f = call i64 @fib(i64 20)\n"
                        "  %s = call i64 @square(i64 12)\n"
                        "  %d = call i64 @describe(i64 12345)\n"
                        "  %e = call i64 @is_even(i64 10)\n"
                        "  %b1 = call i64 @bump(i64 3)\n"
                        "  %b2 = call i64 @bump(i64 4)\n"
                        "  %p = call i32 (ptr, ...) @printf(ptr @line, i64 %f, i64 %s, i64 %d, i64 %e, i64 %b2)\n"
                        "  %t1 = add i64 %f, %s\n"
                        "  %t2 = mul i64 %t1, 31\n"
                        "  %t3 = add i64 %t2, %d\n"
                        "  %t4 = mul i64 %t3, 31\n"
                        "  %t5 = add i64 %t4, %e\n"
                        "  %t6 = mul i64 %t5, 31\n"
                        "  %t7 = add i64 %t6, %b2\n"
                        "  ret i64 %t7\n"
                        "}\n"});
    return defs;
}

// The process-specific module: it reads host_state through its address in this process.
Definition hostModule() {
    const std::string address = std::to_string(reinterpret_cast<uintptr_t>(&host_state));
    return {"hostaddr", "",
            "define i64 @host_value() {\n"
            "  %p = inttoptr i64 " + address + " to ptr\n"
            "  %v = load i64, ptr %p\n"
            "  ret i64 %v\n"
            "}\n",
            true};
}

// The .ll files of a directory, sorted, as definitions whose source is the IR text.
bool irDirectory(const std::string &dir, std::vector<Definition> &defs) {
    DIR *d = opendir(dir.c_str());
    if (d == nullptr) {
        std::fprintf(stderr, "cannot open %s\n", dir.c_str());
        return false;
    }
    std::vector<std::string> names;
    while (dirent *entry = readdir(d)) {
        std::string name = entry->d_name;
        if (name.size() > 3 && name.compare(name.size() - 3, 3, ".ll") == 0) {
            names.push_back(name);
        }
    }
    closedir(d);
    std::sort(names.begin(), names.end());
    for (const std::string &name : names) {
        std::ifstream in(dir + "/" + name, std::ios::binary);
        std::stringstream text;
        text << in.rdbuf();
        defs.push_back({name.substr(0, name.size() - 3), text.str(), text.str(), false});
    }
    return true;
}

// Generating a module: parsing the front end's IR text (the step a warm direct run
// never takes).
std::unique_ptr<llvm::Module> parse(const Definition &def, llvm::LLVMContext &context,
                                    std::string &error) {
    irParsed.fetch_add(1);
    llvm::SMDiagnostic diagnostic;
    auto module = llvm::parseIR(llvm::MemoryBufferRef(def.ir, def.name), diagnostic, context);
    if (!module) {
        llvm::raw_string_ostream out(error);
        diagnostic.print(def.name.c_str(), out);
        return nullptr;
    }
    if (def.uncacheable) {
        jitcache::llvm::ObjectCache::markUncacheable(*module);
    }
    return module;
}

bool fail(const std::string &what) {
    std::fprintf(stderr, "llvm_host: %s\n", what.c_str());
    return false;
}

bool check(llvm::Error error, const std::string &what) {
    if (error) {
        return fail(what + ": " + llvm::toString(std::move(error)));
    }
    return true;
}

void printAdapter(const jitcache::llvm::ObjectCache &cache) {
    std::printf("adapter hits=%" PRIu64 " misses=%" PRIu64 " stores=%" PRIu64
                " uncacheable=%" PRIu64 "\n",
                cache.hits(), cache.misses(), cache.stores(), cache.uncacheable());
    if (!cache.error().empty()) {
        std::printf("adapter error: %s\n", cache.error().c_str());
    }
}

// ---------------------------------------------------------------------------------
// Path 1: LLJIT, the adapter under LLVM's compilers.

bool runOrc(const Options &options, LoggedCache *cache, bool concurrent) {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    llvm::InitializeNativeTargetAsmParser();

    auto jtmb = llvm::orc::JITTargetMachineBuilder::detectHost();
    if (!jtmb) {
        return check(jtmb.takeError(), "detecting the host");
    }
    if (!options.cpu.empty()) {
        jtmb->setCPU(options.cpu);
    }
    switch (options.opt) {
    case 0:
        jtmb->setCodeGenOptLevel(llvm::CodeGenOptLevel::None);
        break;
    case 1:
        jtmb->setCodeGenOptLevel(llvm::CodeGenOptLevel::Less);
        break;
    case 3:
        jtmb->setCodeGenOptLevel(llvm::CodeGenOptLevel::Aggressive);
        break;
    default:
        jtmb->setCodeGenOptLevel(llvm::CodeGenOptLevel::Default);
        break;
    }

    llvm::orc::LLJITBuilder builder;
    builder.setJITTargetMachineBuilder(*jtmb);
    if (concurrent) {
        builder.setNumCompileThreads(options.threads);
    }
    if (cache != nullptr) {
        builder.setCompileFunctionCreator(cache->compileFunctionCreator(concurrent));
    }
    auto jit = builder.create();
    if (!jit) {
        return check(jit.takeError(), "creating the JIT");
    }
    auto &jd = (*jit)->getMainJITDylib();
    auto process = llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
        (*jit)->getDataLayout().getGlobalPrefix());
    if (!process) {
        return check(process.takeError(), "process symbols");
    }
    jd.addGenerator(std::move(*process));

    // The host's IR pipeline, before the compile layer (and so before the cache sees
    // the module).
    const int level = options.opt;
    (*jit)->getIRTransformLayer().setTransform(
        [level](llvm::orc::ThreadSafeModule module,
                const llvm::orc::MaterializationResponsibility &)
            -> llvm::Expected<llvm::orc::ThreadSafeModule> {
            module.withModuleDo([level](llvm::Module &m) {
                jitcache::llvm::Loader::optimizeModule(m, nullptr, level);
            });
            return module;
        });

    std::vector<Definition> defs;
    if (!options.irDir.empty()) {
        if (!irDirectory(options.irDir, defs)) {
            return false;
        }
    } else {
        defs = frontEnd(options.variant);
        defs.push_back(hostModule());
    }
    for (const Definition &def : defs) {
        auto context = std::make_unique<llvm::LLVMContext>();
        std::string error;
        auto module = parse(def, *context, error);
        if (!module) {
            return fail("parsing " + def.name + ": " + error);
        }
        if (!check((*jit)->addIRModule(
                       llvm::orc::ThreadSafeModule(std::move(module), std::move(context))),
                   "adding " + def.name)) {
            return false;
        }
    }

    if (concurrent) {
        // Several host threads look symbols up at once: their modules compile in
        // parallel on the JIT's compile threads.
        const char *names[] = {"fib", "is_even", "is_odd", "describe", "bump", "entry"};
        std::vector<std::thread> threads;
        std::atomic<int> failures{0};
        for (unsigned t = 0; t < options.threads; ++t) {
            threads.emplace_back([&, t] {
                for (size_t i = 0; i < sizeof names / sizeof names[0]; ++i) {
                    auto symbol = (*jit)->lookup(names[(i + t) % (sizeof names / sizeof names[0])]);
                    if (!symbol) {
                        llvm::consumeError(symbol.takeError());
                        failures.fetch_add(1);
                    }
                }
            });
        }
        for (std::thread &thread : threads) {
            thread.join();
        }
        if (failures.load() != 0 && options.irDir.empty()) {
            return fail("a concurrent lookup failed");
        }
    }

    const char *entryName = options.irDir.empty() ? "entry" : "main";
    auto entry = (*jit)->lookup(entryName);
    if (!entry) {
        return check(entry.takeError(), "looking up the entry");
    }
    int64_t result = 0;
    if (options.irDir.empty()) {
        result = entry->toPtr<int64_t (*)()>()();
        auto hostValue = (*jit)->lookup("host_value");
        if (!hostValue) {
            return check(hostValue.takeError(), "looking up host_value");
        }
        std::printf("host_value=%" PRId64 "\n", hostValue->toPtr<int64_t (*)()>()());
    } else {
        result = entry->toPtr<int (*)()>()();
    }
    std::fflush(stdout);
    std::printf("entry=%" PRId64 "\n", result);
    if (cache != nullptr) {
        printAdapter(*cache);
    }
    std::printf("codegen=%" PRIu64 " ir=%" PRIu64 "\n", codegens.load(), irParsed.load());
    return true;
}

// ---------------------------------------------------------------------------------
// Path 1 under MCJIT: the adapter given to ExecutionEngine::setObjectCache.

bool runMcjit(const Options &options, LoggedCache &cache) {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    llvm::InitializeNativeTargetAsmParser();
    llvm::sys::DynamicLibrary::LoadLibraryPermanently(nullptr); // libc for the modules

    std::vector<Definition> defs = frontEnd(options.variant);
    defs.push_back(hostModule());
    llvm::LLVMContext context;
    std::vector<std::unique_ptr<llvm::Module>> modules;
    for (const Definition &def : defs) {
        std::string error;
        auto module = parse(def, context, error);
        if (!module) {
            return fail("parsing " + def.name + ": " + error);
        }
        jitcache::llvm::Loader::optimizeModule(*module, nullptr, options.opt);
        modules.push_back(std::move(module));
    }
    std::string error;
    llvm::EngineBuilder builder(std::move(modules[0]));
    builder.setEngineKind(llvm::EngineKind::JIT).setErrorStr(&error);
    if (!options.cpu.empty()) {
        builder.setMCPU(options.cpu);
    }
    std::unique_ptr<llvm::ExecutionEngine> engine(builder.create());
    if (!engine) {
        return fail("creating MCJIT: " + error);
    }
    cache.setTarget(*engine->getTargetMachine());
    engine->setObjectCache(&cache);
    for (size_t i = 1; i < modules.size(); ++i) {
        engine->addModule(std::move(modules[i]));
    }
    engine->finalizeObject();
    auto entry = reinterpret_cast<int64_t (*)()>(engine->getFunctionAddress("entry"));
    auto hostValue = reinterpret_cast<int64_t (*)()>(engine->getFunctionAddress("host_value"));
    if (entry == nullptr || hostValue == nullptr) {
        return fail("MCJIT: no entry or host_value");
    }
    const int64_t result = entry();
    std::printf("host_value=%" PRId64 "\n", hostValue());
    std::fflush(stdout);
    std::printf("entry=%" PRId64 "\n", result);
    printAdapter(cache);
    std::printf("codegen=%" PRIu64 " ir=%" PRIu64 "\n", codegens.load(), irParsed.load());
    return true;
}

// ---------------------------------------------------------------------------------
// Path 2: the host's own keys, jitcache's linker, LLVM only on a miss.

bool runDirect(const Options &options) {
    jitcache::llvm::CodegenOptions codegen;
    codegen.cpu = options.cpu;
    codegen.optLevel = options.opt;
    // The salt names what changes the IR this front end makes from the same source.
    jitcache::llvm::Loader loader(options.dir, "llvm-host", "front-end 1;" + options.salt,
                                  codegen);
    if (!loader.ok()) {
        return fail(loader.error());
    }
    std::vector<Definition> defs;
    if (!options.irDir.empty()) {
        if (!irDirectory(options.irDir, defs)) {
            return false;
        }
    } else {
        defs = frontEnd(options.variant);
    }
    std::vector<jitcache::llvm::Loader::Unit> units;
    for (const Definition &def : defs) {
        jitcache::llvm::Loader::Unit unit;
        unit.name = def.name;
        unit.source = def.source;
        unit.generate = [def](llvm::LLVMContext &context, std::string &error) {
            auto module = parse(def, context, error);
            if (module) {
                logCodegen(def.name);
            }
            return module;
        };
        units.push_back(std::move(unit));
    }
    if (!loader.load(units)) {
        return fail("loading: " + loader.error());
    }
    int64_t result = 0;
    if (options.irDir.empty()) {
        auto entry = reinterpret_cast<int64_t (*)()>(loader.symbol("entry"));
        if (entry == nullptr) {
            return fail("no symbol entry");
        }
        result = entry();
    } else {
        auto entry = reinterpret_cast<int (*)()>(loader.symbol("main"));
        if (entry == nullptr) {
            return fail("no symbol main");
        }
        result = entry();
    }
    std::fflush(stdout);
    std::printf("entry=%" PRId64 "\n", result);
    jitcache_stats stats = loader.stats();
    std::printf("stats memory_hits=%" PRIu64 " disk_hits=%" PRIu64 " misses=%" PRIu64
                " compiles=%" PRIu64 "\n",
                stats.memory_hits, stats.disk_hits, stats.misses, stats.compiles);
    std::printf("codegen=%" PRIu64 " ir=%" PRIu64 "\n", loader.codegens(), irParsed.load());
    return true;
}

bool parseOptions(int argc, char **argv, Options &options) {
    if (argc < 2) {
        return false;
    }
    options.mode = argv[1];
    int i = 2;
    if (options.mode != "nocache") {
        if (argc < 3) {
            return false;
        }
        options.dir = argv[2];
        i = 3;
    }
    for (; i < argc; ++i) {
        const std::string arg = argv[i];
        if (i + 1 >= argc) {
            return false;
        }
        const char *value = argv[++i];
        if (arg == "--opt") {
            options.opt = std::atoi(value);
        } else if (arg == "--cpu") {
            options.cpu = value;
        } else if (arg == "--salt") {
            options.salt = value;
        } else if (arg == "--variant") {
            options.variant = std::atol(value);
        } else if (arg == "--threads") {
            options.threads = static_cast<unsigned>(std::max(1, std::atoi(value)));
        } else if (arg == "--ir-dir") {
            options.irDir = value;
        } else {
            return false;
        }
    }
    return true;
}

} // namespace

int main(int argc, char **argv) {
    Options options;
    if (!parseOptions(argc, argv, options)) {
        std::fprintf(stderr, "usage: llvm_host orc|orc-concurrent|mcjit|direct DIR [options] | "
                             "llvm_host nocache [options]\n");
        return 2;
    }
    bool ok = false;
    if (options.mode == "orc" || options.mode == "orc-concurrent") {
        LoggedCache cache(options.dir, options.salt);
        if (!cache.ok()) {
            return fail(cache.error()) ? 0 : 1;
        }
        ok = runOrc(options, &cache, options.mode == "orc-concurrent");
    } else if (options.mode == "mcjit") {
        LoggedCache cache(options.dir, options.salt);
        if (!cache.ok()) {
            return fail(cache.error()) ? 0 : 1;
        }
        ok = runMcjit(options, cache);
    } else if (options.mode == "nocache") {
        ok = runOrc(options, nullptr, false);
    } else if (options.mode == "direct") {
        ok = runDirect(options);
    } else {
        std::fprintf(stderr, "unknown mode %s\n", options.mode.c_str());
        return 2;
    }
    return ok ? 0 : 1;
}
