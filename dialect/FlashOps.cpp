//===- FlashOps.cpp - flash op and attribute verifiers --------------------===//
#include "dialect/FlashDialect.h"
#include "dialect/SharedMemoryLayout.h"

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
                               bool persistent) {
  if (warps < 1 || warps > 16)
    return emitError() << "tile: warps must be in [1, 16], got " << warps;
  if (m < 16 || m % (16 * warps) != 0)
    return emitError() << "tile: m = " << m << " must be a positive multiple of 16 * warps ("
                       << 16 * warps << "): each warp owns whole 16-row mma tiles";
  if (n < 16 || n % 16 != 0 || n > 256)
    return emitError() << "tile: n = " << n
                       << " must be a multiple of 16 in [16, 256] (the P·V mma k-step is 16)";
  if (stages < 1 || stages > 8)
    return emitError() << "tile: stages must be in [1, 8], got " << stages;
  if ((qkWgmma || pvWgmma) && (warps % 4 != 0 || m != 16 * warps))
    return emitError() << "tile: " << (qkWgmma ? "qk_wgmma" : "pv_wgmma")
                       << " needs whole warpgroups with one 16-row tile a warp "
                          "(warps a multiple of 4 and m = 16 * warps), got m = "
                       << m << ", warps = " << warps;
  if (warpSpecialized && !(qkWgmma && pvWgmma))
    return emitError() << "tile: warp_specialized needs qk_wgmma and pv_wgmma (its consumers "
                          "run both GEMMs on wgmma)";
  if (persistent && !warpSpecialized)
    return emitError() << "tile: persistent needs warp_specialized (only that kernel walks "
                          "several tiles a block)";
  if (warpSpecialized && warps != 8)
    return emitError() << "tile: warp_specialized needs warps = 8 (two consumer warpgroups "
                          "sharing the register file with the producer: 24 + 2 x 240 per "
                          "thread), got "
                       << warps;
  if (warpSpecialized && stages < 2)
    return emitError() << "tile: warp_specialized needs stages >= 2 (a consumer holds K of one "
                          "block and V of the previous one)";
  return success();
}

static bool isAttentionElementType(Type t) { return t.isF16() || t.isBF16(); }

// Q, K, V, O: rank 4 [batch, seq, heads, dim], static last dim with unit stride.
static LogicalResult verifyOperand(AttentionOp op, StringRef name, MemRefType type) {
  if (type.getRank() != 4)
    return op.emitOpError() << name << " must be a rank-4 memref [batch, seq, heads, dim], got "
                            << type;
  int64_t dim = type.getDimSize(3);
  if (ShapedType::isDynamic(dim))
    return op.emitOpError() << name << ": the head dimension must be static";
  if (dim % 8 != 0 || dim < 8 || dim > 256)
    return op.emitOpError() << name << ": head dim " << dim
                            << " is not supported (must be a multiple of 8 in [8, 256])";
  SmallVector<int64_t> strides;
  int64_t offset;
  if (failed(type.getStridesAndOffset(strides, offset)) || strides[3] != 1)
    return op.emitOpError() << name << ": the head dimension must be contiguous (stride 1)";
  if (!isAttentionElementType(type.getElementType()))
    return op.emitOpError() << name << ": element type must be f16 or bf16, got "
                            << type.getElementType();
  return success();
}

int64_t AttentionOp::getHeadDimQK() {
  return cast<MemRefType>(getQuery().getType()).getDimSize(3);
}
int64_t AttentionOp::getHeadDimV() {
  return cast<MemRefType>(getValue().getType()).getDimSize(3);
}
Type AttentionOp::getElementType() {
  return cast<MemRefType>(getQuery().getType()).getElementType();
}

LogicalResult AttentionOp::verify() {
  auto q = cast<MemRefType>(getQuery().getType());
  auto k = cast<MemRefType>(getKey().getType());
  auto v = cast<MemRefType>(getValue().getType());
  auto o = cast<MemRefType>(getOutput().getType());
  if (failed(verifyOperand(*this, "query", q)) || failed(verifyOperand(*this, "key", k)) ||
      failed(verifyOperand(*this, "value", v)) || failed(verifyOperand(*this, "output", o)))
    return failure();
  if (k.getElementType() != q.getElementType() || v.getElementType() != q.getElementType() ||
      o.getElementType() != q.getElementType())
    return emitOpError("query, key, value and output must have the same element type");
  if (k.getDimSize(3) != q.getDimSize(3))
    return emitOpError() << "key head dim " << k.getDimSize(3) << " differs from query head dim "
                         << q.getDimSize(3);
  if (o.getDimSize(3) != v.getDimSize(3))
    return emitOpError() << "output head dim " << o.getDimSize(3)
                         << " differs from value head dim " << v.getDimSize(3);
  if (Value lse = getLse()) {
    auto l = cast<MemRefType>(lse.getType());
    if (l.getRank() != 3 || !l.getElementType().isF32())
      return emitOpError() << "lse must be a rank-3 f32 memref [batch, heads, seq_q], got " << l;
  }

  TileAttr tile = getTile();
  // Attributes built in C++ (flash-gen, the runtime) skip the parser's check.
  if (failed(TileAttr::verify([&] { return emitOpError(); }, tile.getM(), tile.getN(),
                              tile.getWarps(), tile.getStages(), tile.getQkWgmma(),
                              tile.getPvWgmma(), tile.getWarpSpecialized(),
                              tile.getPersistent())))
    return failure();
  StringRef arch = getTarget().getArch();
  if (!arch.starts_with("sm_"))
    return emitOpError() << "target arch '" << arch << "' is not of the form sm_XX[a]";
  int64_t smVersion = 0;
  if (arch.drop_front(3).take_while([](char c) { return isdigit(c); }).getAsInteger(10, smVersion) ||
      smVersion < 80)
    return emitOpError() << "target arch '" << arch
                         << "' is not supported: the sm80 tier needs sm_80 or newer";

  if (tile.getPvWgmma() && arch != "sm_90a")
    return emitOpError() << "tile: pv_wgmma needs target sm_90a (wgmma), not " << arch;
  if (tile.getQkWgmma()) {
    if (arch != "sm_90a")
      return emitOpError() << "tile: qk_wgmma needs target sm_90a (wgmma), not " << arch;
    if (q.getDimSize(3) % 16 != 0)
      return emitOpError() << "tile: qk_wgmma needs a Q/K head dim that is a multiple of 16 "
                              "(the wgmma k-step), got "
                           << q.getDimSize(3);
  }
  int64_t elementBytes = q.getElementType().getIntOrFloatBitWidth() / 8;
  auto layout = SharedMemoryLayout::compute(q.getDimSize(3), v.getDimSize(3), elementBytes,
                                            tile.getM(), tile.getN(), tile.getStages(),
                                            tile.getQkWgmma(), tile.getPvWgmma(),
                                            tile.getWarpSpecialized());
  if (layout.totalBytes > getTarget().getMaxSharedMemory())
    return emitOpError() << "tile m = " << tile.getM() << ", n = " << tile.getN()
                         << ", stages = " << tile.getStages() << " needs " << layout.totalBytes
                         << " bytes of shared memory, more than the "
                         << getTarget().getMaxSharedMemory() << " that target " << arch
                         << " allows per block";
  return success();
}
