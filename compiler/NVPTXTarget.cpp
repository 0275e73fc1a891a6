//===- NVPTXTarget.cpp ----------------------------------------------------===//
#include "compiler/NVPTXTarget.h"

#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/Verifier.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Triple.h"

#include <mutex>

extern "C" {
void LLVMInitializeNVPTXTargetInfo();
void LLVMInitializeNVPTXTarget();
void LLVMInitializeNVPTXTargetMC();
void LLVMInitializeNVPTXAsmPrinter();
}

namespace flashjit {

static void initializeNVPTXOnce() {
  // Only the NVPTX back end: initialising all targets would pull every one in.
  static std::once_flag once;
  std::call_once(once, [] {
    LLVMInitializeNVPTXTargetInfo();
    LLVMInitializeNVPTXTarget();
    LLVMInitializeNVPTXTargetMC();
    LLVMInitializeNVPTXAsmPrinter();
  });
}

static llvm::Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

static llvm::Expected<std::unique_ptr<llvm::TargetMachine>>
createTargetMachine(const NVPTXOptions &options) {
  initializeNVPTXOnce();
  llvm::Triple triple("nvptx64-nvidia-cuda");
  std::string error;
  const llvm::Target *target = llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return makeError("NVPTX target unavailable: " + error);
  std::string features = "+ptx" + std::to_string(options.ptxVersion);
  llvm::TargetOptions targetOptions;
  auto level = options.optLevel >= 3   ? llvm::CodeGenOptLevel::Aggressive
               : options.optLevel == 0 ? llvm::CodeGenOptLevel::None
                                       : llvm::CodeGenOptLevel::Default;
  std::unique_ptr<llvm::TargetMachine> tm(target->createTargetMachine(
      triple, options.arch, features, targetOptions, std::nullopt, std::nullopt, level));
  if (!tm)
    return makeError("cannot create an NVPTX target machine for " + options.arch);
  return tm;
}

llvm::Expected<std::unique_ptr<llvm::Module>>
translateKernelsToLLVMIR(mlir::Operation *gpuModule, llvm::LLVMContext &context,
                         const NVPTXOptions &options) {
  std::unique_ptr<llvm::Module> module =
      mlir::translateModuleToLLVMIR(gpuModule, context, "flashjit");
  if (!module)
    return makeError("translation of the kernel module to LLVM IR failed");
  auto tm = createTargetMachine(options);
  if (!tm)
    return tm.takeError();
  module->setTargetTriple((*tm)->getTargetTriple());
  module->setDataLayout((*tm)->createDataLayout());
  return module;
}

llvm::Expected<std::string> emitPTX(llvm::Module &module, const NVPTXOptions &options) {
  auto tm = createTargetMachine(options);
  if (!tm)
    return tm.takeError();
  if (llvm::verifyModule(module, &llvm::errs()))
    return makeError("the generated LLVM IR does not verify");

  if (options.optLevel > 0) {
    llvm::LoopAnalysisManager lam;
    llvm::FunctionAnalysisManager fam;
    llvm::CGSCCAnalysisManager cgam;
    llvm::ModuleAnalysisManager mam;
    llvm::PassBuilder pb(tm->get());
    pb.registerModuleAnalyses(mam);
    pb.registerCGSCCAnalyses(cgam);
    pb.registerFunctionAnalyses(fam);
    pb.registerLoopAnalyses(lam);
    pb.crossRegisterProxies(lam, fam, cgam, mam);
    auto level = options.optLevel >= 3 ? llvm::OptimizationLevel::O3 : llvm::OptimizationLevel::O2;
    llvm::ModulePassManager mpm = pb.buildPerModuleDefaultPipeline(level);
    mpm.run(module, mam);
  }

  std::string ptx;
  {
    llvm::raw_string_ostream os(ptx);
    llvm::buffer_ostream bos(os);
    llvm::legacy::PassManager codegen;
    if ((*tm)->addPassesToEmitFile(codegen, bos, nullptr, llvm::CodeGenFileType::AssemblyFile))
      return makeError("the NVPTX back end cannot emit assembly");
    codegen.run(module);
  }
  return ptx;
}

} // namespace flashjit
