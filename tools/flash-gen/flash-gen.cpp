//===- flash-gen.cpp - offline generation of attention kernel variants ----===//
//
//   flash-gen --arch sm_90a --dtype bf16 --head-dim 128 [--causal] [--lse]
//             [--tile m,n,warps,stages] --emit ptx|mlir|kernel-mlir|llvm -o FILE
//
#include "compiler/Compiler.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>

namespace cl = llvm::cl;
using namespace flashjit;

static cl::opt<std::string> arch("arch", cl::desc("target (sm_80, sm_90a, ...)"), cl::init("sm_80"));
static cl::opt<std::string> dtype("dtype", cl::desc("element type: bf16 or f16"), cl::init("bf16"));
static cl::opt<int> headDim("head-dim", cl::desc("head dim of Q/K (and V unless --head-dim-v)"),
                            cl::init(128));
static cl::opt<int> headDimV("head-dim-v", cl::desc("head dim of V/O"), cl::init(0));
static cl::opt<bool> causal("causal", cl::desc("bottom-right causal mask"));
static cl::opt<bool> lse("lse", cl::desc("also write the log-sum-exp"));
static cl::opt<std::string> tile("tile", cl::desc("m,n,warps,stages (default: per head dim)"),
                                 cl::init(""));
static cl::opt<long> maxSmem("max-smem", cl::desc("shared memory limit in bytes (default: the arch's)"),
                             cl::init(0));
static cl::opt<std::string> emit("emit", cl::desc("mlir | kernel-mlir | llvm | ptx"), cl::init("ptx"));
static cl::opt<std::string> output("o", cl::desc("output file"), cl::init("-"));
static cl::opt<std::string> dumpDir("dump-dir", cl::desc("write every stage here"), cl::init(""));
static cl::opt<bool> timing("time", cl::desc("print the compile time to stderr"));

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::ParseCommandLineOptions(argc, argv, "flashjit offline kernel generator\n");

  AttentionSpec spec;
  auto dt = parseDType(dtype);
  if (!dt) {
    llvm::errs() << "flash-gen: unknown --dtype '" << dtype << "' (bf16 or f16)\n";
    return 2;
  }
  spec.dtype = *dt;
  spec.headDimQK = headDim;
  spec.headDimV = headDimV ? int(headDimV) : int(headDim);
  spec.mask = causal ? Mask::Causal : Mask::None;
  spec.withLse = lse;
  spec.arch = arch;
  spec.maxSharedMemory = maxSmem ? maxSmem : documentedMaxSharedMemory(arch);
  if (spec.maxSharedMemory == 0) {
    llvm::errs() << "flash-gen: no documented shared-memory limit for " << arch
                 << "; pass --max-smem\n";
    return 2;
  }
  spec.tile = defaultTile(spec.headDimQK, spec.headDimV, spec.maxSharedMemory);
  if (!tile.empty()) {
    long m, n, w, s;
    if (sscanf(tile.c_str(), "%ld,%ld,%ld,%ld", &m, &n, &w, &s) != 4) {
      llvm::errs() << "flash-gen: --tile wants m,n,warps,stages\n";
      return 2;
    }
    spec.tile = {m, n, w, s};
  }
  Stage stage;
  if (emit == "mlir")
    stage = Stage::FlashIR;
  else if (emit == "kernel-mlir")
    stage = Stage::KernelIR;
  else if (emit == "llvm")
    stage = Stage::LLVMIR;
  else if (emit == "ptx")
    stage = Stage::PTX;
  else {
    llvm::errs() << "flash-gen: unknown --emit '" << emit << "'\n";
    return 2;
  }

  CompileOptions options;
  options.dumpDir = dumpDir;
  auto start = std::chrono::steady_clock::now();
  auto text = compileToStage(spec, stage, options);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                  .count();
  if (!text) {
    llvm::errs() << "flash-gen: " << llvm::toString(text.takeError()) << "\n";
    return 1;
  }
  std::error_code ec;
  llvm::ToolOutputFile out(output, ec, llvm::sys::fs::OF_None);
  if (ec) {
    llvm::errs() << "flash-gen: cannot write " << output << ": " << ec.message() << "\n";
    return 1;
  }
  out.os() << *text;
  out.keep();
  if (timing)
    llvm::errs() << "flash-gen: " << spec.variantName() << " compiled to " << emit << " in "
                 << llvm::format("%.1f", ms) << " ms\n";
  return 0;
}
