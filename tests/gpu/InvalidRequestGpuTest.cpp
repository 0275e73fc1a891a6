//===- InvalidRequestGpuTest.cpp - bad requests get errors, not crashes ---===//
#include "GpuTestEnvironment.h"

#include <algorithm>
#include <vector>

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

// An O that TMA cannot store (4 bytes past a 16-byte boundary) is still a
// valid output: the default tile then stores it thread by thread, and a
// tile that insists on TMA stores is a clear error.
TEST(InvalidRequest, OutputUnfitForTmaStoresRunsWithoutThem) {
  FLASHJIT_REQUIRE_GPU();
  if (!flashjit::testing::isHopper())
    GTEST_SKIP() << "TMA stores need sm_90a";
  Buffers b;
  AttentionSpec aligned, offset;
  AttentionParams p = b.params();
  p.causal = true;
  p.headDimQK = 128;
  ASSERT_TRUE(Gpu::get().runtime->selectVariant(p, aligned).isOk());
  EXPECT_TRUE(aligned.tile.tmaStore) << aligned.variantName(); // the default where it can
  p.o = static_cast<char *>(p.o) + 4;
  ASSERT_TRUE(Gpu::get().runtime->selectVariant(p, offset).isOk());
  EXPECT_FALSE(offset.tile.tmaStore) << offset.variantName();
  Status s = Gpu::get().runtime->attention(p, nullptr);
  EXPECT_TRUE(s.isOk()) << s.message();
  p.tile = TileConfig{128, 128, 8, 2, true, true, true, false, true};
  s = Gpu::get().runtime->attention(p, nullptr);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("tma_store writes O with TMA"), std::string::npos) << s.message();
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

// Packed batches: the prefix sums live on the device; the runtime reads and
// checks them before launching (a wrong one would read past the tensors).
struct PackedBuffers : Buffers {
  AttentionParams packed(std::vector<int32_t> cuQ, std::vector<int32_t> cuK, int64_t total) {
    AttentionParams p = params();
    auto *sums = reinterpret_cast<int32_t *>(base + (1000 << 10));
    d->cuMemcpyHtoD(reinterpret_cast<CUdeviceptr>(sums), cuQ.data(), cuQ.size() * 4);
    d->cuMemcpyHtoD(reinterpret_cast<CUdeviceptr>(sums + 64), cuK.data(), cuK.size() * 4);
    p.cuSeqlensQ = sums;
    p.cuSeqlensK = sums + 64;
    p.batch = int64_t(cuQ.size()) - 1;
    p.totalQ = p.totalK = total;
    return p; // seq_q = seq_k = 64: the longest length allowed
  }
};

TEST(InvalidRequest, ValidPackedBatchRuns) {
  FLASHJIT_REQUIRE_GPU();
  PackedBuffers b;
  Status s = Gpu::get().runtime->attention(b.packed({0, 40, 64}, {0, 1, 64}, 64), nullptr);
  EXPECT_TRUE(s.isOk()) << s.message();
}

TEST(InvalidRequest, BadPrefixSumsAreRejected) {
  FLASHJIT_REQUIRE_GPU();
  PackedBuffers b;
  struct Bad { std::vector<int32_t> cuQ, cuK; int64_t total; const char *message; };
  const Bad bad[] = {
      {{0, 10, 80}, {0, 10, 64}, 80, "sequence 1 of cu_seqlens_q has length 70, longer than the "
                                      "longest given (64)"},
      {{0, 40, 64}, {0, 40, 30}, 64, "sequence 1 of cu_seqlens_k has length -10 (the prefix "
                                      "sums decrease)"},
      {{0, 64, 128}, {0, 64, 128}, 100, "cu_seqlens_q ends at 128, past the 100 packed rows"},
      {{-8, 0, 64}, {0, 0, 64}, 64, "cu_seqlens_q[0] = -8 is negative"},
  };
  for (const Bad &c : bad) {
    AttentionParams p = b.packed(c.cuQ, c.cuK, c.total);
    Status s = Gpu::get().runtime->attention(p, nullptr);
    ASSERT_FALSE(s.isOk()) << c.message;
    EXPECT_NE(s.message().find(c.message), std::string::npos) << s.message();
    AttentionBackwardParams bp;
    bp.forward = p;
    bp.forward.lse = reinterpret_cast<float *>(b.base + (900 << 10));
    bp.dO = p.o;
    bp.dQ = bp.dK = bp.dV = p.o;
    s = Gpu::get().runtime->attentionBackward(bp, nullptr);
    ASSERT_FALSE(s.isOk()) << c.message;
    EXPECT_NE(s.message().find(c.message), std::string::npos) << s.message();
  }
}

} // namespace

namespace {

// A backward with no queries writes dK = dV = 0 (q, o, lse, dO and dQ may
// be null then, also where the kernels take TMA tensor maps of them) and one
// with no keys dQ = 0 (k and v still valid pointers, as the forward asks).
// The outputs are poisoned first.
TEST(InvalidRequest, BackwardWithAnEmptySideWritesZeros) {
  FLASHJIT_REQUIRE_GPU();
  Buffers inputs, outputs;
  const CudaDriver &d = *inputs.d;
  auto *out = reinterpret_cast<char *>(outputs.base);
  auto allZero = [&](const void *ptr, size_t bytes) {
    std::vector<uint8_t> host(bytes);
    EXPECT_EQ(d.cuMemcpyDtoH(host.data(), reinterpret_cast<CUdeviceptr>(ptr), bytes),
              CUDA_SUCCESS);
    return std::all_of(host.begin(), host.end(), [](uint8_t x) { return x == 0; });
  };
  const size_t gradBytes = 64 * 2 * 64 * 2; // 64 rows, 2 heads, d 64, 2 bytes
  for (bool noQueries : {true, false}) {
    AttentionBackwardParams b;
    b.forward = inputs.params();
    AttentionParams &f = b.forward;
    float *lse = reinterpret_cast<float *>(out + (896 << 10));
    f.lse = lse;
    b.dO = out + (128 << 10);
    b.dQ = out;
    b.dK = out + (256 << 10);
    b.dV = out + (512 << 10);
    if (noQueries) {
      f.seqQ = 0;
      f.q = nullptr;
      f.o = nullptr;
      f.lse = nullptr;
      b.dO = nullptr;
      b.dQ = nullptr;
    } else {
      f.seqK = 0;
    }
    ASSERT_EQ(d.cuMemsetD8(outputs.base, 0xff, 1 << 20), CUDA_SUCCESS); // NaN in bf16
    Status s = Gpu::get().runtime->attentionBackward(b, nullptr);
    ASSERT_TRUE(s.isOk()) << (noQueries ? "no queries: " : "no keys: ") << s.message();
    ASSERT_EQ(d.cuCtxSynchronize(), CUDA_SUCCESS);
    if (noQueries) {
      EXPECT_TRUE(allZero(b.dK, gradBytes)) << "dK of a backward with no queries";
      EXPECT_TRUE(allZero(b.dV, gradBytes)) << "dV of a backward with no queries";
    } else {
      EXPECT_TRUE(allZero(b.dQ, gradBytes)) << "dQ of a backward with no keys";
    }
  }
}

} // namespace
