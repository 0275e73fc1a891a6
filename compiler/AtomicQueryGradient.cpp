//===- AtomicQueryGradient.cpp - the key-block kernels' dQ ----------------===//
//
// The atomic form of the backward adds dQ from the key-block kernel, as
// FlashAttention-3 does: per step (a tile of m queries against the block's n
// keys) every consumer warpgroup stores its dSᵀ (64 keys x m queries) to
// shared memory; after one barrier the warpgroups compute
//   dQᵀ (head-dim rows x m queries) = Kᵀ dSᵀ
// over all n keys, each its share of the chunks of 64 head-dim rows (or of
// the queries, where the chunks do not divide among them); stage it as f32
// rows [query][d_qk]; and one bulk reduction (cp.reduce.async.bulk .add.f32,
// the TMA unit) adds the step's rows to the fp32 accumulator. So dQ costs one
// product a step over the whole block's keys, not one per warpgroup.
//
// Warp-specialized, the producer warpgroup's third warp issues the
// reductions: the consumers wait for it only before they overwrite the
// staged rows (named barriers kStagingFree / kStagingFull), and dS alternates
// between two buffers, so a warpgroup's next dS never waits for the others'
// reads of this one (they passed the next step's kGradScoresReady barrier
// only after their dQ product finished).
//
//===----------------------------------------------------------------------===//
#include "compiler/BackwardGeneratorImpl.h"
#include "compiler/KernelABI.h"

using namespace mlir;

namespace flashjit::detail {

// Fragment (t, c) of warp w holds dSᵀ at key 16 (w % 4) + quadRow + 8 (c / 2)
// of the warpgroup's 64 and query 8 t + 2 quadCol + (c & 1); stored at
// [query][key] in 128-byte rows whose 16-byte chunks are swizzled by query %
// 8. The (c, c + 1) pairs are 8 x 8 matrices (8 keys x 8 queries): stmatrix
// .trans writes each query's 8 keys as one chunk, 4 matrices an instruction
// (lane l gives the address of query 8 (t + l / 16) + l % 8, key half l / 8 % 2).
void BackwardGenerator::storeGradScores(const Tiles &dS, Value buffer) {
  Value warpInGroup = e.andi(warp, e.i32(3));
  Value tile = e.add(e.add(e.i32(v.smem.gradScoreOffset), e.mul(buffer, e.i32(v.smem.gradScoreBytes))),
                     e.mul(e.shrui(warp, 2), e.i32(v.m * 128)));
  Value row = e.andi(lane, e.i32(7));
  Value keyHalf = e.andi(e.shrui(lane, 3), e.i32(1));
  Value chunk = e.xori(e.add(e.mul(warpInGroup, e.i32(2)), keyHalf), row);
  Value query = e.add(e.mul(e.shrui(lane, 4), e.i32(8)), row);
  Value at = e.add(tile, e.add(e.mul(query, e.i32(128)), e.mul(chunk, e.i32(16))));
  const int64_t tiles = int64_t(dS[0].size());
  for (int64_t t = 0; t < tiles; t += 2) {
    std::vector<Value> pairs;
    for (int64_t u = t; u < std::min(t + 2, tiles); ++u)
      for (int64_t half = 0; half < 2; ++half)
        pairs.push_back(e.packPair(v.elementType, dS[0][u][2 * half], dS[0][u][2 * half + 1]));
    // (An odd last tile: two matrices, the addresses of lanes 0-15.)
    e.stmatrix(sharedAt(e.add(at, e.i32(t * 8 * 128))), pairs, /*transpose=*/true);
  }
}

void BackwardGenerator::syncGradScores() {
  if (v.warpSpecialized) // the producer warpgroup never comes
    e.namedBarrierSync(e.i32(kGradScoresReady), v.warps * 32);
  else
    e.barrier();
}

// Chunk c of dQᵀ (head-dim rows 64 c .. 64 c + 63) = Kᵀ dSᵀ: A is column
// block c of the resident K tile read M-major, 16 keys (2048 bytes) a k-step;
// B the dS tiles, K-major, warpgroup tile k / 4 (64 keys each) for k-step k.
std::vector<Value> BackwardGenerator::issueGradQuery(Value buffer, int64_t first,
                                                     int64_t count) {
  const GradQueryShare share = gradQueryShare();
  const int64_t warpgroups = v.warps / 4;
  Value warpgroup = e.shrui(warp, 2);
  Value scores = e.add(smemBase32, e.add(e.i32(v.smem.gradScoreOffset),
                                         e.mul(buffer, e.i32(v.smem.gradScoreBytes))));
  if (!share.byChunks) // this warpgroup's queries
    scores = e.add(scores, e.mul(warpgroup, e.i32(share.columns * 128)));
  std::vector<Value> all;
  for (int64_t j = first; j < first + count; ++j) {
    Value chunk = share.byChunks ? e.add(warpgroup, e.i32(j * warpgroups)) : e.i32(j);
    Value keys = e.add(smemBase32, e.mul(chunk, e.i32(v.n * 128)));
    std::vector<Value> acc; // the first k-step starts from nothing
    for (int64_t k = 0; k < v.n / 16; ++k) {
      Value descA = e.wgmmaDescriptorSwizzled128MN(e.add(keys, e.i32(k * 16 * 128)), v.n * 128);
      Value descB = e.wgmmaDescriptorSwizzled128(
          e.add(scores, e.i32((k / 4) * v.m * 128 + (k % 4) * 32)));
      acc = e.wgmmaSS(v.elementType, share.columns, descA, descB, acc, /*transposeA=*/true);
    }
    all.insert(all.end(), acc.begin(), acc.end());
  }
  e.wgmmaCommit();
  return all;
}

Value BackwardGenerator::gradQueryColumn(Value row, Value column) {
  Value rotated = e.add(column, e.mul(e.andi(e.shrui(row, 1), e.i32(3)), e.i32(8)));
  return e.remui(rotated, e.i32(v.headDimQK)); // (a bijection for any d_qk, also 16)
}

// Element (t, r) of chunk c: head-dim row 64 c + 16 (w % 4) + quadRow +
// 8 (r / 2), query 8 t + 2 quadCol + (r & 1) of the share's; staged at
// [query][head dim] in f32 rows of d_qk (the accumulator's row layout, each
// row rotated by gradQueryColumn: its 8 t rows share the rotation).
void BackwardGenerator::stageGradQuery(const std::vector<Value> &acc, int64_t first,
                                       Value firstQuery) {
  const GradQueryShare share = gradQueryShare();
  const int64_t warpgroups = v.warps / 4, perChunk = share.columns / 2;
  const int64_t rowBytes = v.headDimQK * 4, chunks = int64_t(acc.size()) / perChunk;
  Value warpgroup = e.shrui(warp, 2);
  Value dimRow = e.add(e.mul(e.andi(warp, e.i32(3)), e.i32(16)), quadRow);
  Value firstColumn = share.byChunks ? e.i32(0) : e.mul(warpgroup, e.i32(share.columns));
  Value query = e.add(firstColumn, e.mul(quadCol, e.i32(2))); // of the step (t = 0, even)
  // A chunk past d_qk % 64 (padded): not every one of its rows exists.
  const bool partial = v.headDimQK % 64 != 0;
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t j = first + c;
    Value chunkDim = share.byChunks ? e.mul(e.add(warpgroup, e.i32(j * warpgroups)), e.i32(64))
                                    : e.i32(j * 64);
    for (int64_t half = 0; half < 2; ++half) {
      Value dim = e.add(e.add(chunkDim, e.i32(half * 8)), dimRow);
      auto store = [&] {
        for (int64_t odd = 0; odd < 2; ++odd) {
          Value row = e.add(query, e.i32(odd));
          Value column = gradQueryColumn(e.add(firstQuery, row), dim);
          Value at = e.add(e.i32(v.smem.gradQueryOffset),
                           e.add(e.mul(row, e.i32(rowBytes)), e.mul(column, e.i32(4))));
          for (int64_t t = 0; t < share.columns / 8; ++t)
            e.store(acc[c * perChunk + t * 4 + half * 2 + odd],
                    sharedAt(e.add(at, e.i32(t * 8 * rowBytes))), 4);
        }
      };
      if (partial)
        emitIf(e.cmpi(CmpIPredicate::slt, dim, e.i32(v.headDimQK)), store);
      else
        store();
    }
  }
}

void BackwardGenerator::awaitGradQueryStaging() {
  if (v.warpSpecialized)
    e.namedBarrierSync(e.i32(kStagingFree), stagingThreads());
  // cp.async loop: the first thread waited before the step's dS barrier.
}

void BackwardGenerator::releaseGradQueryStaging(Value h, Value firstQuery) {
  e.fenceProxyAsyncShared(); // the staged rows are read by the async proxy
  if (v.warpSpecialized) {
    e.namedBarrierArrive(e.i32(kStagingFull), stagingThreads());
    return;
  }
  e.barrier();
  emitIf(firstThread(), [&] { reduceStagedGradQuery(h, firstQuery); });
}

// The staged rows of the step's queries that exist, added to query head h's
// accumulator rows (d_qk floats apart) in one bulk reduction.
void BackwardGenerator::reduceStagedGradQuery(Value h, Value firstQuery) {
  using namespace abi::bwd;
  Value rows = e.minsi(e.i32(v.m), e.sub(seqQ, firstQuery));
  Value at = e.add(tensorBase(kDQAccumStride0, h, /*querySide=*/true),
                   e.mul(e.toI64(firstQuery), arg(kDQAccumStride0 + 1)));
  e.bulkReduceAddF32(e.globalElementPtr(arg(kDQAccum), at, b.getF32Type()),
                     sharedAt(e.i32(v.smem.gradQueryOffset)),
                     e.mul(rows, e.i32(v.headDimQK * 4)));
  e.bulkCommit();
}

// Per computed step of the tile: the staged rows are free (the last
// reduction has read them), then, once the consumers staged the step, one
// more reduction.
void BackwardGenerator::emitGradQueryWriter(llvm::function_ref<Value(const KeyStep &)> computed) {
  const int64_t threads = stagingThreads();
  OpBuilder::InsertionGuard guard(b);
  auto loop = scf::ForOp::create(b, loc, e.i32(0), keys.steps, e.i32(1));
  b.setInsertionPoint(loop.getBody()->getTerminator());
  KeyStep step = keyStepAt(loop.getInductionVar());
  auto reduce = [&] {
    e.namedBarrierArrive(e.i32(kStagingFree), threads);
    e.namedBarrierSync(e.i32(kStagingFull), threads);
    emitIf(e.cmpi(CmpIPredicate::eq, lane, e.i32(0)), [&] {
      reduceStagedGradQuery(step.head, step.firstQuery);
      e.bulkWait(0, /*readOnly=*/true);
    });
  };
  if (Value c = computed(step))
    emitIf(c, reduce);
  else
    reduce();
}

} // namespace flashjit::detail
