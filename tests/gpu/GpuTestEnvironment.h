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

inline std::string caseName(const ::testing::TestParamInfo<CheckCase> &info) {
  std::string n = info.param.describe();
  for (char &c : n)
    if (!isalnum(static_cast<unsigned char>(c)))
      c = '_';
  return n + "_" + std::to_string(info.index);
}

} // namespace flashjit::testing

#endif
