//===- VariableLengthTest.cpp - packed varlen batches vs the reference ----===//
//
// flash_attn_varlen_func's layout: sequences of different lengths packed
// into [total, heads, dim] tensors with cu_seqlens prefix sums. The reference
// runs each sequence alone (it knows no packing), so a wrong offset, a length
// read from the wrong sequence or a tile leaking into its neighbour shows up
// as an error or as unwritten (poisoned) rows. The lengths of the issue (1,
// 7, 1000, 4097) in one batch, query lengths different from key lengths, an
// empty sequence, with masks, modifiers and GQA; every forward tier and the
// backward.
//
#include "GpuTestEnvironment.h"

using namespace flashjit;
using flashjit::testing::Gpu;
using flashjit::testing::baseSeed;
using flashjit::testing::caseName;

namespace {

const std::vector<int64_t> kIssueLengths = {1, 7, 1000, 4097};

CheckCase packedCase(std::vector<int64_t> q, std::vector<int64_t> k, int64_t headsQ,
                     int64_t headsK, int64_t d, uint64_t index) {
  CheckCase c;
  c.setSeqlens(std::move(q), std::move(k));
  c.headsQ = headsQ;
  c.headsK = headsK;
  c.headDimQK = d;
  c.seed = baseSeed() + index;
  c.dtype = index % 3 == 2 ? DType::F16 : DType::BF16;
  return c;
}

// The issue's lengths at every head dim, causal and not (default tiles:
// warp-specialized on Hopper where the head dim allows).
std::vector<CheckCase> issueLengthCases(uint64_t &seed) {
  std::vector<CheckCase> cases;
  for (int64_t d : {64, 128, 256})
    for (bool causal : {false, true}) {
      CheckCase c = packedCase(kIssueLengths, kIssueLengths, 2, 2, d, seed++);
      c.causal = causal;
      cases.push_back(c);
    }
  return cases;
}

std::vector<CheckCase> forwardGrid() {
  uint64_t seed = 30000;
  std::vector<CheckCase> cases = issueLengthCases(seed);
  // seq_q != seq_k per sequence (both ways), an empty query sequence, and a
  // sequence with no keys (its rows: O = 0, LSE = -inf); GQA 4:1; head-major.
  CheckCase uneven = packedCase({5, 0, 1000, 4097, 300}, {700, 9, 1, 4097, 0}, 8, 2, 128, seed++);
  uneven.causal = true;
  cases.push_back(uneven);
  CheckCase headMajor = packedCase({129, 64, 1}, {130, 63, 1}, 2, 1, 64, seed++);
  headMajor.headMajor = true;
  cases.push_back(headMajor);
  // Masks and modifiers per sequence: window (bottom-right aligned to each
  // sequence's own lengths), softcap, ALiBi slopes per sequence.
  CheckCase window = packedCase({1000, 7, 4097, 1}, {1200, 7, 4097, 3}, 4, 2, 128, seed++);
  window.windowLeft = 256;
  window.windowRight = 16;
  cases.push_back(window);
  CheckCase all = packedCase(kIssueLengths, kIssueLengths, 4, 4, 64, seed++);
  all.causal = true;
  all.windowLeft = 300;
  all.softcap = 3.0f;
  all.alibi = true;
  all.alibiPerBatch = true;
  cases.push_back(all);
  // Every forward main loop at d = 128: mma.sync, wgmma on all warps, and
  // the warp-specialized one as one block a tile and persistent; persistent
  // at d = 64 with one and with three consumer warpgroups (the skip loop over
  // tiles past a sequence's end with other tile heights).
  struct TileAt {
    TileConfig tile;
    int64_t headDim, headsQ, headsK;
  };
  for (const TileAt &t : {TileAt{{128, 64, 4, 2}, 128, 2, 1},
                          TileAt{{128, 128, 8, 2, true, true}, 128, 2, 1},
                          TileAt{{128, 176, 8, 2, true, true, true, false}, 128, 2, 1},
                          TileAt{{128, 176, 8, 2, true, true, true, true}, 128, 2, 1},
                          TileAt{{64, 128, 4, 2, true, true, true, true}, 64, 4, 2},
                          TileAt{{192, 128, 12, 2, true, true, true, true}, 64, 4, 2}})
    for (bool causal : {false, true}) {
      CheckCase c = packedCase(kIssueLengths, {3, 7, 999, 4100}, t.headsQ, t.headsK, t.headDim,
                               seed++);
      c.causal = causal;
      c.tile = t.tile;
      cases.push_back(c);
    }
  return cases;
}

class VariableLengthForward : public ::testing::TestWithParam<CheckCase> {};

TEST_P(VariableLengthForward, MatchesReferencePerSequence) {
  FLASHJIT_REQUIRE_GPU();
  flashjit::testing::expectForwardMatchesReference(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Packed, VariableLengthForward, ::testing::ValuesIn(forwardGrid()),
                         caseName);

std::vector<CheckCase> backwardGrid() {
  uint64_t seed = 31000;
  std::vector<CheckCase> cases = issueLengthCases(seed);
  CheckCase uneven = packedCase({5, 0, 1000, 777, 300}, {700, 9, 1, 777, 0}, 8, 2, 128, seed++);
  uneven.causal = true;
  cases.push_back(uneven);
  CheckCase all = packedCase(kIssueLengths, {9, 7, 1100, 4097}, 4, 2, 64, seed++);
  all.causal = true;
  all.windowLeft = 300;
  all.softcap = 3.0f;
  all.alibi = true;
  all.alibiPerBatch = true;
  all.headMajor = true;
  cases.push_back(all);
  // The persistent key-block kernel: blocks walking many sequences' key
  // blocks (skipping those past a sequence's keys), causal pairs.
  for (bool causal : {false, true}) {
    CheckCase walked = packedCase({5, 0, 1000, 777, 300}, {700, 9, 1, 777, 0}, 32, 16, 64, seed++);
    walked.causal = causal;
    walked.tileDKV = TileConfig{64, 64, 4, 2, true, true, true, true};
    walked.tileDQ = TileConfig{64, 64, 4, 2, true, true, true};
    cases.push_back(walked);
  }
  return cases;
}

class VariableLengthBackward : public ::testing::TestWithParam<CheckCase> {};

TEST_P(VariableLengthBackward, MatchesReferencePerSequence) {
  FLASHJIT_REQUIRE_GPU();
  const CheckCase &c = GetParam();
  const std::string &arch = Gpu::get().runtime->device().arch;
  if (c.tileDKV && c.tileDKV->qkWgmma && arch != "sm_90a")
    GTEST_SKIP() << "wgmma needs sm_90a; this GPU is " << arch;
  flashjit::testing::expectBackwardMatchesReference(c);
}

INSTANTIATE_TEST_SUITE_P(Packed, VariableLengthBackward, ::testing::ValuesIn(backwardGrid()),
                         caseName);

} // namespace
