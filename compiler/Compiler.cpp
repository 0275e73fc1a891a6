//===- Compiler.cpp - the compile driver: stages, dumps, errors -----------===//
#include "compiler/Compiler.h"
#include "compiler/KernelABI.h"
#include "GeneratorDigest.h" // FLASHJIT_GENERATOR_DIGEST (compiler/GeneratorDigest.cmake)

#include "compiler/NVPTXTarget.h"
#include "compiler/Pipeline.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;

namespace flashjit {

const char *stageFileName(Stage s) {
  switch (s) {
  case Stage::FlashIR: return "0-flash.mlir";
  case Stage::KernelIR: return "1-kernel.mlir";
  case Stage::LLVMIR: return "2-kernel.ll";
  case Stage::PTX: return "3-kernel.ptx";
  }
  return "unknown";
}

namespace {

llvm::Error makeError(const std::string &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

template <typename T> std::string printToString(T &printable) {
  std::string text;
  llvm::raw_string_ostream os(text);
  printable.print(os);
  return text;
}

/// Writes one stage to <dumpDir>/<variant>/<stage file> when dumping is on.
void dumpStage(const CompileOptions &options, const AttentionSpec &spec, Stage stage,
               const std::string &text) {
  if (options.dumpDir.empty())
    return;
  llvm::SmallString<256> dir(options.dumpDir);
  llvm::sys::path::append(dir, spec.variantName());
  if (llvm::sys::fs::create_directories(dir))
    return; // dumping is a debugging aid; never fail a compile over it
  llvm::sys::path::append(dir, stageFileName(stage));
  std::error_code ec;
  llvm::raw_fd_ostream os(dir, ec);
  if (!ec)
    os << text;
}

} // namespace

llvm::Expected<std::string> compileToStage(const AttentionSpec &spec, Stage last,
                                           const CompileOptions &options) {
  DialectRegistry registry;
  registerFlashjitDialects(registry);
  // Single-threaded context: callers compile variants in parallel themselves.
  MLIRContext context(registry, MLIRContext::Threading::DISABLED);
  std::string diagnostics;
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
    llvm::raw_string_ostream os(diagnostics);
    if (!diagnostics.empty())
      os << "\n";
    os << diag;
    return success();
  });
  auto fail = [&](const std::string &what) {
    return makeError(spec.variantName() + ": " + what +
                     (diagnostics.empty() ? "" : ": " + diagnostics));
  };

  OwningOpRef<ModuleOp> module = buildAttentionModule(spec, context);
  if (!module || failed(verify(*module)))
    return fail("invalid variant");
  std::string flashText = printToString(**module);
  dumpStage(options, spec, Stage::FlashIR, flashText);
  if (last == Stage::FlashIR)
    return flashText;

  PassManager pm(&context);
  pm.enableVerifier(options.verifyEachPass);
  buildFlashToNVVMPipeline(pm, PipelineOptions{options.verifyEachPass});
  if (failed(pm.run(*module)))
    return fail("lowering failed");
  std::string kernelText = printToString(**module);
  dumpStage(options, spec, Stage::KernelIR, kernelText);
  if (last == Stage::KernelIR)
    return kernelText;

  gpu::GPUModuleOp kernels;
  module->walk([&](gpu::GPUModuleOp m) { kernels = m; });
  if (!kernels)
    return fail("lowering produced no gpu.module");
  NVPTXOptions target;
  target.arch = spec.arch;
  target.optLevel = options.optLevel;
  llvm::LLVMContext llvmContext;
  auto llvmModule = translateKernelsToLLVMIR(kernels, llvmContext, target);
  if (!llvmModule)
    return fail(llvm::toString(llvmModule.takeError()));
  std::string llvmText;
  {
    llvm::raw_string_ostream os(llvmText);
    (*llvmModule)->print(os, nullptr);
  }
  dumpStage(options, spec, Stage::LLVMIR, llvmText);
  if (last == Stage::LLVMIR)
    return llvmText;

  auto ptx = emitPTX(**llvmModule, target);
  if (!ptx)
    return fail(llvm::toString(ptx.takeError()));
  dumpStage(options, spec, Stage::PTX, *ptx);
  return *ptx;
}

std::string compilerIdentity(const CompileOptions &options) {
  NVPTXOptions target;
  return std::string("flashjit ") + FLASHJIT_VERSION_STRING + "; generator " +
         FLASHJIT_GENERATOR_DIGEST + "; kernel ABI " + std::to_string(abi::kVersion) +
         "; LLVM " + LLVM_VERSION_STRING + "; ptx" + std::to_string(target.ptxVersion) + "; O" +
         std::to_string(options.optLevel);
}

llvm::Expected<CompiledKernel> compileAttention(const AttentionSpec &spec,
                                                const CompileOptions &options) {
  auto ptx = compileToStage(spec, Stage::PTX, options);
  if (!ptx)
    return ptx.takeError();
  CompiledKernel kernel;
  kernel.name = spec.variantName();
  kernel.ptx = std::move(*ptx);
  kernel.threads = spec.threads();
  kernel.sharedMemoryBytes = spec.sharedMemoryBytes();
  return kernel;
}

} // namespace flashjit
