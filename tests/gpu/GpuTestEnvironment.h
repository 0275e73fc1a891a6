//===- GpuTestEnvironment.h - one runtime + checker for all GPU tests -----===//
#ifndef FLASHJIT_TESTS_GPU_GPUTESTENVIRONMENT_H
#define FLASHJIT_TESTS_GPU_GPUTESTENVIRONMENT_H

#include "tools/check/AttentionCheck.h"

#include <gtest/gtest.h>

namespace flashjit::testing {

/// The runtime and checker, created once; tests skip with the reason when no
/// GPU (or no driver) is present.
struct Gpu {
  std::unique_ptr<Runtime> runtime;
  std::unique_ptr<AttentionChecker> checker;
  std::string unavailable; // why there is no GPU, empty when there is one

  static Gpu &get() {
    static Gpu gpu = [] {
      Gpu g;
      if (Status s = Runtime::create(g.runtime); !s) {
        g.unavailable = s.message();
        return g;
      }
      if (Status s = AttentionChecker::create(*g.runtime, g.checker); !s)
        g.unavailable = "the reference kernel is unavailable: " + s.message();
      return g;
    }();
    return gpu;
  }
};

#define FLASHJIT_REQUIRE_GPU()                                                                 \
  do {                                                                                         \
    if (!::flashjit::testing::Gpu::get().unavailable.empty())                                  \
      GTEST_SKIP() << "no GPU: " << ::flashjit::testing::Gpu::get().unavailable;              \
  } while (0)

} // namespace flashjit::testing

#endif
