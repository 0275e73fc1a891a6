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

// GQA decoding packs the group's heads where the runtime chooses (Auto); a
// bundle without the packed kernel runs the same attention unpacked from the
// bundle (packing is the runtime's optimization), never an error or the JIT.
// (CheckResult::variant names the runtime's first choice, the packed one.)
TEST(BundleGpu, AutoPackingRunsUnpackedFromABundleWithoutPackedKernels) {
  FLASHJIT_REQUIRE_GPU();
  const char *bundle = std::getenv("FLASHJIT_BUNDLE");
  const char *noJit = std::getenv("FLASHJIT_DISABLE_JIT");
  if (!bundle || !*bundle || !noJit || std::string(noJit) != "1")
    GTEST_SKIP() << "needs FLASHJIT_BUNDLE and FLASHJIT_DISABLE_JIT=1";
  CheckCase c;
  c.headDimQK = 128;
  c.seqQ = 1;
  c.seqK = 1000;
  c.headsQ = 8;
  c.headsK = 2;
  c.seed = 4343;
  CheckResult r;
  Status s = Gpu::get().checker->run(c, r);
  ASSERT_TRUE(s.isOk()) << s.message();
  EXPECT_EQ(r.kernelSource, "bundle");
  EXPECT_LT(r.relativeL2, 1e-2) << r.variant;
  EXPECT_EQ(r.unwritten, 0) << r.variant;
}
