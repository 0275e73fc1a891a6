//===- AttentionSpecTest.cpp - canonical text, names, default tiles -------===//
#include "compiler/AttentionSpec.h"
#include "compiler/KernelABI.h"
#include "dialect/SharedMemoryLayout.h"

#include <gtest/gtest.h>

#include <set>

using namespace flashjit;

TEST(AttentionSpec, CanonicalTextChangesWithEveryField) {
  AttentionSpec base;
  std::set<std::string> seen{base.canonical()};
  auto expectNew = [&](AttentionSpec s) {
    EXPECT_TRUE(seen.insert(s.canonical()).second) << s.canonical();
  };
  AttentionSpec s = base; s.dtype = DType::F16; expectNew(s);
  s = base; s.headDimQK = 64; expectNew(s);
  s = base; s.headDimV = 64; expectNew(s);
  s = base; s.mask = Mask::Causal; expectNew(s);
  s = base; s.withLse = true; expectNew(s);
  s = base; s.mask = Mask::Window; expectNew(s);
  s = base; s.softcap = true; expectNew(s);
  s = base; s.alibi = true; expectNew(s);
  s = base; s.dropout = true; expectNew(s);
  s = base; s.tile.m = 64; expectNew(s);
  s = base; s.tile.n = 32; expectNew(s);
  s = base; s.tile.warps = 8; expectNew(s);
  s = base; s.tile.stages = 3; expectNew(s);
  s = base; s.arch = "sm_90a"; expectNew(s);
  s = base; s.maxSharedMemory = 1234; expectNew(s);
  s = base; s.tile.tmaStore = true; expectNew(s);
}

TEST(AttentionSpec, VariantNameIsReadable) {
  AttentionSpec s;
  s.dtype = DType::BF16;
  s.headDimQK = s.headDimV = 128;
  s.mask = Mask::Causal;
  s.tile = {128, 64, 4, 2};
  s.arch = "sm_90a";
  EXPECT_EQ(s.variantName(), "flash_fwd_bf16_d128_causal_m128n64w4s2_sm90a");
  s.headDimV = 64;
  s.withLse = true;
  s.mask = Mask::None;
  s.dtype = DType::F16;
  EXPECT_EQ(s.variantName(), "flash_fwd_f16_d128v64_lse_m128n64w4s2_sm90a");
  s.mask = Mask::Window;
  s.softcap = s.alibi = true;
  s.kind = KernelKind::BackwardDQ;
  s.withLse = false;
  EXPECT_EQ(s.variantName(), "flash_bwd_dq_f16_d128v64_window_softcap_alibi_m128n64w4s2_sm90a");
  s.dropout = true;
  EXPECT_EQ(s.variantName(),
            "flash_bwd_dq_f16_d128v64_window_softcap_alibi_dropout_m128n64w4s2_sm90a");
  EXPECT_EQ(tileName({128, 176, 8, 2, true, true, true, true, true}), "m128n176w8s2gpwspsts");
}

TEST(AttentionSpec, ForwardsTakeTheTilesMeasuredForTheirSize) {
  AttentionSpec s;
  const TileConfig wide{128, 176, 8, 2, true, true, true, false, true};
  auto fitted = [&](int64_t seqK, TileConfig t, int64_t seqQ = 0) {
    fitTileToProblemSize(t, s, seqQ ? seqQ : seqK, seqK, 232448);
    return tileName(t);
  };
  // Up to 4096 keys: persistent, 128 keys a step, O by TMA stores through
  // the tile's Q slot (a second one holds the next tile's Q).
  s.mask = Mask::Causal; // d = 128
  EXPECT_EQ(fitted(2048, wide), "m128n128w8s2gpwspsts");
  EXPECT_EQ(fitted(4096, wide), "m128n128w8s2gpwspsts");
  EXPECT_EQ(fitted(4097, wide), tileName(wide));
  s.mask = Mask::None; // (not causal, up to 4096 keys)
  EXPECT_EQ(fitted(1024, wide), "m128n128w8s2gpwspsts");
  EXPECT_EQ(fitted(2048, wide), "m128n128w8s2gpwspsts");
  EXPECT_EQ(fitted(4096, wide), "m128n128w8s2gpwspsts");
  EXPECT_EQ(fitted(4097, wide, 4095), tileName(wide));
  EXPECT_EQ(fitted(4097, wide), "m128n192w8s2gpwsts"); // long: 192 keys a step
  TileConfig small = wide;
  fitTileToProblemSize(small, s, 4097, 4097, 227 * 1024 - 4096); // unless they do not fit
  EXPECT_EQ(tileName(small), tileName(wide));
  // Where the second Q tile does not fit, no TMA stores (they would hold Q).
  small = wide;
  fitTileToProblemSize(small, s, 1024, 1024, 160 * 1024);
  EXPECT_EQ(tileName(small), "m128n128w8s2gpwsps");
  // d = 256: 64 keys a step, not 80, at any length.
  s.headDimQK = s.headDimV = 256;
  const TileConfig d256{128, 80, 8, 2, true, true, true, false, true};
  EXPECT_EQ(fitted(1024, d256), "m128n64w8s2gpwsts");
  EXPECT_EQ(fitted(16384, d256), "m128n64w8s2gpwsts");
  s.headDimQK = s.headDimV = 64;
  // Small heads: three consumer warpgroups from 512 queries and keys,
  // persistent, with TMA stores up to 2048 keys...
  EXPECT_EQ(fitted(512, wide), "m192n128w12s2gpwspsts");
  EXPECT_EQ(fitted(2048, wide), "m192n128w12s2gpwspsts");
  EXPECT_EQ(fitted(2049, wide), "m192n128w12s2gpwsps");
  EXPECT_EQ(fitted(2048, wide, 511), "m128n128w8s2gpwspsts"); // (two for fewer queries)
  EXPECT_EQ(fitted(4096, wide, 511), tileName(wide));
  s.mask = Mask::Causal;
  EXPECT_EQ(fitted(1024, wide), "m128n128w8s2gpwspsts");
  EXPECT_EQ(fitted(2048, wide), "m192n128w12s2gpwspsts");
  EXPECT_EQ(fitted(2049, wide), "m128n128w8s2gpwsts");
  // ... causal past 2048 keys from 4096, one tile a block.
  EXPECT_EQ(fitted(4095, wide), "m128n128w8s2gpwsts");
  EXPECT_EQ(fitted(4096, wide), "m192n128w12s2gpwsts");
  EXPECT_EQ(fitted(8192, wide), "m192n128w12s2gpwsts");
  // Not where it was not measured: with a modifier only the key-block width.
  s.softcap = true;
  EXPECT_EQ(fitted(2048, wide), "m128n128w8s2gpwsts");
  EXPECT_EQ(fitted(8192, wide), tileName(wide));
  s.softcap = false;
  s.headDimQK = s.headDimV = 128; // nor above d = 64
  EXPECT_EQ(fitted(8192, wide), tileName(wide));
  // Nor for tiles that are not warp-specialized.
  EXPECT_EQ(fitted(512, TileConfig{128, 128, 4, 2}), "m128n128w4s2");
}

// The runtime's Auto packing rule, shared with the autotuner.
TEST(AttentionSpec, GqaPackingSavesTilesOnlyForFewQueries) {
  EXPECT_TRUE(flashjit::abi::packingSavesTiles(128, 1, 32, 8));     // decode: 8 tiles instead of 32
  EXPECT_FALSE(flashjit::abi::packingSavesTiles(128, 4096, 32, 8)); // as many tiles either way
  EXPECT_FALSE(flashjit::abi::packingSavesTiles(128, 1, 8, 8));     // no group
  EXPECT_FALSE(flashjit::abi::packingSavesTiles(16, 1, 64, 2));     // the group outgrows the tile
}

// O is staged where Q was: not for packed rows, and only while it fits.
TEST(AttentionSpec, TmaStoreOnlyWhereOFitsOneBoxOfRows) {
  AttentionSpec s;
  s.headDimQK = s.headDimV = 128;
  EXPECT_TRUE(tmaStoreAvailable(s));
  s.headDimQK = 96; // both pad to 128
  EXPECT_TRUE(tmaStoreAvailable(s));
  s.headDimQK = 64;
  EXPECT_FALSE(tmaStoreAvailable(s));
  s.headDimQK = 128;
  s.varlen = true;
  EXPECT_FALSE(tmaStoreAvailable(s));
  s.varlen = false;
  s.packGQA = true;
  EXPECT_FALSE(tmaStoreAvailable(s));
}

// The block-lists kernel keeps what decides which keys are kept (mask,
// mask_mod, the tile's m x n blocks) and drops the rest, so one kernel serves
// every dtype-independent variant of a masked forward; it is a forward-ABI
// kernel, not a backward one.
TEST(AttentionSpec, BlockListsKindKeepsOnlyWhatPlacesKeys) {
  AttentionSpec s;
  s.kind = KernelKind::ForwardBlockLists;
  s.mask = Mask::Window;
  s.maskMod = "kv_idx < 64";
  s.scoreMod = "score * 2.0";
  s.softcap = s.alibi = s.dropout = s.withLse = s.packGQA = true;
  s.tile = TileConfig{128, 176, 8, 2, true, true, true, true};
  normalizeSpecForKind(s);
  EXPECT_FALSE(s.backward());
  EXPECT_TRUE(s.blockMask);
  EXPECT_EQ(s.mask, Mask::Window);
  EXPECT_EQ(s.maskMod, "kv_idx < 64");
  EXPECT_TRUE(s.scoreMod.empty());
  EXPECT_FALSE(s.softcap || s.alibi || s.dropout || s.withLse || s.packGQA);
  EXPECT_TRUE(sameTile(s.tile, TileConfig{128, 176, 1, 1})) << tileName(s.tile);
  EXPECT_EQ(s.sharedMemoryBytes(), 0);
  EXPECT_EQ(parseKernelKind(kernelKindName(s.kind)), KernelKind::ForwardBlockLists);
  EXPECT_TRUE(isBackwardKind(KernelKind::BackwardDQ));
  EXPECT_FALSE(isBackwardKind(KernelKind::Forward));
}

TEST(AttentionSpec, MaskNamesRoundTrip) {
  for (Mask m : {Mask::None, Mask::Causal, Mask::Window})
    EXPECT_EQ(parseMask(maskName(m)), m);
  EXPECT_FALSE(parseMask("sliding").has_value());
}

TEST(AttentionSpec, DefaultTilesFitTheSharedMemoryTheyAreGiven) {
  for (int64_t limit : {48 * 1024, 99 * 1024, 163 * 1024, 227 * 1024})
    for (int64_t d = 8; d <= 256; d += 8) {
      TileConfig t = defaultTile(d, d, limit);
      auto l = flash::SharedMemoryLayout::compute(d, d, 2, t.m, t.n, t.stages);
      EXPECT_LE(l.totalBytes, limit) << "d " << d << " limit " << limit;
      EXPECT_EQ(t.m % (16 * t.warps), 0);
      EXPECT_EQ(t.n % 16, 0);
    }
}

TEST(SharedMemoryLayout, PadsRowsAndRoundsHeadDims) {
  auto l = flash::SharedMemoryLayout::compute(40, 72, 2, 64, 32, 3);
  EXPECT_EQ(l.paddedHeadDimQK, 48);
  EXPECT_EQ(l.paddedHeadDimV, 80);
  EXPECT_EQ(l.pitchQK, 48 * 2 + 16);
  EXPECT_EQ(l.pitchV, 80 * 2 + 16);
  EXPECT_EQ(l.totalBytes, 64 * l.pitchQK + 3 * (32 * l.pitchQK + 32 * l.pitchV));
}

// The persistent forward keeps a second Q tile where the target has room
// for it; the ring and the barriers move after both.
TEST(SharedMemoryLayout, PersistentForwardKeepsTwoQueryTilesWhereTheyFit) {
  const int64_t limit = 227 * 1024;
  auto persistent = [&](int64_t d, int64_t m, int64_t n) {
    return flash::SharedMemoryLayout::compute(d, d, 2, m, n, 2, true, true, true, limit);
  };
  auto one = flash::SharedMemoryLayout::compute(128, 128, 2, 128, 128, 2, true, true, true);
  auto two = persistent(128, 128, 128);
  EXPECT_EQ(one.querySlots, 1);
  EXPECT_EQ(two.querySlots, 2);
  EXPECT_EQ(two.queryTileBytes, one.queryTileBytes);
  EXPECT_EQ(two.queryBytes, 2 * one.queryTileBytes);
  EXPECT_EQ(two.barrierOffset, one.barrierOffset + one.queryTileBytes);
  EXPECT_EQ(two.stageBarriersOffset(), two.barrierOffset + 2 * 8 * 4);
  EXPECT_EQ(two.totalBytes, one.totalBytes + one.queryTileBytes + 4 * 8);
  EXPECT_LE(two.totalBytes, limit);
  EXPECT_EQ(persistent(64, 192, 128).querySlots, 2);
  // 176 keys at d = 128 and d = 256 leave no room for it.
  EXPECT_EQ(persistent(128, 128, 176).querySlots, 1);
  EXPECT_EQ(persistent(256, 128, 80).querySlots, 1);
  EXPECT_LE(persistent(256, 128, 80).totalBytes, limit);
}

TEST(AttentionSpec, DocumentedSharedMemoryLimits) {
  EXPECT_EQ(documentedMaxSharedMemory("sm_80"), 163 * 1024);
  EXPECT_EQ(documentedMaxSharedMemory("sm_90a"), 227 * 1024);
  EXPECT_EQ(documentedMaxSharedMemory("sm_42"), 0);
}

// setmaxnreg.inc only hands out what the block's producer warpgroup gave
// back: a split above the registers the block starts with makes the
// consumers wait forever (a w8 persistent backward at 32 + 240 hung on an
// H200). Every warp-specialized split fits, in multiples of 8 as setmaxnreg takes.
TEST(KernelABI, WarpSpecializedRegisterSplitsFitTheBlocksStart) {
  for (int64_t warps : {4, 8, 12})
    for (int64_t d : {64, 128, 256})
      for (bool walksKeyBlocks : {false, true}) {
        const flashjit::abi::WarpSpecializedRegisters r =
            flashjit::abi::warpSpecializedRegisters(warps, d, walksKeyBlocks);
        const int64_t threads = 128 + warps * 32;
        SCOPED_TRACE("warps " + std::to_string(warps) + " d " + std::to_string(d) +
                     (walksKeyBlocks ? " persistent key blocks" : ""));
        EXPECT_LE(128 * r.producer + warps * 32 * r.consumer,
                  threads * flashjit::abi::blockStartRegisters(threads, r.blocksPerSM));
        EXPECT_EQ(r.producer % 8, 0);
        EXPECT_EQ(r.consumer % 8, 0);
        EXPECT_GE(r.producer, 24);
        EXPECT_LE(r.consumer, 256);
      }
}

// A persistent key-block kernel gives K and V full and empty barriers of
// their own (two slots' words, 24 bytes more); every other offset stays.
TEST(SharedMemoryLayout, PersistentKeyBlocksAddBarrierWordsOnly) {
  auto layout = [](bool persistent) {
    return flash::SharedMemoryLayout::computeBackward(128, 128, 2, /*residentRows=*/128,
                                                      /*streamRows=*/64, 2, true, true, true,
                                                      true, persistent);
  };
  const auto grid = layout(false), walking = layout(true);
  EXPECT_EQ(grid.querySlots, 1);
  EXPECT_EQ(walking.querySlots, 2);
  EXPECT_EQ(walking.totalBytes, grid.totalBytes + 32);
  EXPECT_EQ(walking.barrierOffset, grid.barrierOffset);
  EXPECT_EQ(walking.stepStatsOffset, grid.stepStatsOffset);
  EXPECT_EQ(walking.gradQueryOffset, grid.gradQueryOffset);
  EXPECT_EQ(walking.stageBarriersOffset(), grid.stageBarriersOffset() + 32);
  EXPECT_LE(walking.totalBytes, 232448); // the d 128 default on an H100/H200
}
