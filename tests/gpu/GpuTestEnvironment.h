//===- GpuTestEnvironment.h - one runtime + checker for all GPU tests -----===//
#ifndef FLASHJIT_TESTS_GPU_GPUTESTENVIRONMENT_H
#define FLASHJIT_TESTS_GPU_GPUTESTENVIRONMENT_H

#include "tools/check/AttentionCheck.h"

#include <gtest/gtest.h>

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

} // namespace flashjit::testing

#endif
