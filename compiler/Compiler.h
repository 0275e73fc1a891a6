//===- Compiler.h - AttentionSpec -> PTX, in process -----------*- C++ -*-===//
#ifndef FLASHJIT_COMPILER_COMPILER_H
#define FLASHJIT_COMPILER_COMPILER_H

#include "compiler/AttentionSpec.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/Error.h"

#include <string>

namespace flashjit {

/// The named compile stages (Triton-style): each can be printed or dumped.
enum class Stage { FlashIR, KernelIR, LLVMIR, PTX };
const char *stageFileName(Stage s); // "0-flash.mlir", "1-kernel.mlir", "2-kernel.ll", "3-kernel.ptx"

struct CompileOptions {
  std::string dumpDir;       // write every stage here when not empty (FLASHJIT_DUMP_DIR)
  bool verifyEachPass = true;
  unsigned optLevel = 3;
};

struct CompiledKernel {
  std::string name; // kernel symbol = spec.variantName()
  std::string ptx;
  int64_t threads = 0;
  int64_t sharedMemoryBytes = 0;
};

/// Names everything about the compiler that changes its output (flashjit and
/// LLVM versions, a digest of the generator's sources, PTX ISA, optimisation
/// level): part of every cache key.
std::string compilerIdentity(const CompileOptions &options);

/// The flash-dialect module of one variant: a func.func named after the
/// variant holding one flash.attention over its arguments.
mlir::OwningOpRef<mlir::ModuleOp> buildAttentionModule(const AttentionSpec &spec,
                                                       mlir::MLIRContext &context);

/// Runs every stage up to `last` and returns that stage's text.
llvm::Expected<std::string> compileToStage(const AttentionSpec &spec, Stage last,
                                           const CompileOptions &options);

/// Compiles one variant to PTX. Errors carry the verifier's or the pass's message.
llvm::Expected<CompiledKernel> compileAttention(const AttentionSpec &spec,
                                                const CompileOptions &options);

} // namespace flashjit

#endif
