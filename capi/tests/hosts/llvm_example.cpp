// llvm_example.cpp: an LLVM JIT host on jitcache, both ways (include/jitcache_llvm.hpp).
//
// Its front end turns each definition into an LLVM IR module; the modules call each
// other and libc. Run it twice with the same cache directory:
//
//   llvm_example orc DIR     LLJIT with jitcache::llvm::ObjectCache: the second process
//                            still parses and optimizes the IR, but LLVM generates no
//                            code (hits=3 misses=0)
//   llvm_example direct DIR  jitcache::llvm::Loader: each definition looked up by its
//                            source before any IR exists; the second process loads every
//                            object with jitcache's linker and never runs LLVM (codegen=0)
//
//   c++ -std=c++17 $(llvm-config-19 --cxxflags) -I include llvm_example.cpp -o llvm_example
//       -L target/release -ljitcache $(llvm-config-19 --ldflags --libs)

#include <jitcache_llvm.hpp>

#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/IRReader/IRReader.h>
#include <llvm/Support/SourceMgr.h>
#include <llvm/Support/TargetSelect.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace {

// A definition: its name, the host's source for it, and the IR the front end makes.
struct Definition {
    const char *name;
    const char *source;
    const char *ir;
};

const Definition program[] = {
    {"square", "(defn square [x] (* x x))",
     "define i64 @square(i64 %x) {\n"
     "  %r = mul i64 %x, %x\n"
     "  ret i64 %r\n"
     "}\n"},
    {"sum", "(defn sum-of-squares [n] (reduce + (map square (range 1 (inc n)))))",
     "declare i64 @square(i64)\n"
     "define i64 @sum_of_squares(i64 %n) {\n"
     "entry:\n"
     "  br label %loop\n"
     "loop:\n"
     "  %i = phi i64 [ 1, %entry ], [ %next, %loop ]\n"
     "  %acc = phi i64 [ 0, %entry ], [ %sum, %loop ]\n"
     "  %sq = call i64 @square(i64 %i)\n"
     "  %sum = add i64 %acc, %sq\n"
     "  %next = add i64 %i, 1\n"
     "  %done = icmp sgt i64 %next, %n\n"
     "  br i1 %done, label %exit, label %loop\n"
     "exit:\n"
     "  ret i64 %sum\n"
     "}\n"},
    {"report", "(defn report [n] (printf \"sum of squares to %d: %d\\n\" n (sum-of-squares n)))",
     "@fmt = private unnamed_addr constant [28 x i8] c\"sum of squares to %ld: %ld\\0A\\00\"\n"
     "declare i32 @printf(ptr, ...)\n"
     "declare i64 @sum_of_squares(i64)\n"
     "define i64 @report(i64 %n) {\n"
     "  %s = call i64 @sum_of_squares(i64 %n)\n"
     "  %c = call i32 (ptr, ...) @printf(ptr @fmt, i64 %n, i64 %s)\n"
     "  ret i64 %s\n"
     "}\n"},
};

// The front end's last step: the module of a definition, in `context`.
std::unique_ptr<llvm::Module> generate(const Definition &def, llvm::LLVMContext &context,
                                       std::string &error) {
    llvm::SMDiagnostic diagnostic;
    auto module = llvm::parseIR(llvm::MemoryBufferRef(def.ir, def.name), diagnostic, context);
    if (!module) {
        error = diagnostic.getMessage().str();
    }
    return module;
}

int fail(const std::string &message) {
    std::fprintf(stderr, "llvm_example: %s\n", message.c_str());
    return 1;
}

// Path 1: the adapter under ORC's compiler. LLVM asks the cache for each module's object
// before it generates code, and hands it every object it generates.
int runOrc(const std::string &dir) {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    llvm::InitializeNativeTargetAsmParser();

    // The salt names what LLVM cannot see: here, the version of the host's runtime ABI.
    jitcache::llvm::ObjectCache cache(dir, "example-runtime-1");
    auto jit = llvm::orc::LLJITBuilder()
                   .setCompileFunctionCreator(cache.compileFunctionCreator(/*concurrent=*/false))
                   .create();
    if (!jit) {
        return fail(llvm::toString(jit.takeError()));
    }
    auto libc = llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
        (*jit)->getDataLayout().getGlobalPrefix());
    if (!libc) {
        return fail(llvm::toString(libc.takeError()));
    }
    (*jit)->getMainJITDylib().addGenerator(std::move(*libc));

    for (const Definition &def : program) {
        auto context = std::make_unique<llvm::LLVMContext>();
        std::string error;
        auto module = generate(def, *context, error);
        if (!module) {
            return fail(std::string(def.name) + ": " + error);
        }
        if (auto err = (*jit)->addIRModule(
                llvm::orc::ThreadSafeModule(std::move(module), std::move(context)))) {
            return fail(llvm::toString(std::move(err)));
        }
    }
    auto report = (*jit)->lookup("report");
    if (!report) {
        return fail(llvm::toString(report.takeError()));
    }
    report->toPtr<int64_t (*)(int64_t)>()(10);
    std::printf("hits=%llu misses=%llu stores=%llu\n",
                static_cast<unsigned long long>(cache.hits()),
                static_cast<unsigned long long>(cache.misses()),
                static_cast<unsigned long long>(cache.stores()));
    return 0;
}

// Path 2: the host's own keys. Nothing of LLVM runs unless a definition is missing.
int runDirect(const std::string &dir) {
    // The salt names what changes the IR made from the same source: the front end.
    jitcache::llvm::Loader loader(dir, "example", "front-end 1; runtime 1");
    if (!loader.ok()) {
        return fail(loader.error());
    }
    std::vector<jitcache::llvm::Loader::Unit> units;
    for (const Definition &def : program) {
        jitcache::llvm::Loader::Unit unit;
        unit.name = def.name;
        unit.source = def.source;
        unit.generate = [&def](llvm::LLVMContext &context, std::string &error) {
            return generate(def, context, error);
        };
        units.push_back(std::move(unit));
    }
    if (!loader.load(units)) {
        return fail(loader.error());
    }
    auto report = reinterpret_cast<int64_t (*)(int64_t)>(loader.symbol("report"));
    if (report == nullptr) {
        return fail("no symbol report");
    }
    report(10);
    jitcache_stats stats = loader.stats();
    std::printf("codegen=%llu disk_hits=%llu\n",
                static_cast<unsigned long long>(loader.codegens()),
                static_cast<unsigned long long>(stats.disk_hits));
    return 0;
}

} // namespace

int main(int argc, char **argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: llvm_example orc|direct CACHE_DIR\n");
        return 2;
    }
    const std::string mode = argv[1];
    if (mode == "orc") {
        return runOrc(argv[2]);
    }
    if (mode == "direct") {
        return runDirect(argv[2]);
    }
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
}
