//===- GpuTestEnvironment.h - one runtime + checker for all GPU tests -----===//
#ifndef FLASHJIT_TESTS_GPU_GPUTESTENVIRONMENT_H
#define FLASHJIT_TESTS_GPU_GPUTESTENVIRONMENT_H

#include "tools/check/AttentionCheck.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace flashjit::testing {

/// The runtime and checker, created once. Tests skip with the reason when no
/// GPU (or no driver) is present, and fail when a GPU is present but the
/// checker cannot be set up. FLASHJIT_REQUIRE_GPU=1 turns a skip into a failure
/// (for runs on GPU hosts, where a skip would hide a broken setup).
struct Gpu {
  std::unique_ptr<Runtime> runtime;
  std::unique_ptr<AttentionChecker> checker;
  std::string unavailable; // why there is no GPU, empty when there is one
  std::string setupError;  // a GPU is there, but the checker failed

  static Gpu &get() {
    static Gpu gpu = [] {
      Gpu g;
      if (Status s = Runtime::create(g.runtime); !s) {
        g.unavailable = s.message();
        return g;
      }
      if (Status s = AttentionChecker::create(*g.runtime, g.checker); !s)
        g.setupError = "the reference kernel is unavailable: " + s.message();
      return g;
    }();
    return gpu;
  }
};

#define FLASHJIT_REQUIRE_GPU()                                                                 \
  do {                                                                                         \
    auto &gpu_ = ::flashjit::testing::Gpu::get();                                              \
    if (!gpu_.unavailable.empty()) {                                                           \
      if (const char *req = std::getenv("FLASHJIT_REQUIRE_GPU"); req && req[0] == '1')         \
        FAIL() << "FLASHJIT_REQUIRE_GPU=1 but no GPU: " << gpu_.unavailable;                   \
      GTEST_SKIP() << "no GPU: " << gpu_.unavailable;                                          \
    }                                                                                          \
    ASSERT_TRUE(gpu_.setupError.empty()) << gpu_.setupError;                                   \
  } while (0)

struct Shape {
  int64_t batch, seqQ, seqK, headsQ, headsK;
};

/// Causal shape with more heads (64 key/value, 128 query) than the causal
/// tile order puts in its last part (two waves of an H100/H200's blocks over
/// 8 key blocks or 11 query blocks), so the head-by-head part runs too.
inline constexpr Shape kCausalManyHeads{8, 700, 900, 16, 8};

/// Fresh random inputs every run: the base seed comes from FLASHJIT_TEST_SEED
/// when set (to reproduce a failure), else from the clock, and is printed.
inline uint64_t baseSeed() {
  static uint64_t seed = [] {
    const char *env = std::getenv("FLASHJIT_TEST_SEED");
    uint64_t s = env ? std::strtoull(env, nullptr, 10)
                     : uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
    printf("flashjit GPU tests: FLASHJIT_TEST_SEED=%llu\n", (unsigned long long)s);
    return s;
  }();
  return seed;
}

/// One case of a grid: `index` rotates fp16 (every third) and head-major
/// strides (every fourth) through it and seeds its fresh random inputs.
inline CheckCase gridCase(const Shape &s, int64_t d, bool causal, uint64_t index) {
  CheckCase c;
  c.headDimQK = d;
  c.causal = causal;
  c.batch = s.batch;
  c.seqQ = s.seqQ;
  c.seqK = s.seqK;
  c.headsQ = s.headsQ;
  c.headsK = s.headsK;
  c.seed = baseSeed() + index;
  c.dtype = ((index + 1) % 3 == 0) ? DType::F16 : DType::BF16;
  c.headMajor = ((index + 1) % 4 == 0);
  return c;
}

inline bool isHopper() { return Gpu::get().runtime->device().arch == "sm_90a"; }

/// One tile per forward main loop for grids that cover them all: mma.sync,
/// wgmma on all warps, warp-specialized persistent (the Hopper default is
/// warp-specialized, one tile a block).
inline std::vector<TileConfig> everyForwardMainLoop() {
  return {TileConfig{128, 64, 4, 2}, TileConfig{128, 128, 8, 2, true, true},
          TileConfig{128, 128, 8, 2, true, true, true, true}};
}

/// The forward's checks of every grid: all of O written, nothing past it,
/// rel L2 < 1e-2 against the fp32 reference, LSE within 1e-3. (Skips wgmma
/// tiles off Hopper.)
inline void expectForwardMatchesReference(const CheckCase &c) {
  if (c.tile && c.tile->qkWgmma && !isHopper())
    GTEST_SKIP() << "wgmma needs sm_90a";
  CheckResult r;
  Status s = Gpu::get().checker->run(c, r);
  ASSERT_TRUE(s.isOk()) << s.message();
  SCOPED_TRACE("seed " + std::to_string(c.seed));
  EXPECT_EQ(r.unwritten, 0) << "output elements left unwritten by " << r.variant;
  EXPECT_EQ(r.guardDamaged, 0) << "writes past the end of O by " << r.variant;
  EXPECT_LT(r.relativeL2, 1e-2) << r.variant << " max abs error " << r.maxAbsError;
  EXPECT_LT(r.maxLseError, 1e-3) << r.variant;
}

/// The backward's checks: every gradient written, nothing past them, rel L2
/// of dQ, dK, dV below 6e-3 (bf16) / 1.5e-3 (f16); prints the errors.
inline void expectBackwardMatchesReference(const CheckCase &c) {
  BackwardCheckResult r;
  Status s = Gpu::get().checker->runBackward(c, r);
  ASSERT_TRUE(s.isOk()) << s.message();
  SCOPED_TRACE("seed " + std::to_string(c.seed) + ", " + r.variants);
  EXPECT_EQ(r.unwritten, 0) << "gradient elements left unwritten";
  EXPECT_EQ(r.guardDamaged, 0) << "writes past the end of a gradient";
  const char *names[] = {"dQ", "dK", "dV"};
  const double bound = c.dtype == DType::BF16 ? 6e-3 : 1.5e-3;
  for (int i = 0; i < 3; ++i)
    EXPECT_LT(r.relativeL2[i], bound) << names[i] << " max abs error " << r.maxAbsError[i];
  printf("  %s: rel L2 dQ %.2e dK %.2e dV %.2e\n", c.describe().c_str(), r.relativeL2[0],
         r.relativeL2[1], r.relativeL2[2]);
}

inline std::string caseName(const ::testing::TestParamInfo<CheckCase> &info) {
  std::string n = info.param.describe();
  for (char &c : n)
    if (!isalnum(static_cast<unsigned char>(c)))
      c = '_';
  return n + "_" + std::to_string(info.index);
}

} // namespace flashjit::testing

#endif
