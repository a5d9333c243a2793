// jitcache_llvm.hpp: jitcache for LLVM JITs (ORC and MCJIT). Header-only, C++17.
//
// Two ways for an LLVM host to stop recompiling yesterday's code:
//
// 1. jitcache::llvm::ObjectCache, an llvm::ObjectCache backed by a jitcache cache
//    directory. Pass it to ORC's SimpleCompiler or ConcurrentIRCompiler (through
//    LLJITBuilder::setCompileFunctionCreator; compileFunctionCreator() makes one) or
//    to MCJIT's ExecutionEngine::setObjectCache. LLVM asks it for each module's
//    object before code generation and hands it each object it generates. The host
//    still parses or builds the IR and runs its IR passes; LLVM's code generator runs
//    only for modules the cache does not hold.
//
// 2. jitcache::llvm::Loader, for a host that knows its units before it makes any IR
//    (a front end with source text): it looks each unit up by the host's own key
//    (namespace, name, the host's source bytes, dependencies) and, on a hit, loads the
//    object with jitcache's linker. LLVM runs only on a miss, inside a compile
//    callback: the host's function generates the module, the loader optimizes it and
//    generates the object. A warm start creates no LLVMContext at all.
//
// A host includes this header, links libjitcache and LLVM, and needs nothing else:
//
//   c++ -std=c++17 $(llvm-config --cxxflags) -I include host.cpp -o host
//       -L target/release -ljitcache $(llvm-config --ldflags --libs)
//
// The header uses no exceptions (LLVM is usually built with -fno-exceptions): failures
// are reported by return values and error(). Both classes are thread-safe. The key of
// each scheme, and everything that goes into it, is described in docs/integration.md
// ("from an LLVM ORC or MCJIT host"). Tested with LLVM 19.

#ifndef JITCACHE_LLVM_HPP
#define JITCACHE_LLVM_HPP

#include <jitcache.h>

#include <llvm/Config/llvm-config.h>
#include <llvm/ExecutionEngine/ObjectCache.h>
#include <llvm/ExecutionEngine/Orc/CompileUtils.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/IR/Constants.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Object/ObjectFile.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/Error.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/Target/TargetOptions.h>
#include <llvm/TargetParser/Host.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace jitcache {
namespace llvm {

/// The revision of this adapter's key scheme: part of every key, raised whenever what
/// the adapter stores or how it builds keys changes.
constexpr const char *kAdapterRevision = "1";

/// The namespace of ObjectCache's keys (Loader keys use the host's own namespace).
constexpr const char *kModuleNamespace = "llvm";

/// The module flag that marks a module uncacheable (see ObjectCache::markUncacheable).
constexpr const char *kUncacheableFlag = "jitcache.uncacheable";

/// The cache directory the `jitcache` command-line tool uses when given none:
/// $JITCACHE_DIR, else $XDG_CACHE_HOME/jitcache, else $HOME/.cache/jitcache (empty
/// variables count as unset). Empty if none of them is set.
inline std::string defaultCacheDir() {
    auto nonempty = [](const char *name) -> const char * {
        const char *value = std::getenv(name);
        return (value != nullptr && value[0] != '\0') ? value : nullptr;
    };
    if (const char *dir = nonempty("JITCACHE_DIR")) {
        return dir;
    }
    if (const char *xdg = nonempty("XDG_CACHE_HOME")) {
        return std::string(xdg) + "/jitcache";
    }
    if (const char *home = nonempty("HOME")) {
        return std::string(home) + "/.cache/jitcache";
    }
    return std::string();
}

/// Everything about code generation that goes into a key besides the module: what
/// identifies the target machine, as `name=value` flags (cpu, features, relocation
/// model, code model, optimisation level, the target options that change code) and the
/// triple.
struct TargetDescription {
    /// The target triple ("x86_64-pc-linux-gnu").
    std::string triple;
    /// `name=value` pairs, in a fixed order.
    std::vector<std::string> flags;

    /// Whether it describes anything (an empty description keys nothing).
    bool empty() const { return triple.empty(); }
};

namespace detail {

inline const char *relocName(::llvm::Reloc::Model model) {
    switch (model) {
    case ::llvm::Reloc::Static:
        return "static";
    case ::llvm::Reloc::PIC_:
        return "pic";
    case ::llvm::Reloc::DynamicNoPIC:
        return "dynamic-no-pic";
    case ::llvm::Reloc::ROPI:
        return "ropi";
    case ::llvm::Reloc::RWPI:
        return "rwpi";
    case ::llvm::Reloc::ROPI_RWPI:
        return "ropi-rwpi";
    }
    return "unknown";
}

inline const char *codeModelName(::llvm::CodeModel::Model model) {
    switch (model) {
    case ::llvm::CodeModel::Tiny:
        return "tiny";
    case ::llvm::CodeModel::Small:
        return "small";
    case ::llvm::CodeModel::Kernel:
        return "kernel";
    case ::llvm::CodeModel::Medium:
        return "medium";
    case ::llvm::CodeModel::Large:
        return "large";
    }
    return "unknown";
}

/// The target options that change generated code, as flags.
inline void describeOptions(const ::llvm::TargetOptions &options,
                            std::vector<std::string> &flags) {
    auto flag = [&flags](const char *name, long value) {
        flags.push_back(std::string(name) + "=" + std::to_string(value));
    };
    flag("function-sections", options.FunctionSections);
    flag("data-sections", options.DataSections);
    flag("unique-section-names", options.UniqueSectionNames);
    flag("emulated-tls", options.EmulatedTLS);
    flag("exception-model", static_cast<long>(options.ExceptionModel));
    flag("float-abi", static_cast<long>(options.FloatABIType));
    flag("fp-op-fusion", static_cast<long>(options.AllowFPOpFusion));
    flag("fast-isel", options.EnableFastISel);
    flag("global-isel", options.EnableGlobalISel);
    flag("trap-unreachable", options.TrapUnreachable);
    flags.push_back("abi=" + options.MCOptions.ABIName);
}

/// Bytes of a string, as key parts take them.
inline const uint8_t *bytesOf(const std::string &text) {
    return reinterpret_cast<const uint8_t *>(text.data());
}

/// The key of `unit` bytes named `name` in namespace `ns`, under an identity made of
/// the target description, the LLVM version, a scheme name and the salt.
inline bool buildKey(const char *ns, const std::string &name, const uint8_t *unit,
                     size_t unitLen, const std::vector<jitcache_hash> &deps,
                     const char *scheme, const TargetDescription &target,
                     const std::string &salt, jitcache_key *out, std::string &error) {
    std::vector<std::string> flags = target.flags;
    flags.push_back("salt=" + salt);
    std::vector<const char *> flagPtrs;
    flagPtrs.reserve(flags.size());
    for (const std::string &flag : flags) {
        flagPtrs.push_back(flag.c_str());
    }
    const std::string version =
        std::string("LLVM " LLVM_VERSION_STRING "; adapter ") + kAdapterRevision;
    jitcache_backend_identity identity{};
    identity.name = scheme;
    identity.version = version.c_str();
    identity.flags = flagPtrs.data();
    identity.flags_count = flagPtrs.size();
    identity.flags_ordered = 1;
    identity.target = target.triple.c_str();
    jitcache_key_parts parts{};
    parts.ns = ns;
    parts.name = name.c_str();
    parts.unit = unit;
    parts.unit_len = unitLen;
    parts.deps = deps.empty() ? nullptr : deps.data();
    parts.deps_count = deps.size();
    jitcache_status status = jitcache_key_build(&parts, &identity, out);
    if (status != JITCACHE_OK) {
        error = std::string("jitcache_key_build: ") + jitcache_last_error();
        return false;
    }
    return true;
}

/// Whether `bytes` parse as an object file LLVM can load (a damaged or foreign entry
/// is a miss, never something handed to the JIT linker).
inline bool isLoadableObject(::llvm::StringRef bytes) {
    ::llvm::MemoryBufferRef ref(bytes, "jitcache-entry");
    auto object = ::llvm::object::ObjectFile::createObjectFile(ref);
    if (!object) {
        ::llvm::consumeError(object.takeError());
        return false;
    }
    return true;
}

} // namespace detail

/// The description of a target machine: its triple, CPU, features, relocation model,
/// code model, optimisation level and the target options that change code.
inline TargetDescription describe(const ::llvm::TargetMachine &tm) {
    TargetDescription d;
    d.triple = tm.getTargetTriple().str();
    d.flags.push_back("cpu=" + tm.getTargetCPU().str());
    d.flags.push_back("features=" + tm.getTargetFeatureString().str());
    d.flags.push_back(std::string("reloc=") + detail::relocName(tm.getRelocationModel()));
    d.flags.push_back(std::string("code-model=") + detail::codeModelName(tm.getCodeModel()));
    d.flags.push_back("opt=" + std::to_string(static_cast<int>(tm.getOptLevel())));
    detail::describeOptions(tm.Options, d.flags);
    return d;
}

/// An llvm::ObjectCache on a jitcache cache directory.
///
/// The key of a module covers its IR as LLVM prints it (every global, function,
/// attribute and metadata node, the triple and the data layout: a canonical text, where
/// bitcode is not), the target machine (describe()), the LLVM version the host was
/// built against, this adapter's revision, and the host's salt
/// (what LLVM cannot see: the host runtime's ABI, a system image id). A module is
/// keyed when LLVM asks for it (getObject), before code generation changes it; the
/// object LLVM then generates is stored under that key.
///
/// Thread-safe: ConcurrentIRCompiler may call it from several threads at once. Every
/// failure of the cache (unusable directory, damaged entry) is a miss, never an error
/// of the JIT.
class ObjectCache : public ::llvm::ObjectCache {
public:
    /// Opens the cache in `dir` (created if needed; empty: defaultCacheDir()). `salt`
    /// goes into every key. A directory that cannot be used makes every lookup a miss
    /// (jitcache warns once on stderr); ok() is false only if no cache could be opened.
    explicit ObjectCache(const std::string &dir, std::string salt = std::string())
        : salt_(std::move(salt)) {
        const std::string path = dir.empty() ? defaultCacheDir() : dir;
        if (path.empty()) {
            error_ = "no cache directory: pass one, or set JITCACHE_DIR, XDG_CACHE_HOME or HOME";
            return;
        }
        if (jitcache_open(path.c_str(), nullptr, &cache_) != JITCACHE_OK) {
            error_ = std::string("jitcache_open: ") + jitcache_last_error();
            cache_ = nullptr;
        }
    }

    ObjectCache(const ObjectCache &) = delete;
    ObjectCache &operator=(const ObjectCache &) = delete;

    /// Closes the cache. Objects already handed to LLVM are LLVM's copies and stay valid.
    ~ObjectCache() override { jitcache_close(cache_); }

    /// Sets the target machine whose objects this cache holds: its description goes into
    /// every key. Call it before the first compile (compileFunctionCreator() does); a
    /// cache with no target keys nothing, so every module is compiled and none stored.
    void setTarget(const ::llvm::TargetMachine &tm) { setTarget(describe(tm)); }

    /// The same from a JITTargetMachineBuilder (the target machine it creates is
    /// described). False, with error(), if it cannot create one.
    bool setTarget(::llvm::orc::JITTargetMachineBuilder jtmb) {
        auto tm = jtmb.createTargetMachine();
        if (!tm) {
            std::lock_guard<std::mutex> lock(mutex_);
            error_ = "creating the target machine: " + ::llvm::toString(tm.takeError());
            return false;
        }
        setTarget(**tm);
        return true;
    }

    /// Sets the target description directly (what describe() returns).
    void setTarget(TargetDescription target) {
        std::lock_guard<std::mutex> lock(mutex_);
        target_ = std::move(target);
    }

    /// The target description keys are made with (empty before setTarget).
    TargetDescription target() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return target_;
    }

    /// A compile function for LLJITBuilder::setCompileFunctionCreator: describes the
    /// JIT's target machine to this cache and compiles through it, with
    /// ConcurrentIRCompiler when `concurrent` (for a JIT with compile threads), else
    /// with a SimpleCompiler owning its target machine. The cache must outlive the JIT.
    ::llvm::orc::LLJITBuilder::CompileFunctionCreator compileFunctionCreator(bool concurrent) {
        return [this, concurrent](::llvm::orc::JITTargetMachineBuilder jtmb)
                   -> ::llvm::Expected<std::unique_ptr<::llvm::orc::IRCompileLayer::IRCompiler>> {
            if (concurrent) {
                setTarget(jtmb);
                return std::make_unique<::llvm::orc::ConcurrentIRCompiler>(std::move(jtmb), this);
            }
            auto tm = jtmb.createTargetMachine();
            if (!tm) {
                return tm.takeError();
            }
            setTarget(**tm);
            return std::make_unique<::llvm::orc::TMOwningSimpleCompiler>(std::move(*tm), this);
        };
    }

    /// Marks a module uncacheable: a module flag (kUncacheableFlag, merged with Max when
    /// modules are linked) that makes this cache neither look it up nor store its
    /// object. For modules that embed process-specific addresses or other state of
    /// this process.
    static void markUncacheable(::llvm::Module &module) {
        if (!isUncacheable(module)) {
            module.addModuleFlag(::llvm::Module::Max, kUncacheableFlag, 1);
        }
    }

    /// Whether the module carries the uncacheable flag.
    static bool isUncacheable(const ::llvm::Module &module) {
        auto *flag = ::llvm::mdconst::extract_or_null<::llvm::ConstantInt>(
            module.getModuleFlag(kUncacheableFlag));
        return flag != nullptr && !flag->isZero();
    }

    /// The key of a module as this cache computes it (its printed IR with the target and
    /// the salt). False, with error(), before setTarget or if the key cannot be built.
    bool moduleKey(const ::llvm::Module &module, jitcache_key *out) const {
        TargetDescription target = this->target();
        if (target.empty()) {
            std::lock_guard<std::mutex> lock(mutex_);
            error_ = "no target machine set: call setTarget before compiling";
            return false;
        }
        // The module's textual IR, not its bitcode: bitcode writes each function's
        // value symbol table in hash-table order, which differs between two equal
        // modules whose names were created in another order (ORC's compile threads
        // and LLVM's passes do that), while the printed IR is canonical.
        ::llvm::SmallVector<char, 0> text;
        ::llvm::raw_svector_ostream os(text);
        module.print(os, nullptr);
        std::string error;
        if (!detail::buildKey(kModuleNamespace, module.getModuleIdentifier(),
                              reinterpret_cast<const uint8_t *>(text.data()), text.size(),
                              {}, "llvm-object", target, salt_, out, error)) {
            std::lock_guard<std::mutex> lock(mutex_);
            error_ = error;
            return false;
        }
        return true;
    }

    /// llvm::ObjectCache: the object stored for the module, or null (a miss; LLVM then
    /// generates it and calls notifyObjectCompiled). A damaged entry is a miss.
    std::unique_ptr<::llvm::MemoryBuffer> getObject(const ::llvm::Module *module) override {
        if (module == nullptr || cache_ == nullptr || isUncacheable(*module)) {
            uncacheable_.fetch_add(1, std::memory_order_relaxed);
            return nullptr;
        }
        jitcache_key key;
        if (!moduleKey(*module, &key)) {
            uncacheable_.fetch_add(1, std::memory_order_relaxed);
            return nullptr;
        }
        {
            std::lock_guard<std::mutex> lock(mutex_);
            pending_[module] = key;
        }
        jitcache_bytes bytes{};
        if (jitcache_lookup(cache_, &key, &bytes) != JITCACHE_OK) {
            misses_.fetch_add(1, std::memory_order_relaxed);
            return nullptr;
        }
        ::llvm::StringRef object(reinterpret_cast<const char *>(bytes.data), bytes.len);
        std::unique_ptr<::llvm::MemoryBuffer> buffer;
        if (detail::isLoadableObject(object)) {
            buffer = ::llvm::MemoryBuffer::getMemBufferCopy(object, module->getModuleIdentifier());
        }
        jitcache_bytes_free(&bytes);
        if (!buffer) {
            misses_.fetch_add(1, std::memory_order_relaxed);
            return nullptr;
        }
        {
            std::lock_guard<std::mutex> lock(mutex_);
            pending_.erase(module);
        }
        hits_.fetch_add(1, std::memory_order_relaxed);
        return buffer;
    }

    /// llvm::ObjectCache: stores the object LLVM generated for the module, under the key
    /// getObject computed for it (or, if getObject was not asked, the module's key now).
    void notifyObjectCompiled(const ::llvm::Module *module, ::llvm::MemoryBufferRef object) override {
        if (module == nullptr || cache_ == nullptr || isUncacheable(*module)) {
            return;
        }
        jitcache_key key;
        bool found = false;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            auto it = pending_.find(module);
            if (it != pending_.end()) {
                key = it->second;
                pending_.erase(it);
                found = true;
            }
        }
        if (!found && !moduleKey(*module, &key)) {
            return;
        }
        const auto *data = reinterpret_cast<const uint8_t *>(object.getBufferStart());
        if (jitcache_insert(cache_, &key, data, object.getBufferSize()) == JITCACHE_OK) {
            stores_.fetch_add(1, std::memory_order_relaxed);
        } else {
            std::lock_guard<std::mutex> lock(mutex_);
            error_ = std::string("jitcache_insert: ") + jitcache_last_error();
        }
    }

    /// Modules whose object came from the cache.
    uint64_t hits() const { return hits_.load(std::memory_order_relaxed); }
    /// Cacheable modules the cache did not hold (or held damaged): LLVM compiled them.
    uint64_t misses() const { return misses_.load(std::memory_order_relaxed); }
    /// Objects stored.
    uint64_t stores() const { return stores_.load(std::memory_order_relaxed); }
    /// Modules neither looked up nor stored: marked uncacheable, no target set, or no
    /// cache open.
    uint64_t uncacheable() const { return uncacheable_.load(std::memory_order_relaxed); }

    /// Whether a cache is open.
    bool ok() const { return cache_ != nullptr; }
    /// The last problem the cache had ("" if none): why it is not open, a key that
    /// could not be built, a store that failed.
    std::string error() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return error_;
    }
    /// The C API handle of the cache (null if none is open), for jitcache_stats_get and
    /// the other calls of include/jitcache.h. Owned by this object.
    jitcache_cache *handle() const { return cache_; }

private:
    jitcache_cache *cache_ = nullptr;
    const std::string salt_;
    mutable std::mutex mutex_;
    TargetDescription target_;
    mutable std::string error_;
    std::unordered_map<const ::llvm::Module *, jitcache_key> pending_;
    std::atomic<uint64_t> hits_{0};
    std::atomic<uint64_t> misses_{0};
    std::atomic<uint64_t> stores_{0};
    std::atomic<uint64_t> uncacheable_{0};
};

/// How the Loader generates code on a miss. Plain strings, so that a warm start keys
/// every unit without initializing LLVM.
struct CodegenOptions {
    /// The target triple; empty: the process's (llvm::sys::getProcessTriple).
    std::string triple;
    /// The CPU; empty: the host's (llvm::sys::getHostCPUName).
    std::string cpu;
    /// The features ("+avx2,-avx512f"); empty with an empty cpu: the host's.
    std::string features;
    /// Optimisation level, 0 to 3: the IR pipeline (PassBuilder's O0..O3) and the code
    /// generator's level.
    int optLevel = 2;
};

/// Loads a host's units through jitcache's linker, keyed by the host's own key, with
/// LLVM run only on a miss (the no-LLVM-on-hit path).
///
/// The key of a unit is the C API's: the namespace, the unit's name, the host's source
/// bytes and the interface hashes of its dependencies, under an identity made of the
/// code generation options (CodegenOptions, relocation model PIC, code model small),
/// the LLVM version, this adapter's revision and the salt. The salt must name
/// everything else that changes the IR the host generates from the same source: its
/// front end's version above all.
///
/// Objects are linked by jitcache's linker (x86-64 ELF). Undefined symbols resolve to
/// the units of the same batch, units loaded earlier, symbols given with addSymbol,
/// then the process (libc).
class Loader {
public:
    /// A unit the host can compile: its key, and how to make its IR on a miss.
    struct Unit {
        /// The unit's name, unique in the loader's namespace.
        std::string name;
        /// The host's canonical bytes for the unit: its source, not IR.
        std::string source;
        /// Interface hashes of what the unit bakes in about others (jitcache_hash_bytes
        /// of a callee's signature, say); a set.
        std::vector<jitcache_hash> deps;
        /// Generates the unit's module in `context` (only on a miss, on the loading
        /// thread). Returns null, with a message in `error`, if it cannot. Must not throw.
        std::function<std::unique_ptr<::llvm::Module>(::llvm::LLVMContext &context,
                                                      std::string &error)>
            generate;
    };

    /// Opens the cache in `dir` (empty: defaultCacheDir()) for units of namespace `ns`.
    Loader(const std::string &dir, std::string ns, std::string salt = std::string(),
           CodegenOptions options = CodegenOptions())
        : ns_(std::move(ns)), salt_(std::move(salt)), options_(std::move(options)) {
        if (options_.triple.empty()) {
            options_.triple = ::llvm::sys::getProcessTriple();
        }
        if (options_.cpu.empty()) {
            options_.cpu = ::llvm::sys::getHostCPUName().str();
            if (options_.features.empty()) {
                options_.features = hostFeatures();
            }
        }
        options_.optLevel = std::min(3, std::max(0, options_.optLevel));
        target_.triple = options_.triple;
        target_.flags = {"cpu=" + options_.cpu, "features=" + options_.features, "reloc=pic",
                         "code-model=small", "opt=" + std::to_string(options_.optLevel)};
        const std::string path = dir.empty() ? defaultCacheDir() : dir;
        if (path.empty()) {
            error_ = "no cache directory: pass one, or set JITCACHE_DIR, XDG_CACHE_HOME or HOME";
            return;
        }
        if (jitcache_open(path.c_str(), nullptr, &cache_) != JITCACHE_OK) {
            error_ = std::string("jitcache_open: ") + jitcache_last_error();
            cache_ = nullptr;
            return;
        }
        std::vector<const char *> flagPtrs;
        std::vector<std::string> flags = target_.flags;
        flags.push_back("salt=" + salt_);
        for (const std::string &flag : flags) {
            flagPtrs.push_back(flag.c_str());
        }
        const std::string version =
            std::string("LLVM " LLVM_VERSION_STRING "; adapter ") + kAdapterRevision;
        jitcache_backend_identity identity{};
        identity.name = "llvm-loader";
        identity.version = version.c_str();
        identity.flags = flagPtrs.data();
        identity.flags_count = flagPtrs.size();
        identity.flags_ordered = 1;
        identity.target = target_.triple.c_str();
        if (jitcache_callback_backend_new2(&identity, nullptr, &Loader::compile, this,
                                           &backend_) != JITCACHE_OK) {
            error_ = std::string("jitcache_callback_backend_new2: ") + jitcache_last_error();
            backend_ = nullptr;
            return;
        }
        jitcache_set_resolver(cache_, &Loader::resolve, this);
    }

    Loader(const Loader &) = delete;
    Loader &operator=(const Loader &) = delete;

    /// Frees the backend and closes the cache: every unit it loaded is unloaded.
    ~Loader() {
        jitcache_backend_free(backend_);
        jitcache_close(cache_);
    }

    /// Makes `address` the definition of `name` for units loaded afterwards (host
    /// runtime functions), ahead of the process's own symbols.
    void addSymbol(const std::string &name, void *address) {
        std::lock_guard<std::mutex> lock(mutex_);
        symbols_[name] = address;
    }

    /// Loads `units` linked together, from this process, the cache, or LLVM (each miss
    /// generated and compiled once, stored for every later process). False, with
    /// error(), if a unit cannot be generated, compiled or linked.
    bool load(const std::vector<Unit> &units) {
        if (backend_ == nullptr) {
            return false;
        }
        std::vector<jitcache_key_parts> parts(units.size());
        for (size_t i = 0; i < units.size(); ++i) {
            parts[i].ns = ns_.c_str();
            parts[i].name = units[i].name.c_str();
            parts[i].unit = detail::bytesOf(units[i].source);
            parts[i].unit_len = units[i].source.size();
            parts[i].deps = units[i].deps.empty() ? nullptr : units[i].deps.data();
            parts[i].deps_count = units[i].deps.size();
        }
        std::vector<jitcache_unit *> handles(units.size(), nullptr);
        Batch batch{&units};
        jitcache_status status = jitcache_get_or_compile_batch(
            cache_, backend_, parts.data(), parts.size(), &batch, handles.data());
        for (jitcache_unit *handle : handles) {
            jitcache_unit_free(handle); // the code stays loaded
        }
        if (status != JITCACHE_OK) {
            std::lock_guard<std::mutex> lock(mutex_);
            error_ = std::string(jitcache_status_name(status)) + ": " + jitcache_last_error();
            return false;
        }
        return true;
    }

    /// The address of a symbol exported by a loaded unit, or null.
    void *symbol(const std::string &name) const {
        void *address = nullptr;
        if (cache_ == nullptr || jitcache_symbol(cache_, name.c_str(), &address) != JITCACHE_OK) {
            return nullptr;
        }
        return address;
    }

    /// Units LLVM generated code for in this process (misses).
    uint64_t codegens() const { return codegens_.load(std::memory_order_relaxed); }

    /// The cache's statistics (memory and disk hits, misses, compiles, times).
    jitcache_stats stats() const {
        jitcache_stats stats{};
        if (cache_ != nullptr) {
            jitcache_stats_get(cache_, &stats);
        }
        return stats;
    }

    /// Whether the loader is usable.
    bool ok() const { return backend_ != nullptr; }
    /// The last problem ("" if none).
    std::string error() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return error_;
    }
    /// The key parts' identity as flags and triple (what goes into every key).
    const TargetDescription &target() const { return target_; }
    /// The C API handle of the cache (null if none is open). Owned by this object.
    jitcache_cache *handle() const { return cache_; }

private:
    /// What a load hands its compile callbacks.
    struct Batch {
        const std::vector<Unit> *units;
    };

    /// The host's CPU features as a sorted feature string.
    static std::string hostFeatures() {
        std::vector<std::string> features;
        for (const auto &feature : ::llvm::sys::getHostCPUFeatures()) {
            features.push_back((feature.getValue() ? "+" : "-") + feature.getKey().str());
        }
        std::sort(features.begin(), features.end());
        std::string out;
        for (const std::string &feature : features) {
            if (!out.empty()) {
                out += ',';
            }
            out += feature;
        }
        return out;
    }

    static void *resolve(void *self, const char *name) {
        auto *loader = static_cast<Loader *>(self);
        std::lock_guard<std::mutex> lock(loader->mutex_);
        auto it = loader->symbols_.find(name);
        return it == loader->symbols_.end() ? nullptr : it->second;
    }

    static int32_t compile(void *self, const jitcache_compile_request *request,
                           jitcache_compile_output *output) {
        auto *loader = static_cast<Loader *>(self);
        auto *batch = static_cast<Batch *>(request->call_data);
        if (batch == nullptr || request->index >= batch->units->size()) {
            jitcache_compile_output_set_error(output, "jitcache::llvm::Loader: no such unit");
            return 1;
        }
        const Unit &unit = (*batch->units)[request->index];
        std::string error;
        ::llvm::SmallVector<char, 0> object;
        if (!loader->codegen(unit, object, error)) {
            error = "unit " + unit.name + ": " + error;
            jitcache_compile_output_set_error(output, error.c_str());
            return 1;
        }
        loader->codegens_.fetch_add(1, std::memory_order_relaxed);
        jitcache_compile_output_set_object(output, reinterpret_cast<const uint8_t *>(object.data()),
                                           object.size());
        return 0;
    }

    /// Generates, optimizes and compiles one unit into an object.
    bool codegen(const Unit &unit, ::llvm::SmallVector<char, 0> &object, std::string &error) {
        static std::once_flag initialized;
        std::call_once(initialized, [] {
            ::llvm::InitializeNativeTarget();
            ::llvm::InitializeNativeTargetAsmPrinter();
            ::llvm::InitializeNativeTargetAsmParser();
        });
        std::string lookupError;
        const ::llvm::Target *target =
            ::llvm::TargetRegistry::lookupTarget(options_.triple, lookupError);
        if (target == nullptr) {
            error = "target " + options_.triple + ": " + lookupError;
            return false;
        }
        std::unique_ptr<::llvm::TargetMachine> tm(target->createTargetMachine(
            options_.triple, options_.cpu, options_.features, ::llvm::TargetOptions(),
            ::llvm::Reloc::PIC_, ::llvm::CodeModel::Small, codegenLevel()));
        if (!tm) {
            error = "cannot create a target machine for " + options_.triple;
            return false;
        }
        ::llvm::LLVMContext context;
        if (!unit.generate) {
            error = "no generate function";
            return false;
        }
        std::unique_ptr<::llvm::Module> module = unit.generate(context, error);
        if (!module) {
            if (error.empty()) {
                error = "the front end produced no module";
            }
            return false;
        }
        module->setTargetTriple(options_.triple);
        module->setDataLayout(tm->createDataLayout());
        std::string verifyError;
        ::llvm::raw_string_ostream verifyOut(verifyError);
        if (::llvm::verifyModule(*module, &verifyOut)) {
            error = "invalid module: " + verifyOut.str();
            return false;
        }
        optimizeModule(*module, tm.get(), options_.optLevel);
        ::llvm::raw_svector_ostream os(object);
        ::llvm::legacy::PassManager passes;
#if LLVM_VERSION_MAJOR >= 18
        const auto fileType = ::llvm::CodeGenFileType::ObjectFile;
#else
        const auto fileType = ::llvm::CGFT_ObjectFile;
#endif
        if (tm->addPassesToEmitFile(passes, os, nullptr, fileType)) {
            error = "the target cannot emit object files";
            return false;
        }
        passes.run(*module);
        return true;
    }

#if LLVM_VERSION_MAJOR >= 18
    ::llvm::CodeGenOptLevel codegenLevel() const {
        switch (options_.optLevel) {
        case 0:
            return ::llvm::CodeGenOptLevel::None;
        case 1:
            return ::llvm::CodeGenOptLevel::Less;
        case 3:
            return ::llvm::CodeGenOptLevel::Aggressive;
        default:
            return ::llvm::CodeGenOptLevel::Default;
        }
    }
#else
    ::llvm::CodeGenOpt::Level codegenLevel() const {
        switch (options_.optLevel) {
        case 0:
            return ::llvm::CodeGenOpt::None;
        case 1:
            return ::llvm::CodeGenOpt::Less;
        case 3:
            return ::llvm::CodeGenOpt::Aggressive;
        default:
            return ::llvm::CodeGenOpt::Default;
        }
    }
#endif

public:
    /// Runs LLVM's default IR pipeline of `level` (0 to 3) over the module, with the
    /// target's cost model when `tm` is not null: what the Loader does before code
    /// generation, and what an ORC host can run in its IRTransformLayer.
    static void optimizeModule(::llvm::Module &module, ::llvm::TargetMachine *tm, int level) {
        ::llvm::LoopAnalysisManager lam;
        ::llvm::FunctionAnalysisManager fam;
        ::llvm::CGSCCAnalysisManager cgam;
        ::llvm::ModuleAnalysisManager mam;
        ::llvm::PassBuilder builder(tm);
        builder.registerModuleAnalyses(mam);
        builder.registerCGSCCAnalyses(cgam);
        builder.registerFunctionAnalyses(fam);
        builder.registerLoopAnalyses(lam);
        builder.crossRegisterProxies(lam, fam, cgam, mam);
        ::llvm::ModulePassManager passes;
        switch (level) {
        case 0:
            passes = builder.buildO0DefaultPipeline(::llvm::OptimizationLevel::O0);
            break;
        case 1:
            passes = builder.buildPerModuleDefaultPipeline(::llvm::OptimizationLevel::O1);
            break;
        case 3:
            passes = builder.buildPerModuleDefaultPipeline(::llvm::OptimizationLevel::O3);
            break;
        default:
            passes = builder.buildPerModuleDefaultPipeline(::llvm::OptimizationLevel::O2);
            break;
        }
        passes.run(module, mam);
    }

private:
    std::string ns_;
    std::string salt_;
    CodegenOptions options_;
    TargetDescription target_;
    jitcache_cache *cache_ = nullptr;
    jitcache_backend *backend_ = nullptr;
    mutable std::mutex mutex_;
    std::string error_;
    std::map<std::string, void *> symbols_;
    std::atomic<uint64_t> codegens_{0};
};

} // namespace llvm
} // namespace jitcache

#endif // JITCACHE_LLVM_HPP
