//===- BundleGpuTest.cpp - kernels from a bundle match the JIT's ----------===//
//
// Runs when the GPU tests are pointed at a bundle (FLASHJIT_BUNDLE=DIR, as
// bench/device_run.sh does with one generated on a machine without a GPU):
// the same inputs through the bundle's kernels and through freshly JIT-compiled
// ones must give bit-identical outputs.
//
#include "GpuTestEnvironment.h"

#include <cstdlib>
#include <unistd.h>

using namespace flashjit;
using flashjit::testing::Gpu;

TEST(BundleGpu, BundleKernelsGiveTheSameResultsAsTheJit) {
  FLASHJIT_REQUIRE_GPU();
  const char *bundle = std::getenv("FLASHJIT_BUNDLE");
  if (!bundle || !*bundle)
    GTEST_SKIP() << "FLASHJIT_BUNDLE is not set: no bundle to compare with";
  RuntimeOptions jitOptions;
  jitOptions.cacheDir = ::testing::TempDir() + "/flashjit-bundle-vs-jit-" + std::to_string(getpid());
  std::unique_ptr<Runtime> jit;
  ASSERT_TRUE(Runtime::create(jit, jitOptions).isOk());
  std::unique_ptr<AttentionChecker> jitChecker;
  ASSERT_TRUE(AttentionChecker::create(*jit, jitChecker).isOk());

  CheckCase cases[4];
  cases[0].headDimQK = 128; cases[0].seqQ = cases[0].seqK = 1000; cases[0].headsQ = 12;
  cases[0].headsK = 4;
  cases[1].headDimQK = 40; cases[1].causal = true; cases[1].seqQ = 17; cases[1].seqK = 1000;
  cases[2].dtype = DType::F16; cases[2].headDimQK = 256; cases[2].causal = true;
  cases[2].batch = 3; cases[2].seqQ = cases[2].seqK = 333;
  cases[3].headDimQK = 64; cases[3].causal = true; cases[3].tile = TileConfig{64, 32, 2, 3};
  for (CheckCase &c : cases) {
    c.seed = 4242 + uint64_t(c.headDimQK);
    CheckResult fromBundle, fromJit;
    Status s = Gpu::get().checker->run(c, fromBundle);
    ASSERT_TRUE(s.isOk()) << s.message();
    EXPECT_EQ(fromBundle.kernelSource, "bundle") << c.describe();
    s = jitChecker->run(c, fromJit);
    ASSERT_TRUE(s.isOk()) << s.message();
    EXPECT_EQ(fromJit.kernelSource, "compiled") << c.describe();
    EXPECT_EQ(fromBundle.variant, fromJit.variant);
    EXPECT_EQ(fromBundle.outputSha256, fromJit.outputSha256) << c.describe();
    EXPECT_LT(fromBundle.relativeL2, 1e-2);
  }
}
