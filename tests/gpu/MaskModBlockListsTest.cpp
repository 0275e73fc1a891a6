//===- MaskModBlockListsTest.cpp - lists derived from a mask_mod vs a host scan ===//
//
// Runtime::listMaskModBlocks runs the kernel attention() launches before a
// mask_mod forward (BlockListsKernel.cpp). Its lists are checked against the
// blocks a host scan of the same mask keeps element by element (bounds,
// causal / window and the expression, written again as C++ here): every
// block with a kept element is listed (else the forward would lose keys),
// lists ascend, counts stay in range; and for the masks the per-block
// interval test decides exactly (see each case) nothing else is listed, so
// the empty blocks between kept ones really are skipped. The attention
// results with these lists are in UserModifierTest's grid.
//
#include "GpuTestEnvironment.h"

#include <functional>

using namespace flashjit;
using flashjit::testing::Gpu;

namespace {

struct ListCase {
  const char *name;
  const char *maskMod;
  std::function<bool(int64_t b, int64_t h, int64_t q, int64_t k)> keep; // the same mask
  bool causal = false;
  int64_t windowLeft = -1, windowRight = -1;
  int64_t batch = 1, heads = 1, seqQ = 1000, seqK = 1000, blockQ = 128, blockK = 128;
  int64_t maskBatches = 1, maskHeads = 1; // as allocated
  bool exact = true; // the interval test decides every block of this case
};

// Device memory freed at scope exit.
struct DeviceMemory {
  const CudaDriver *d = nullptr;
  CUdeviceptr ptr = 0;
  explicit DeviceMemory(size_t bytes) {
    CudaDriver::get(d);
    if (d)
      d->cuMemAlloc(&ptr, bytes);
  }
  ~DeviceMemory() {
    if (ptr)
      d->cuMemFree(ptr);
  }
};

// Whether some (query, key) pair of the block is kept by bounds, causal /
// window (bottom-right aligned, as the kernels) and the mask.
bool blockNeeded(const ListCase &c, int64_t b, int64_t h, int64_t qb, int64_t kb) {
  const int64_t shift = c.seqK - c.seqQ;
  for (int64_t q = qb * c.blockQ; q < std::min(c.seqQ, (qb + 1) * c.blockQ); ++q)
    for (int64_t k = kb * c.blockK; k < std::min(c.seqK, (kb + 1) * c.blockK); ++k) {
      const int64_t right = c.causal ? 0 : c.windowRight;
      if (right >= 0 && k > q + shift + right)
        continue;
      if (c.windowLeft >= 0 && k < q + shift - c.windowLeft)
        continue;
      if (c.keep(b, h, q, k))
        return true;
    }
  return false;
}

AttentionParams paramsOf(const ListCase &c, CUdeviceptr tensors) {
  AttentionParams p;
  auto *ptr = reinterpret_cast<char *>(tensors);
  p.q = p.k = p.v = ptr; // not read: the lists kernel touches no tensor
  p.o = ptr;
  p.batch = c.batch;
  p.seqQ = c.seqQ;
  p.seqK = c.seqK;
  p.headsQ = p.headsK = c.heads;
  p.headDimQK = 64;
  p.causal = c.causal;
  p.windowLeft = c.windowLeft;
  p.windowRight = c.windowRight;
  p.maskMod = c.maskMod;
  return p;
}

void expectListsMatchTheScan(const ListCase &c) {
  SCOPED_TRACE(c.name);
  const CudaDriver *d = nullptr;
  CudaDriver::get(d);
  BlockMask mask;
  mask.blockQ = c.blockQ;
  mask.blockK = c.blockK;
  mask.batches = c.maskBatches;
  mask.heads = c.maskHeads;
  const int64_t queryBlocks = mask.queryBlocks(c.seqQ), keyBlocks = mask.keyBlocks(c.seqK);
  const int64_t rows = c.maskBatches * c.maskHeads * queryBlocks;
  DeviceMemory tensors(1 << 16), counts(size_t(rows) * 4), indices(size_t(rows * keyBlocks) * 4);
  // Poisoned: an entry the kernel should have written and did not shows.
  std::vector<int32_t> hostCounts(rows, 0xBAD), hostIndices(rows * keyBlocks, 0xBAD);
  ASSERT_EQ(d->cuMemcpyHtoD(counts.ptr, hostCounts.data(), hostCounts.size() * 4), CUDA_SUCCESS);
  ASSERT_EQ(d->cuMemcpyHtoD(indices.ptr, hostIndices.data(), hostIndices.size() * 4),
            CUDA_SUCCESS);
  Status s = Gpu::get().runtime->listMaskModBlocks(
      paramsOf(c, tensors.ptr), reinterpret_cast<int32_t *>(counts.ptr),
      reinterpret_cast<int32_t *>(indices.ptr), mask, nullptr);
  ASSERT_TRUE(s.isOk()) << s.message();
  EXPECT_TRUE(mask.trusted);
  EXPECT_EQ(mask.kvCounts, reinterpret_cast<const int32_t *>(counts.ptr));
  ASSERT_EQ(d->cuCtxSynchronize(), CUDA_SUCCESS);
  ASSERT_EQ(d->cuMemcpyDtoH(hostCounts.data(), counts.ptr, hostCounts.size() * 4), CUDA_SUCCESS);
  ASSERT_EQ(d->cuMemcpyDtoH(hostIndices.data(), indices.ptr, hostIndices.size() * 4),
            CUDA_SUCCESS);
  int64_t listed = 0, needed = 0;
  for (int64_t b = 0; b < c.maskBatches; ++b)
    for (int64_t h = 0; h < c.maskHeads; ++h)
      for (int64_t qb = 0; qb < queryBlocks; ++qb) {
        const int64_t row = (b * c.maskHeads + h) * queryBlocks + qb;
        const int32_t count = hostCounts[size_t(row)];
        ASSERT_GE(count, 0) << "row " << row;
        ASSERT_LE(count, keyBlocks) << "row " << row;
        std::vector<bool> inList(size_t(keyBlocks), false);
        for (int32_t i = 0; i < count; ++i) {
          const int32_t kb = hostIndices[size_t(row * keyBlocks + i)];
          ASSERT_GE(kb, 0) << "row " << row << " entry " << i;
          ASSERT_LT(kb, keyBlocks) << "row " << row << " entry " << i;
          if (i > 0)
            ASSERT_GT(kb, hostIndices[size_t(row * keyBlocks + i - 1)]) << "row " << row;
          inList[size_t(kb)] = true;
        }
        listed += count;
        for (int64_t kb = 0; kb < keyBlocks; ++kb) {
          const bool need = blockNeeded(c, b, h, qb, kb);
          needed += need;
          EXPECT_TRUE(!need || inList[size_t(kb)])
              << "batch " << b << " head " << h << ": query block " << qb << " needs key block "
              << kb << ", not listed";
          if (c.exact)
            EXPECT_TRUE(need || !inList[size_t(kb)])
                << "batch " << b << " head " << h << ": query block " << qb
                << " lists key block " << kb << ", which the mask keeps nothing of";
        }
      }
  printf("  %s: %lld of %lld blocks listed, %lld needed\n", c.name, (long long)listed,
         (long long)(rows * keyBlocks), (long long)needed);
}

TEST(MaskModBlockLists, MatchAHostScanOfTheMask) {
  FLASHJIT_REQUIRE_GPU();
  const ListCase cases[] = {
      // Attention sink + sliding window, causal (seq_k >= seq_q: the causal
      // pairs of a listed block include the one the interval test found).
      {"sink+window causal", "kv_idx < 64 || q_idx - kv_idx < 200",
       [](int64_t, int64_t, int64_t q, int64_t k) { return k < 64 || q - k < 200; }, true, -1,
       -1, 1, 1, 1000, 1300},
      {"sink+window causal 64x64", "kv_idx < 64 || q_idx - kv_idx < 200",
       [](int64_t, int64_t, int64_t q, int64_t k) { return k < 64 || q - k < 200; }, true, -1,
       -1, 1, 1, 777, 901, 64, 64},
      // Dilated keys plus a band: a remainder within one period per block.
      {"dilated+band", "kv_idx % 512 < 128 || abs(q_idx - kv_idx) < 64",
       [](int64_t, int64_t, int64_t q, int64_t k) { return k % 512 < 128 || std::abs(q - k) < 64; },
       false, -1, -1, 1, 1, 2100, 1900, 64, 128},
      // Per head (lists per head), chunks of 256.
      {"per head", "(h % 2 == 0 && kv_idx < 256) || q_idx / 256 == kv_idx / 256",
       [](int64_t, int64_t h, int64_t q, int64_t k) {
         return (h % 2 == 0 && k < 256) || q / 256 == k / 256;
       },
       false, -1, -1, 2, 3, 1500, 1500, 128, 128, 1, 3},
      // Per batch, under a window; every third key block of batch 1 dropped.
      {"per batch + window", "b == 0 || (kv_idx / 128) % 3 != 1",
       [](int64_t b, int64_t, int64_t, int64_t k) { return b == 0 || (k / 128) % 3 != 1; }, false,
       300, 100, 2, 2, 1200, 1700, 128, 128, 2, 1},
      // Lists per batch and head allocated for a mask that needs neither.
      {"shared mask, full lists", "kv_idx < 64 || q_idx - kv_idx < 200",
       [](int64_t, int64_t, int64_t q, int64_t k) { return k < 64 || q - k < 200; }, true, -1,
       -1, 2, 2, 600, 600, 128, 128, 2, 2},
      // Keeps nothing: every count 0.
      {"empty", "kv_idx < 0", [](int64_t, int64_t, int64_t, int64_t) { return false; }, false,
       -1, -1, 1, 1, 300, 500},
  };
  for (const ListCase &c : cases)
    expectListsMatchTheScan(c);
  // A product of two positions is beyond the interval test: every block of
  // the causal range is listed (a superset, never a loss).
  ListCase product{"product (undecided)", "(q_idx * kv_idx) % 7 == 0",
                   [](int64_t, int64_t, int64_t q, int64_t k) { return (q * k) % 7 == 0; }, true};
  product.exact = false;
  expectListsMatchTheScan(product);
}

TEST(MaskModBlockLists, BadRequestsAreNamed) {
  FLASHJIT_REQUIRE_GPU();
  DeviceMemory tensors(1 << 16), lists(1 << 16);
  auto *counts = reinterpret_cast<int32_t *>(lists.ptr);
  ListCase perHead{"", "h == 0 || kv_idx <= q_idx",
                   [](int64_t, int64_t, int64_t, int64_t) { return true; }};
  perHead.heads = 2;
  auto error = [&](const ListCase &c, int64_t block, const char *maskMod) {
    AttentionParams p = paramsOf(c, tensors.ptr);
    p.maskMod = maskMod;
    BlockMask m;
    m.blockQ = m.blockK = block;
    return Gpu::get().runtime->listMaskModBlocks(p, counts, counts + 1024, m, nullptr).message();
  };
  EXPECT_NE(error(perHead, 128, perHead.maskMod).find("the mask_mod reads b / h"),
            std::string::npos)
      << error(perHead, 128, perHead.maskMod);
  EXPECT_NE(error(perHead, 100, "kv_idx < 5").find("multiples of 16"), std::string::npos)
      << error(perHead, 100, "kv_idx < 5");
  EXPECT_NE(error(perHead, 128, nullptr).find("no maskMod"), std::string::npos)
      << error(perHead, 128, nullptr);
  EXPECT_NE(error(perHead, 512, "kv_idx < 5").find("block_k at most 256"), std::string::npos)
      << error(perHead, 512, "kv_idx < 5");
  AttentionParams p = paramsOf(perHead, tensors.ptr);
  p.maskMod = "kv_idx < 5";
  BlockMask m;
  Status misaligned = Gpu::get().runtime->listMaskModBlocks(
      p, reinterpret_cast<int32_t *>(lists.ptr + 2), counts + 1024, m, nullptr);
  EXPECT_NE(misaligned.message().find("4-byte aligned"), std::string::npos)
      << misaligned.message();
}

} // namespace
