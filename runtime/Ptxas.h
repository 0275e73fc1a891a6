//===- Ptxas.h - assemble PTX with the CUDA toolkit's ptxas -----*- C++ -*-===//
//
// The driver's JIT linker (cuLink*) compiles PTX as relocatable code, which on
// sm_90a serializes every wgmma and spills (measured: 32 of 32 HGMMAs
// followed by a wait, 81 spill stores, where ptxas gives 4 waits and none).
// So cubins come from the ptxas program when one is installed; without it the
// PTX goes to cuModuleLoadDataEx, which compiles it whole.
//
#ifndef FLASHJIT_RUNTIME_PTXAS_H
#define FLASHJIT_RUNTIME_PTXAS_H

#include "runtime/Status.h"

#include <string>

namespace flashjit {

/// $FLASHJIT_PTXAS ("none" = never use one), else ptxas under $CUDA_HOME/bin,
/// /usr/local/cuda/bin or on PATH; "" when there is none.
std::string findPtxas();

/// "ptxas PATH: <its --version line>", naming the assembler in cache keys.
std::string ptxasVersion(const std::string &ptxas);

/// Assembles `ptx` for `arch` (e.g. sm_90a) into `cubin`; `report` (optional)
/// receives ptxas -v's resource lines (registers, spills).
Status assembleWithPtxas(const std::string &ptxas, const std::string &arch, const std::string &ptx,
                         std::string &cubin, std::string *report = nullptr);

} // namespace flashjit

#endif
