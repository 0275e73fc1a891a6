//===- BlockMasks.h - user-given block masks: checks, tiles, parameters -*- C++ -*-===//
#ifndef FLASHJIT_RUNTIME_BLOCKMASKS_H
#define FLASHJIT_RUNTIME_BLOCKMASKS_H

#include "compiler/KernelABI.h"
#include "runtime/CudaDriver.h"
#include "runtime/flashjit.h"

namespace flashjit {

/// The fields of a normalized request's block mask (sizes, shapes,
/// pointers); `backward` also needs the transposed lists. No GPU needed.
Status validateBlockMask(const AttentionParams &p, bool backward);

/// Unless the mask is trusted: copies the lists to the host (after
/// `stream`'s work) and checks counts, indices (ascending, in range) and,
/// for the backward, that the transpose lists the same blocks.
Status checkBlockMaskLists(const CudaDriver &driver, const AttentionParams &p, bool backward,
                           CUstream stream);

/// Makes a tile's m divide blockQ and its n divide blockK (a tile's rows
/// must lie in one block row): the streamed side (keys of the forward and
/// the dQ kernel, queries of the key-block kernels) is narrowed to the
/// largest multiple of 16 that divides its block; the side the warps own is
/// not, nor a tile the caller gave (`given`): those are errors.
Status fitTileToBlockMask(TileConfig &tile, KernelKind kind, const BlockMask &mask, bool given);

abi::BlockMaskParams blockMaskParamsOf(const AttentionParams &p);

// Lists derived from a mask_mod (KernelKind::ForwardBlockLists): one list a
// query block, shared by every batch / head when the expression reads no b /
// h; counts then (256-byte aligned) indices in one device buffer.

/// The lists' shape for blocks of blockQ x blockK (pointers left null).
abi::BlockMaskParams derivedBlockMaskShape(const AttentionParams &p, int64_t blockQ,
                                           int64_t blockK);
/// Bytes of counts and indices, and where the indices start.
size_t derivedBlockMaskBytes(const abi::BlockMaskParams &shape);
size_t derivedBlockMaskIndicesOffset(const abi::BlockMaskParams &shape);
/// Whether a normalized forward request's spec gets derived lists: a
/// mask_mod, no block mask of the caller's, not varlen or packed, not turned
/// off (AttentionParams::maskModBlockLists), lists under kMaxDerivedBlockMaskBytes.
bool derivesBlockMask(const AttentionSpec &spec, const AttentionParams &p);
/// Beyond this the forward runs without lists (its ranges trimmed at the
/// ends only) rather than allocate them per call.
constexpr size_t kMaxDerivedBlockMaskBytes = size_t(256) << 20;

} // namespace flashjit

#endif
