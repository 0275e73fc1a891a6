//===- FlashOps.cpp - flash op and attribute verifiers --------------------===//
#include "dialect/FlashDialect.h"
#include "dialect/SharedMemoryLayout.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace flashjit::flash;

#define GET_OP_CLASSES
#include "dialect/FlashOps.cpp.inc"

LogicalResult TileAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               int64_t m, int64_t n, int64_t warps, int64_t stages,
                               bool qkWgmma, bool pvWgmma, bool warpSpecialized,
                               bool persistent, bool tmaStore) {
  if (warps < 1 || warps > 16)
    return emitError() << "tile: warps must be in [1, 16], got " << warps;
  if (m < 16 || m % 16 != 0)
    return emitError() << "tile: m = " << m << " must be a positive multiple of 16";
  if (n < 16 || n % 16 != 0 || n > 256)
    return emitError() << "tile: n = " << n
                       << " must be a multiple of 16 in [16, 256] (the P·V mma k-step is 16)";
  if (stages < 1 || stages > 8)
    return emitError() << "tile: stages must be in [1, 8], got " << stages;
  if ((qkWgmma || pvWgmma) && warps % 4 != 0)
    return emitError() << "tile: " << (qkWgmma ? "qk_wgmma" : "pv_wgmma")
                       << " needs whole warpgroups (warps a multiple of 4), got warps = "
                       << warps;
  if (warpSpecialized && !(qkWgmma && pvWgmma))
    return emitError() << "tile: warp_specialized needs qk_wgmma and pv_wgmma (its consumers "
                          "run both GEMMs on wgmma)";
  if (persistent && !warpSpecialized)
    return emitError() << "tile: persistent needs warp_specialized (only that kernel walks "
                          "several tiles a block)";
  if (tmaStore && !warpSpecialized)
    return emitError() << "tile: tma_store needs warp_specialized (its O goes out through the "
                          "tensor maps that kernel takes)";
  if (warpSpecialized && warps != 4 && warps != 8 && warps != 12)
    return emitError() << "tile: warp_specialized needs warps = 4, 8 or 12 (one to three "
                          "consumer warpgroups beside the producer's), got "
                       << warps;
  if (warpSpecialized && stages < 2)
    return emitError() << "tile: warp_specialized needs stages >= 2 (the producer fills one "
                          "slot while the consumers read another)";
  return success();
}

// The rows the warps own (query rows, or key rows in the backward's key-block
// kernels) must be whole 16-row mma tiles per warp; on wgmma exactly one (a
// warpgroup's 64 rows are one m64 instruction).
static LogicalResult verifyOwnedRows(Operation *op, TileAttr tile, StringRef name, int64_t rows) {
  const int64_t warps = tile.getWarps();
  if (rows % (16 * warps) != 0)
    return op->emitOpError() << "tile: " << name << " = " << rows
                             << " must be a positive multiple of 16 * warps (" << 16 * warps
                             << "): each warp owns whole 16-row mma tiles";
  if ((tile.getQkWgmma() || tile.getPvWgmma()) && rows != 16 * warps)
    return op->emitOpError() << "tile: " << (tile.getQkWgmma() ? "qk_wgmma" : "pv_wgmma")
                             << " needs one 16-row tile a warp (" << name
                             << " = 16 * warps, 64 rows a warpgroup), got " << name << " = "
                             << rows << ", warps = " << warps;
  return success();
}

static LogicalResult verifyTargetArch(Operation *op, TargetAttr target) {
  StringRef arch = target.getArch();
  if (!arch.starts_with("sm_"))
    return op->emitOpError() << "target arch '" << arch << "' is not of the form sm_XX[a]";
  int64_t smVersion = 0;
  if (arch.drop_front(3).take_while([](char c) { return isdigit(c); }).getAsInteger(10, smVersion) ||
      smVersion < 80)
    return op->emitOpError() << "target arch '" << arch
                             << "' is not supported: the sm80 tier needs sm_80 or newer";
  return success();
}

static LogicalResult verifySharedMemory(Operation *op, TileAttr tile, TargetAttr target,
                                        int64_t totalBytes) {
  if (totalBytes > target.getMaxSharedMemory())
    return op->emitOpError() << "tile m = " << tile.getM() << ", n = " << tile.getN()
                             << ", stages = " << tile.getStages() << " needs " << totalBytes
                             << " bytes of shared memory, more than the "
                             << target.getMaxSharedMemory() << " that target "
                             << target.getArch() << " allows per block";
  return success();
}

static int64_t headDimOf(Value tensor) {
  auto type = cast<MemRefType>(tensor.getType());
  return type.getDimSize(type.getRank() - 1);
}

// Attributes built in C++ (flash-gen, the runtime) skip the parser's check.
static LogicalResult verifyTileAttr(Operation *op, TileAttr tile) {
  return TileAttr::verify([&] { return op->emitOpError(); }, tile.getM(), tile.getN(),
                          tile.getWarps(), tile.getStages(), tile.getQkWgmma(),
                          tile.getPvWgmma(), tile.getWarpSpecialized(), tile.getPersistent(),
                          tile.getTmaStore());
}

static bool isAttentionElementType(Type t) { return t.isF16() || t.isBF16(); }

// Q, K, V, O: rank 4 [batch, seq, heads, dim] (packed varlen: rank 3 [total,
// heads, dim]), static last dim with unit stride.
static LogicalResult verifyOperand(Operation *op, StringRef name, MemRefType type, bool varlen,
                                   bool f32 = false) {
  const int64_t rank = varlen ? 3 : 4;
  if (type.getRank() != rank)
    return op->emitOpError() << name
                             << (varlen ? " must be a rank-3 memref [total, heads, dim] (packed, "
                                          "seqlens given), got "
                                        : " must be a rank-4 memref [batch, seq, heads, dim], got ")
                             << type;
  int64_t dim = type.getDimSize(rank - 1);
  if (ShapedType::isDynamic(dim))
    return op->emitOpError() << name << ": the head dimension must be static";
  if (dim % 8 != 0 || dim < 8 || dim > 256)
    return op->emitOpError() << name << ": head dim " << dim
                            << " is not supported (must be a multiple of 8 in [8, 256])";
  SmallVector<int64_t> strides;
  int64_t offset;
  if (failed(type.getStridesAndOffset(strides, offset)) || strides[rank - 1] != 1)
    return op->emitOpError() << name << ": the head dimension must be contiguous (stride 1)";
  if (f32 ? !type.getElementType().isF32() : !isAttentionElementType(type.getElementType()))
    return op->emitOpError() << name << ": element type must be "
                             << (f32 ? "f32" : "f16 or bf16") << ", got " << type.getElementType();
  return success();
}

// The window bounds come with mask = window and only then; the ALiBi slopes
// are [batch or 1, heads_q] f32.
static LogicalResult verifyScoreModifiers(Operation *op, MaskKind mask, Value windowLeft,
                                          Value windowRight, Value alibiSlopes) {
  bool window = mask == MaskKind::Window;
  if (window != static_cast<bool>(windowLeft) || window != static_cast<bool>(windowRight))
    return op->emitOpError("window(left, right) operands go with mask = window, and only then");
  if (alibiSlopes) {
    auto t = cast<MemRefType>(alibiSlopes.getType());
    if (t.getRank() != 2 || !t.getElementType().isF32())
      return op->emitOpError() << "alibi slopes must be a rank-2 f32 memref [batch or 1, heads], "
                                  "got "
                               << t;
  }
  return success();
}

// The probability, the seed and the offset come together.
static LogicalResult verifyDropout(Operation *op, Value p, Value seed, Value offset) {
  bool any = p || seed || offset;
  if (any && !(p && seed && offset))
    return op->emitOpError("dropout needs its probability, seed and offset");
  return success();
}

// Both prefix sums or neither, rank-1 i32; the row statistics (lse, delta)
// are [batch, heads, seq_q], or [heads, total_q] when packed.
static LogicalResult verifyVarlen(Operation *op, Value cuSeqlensQ, Value cuSeqlensK) {
  if (static_cast<bool>(cuSeqlensQ) != static_cast<bool>(cuSeqlensK))
    return op->emitOpError("seqlens needs both cu_seqlens_q and cu_seqlens_k");
  for (Value cu : {cuSeqlensQ, cuSeqlensK}) {
    if (!cu)
      continue;
    auto t = cast<MemRefType>(cu.getType());
    if (t.getRank() != 1 || !t.getElementType().isInteger(32))
      return op->emitOpError() << "cu_seqlens must be rank-1 i32 memrefs [batch + 1], got " << t;
  }
  return success();
}

// The lists of a block mask: counts [batches, heads, rows] and indices
// [batches, heads, rows, columns], i32; all of a group or none.
static LogicalResult verifyBlockMaskLists(Operation *op, StringRef group, Value counts,
                                          Value indices) {
  if (!counts && !indices)
    return success();
  if (!counts || !indices)
    return op->emitOpError() << group << " needs its counts and its indices";
  auto c = cast<MemRefType>(counts.getType()), i = cast<MemRefType>(indices.getType());
  if (c.getRank() != 3 || !c.getElementType().isInteger(32) || i.getRank() != 4 ||
      !i.getElementType().isInteger(32))
    return op->emitOpError() << group << ": counts must be a rank-3 and indices a rank-4 i32 "
                                         "memref, got "
                             << c << " and " << i;
  return success();
}

// A block mask (with its block sizes), not on packed sequences; the backward
// takes it with its transpose (block_mask_t), for the key-block kernels.
static LogicalResult verifyBlockMask(Operation *op, Value kvCounts, Value kvIndices, Value blockQ,
                                     Value blockK, Value qCounts, Value qIndices, bool varlen,
                                     bool backward) {
  if (failed(verifyBlockMaskLists(op, "block_mask", kvCounts, kvIndices)) ||
      failed(verifyBlockMaskLists(op, "block_mask_t", qCounts, qIndices)))
    return failure();
  if (!kvCounts && !qCounts)
    return success();
  if (!kvCounts || !blockQ || !blockK)
    return op->emitOpError("block_mask needs its lists and both block sizes");
  if (varlen)
    return op->emitOpError("block_mask is not available on packed sequences (seqlens)");
  if (backward && !qCounts)
    return op->emitOpError("the backward takes block_mask with its transpose, block_mask_t");
  return success();
}

static LogicalResult verifyRowStatistics(Operation *op, StringRef name, Value stats, bool varlen) {
  auto t = cast<MemRefType>(stats.getType());
  if (t.getRank() != (varlen ? 2 : 3) || !t.getElementType().isF32())
    return op->emitOpError() << name
                             << (varlen ? " must be a rank-2 f32 memref [heads, total_q], got "
                                        : " must be a rank-3 f32 memref [batch, heads, seq_q], got ")
                             << t;
  return success();
}

// The ops a modifier region may hold: what the kernel generator can inline
// element by element and (score_mod) differentiate.
static bool isModifierRegionOp(Operation &op) {
  return isa<YieldOp, arith::ConstantOp, arith::AddIOp, arith::SubIOp, arith::MulIOp,
             arith::DivSIOp, arith::RemSIOp, arith::MaxSIOp, arith::MinSIOp, arith::AddFOp,
             arith::SubFOp, arith::MulFOp, arith::DivFOp, arith::NegFOp, arith::MaxNumFOp,
             arith::MinNumFOp, arith::CmpIOp, arith::CmpFOp, arith::SelectOp, arith::SIToFPOp,
             arith::AndIOp, arith::OrIOp, arith::XOrIOp, math::TanhOp, math::ExpOp,
             math::Exp2Op, math::LogOp, math::Log2Op, math::SqrtOp, math::AbsFOp,
             math::AbsIOp>(op);
}

// score_mod: (f32, i32 x 4) -> f32; mask_mod: (i32 x 4) -> i1; one block of
// allowed ops on i1 / i32 / f32 values.
static LogicalResult verifyModifierRegion(Operation *op, Region &region, StringRef name,
                                          bool withScore) {
  if (region.empty())
    return success();
  if (!region.hasOneBlock())
    return op->emitOpError() << name << " must have one block";
  Block &block = region.front();
  Builder b(op->getContext());
  SmallVector<Type> expected;
  if (withScore)
    expected.push_back(b.getF32Type());
  expected.append(4, b.getI32Type());
  if (block.getArgumentTypes() != TypeRange(expected))
    return op->emitOpError() << name << " takes ("
                             << (withScore ? "%score: f32, " : "")
                             << "%b, %h, %q_idx, %kv_idx: i32)";
  auto scalar = [](Type t) { return t.isF32() || t.isInteger(32) || t.isInteger(1); };
  for (Operation &inner : block) {
    if (!isModifierRegionOp(inner))
      return inner.emitOpError() << "is not allowed in " << name
                                 << " (side-effect-free arith ops and math tanh, exp, exp2, log, "
                                    "log2, sqrt, absf, absi only)";
    for (Type t : inner.getResultTypes())
      if (!scalar(t))
        return inner.emitOpError() << "in " << name << ": results must be i1, i32 or f32, got "
                                   << t;
  }
  auto yield = dyn_cast<YieldOp>(block.getTerminator());
  if (!yield)
    return op->emitOpError() << name << " must end in flash.yield";
  Type want = withScore ? Type(b.getF32Type()) : Type(b.getI1Type());
  if (yield.getValue().getType() != want)
    return yield.emitOpError() << name << " yields " << want << ", not "
                               << yield.getValue().getType();
  return success();
}

static LogicalResult verifyModifierRegions(Operation *op, Region &scoreMod, Region &maskMod) {
  if (failed(verifyModifierRegion(op, scoreMod, "score_mod", /*withScore=*/true)))
    return failure();
  return verifyModifierRegion(op, maskMod, "mask_mod", /*withScore=*/false);
}

int64_t AttentionOp::getHeadDimQK() { return headDimOf(getQuery()); }
int64_t AttentionOp::getHeadDimV() { return headDimOf(getValue()); }
Type AttentionOp::getElementType() { return cast<MemRefType>(getQuery().getType()).getElementType(); }

LogicalResult AttentionOp::verify() {
  auto q = cast<MemRefType>(getQuery().getType());
  auto k = cast<MemRefType>(getKey().getType());
  auto v = cast<MemRefType>(getValue().getType());
  auto o = cast<MemRefType>(getOutput().getType());
  if (failed(verifyVarlen(*this, getCuSeqlensQ(), getCuSeqlensK())))
    return failure();
  const bool varlen = static_cast<bool>(getCuSeqlensQ());
  if (failed(verifyOperand(*this, "query", q, varlen)) ||
      failed(verifyOperand(*this, "key", k, varlen)) ||
      failed(verifyOperand(*this, "value", v, varlen)) ||
      failed(verifyOperand(*this, "output", o, varlen)))
    return failure();
  const int64_t headDim = q.getRank() - 1;
  if (k.getElementType() != q.getElementType() || v.getElementType() != q.getElementType() ||
      o.getElementType() != q.getElementType())
    return emitOpError("query, key, value and output must have the same element type");
  if (k.getDimSize(headDim) != q.getDimSize(headDim))
    return emitOpError() << "key head dim " << k.getDimSize(headDim)
                         << " differs from query head dim " << q.getDimSize(headDim);
  if (o.getDimSize(headDim) != v.getDimSize(headDim))
    return emitOpError() << "output head dim " << o.getDimSize(headDim)
                         << " differs from value head dim " << v.getDimSize(headDim);
  if (Value lse = getLse())
    if (failed(verifyRowStatistics(*this, "lse", lse, varlen)))
      return failure();
  if (failed(verifyBlockMask(*this, getKvCounts(), getKvIndices(), getBlockQ(), getBlockK(),
                             Value(), Value(), varlen, /*backward=*/false)))
    return failure();
  if (getPackGqa() && (getAlibiSlopes() || !getScoreMod().empty() || !getMaskMod().empty() ||
                       getDropoutP() || varlen || getKvCounts()))
    return emitOpError("pack_gqa: not with alibi, score_mod / mask_mod, dropout, seqlens or "
                       "block_mask (their data is per head or per row)");
  if (getDeriveBlockMask() && (!getKvCounts() || varlen || getPackGqa()))
    return emitOpError("derive_block_mask: needs block_mask (the lists it writes), not with "
                       "seqlens or pack_gqa");
  if (failed(verifyScoreModifiers(*this, getMask(), getWindowLeft(), getWindowRight(),
                                  getAlibiSlopes())) ||
      failed(verifyDropout(*this, getDropoutP(), getDropoutSeed(), getDropoutOffset())) ||
      failed(verifyModifierRegions(*this, getScoreMod(), getMaskMod())))
    return failure();

  TileAttr tile = getTile();
  if (failed(verifyTileAttr(*this, tile)))
    return failure();
  if (failed(verifyOwnedRows(*this, tile, "m", tile.getM())) ||
      failed(verifyTargetArch(*this, getTarget())))
    return failure();
  StringRef arch = getTarget().getArch();

  if (tile.getPvWgmma() && arch != "sm_90a")
    return emitOpError() << "tile: pv_wgmma needs target sm_90a (wgmma), not " << arch;
  if (tile.getQkWgmma()) {
    if (arch != "sm_90a")
      return emitOpError() << "tile: qk_wgmma needs target sm_90a (wgmma), not " << arch;
    if (getHeadDimQK() % 16 != 0)
      return emitOpError() << "tile: qk_wgmma needs a Q/K head dim that is a multiple of 16 "
                              "(the wgmma k-step), got "
                           << getHeadDimQK();
  }
  // Three consumer warpgroups get 160 registers a thread (KernelABI.h): a
  // 64 x 256 O accumulator alone would take 128 of them.
  // (ptxas also caps one instruction at the 128 registers a thread of the
  // block's entry share: the 64 x n score wgmma needs n / 2 of them.)
  if (tile.getWarpSpecialized() && tile.getWarps() == 12 &&
      std::max(getHeadDimQK(), getHeadDimV()) > 128)
    return emitOpError() << "tile: three consumer warpgroups (warps = 12) hold O and S in 160 "
                            "registers a thread, so head dims up to 128; got "
                         << std::max(getHeadDimQK(), getHeadDimV());
  if (tile.getWarpSpecialized() && tile.getWarps() == 12 && tile.getN() > 192)
    return emitOpError() << "tile: three consumer warpgroups (warps = 12) take n <= 192 (the "
                            "scores' wgmma may use 128 registers a thread), got n = "
                         << tile.getN();
  int64_t elementBytes = q.getElementType().getIntOrFloatBitWidth() / 8;
  SharedMemoryLayout layout = getSharedMemoryLayout();
  if (tile.getTmaStore()) {
    if (varlen || getPackGqa() || getDeriveBlockMask())
      return emitOpError("tile: tma_store is not available with seqlens, pack_gqa or "
                         "derive_block_mask (their rows are not one box of the output)");
    if (tile.getM() * layout.paddedHeadDimV * elementBytes > layout.queryTileBytes)
      return emitOpError() << "tile: tma_store stages O where Q was, which needs d_v <= d_qk "
                              "(padded to 64), got d_qk "
                           << getHeadDimQK() << ", d_v " << getHeadDimV();
  }
  if (getDeriveBlockMask())
    return success(); // the lists kernel holds no tile in shared memory
  return verifySharedMemory(*this, tile, getTarget(), layout.totalBytes);
}

SharedMemoryLayout AttentionOp::getSharedMemoryLayout() {
  TileAttr tile = getTile();
  return SharedMemoryLayout::computeForward(
      getHeadDimQK(), getHeadDimV(), getElementType().getIntOrFloatBitWidth() / 8, tile.getM(),
      tile.getN(), tile.getStages(), tile.getQkWgmma(), tile.getPvWgmma(),
      tile.getWarpSpecialized(), tile.getPersistent(), getTarget().getMaxSharedMemory());
}

int64_t AttentionBwdOp::getHeadDimQK() { return headDimOf(getQuery()); }
int64_t AttentionBwdOp::getHeadDimV() { return headDimOf(getValue()); }
Type AttentionBwdOp::getElementType() { return cast<MemRefType>(getQuery().getType()).getElementType(); }

LogicalResult AttentionBwdOp::verify() {
  auto type = [](Value x) { return cast<MemRefType>(x.getType()); };
  auto q = type(getQuery());
  if (failed(verifyVarlen(*this, getCuSeqlensQ(), getCuSeqlensK())))
    return failure();
  const bool varlen = static_cast<bool>(getCuSeqlensQ());
  if (failed(verifyOperand(*this, "query", q, varlen)) ||
      failed(verifyOperand(*this, "value", type(getValue()), varlen)))
    return failure();
  const int64_t dQK = getHeadDimQK(), dV = getHeadDimV();
  struct Named { StringRef name; Value value; int64_t headDim; };
  SmallVector<Named> tensors = {{"key", getKey(), dQK},
                                {"output", getOutput(), dV},
                                {"grad_output", getGradOutput(), dV}};
  if (getGradQuery())
    tensors.push_back({"grad_query", getGradQuery(), dQK});
  if (getGradKey())
    tensors.push_back({"grad_key", getGradKey(), dQK});
  if (getGradValue())
    tensors.push_back({"grad_value", getGradValue(), dV});
  if (getGradQueryAccum())
    tensors.push_back({"dq_accum", getGradQueryAccum(), dQK});
  for (const Named &t : tensors) {
    const bool accumulator = t.name == "dq_accum";
    if (failed(verifyOperand(*this, t.name, type(t.value), varlen, accumulator)))
      return failure();
    if (!accumulator && type(t.value).getElementType() != q.getElementType())
      return emitOpError() << t.name << " must have the element type of query ("
                           << q.getElementType() << ")";
    if (headDimOf(t.value) != t.headDim)
      return emitOpError() << t.name << ": head dim " << headDimOf(t.value) << " differs from "
                           << t.headDim;
  }
  for (auto [name, value] : {std::pair<StringRef, Value>{"lse", getLse()}, {"delta", getDelta()}})
    if (failed(verifyRowStatistics(*this, name, value, varlen)))
      return failure();
  bool dq = static_cast<bool>(getGradQuery()), dk = static_cast<bool>(getGradKey()),
       dv = static_cast<bool>(getGradValue()), accum = static_cast<bool>(getGradQueryAccum());
  // One kernel per op: which gradients it writes says which.
  const bool keyBlocks = dk || dv;
  if (keyBlocks && (dq || (accum && !dk)))
    return emitOpError("writes either grad_query (the query-block kernel), grad_key and/or "
                       "grad_value (the key-block kernel, with dq_accum only when it writes "
                       "grad_key), dq from dq_accum, or no gradient (delta, and dq_accum "
                       "zeroed where given)");
  if (failed(verifyBlockMask(*this, getKvCounts(), getKvIndices(), getBlockQ(), getBlockK(),
                             getQCounts(), getQIndices(), varlen, /*backward=*/true)))
    return failure();
  // The delta and conversion kernels: no attention math, no shared memory.
  if (!keyBlocks && (!dq || accum)) {
    if (getKvCounts())
      return emitOpError("the delta and dQ conversion kernels take no block_mask");
    if (getTile().getWarpSpecialized() || getTile().getPersistent() || getTile().getTmaStore())
      return emitOpError("tile: the delta and dQ conversion kernels have no warp_specialized, "
                         "persistent or tma_store form (every warp reads and writes rows)");
    return verifyTargetArch(*this, getTarget());
  }
  if (failed(verifyScoreModifiers(*this, getMask(), getWindowLeft(), getWindowRight(),
                                  getAlibiSlopes())) ||
      failed(verifyDropout(*this, getDropoutP(), getDropoutSeed(), getDropoutOffset())) ||
      failed(verifyModifierRegions(*this, getScoreMod(), getMaskMod())))
    return failure();

  TileAttr tile = getTile();
  if (failed(verifyTileAttr(*this, tile)))
    return failure();
  if (tile.getTmaStore())
    return emitOpError("tile: the backward kernels have no tma_store form (gradients are "
                       "stored by the threads)");
  if (tile.getPersistent() && dq)
    return emitOpError("tile: the dQ kernel has no persistent form (only the key-block "
                       "kernels walk many tiles a block)");
  if (tile.getWarpSpecialized() && tile.getWarps() > 8)
    return emitOpError() << "tile: the warp-specialized backward takes one or two consumer "
                            "warpgroups (warps = 4 or 8), got warps = "
                         << tile.getWarps();
  const int64_t ownedRows = dq ? tile.getM() : tile.getN();
  const int64_t streamedRows = dq ? tile.getN() : tile.getM();
  if (failed(verifyOwnedRows(*this, tile, dq ? "m" : "n", ownedRows)) ||
      failed(verifyTargetArch(*this, getTarget())))
    return failure();
  const bool wgmma = tile.getQkWgmma() || tile.getPvWgmma();
  if (accum && !wgmma)
    return emitOpError("dq_accum: the key-block kernel adds dQ only on the wgmma tile "
                       "(qk_wgmma and pv_wgmma, sm_90a)");
  if (wgmma) {
    // Every tile is read by some wgmma (K-major by one product, N-major by
    // another), so both switches go together.
    if (!(tile.getQkWgmma() && tile.getPvWgmma()))
      return emitOpError("tile: the backward kernels take qk_wgmma and pv_wgmma together "
                         "(each shared tile feeds both kinds of product)");
    StringRef arch = getTarget().getArch();
    if (arch != "sm_90a")
      return emitOpError() << "tile: qk_wgmma needs target sm_90a (wgmma), not " << arch;
    if (dQK % 16 != 0 || dV % 16 != 0)
      return emitOpError() << "tile: the wgmma backward needs head dims that are multiples of "
                              "16 (the k-step of Q Kᵀ and dO Vᵀ), got "
                           << dQK << " and " << dV;
    if (streamedRows > 256)
      return emitOpError() << "tile: " << (dq ? "n" : "m") << " = " << streamedRows
                           << " exceeds 256, the widest wgmma";
    // The warpgroups share the step's dQᵀ by 64-row head-dim chunks, or
    // else by queries (wgmma n, a multiple of 8).
    const int64_t warpgroups = tile.getWarps() / 4, chunks = (dQK + 63) / 64;
    if (accum && chunks % warpgroups != 0 && streamedRows % (8 * warpgroups) != 0)
      return emitOpError() << "tile: dq_accum with " << warpgroups
                           << " warpgroups and head dim " << dQK << " needs m a multiple of "
                           << 8 * warpgroups << " (each takes a share of the queries), got "
                           << streamedRows;
  }
  auto layout = SharedMemoryLayout::computeBackward(
      dQK, dV, q.getElementType().getIntOrFloatBitWidth() / 8, ownedRows, streamedRows,
      tile.getStages(), wgmma, accum, tile.getWarpSpecialized(),
      /*stagedRowStats=*/tile.getWarpSpecialized() && keyBlocks, tile.getPersistent());
  return verifySharedMemory(*this, tile, getTarget(), layout.totalBytes);
}
