//===- InvalidRequestGpuTest.cpp - bad requests get errors, not crashes ---===//
#include "GpuTestEnvironment.h"

using namespace flashjit;
using flashjit::testing::Gpu;

namespace {

// A real device allocation, so only the property under test is wrong.
struct Buffers {
  CUdeviceptr base = 0;
  const CudaDriver *d = nullptr;
  Buffers() {
    CudaDriver::get(d);
    if (d)
      d->cuMemAlloc(&base, 1 << 20);
  }
  ~Buffers() {
    if (base)
      d->cuMemFree(base);
  }
  AttentionParams params() const {
    AttentionParams p;
    auto *ptr = reinterpret_cast<char *>(base);
    p.q = ptr;
    p.k = ptr + (256 << 10);
    p.v = ptr + (512 << 10);
    p.o = ptr + (768 << 10);
    p.batch = 1;
    p.seqQ = p.seqK = 64;
    p.headsQ = p.headsK = 2;
    p.headDimQK = 64;
    return p;
  }
};

TEST(InvalidRequest, ValidBaselineRuns) {
  FLASHJIT_REQUIRE_GPU();
  Buffers b;
  Status s = Gpu::get().runtime->attention(b.params(), nullptr);
  EXPECT_TRUE(s.isOk()) << s.message();
}

TEST(InvalidRequest, MisalignedPointerIsRejected) {
  FLASHJIT_REQUIRE_GPU();
  Buffers b;
  AttentionParams p = b.params();
  p.k = static_cast<const char *>(p.k) + 2;
  Status s = Gpu::get().runtime->attention(p, nullptr);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("k is not 16-byte aligned"), std::string::npos) << s.message();
}

TEST(InvalidRequest, UnsupportedHeadDimIsRejected) {
  FLASHJIT_REQUIRE_GPU();
  Buffers b;
  AttentionParams p = b.params();
  p.headDimQK = 72 + 4;
  Status s = Gpu::get().runtime->attention(p, nullptr);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("head dim 76 is not supported"), std::string::npos) << s.message();
}

TEST(InvalidRequest, TileTooLargeForSharedMemoryIsRejectedByTheVerifier) {
  FLASHJIT_REQUIRE_GPU();
  if (const char *off = std::getenv("FLASHJIT_DISABLE_JIT"); off && std::string(off) == "1")
    GTEST_SKIP() << "the verifier runs in the JIT, which FLASHJIT_DISABLE_JIT=1 turns off";
  Buffers b;
  AttentionParams p = b.params();
  p.headDimQK = 256;
  p.tile = TileConfig{256, 256, 16, 8};
  Status s = Gpu::get().runtime->attention(p, nullptr);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("bytes of shared memory, more than the"), std::string::npos)
      << s.message();
}

} // namespace
