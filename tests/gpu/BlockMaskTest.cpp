//===- BlockMaskTest.cpp - user-given block masks vs the reference ---------===//
//
// Random block masks (some rows visit no block, interior gaps everywhere)
// given as lists to the kernels and as a dense mask to the fp32 reference:
// shared, per batch and per query head; blocks of 1x, 2x the tile each way;
// with causal, mask_mod, GQA and odd sizes; every forward main loop and the
// deterministic and atomic backward. The lists' unused entries are poisoned,
// so a kernel that reads past a count fails. Then the errors: unsorted or
// out-of-range lists, a transpose that disagrees, tiles that do not divide.
//
#include "GpuTestEnvironment.h"

using namespace flashjit;
using flashjit::testing::Gpu;
using flashjit::testing::Shape;
using flashjit::testing::baseSeed;
using flashjit::testing::caseName;
using flashjit::testing::gridCase;
using flashjit::testing::isHopper;

namespace {

CheckCase withBlockMask(CheckCase c, double keep, int64_t blockQ, int64_t blockK,
                        bool perBatch = false, bool perHead = false) {
  c.blockMaskKeep = keep;
  c.blockMaskQ = blockQ;
  c.blockMaskK = blockK;
  c.blockMaskPerBatch = perBatch;
  c.blockMaskPerHead = perHead;
  return c;
}

std::vector<CheckCase> forwardGrid() {
  std::vector<CheckCase> cases;
  uint64_t seed = 50000;
  const Shape shapes[] = {{2, 1000, 1500, 4, 2}, {1, 300, 2900, 2, 1}, {3, 1, 700, 1, 1}};
  for (int64_t d : {64, 128, 256})
    for (const Shape &s : shapes)
      for (bool causal : {false, true})
        cases.push_back(withBlockMask(gridCase(s, d, causal, seed++), 0.5, 128, 128,
                                      /*perBatch=*/seed % 2 == 0, /*perHead=*/seed % 3 == 0));
  // Blocks of several tiles each way, nearly empty masks, a mask_mod on top.
  cases.push_back(withBlockMask(gridCase({2, 1100, 1300, 4, 4}, 128, false, seed++), 0.6, 256,
                                256, false, true));
  cases.push_back(withBlockMask(gridCase({1, 2000, 2000, 2, 1}, 64, true, seed++), 0.05, 128,
                                384));
  CheckCase chunked = withBlockMask(gridCase({2, 900, 900, 2, 2}, 128, false, seed++), 0.7, 128,
                                    128, true, false);
  chunked.maskMod = "q_idx / 192 == kv_idx / 192 || kv_idx < 64";
  cases.push_back(chunked);
  for (TileConfig t : flashjit::testing::everyForwardMainLoop()) {
    CheckCase c = withBlockMask(gridCase({2, 700, 1900, 4, 2}, 128, true, seed++), 0.5, 128,
                                256, false, true);
    c.tile = t;
    cases.push_back(c);
  }
  return cases;
}

class BlockMaskForward : public ::testing::TestWithParam<CheckCase> {};

TEST_P(BlockMaskForward, MatchesReference) {
  FLASHJIT_REQUIRE_GPU();
  flashjit::testing::expectForwardMatchesReference(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Grid, BlockMaskForward, ::testing::ValuesIn(forwardGrid()), caseName);

// The dQ kernel walks a query row's list, the key-block kernels each query
// head's transposed list (steps past a head's own list skipped), the atomic
// form on Hopper too.
std::vector<CheckCase> backwardGrid() {
  std::vector<CheckCase> cases;
  uint64_t seed = 51000;
  for (int64_t d : {64, 128, 256})
    for (bool causal : {false, true}) {
      cases.push_back(withBlockMask(gridCase({2, 700, 1100, 4, 2}, d, causal, seed++), 0.5, 128,
                                    128, false, true));
      cases.push_back(withBlockMask(gridCase({1, 1300, 500, 2, 1}, d, causal, seed++), 0.4, 256,
                                    256, true, false));
    }
  for (int64_t d : {64, 128}) {
    CheckCase c = withBlockMask(gridCase({2, 900, 1000, 8, 2}, d, false, seed++), 0.5, 128, 128,
                                true, true);
    c.atomicQueryGradient = true;
    cases.push_back(c);
  }
  return cases;
}

class BlockMaskBackward : public ::testing::TestWithParam<CheckCase> {};

TEST_P(BlockMaskBackward, MatchesReference) {
  FLASHJIT_REQUIRE_GPU();
  const CheckCase &c = GetParam();
  if (c.atomicQueryGradient && !isHopper())
    GTEST_SKIP() << "atomic dQ needs sm_90a";
  flashjit::testing::expectBackwardMatchesReference(c);
}

INSTANTIATE_TEST_SUITE_P(Grid, BlockMaskBackward, ::testing::ValuesIn(backwardGrid()), caseName);

// Device buffers for the error cases: tensors and the lists of a 2 x 2 block
// mask (blocks of 128) over 256 queries and keys.
struct MaskedRequest {
  CUdeviceptr base = 0;
  const CudaDriver *d = nullptr;
  MaskedRequest() {
    CudaDriver::get(d);
    if (d)
      d->cuMemAlloc(&base, 1 << 21);
  }
  ~MaskedRequest() {
    if (base)
      d->cuMemFree(base);
  }
  // Lists: kvCounts, kvIndices (2 x 2), qCounts, qIndices (2 x 2).
  AttentionParams params(const std::vector<int32_t> &lists) const {
    d->cuMemcpyHtoD(base, lists.data(), lists.size() * 4);
    auto *ptr = reinterpret_cast<char *>(base);
    AttentionParams p;
    p.q = ptr + (256 << 10);
    p.k = ptr + (512 << 10);
    p.v = ptr + (768 << 10);
    p.o = ptr + (1024 << 10);
    p.lse = reinterpret_cast<float *>(ptr + (1280 << 10));
    p.batch = 1;
    p.seqQ = p.seqK = 256;
    p.headsQ = p.headsK = 1;
    p.headDimQK = 64;
    const auto *l = reinterpret_cast<const int32_t *>(base);
    p.blockMask.kvCounts = l;
    p.blockMask.kvIndices = l + 2;
    p.blockMask.qCounts = l + 6;
    p.blockMask.qIndices = l + 8;
    return p;
  }
  AttentionBackwardParams backward(const std::vector<int32_t> &lists) const {
    AttentionBackwardParams b;
    b.forward = params(lists);
    auto *ptr = reinterpret_cast<char *>(base);
    b.dO = ptr + (1536 << 10);
    b.dQ = ptr + (1600 << 10);
    b.dK = ptr + (1700 << 10);
    b.dV = ptr + (1800 << 10);
    return b;
  }
};

// Query block 0 sees key block 0, query block 1 both; and the transpose.
const std::vector<int32_t> kGoodLists = {1, 2, 0, -1, 0, 1, 2, 1, 0, 1, 1, -1};

std::string forwardError(const std::vector<int32_t> &lists) {
  MaskedRequest r;
  return Gpu::get().runtime->attention(r.params(lists), nullptr).message();
}

TEST(BlockMaskErrors, GoodListsRun) {
  FLASHJIT_REQUIRE_GPU();
  EXPECT_EQ(forwardError(kGoodLists), "");
  MaskedRequest r;
  Status s = Gpu::get().runtime->attentionBackward(r.backward(kGoodLists), nullptr);
  EXPECT_TRUE(s.isOk()) << s.message();
}

TEST(BlockMaskErrors, BadListsAreNamed) {
  FLASHJIT_REQUIRE_GPU();
  std::vector<int32_t> tooMany = kGoodLists;
  tooMany[0] = 3;
  EXPECT_NE(forwardError(tooMany).find("kvCounts = 3 of query block 0"), std::string::npos)
      << forwardError(tooMany);
  std::vector<int32_t> descending = kGoodLists;
  descending[4] = 1, descending[5] = 0;
  EXPECT_NE(forwardError(descending).find("does not ascend"), std::string::npos)
      << forwardError(descending);
  std::vector<int32_t> past = kGoodLists;
  past[2] = 2;
  EXPECT_NE(forwardError(past).find("past the last key block"), std::string::npos)
      << forwardError(past);
}

TEST(BlockMaskErrors, BackwardChecksTheTranspose) {
  FLASHJIT_REQUIRE_GPU();
  std::vector<int32_t> lists = kGoodLists;
  lists[7] = 2, lists[10] = 0, lists[11] = 1; // key block 1 lists query block 0: kvIndices does not
  MaskedRequest r;
  Status s = Gpu::get().runtime->attentionBackward(r.backward(lists), nullptr);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("disagree"), std::string::npos) << s.message();
}

TEST(BlockMaskErrors, TilesMustDivideTheBlocks) {
  FLASHJIT_REQUIRE_GPU();
  MaskedRequest r;
  AttentionParams p = r.params(kGoodLists);
  p.blockMask.blockQ = 64; // (4 x 2 blocks: the lists are not read, the tile fails first)
  p.blockMask.trusted = true;
  p.tile = TileConfig{128, 64, 4, 2};
  Status s = Gpu::get().runtime->attention(p, nullptr);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("not multiples of the fwd tile"), std::string::npos)
      << s.message();
}

} // namespace
