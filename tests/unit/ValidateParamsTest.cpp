//===- ValidateParamsTest.cpp - bad requests get clear errors (no GPU) ----===//
#include "runtime/BlockMasks.h"
#include "runtime/TensorMaps.h"
#include "runtime/flashjit.h"

#include <gtest/gtest.h>

#include <limits>

using namespace flashjit;

namespace {

// Host addresses stand in for device pointers: validation never dereferences.
alignas(256) char storage[4096];

AttentionParams valid() {
  AttentionParams p;
  p.q = storage;
  p.k = storage + 256;
  p.v = storage + 512;
  p.o = storage + 768;
  p.batch = 2;
  p.seqQ = 100;
  p.seqK = 200;
  p.headsQ = 8;
  p.headsK = 2;
  p.headDimQK = 64;
  return p;
}

std::string errorOf(AttentionParams p) {
  Status s = normalizeAndValidate(p);
  return s.isOk() ? "" : s.message();
}

} // namespace

TEST(ValidateParams, AcceptsAndNormalizesAValidRequest) {
  AttentionParams p = valid();
  ASSERT_TRUE(normalizeAndValidate(p).isOk());
  EXPECT_EQ(p.headDimV, 64);
  EXPECT_FLOAT_EQ(p.softmaxScale, 0.125f);
  EXPECT_EQ(p.qStride[2], 64);
  EXPECT_EQ(p.qStride[1], 8 * 64);
  EXPECT_EQ(p.qStride[0], 100 * 8 * 64);
  EXPECT_EQ(p.kStride[0], 200 * 2 * 64);
}

TEST(ValidateParams, RejectsUnsupportedHeadDims) {
  for (int64_t d : {0, 4, 12, 264, 1000}) {
    AttentionParams p = valid();
    p.headDimQK = d;
    EXPECT_NE(errorOf(p).find("head dim " + std::to_string(d) + " is not supported"),
              std::string::npos)
        << errorOf(p);
  }
}

TEST(ValidateParams, RejectsMisalignedPointersAndStrides) {
  AttentionParams p = valid();
  p.v = storage + 520;
  EXPECT_EQ(errorOf(p), "v is not 16-byte aligned");
  p = valid();
  p.o = storage + 770;
  EXPECT_EQ(errorOf(p), "o is not 4-byte aligned");
  p = valid();
  p.qStride[0] = 100 * 8 * 64;
  p.qStride[1] = 8 * 64 + 4; // rows no longer 16-byte aligned
  p.qStride[2] = 64;
  EXPECT_NE(errorOf(p).find("q strides"), std::string::npos) << errorOf(p);
}

// O may be 4-byte aligned with even strides; TMA stores need 16 bytes of both.
TEST(ValidateParams, OutputFitForTmaStoresNeedsSixteenBytes) {
  AttentionParams p = valid();
  ASSERT_TRUE(normalizeAndValidate(p).isOk());
  EXPECT_TRUE(outputSuitsTmaStores(p));
  AttentionParams offset = valid();
  offset.o = storage + 772;
  ASSERT_TRUE(normalizeAndValidate(offset).isOk());
  EXPECT_FALSE(outputSuitsTmaStores(offset));
  AttentionParams padded = valid();
  padded.oStride[0] = 100 * 8 * 66;
  padded.oStride[1] = 8 * 66; // rows of 66 elements: 132 bytes
  padded.oStride[2] = 66;
  ASSERT_TRUE(normalizeAndValidate(padded).isOk());
  EXPECT_FALSE(outputSuitsTmaStores(padded));
}

TEST(ValidateParams, RejectsBadShapesAndScales) {
  AttentionParams p = valid();
  p.headsK = 3;
  EXPECT_NE(errorOf(p).find("must be a multiple of heads_k"), std::string::npos);
  p = valid();
  p.seqQ = -1;
  EXPECT_NE(errorOf(p).find("seq_q -1"), std::string::npos) << errorOf(p);
  p = valid();
  p.softmaxScale = -1.f;
  EXPECT_EQ(errorOf(p), "softmax scale must be a positive finite number");
  p = valid();
  p.q = nullptr;
  EXPECT_EQ(errorOf(p), "q, k, v and o must be non-null device pointers");
  p = valid();
  p.seqQ = int64_t(1) << 33;
  EXPECT_NE(errorOf(p).find("problem too large"), std::string::npos);
}

TEST(ValidateParams, EmptyProblemsNeedNoPointers) {
  AttentionParams p = valid();
  p.batch = 0;
  p.q = p.k = p.v = nullptr;
  p.o = nullptr;
  EXPECT_TRUE(normalizeAndValidate(p).isOk());
}

namespace {

AttentionBackwardParams validBackward() {
  AttentionBackwardParams b;
  b.forward = valid();
  b.forward.lse = reinterpret_cast<float *>(storage + 1024);
  b.dO = storage + 1280;
  b.dQ = storage + 1536;
  b.dK = storage + 1792;
  b.dV = storage + 2048;
  return b;
}

std::string errorOf(AttentionBackwardParams b) {
  Status s = normalizeAndValidate(b);
  return s.isOk() ? "" : s.message();
}

} // namespace

TEST(ValidateParams, BackwardAcceptsAndFillsGradientStrides) {
  AttentionBackwardParams b = validBackward();
  ASSERT_TRUE(normalizeAndValidate(b).isOk());
  EXPECT_EQ(b.dOStride[1], 8 * 64);  // [batch, seq_q, heads_q, d]
  EXPECT_EQ(b.dKStride[1], 2 * 64);  // key/value heads
  EXPECT_EQ(b.dKStride[0], 200 * 2 * 64);
}

TEST(ValidateParams, BackwardNamesWhatIsMissingOrMisaligned) {
  AttentionBackwardParams b = validBackward();
  b.forward.lse = nullptr; // the backward needs the forward's LSE
  EXPECT_NE(errorOf(b).find("lse (the forward's)"), std::string::npos) << errorOf(b);
  b = validBackward();
  b.dO = storage + 1288;
  EXPECT_EQ(errorOf(b), "dO is not 16-byte aligned");
  b = validBackward();
  b.dV = storage + 2050;
  EXPECT_EQ(errorOf(b), "dV is not 4-byte aligned");
  b = validBackward();
  b.dQStride[0] = 3;
  b.dQStride[1] = 64;
  b.dQStride[2] = 64;
  EXPECT_NE(errorOf(b).find("dQ strides (batch, seq, head) = (3, 64, 64)"), std::string::npos);
  b = validBackward();
  b.forward.headsQ = 3; // the forward's own checks come first
  EXPECT_NE(errorOf(b).find("must be a multiple of heads_k"), std::string::npos);
}

TEST(ValidateParams, BackwardWithoutQueriesNeedsOnlyKeyGradients) {
  AttentionBackwardParams b = validBackward();
  b.forward.seqQ = 0;
  b.dQ = nullptr;
  b.dO = nullptr;
  EXPECT_EQ(errorOf(b), ""); // dK = dV = 0 are still written
  b.dK = nullptr;
  EXPECT_NE(errorOf(b), "");
}

TEST(ValidateParams, WindowsNormalizeToTheirMask) {
  AttentionParams p = valid();
  ASSERT_TRUE(normalizeAndValidate(p).isOk());
  EXPECT_EQ(attentionMask(p), Mask::None);
  p = valid();
  p.causal = true;
  p.windowLeft = 4096; // Mistral: causal with a sliding window
  ASSERT_TRUE(normalizeAndValidate(p).isOk());
  EXPECT_EQ(p.windowRight, 0);
  EXPECT_EQ(attentionMask(p), Mask::Window);
  p = valid();
  p.windowLeft = -7; // (-1, 0) is causal, whatever the negative number
  p.windowRight = 0;
  ASSERT_TRUE(normalizeAndValidate(p).isOk());
  EXPECT_EQ(attentionMask(p), Mask::Causal);
  EXPECT_TRUE(p.causal);
  EXPECT_EQ(p.windowLeft, -1);
  p = valid();
  p.windowRight = 3;
  ASSERT_TRUE(normalizeAndValidate(p).isOk());
  EXPECT_EQ(attentionMask(p), Mask::Window);
}

TEST(ValidateParams, BadScoreModifiersAreNamed) {
  AttentionParams p = valid();
  p.softcap = -1.0f;
  EXPECT_NE(errorOf(p).find("softcap must be 0 (off) or a positive finite number"),
            std::string::npos);
  p = valid();
  p.softcap = std::numeric_limits<float>::infinity();
  EXPECT_NE(errorOf(p).find("softcap"), std::string::npos);
  p = valid();
  p.alibiSlopes = reinterpret_cast<const float *>(storage + 2);
  EXPECT_NE(errorOf(p).find("alibi slopes are not 4-byte aligned"), std::string::npos);
  p = valid();
  p.alibiSlopes = reinterpret_cast<const float *>(storage);
  p.alibiBatchStride = -8;
  EXPECT_NE(errorOf(p).find("alibi batch stride must be >= 0"), std::string::npos);
}

TEST(ValidateParams, BadUserModifiersAreNamed) {
  AttentionParams p = valid();
  p.scoreMod = "score + bias";
  EXPECT_EQ(errorOf(p), "score_mod \"score + bias\": unknown name 'bias' (names: score, b, h, "
                        "q_idx, kv_idx, inf) at column 9");
  p = valid();
  p.maskMod = "q_idx - kv_idx";
  EXPECT_NE(errorOf(p).find("mask_mod \"q_idx - kv_idx\": a mask_mod must be a condition"),
            std::string::npos);
  p = valid();
  p.scoreMod = "";
  p.maskMod = "";
  EXPECT_EQ(errorOf(p), ""); // empty means none
  p.scoreMod = "score * 0.5";
  p.maskMod = "q_idx >= kv_idx";
  EXPECT_EQ(errorOf(p), "");
}

TEST(ValidateParams, DropoutProbabilityIsChecked) {
  AttentionParams p = valid();
  for (float bad : {-0.1f, 1.5f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    p.dropoutP = bad;
    EXPECT_NE(errorOf(p).find("dropout probability must be in [0, 1]"), std::string::npos)
        << bad;
  }
  for (float good : {0.0f, 0.1f, 1.0f}) {
    p.dropoutP = good;
    EXPECT_EQ(errorOf(p), "") << good;
  }
}

TEST(ValidateParams, PackedBatchesHaveNoBatchStride) {
  AttentionParams p = valid();
  p.cuSeqlensQ = reinterpret_cast<const int32_t *>(storage + 1024);
  p.cuSeqlensK = reinterpret_cast<const int32_t *>(storage + 1040);
  p.totalQ = 150;
  p.totalK = 300;
  ASSERT_TRUE(normalizeAndValidate(p).isOk());
  EXPECT_EQ(p.qStride[0], 0);
  EXPECT_EQ(p.qStride[1], 8 * 64);
  EXPECT_EQ(p.kStride[0], 0);
  EXPECT_EQ(p.kStride[1], 2 * 64);
}

TEST(ValidateParams, BadPackedShapesAreNamed) {
  auto packed = [] {
    AttentionParams p = valid();
    p.cuSeqlensQ = reinterpret_cast<const int32_t *>(storage + 1024);
    p.cuSeqlensK = reinterpret_cast<const int32_t *>(storage + 1040);
    p.totalQ = 150;
    p.totalK = 300;
    return p;
  };
  AttentionParams p = packed();
  p.cuSeqlensK = nullptr;
  EXPECT_NE(errorOf(p).find("both cu_seqlens_q and cu_seqlens_k must be given"), std::string::npos);
  p = packed();
  p.cuSeqlensQ = reinterpret_cast<const int32_t *>(storage + 1026);
  EXPECT_NE(errorOf(p).find("must be 4-byte aligned int32"), std::string::npos);
  p = packed();
  p.totalK = -1;
  EXPECT_NE(errorOf(p).find("total_q and total_k must be in [0, 2^31)"), std::string::npos);
  p = packed();
  p.totalQ = 99; // shorter than the longest sequence (seq_q = 100)
  EXPECT_NE(errorOf(p).find("the longest lengths (seq_q 100, seq_k 200) exceed the totals"),
            std::string::npos);
}

TEST(ValidateParams, BadBlockMasksAreNamed) {
  auto masked = [] {
    AttentionParams p = valid();
    p.blockMask.kvCounts = reinterpret_cast<const int32_t *>(storage + 1024);
    p.blockMask.kvIndices = reinterpret_cast<const int32_t *>(storage + 1040);
    return p;
  };
  EXPECT_EQ(errorOf(masked()), "");
  AttentionParams p = masked();
  p.blockMask.kvIndices = nullptr;
  EXPECT_NE(errorOf(p).find("kvCounts and kvIndices must both be given"), std::string::npos);
  p = masked();
  p.blockMask.kvIndices = reinterpret_cast<const int32_t *>(storage + 1042);
  EXPECT_NE(errorOf(p).find("4-byte aligned int32"), std::string::npos);
  p = masked();
  p.blockMask.blockK = 100;
  EXPECT_NE(errorOf(p).find("multiples of 16 in [16, 2^20], got 128 x 100"), std::string::npos);
  p = masked();
  p.blockMask.heads = 2; // neither 1 nor heads_q = 8
  EXPECT_NE(errorOf(p).find("heads must be 1 (shared) or heads_q (8), got 2"), std::string::npos);
  p = masked();
  p.blockMask.batches = 3;
  EXPECT_NE(errorOf(p).find("batches must be 1 (shared) or the batch (2), got 3"),
            std::string::npos);
  p = masked();
  p.cuSeqlensQ = reinterpret_cast<const int32_t *>(storage + 2048);
  p.cuSeqlensK = reinterpret_cast<const int32_t *>(storage + 2064);
  p.totalQ = 200;
  p.totalK = 400;
  EXPECT_NE(errorOf(p).find("not available with packed sequences"), std::string::npos);
  AttentionBackwardParams b = validBackward();
  b.forward.blockMask = masked().blockMask;
  EXPECT_NE(errorOf(b).find("the backward needs the transposed lists too"), std::string::npos);
  b.forward.blockMask.qCounts = b.forward.blockMask.kvCounts;
  b.forward.blockMask.qIndices = b.forward.blockMask.kvIndices;
  EXPECT_EQ(errorOf(b), "");
}

// A default tile shrinks to a block mask's blocks (its streamed rows, and a
// wgmma tile of several warpgroups to fewer); a given one is kept and
// refused when it does not divide them.
TEST(ValidateParams, DefaultTilesFitBlockMasks) {
  BlockMask mask;
  mask.kvCounts = reinterpret_cast<const int32_t *>(storage + 1024);
  mask.kvIndices = reinterpret_cast<const int32_t *>(storage + 1040);
  mask.blockQ = 64;
  mask.blockK = 64;
  TileConfig dq{128, 128, 8, 2, true, true, true}; // the warp-specialized dQ default (d 128)
  TileConfig t = dq;
  ASSERT_TRUE(fitTileToBlockMask(t, KernelKind::BackwardDQ, mask, false).isOk());
  EXPECT_EQ(tileName(t), "m64n64w4s2gpws");
  t = dq;
  Status s = fitTileToBlockMask(t, KernelKind::BackwardDQ, mask, true);
  EXPECT_NE(s.message().find("not multiples of the bwd_dq tile m128n128w8s2gpws"),
            std::string::npos)
      << s.message();
  mask.blockQ = mask.blockK = 128;
  t = dq;
  ASSERT_TRUE(fitTileToBlockMask(t, KernelKind::BackwardDQ, mask, false).isOk());
  EXPECT_EQ(tileName(t), "m128n128w8s2gpws");
  // The key-block kernels own keys and stream queries.
  mask.blockQ = 32;
  t = TileConfig{64, 64, 4, 2, true, true, true};
  ASSERT_TRUE(fitTileToBlockMask(t, KernelKind::BackwardDKV, mask, false).isOk());
  EXPECT_EQ(tileName(t), "m32n64w4s2gpws");
  // A forward of three consumer warpgroups (192 rows) takes two for blocks
  // of 128 and one for blocks of 64; a given one is refused.
  const TileConfig three{192, 128, 12, 2, true, true, true, true};
  mask.blockQ = mask.blockK = 128;
  t = three;
  ASSERT_TRUE(fitTileToBlockMask(t, KernelKind::Forward, mask, false).isOk());
  EXPECT_EQ(tileName(t), "m128n128w8s2gpwsps");
  mask.blockQ = 64;
  t = three;
  ASSERT_TRUE(fitTileToBlockMask(t, KernelKind::Forward, mask, false).isOk());
  EXPECT_EQ(tileName(t), "m64n128w4s2gpwsps");
  mask.blockQ = 384;
  t = three;
  ASSERT_TRUE(fitTileToBlockMask(t, KernelKind::Forward, mask, false).isOk());
  EXPECT_EQ(tileName(t), tileName(three));
  mask.blockQ = 128;
  t = three;
  EXPECT_FALSE(fitTileToBlockMask(t, KernelKind::Forward, mask, true).isOk());
}
