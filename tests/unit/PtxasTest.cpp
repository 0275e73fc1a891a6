//===- PtxasTest.cpp - assembling generated PTX with the ptxas program ----===//
#include "compiler/AttentionSpec.h"
#include "compiler/Compiler.h"
#include "runtime/Ptxas.h"

#include "llvm/Support/Error.h"

#include <gtest/gtest.h>

#include <cstdlib>

using namespace flashjit;

namespace {

struct EnvironmentVariable {
  EnvironmentVariable(const char *name, const char *value) : name(name) {
    if (const char *old = std::getenv(name))
      previous = old, hadPrevious = true;
    setenv(name, value, 1);
  }
  ~EnvironmentVariable() {
    if (hadPrevious)
      setenv(name, previous.c_str(), 1);
    else
      unsetenv(name);
  }
  const char *name;
  std::string previous;
  bool hadPrevious = false;
};

TEST(Ptxas, NoneDisablesIt) {
  EnvironmentVariable none("FLASHJIT_PTXAS", "none");
  EXPECT_EQ(findPtxas(), "");
}

TEST(Ptxas, AMissingProgramIsAClearError) {
  std::string cubin;
  Status s = assembleWithPtxas("/nonexistent/ptxas", "sm_90a", ".version 8.0\n", cubin);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("/nonexistent/ptxas"), std::string::npos) << s.message();
  EXPECT_TRUE(cubin.empty());
}

// The warp-specialized default assembles without spills (the point of using
// ptxas rather than the driver's linker).
TEST(Ptxas, AssemblesTheHopperDefaultWithoutSpills) {
  const std::string ptxas = findPtxas();
  if (ptxas.empty())
    GTEST_SKIP() << "no ptxas on this machine";
  AttentionSpec spec;
  spec.arch = "sm_90a";
  spec.mask = Mask::Causal;
  spec.maxSharedMemory = documentedMaxSharedMemory(spec.arch);
  spec.tile = defaultTile(spec.headDimQK, spec.headDimV, spec.maxSharedMemory, spec.arch);
  ASSERT_TRUE(spec.tile.warpSpecialized) << tileName(spec.tile);
  auto kernel = compileAttention(spec, CompileOptions{});
  ASSERT_TRUE(static_cast<bool>(kernel)) << llvm::toString(kernel.takeError());
  std::string cubin, report;
  Status s = assembleWithPtxas(ptxas, spec.arch, kernel->ptx, cubin, &report);
  ASSERT_TRUE(s.isOk()) << s.message();
  EXPECT_GT(cubin.size(), 1000u);
  EXPECT_NE(report.find("0 bytes spill stores"), std::string::npos) << report;
}

} // namespace
