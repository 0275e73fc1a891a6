//===- BlockMasks.cpp - user-given block masks: checks, tiles, parameters -===//
//
// The kernels trust a block mask's lists: a count past the row or an index
// past the blocks would read K/V (or Q/dO) rows that are not there, a
// repeated index would count a block twice. The lists live on the device,
// so checking them costs a copy after the caller's stream work (skipped for
// trusted masks, e.g. ones the Python package built and checked itself).
//
#include "runtime/BlockMasks.h"

#include "compiler/ModifierExpression.h"

#include <limits>
#include <string>
#include <vector>

namespace flashjit {

namespace {

bool aligned4(const void *p) { return reinterpret_cast<uintptr_t>(p) % 4 == 0; }

std::string blockName(bool keyRows) { return keyRows ? "key block" : "query block"; }

Status copyToHost(const CudaDriver &d, const int32_t *device, size_t count,
                  std::vector<int32_t> &host, const char *what) {
  host.resize(count);
  if (count == 0)
    return Status::ok();
  const std::string action = std::string("copying the block mask's ") + what + " to the host";
  return d.check(action.c_str(), d.cuMemcpyDtoH(host.data(), reinterpret_cast<CUdeviceptr>(device),
                                count * sizeof(int32_t)));
}

// One direction's lists: `rows` rows a head, `columns` blocks a row. Fills
// `dense` ([mask][row][column], 1 where listed) for the transpose check.
Status checkLists(const std::vector<int32_t> &counts, const std::vector<int32_t> &indices,
                  int64_t masks, int64_t rows, int64_t columns, bool keyRows,
                  std::vector<uint8_t> &dense) {
  const char *countsName = keyRows ? "qCounts" : "kvCounts";
  dense.assign(size_t(masks * rows * columns), 0);
  for (int64_t r = 0; r < masks * rows; ++r) {
    const int32_t count = counts[size_t(r)];
    const std::string where = " of " + blockName(keyRows) + " " + std::to_string(r % rows) +
                              " (mask " + std::to_string(r / rows) + ")";
    if (count < 0 || count > columns)
      return Status::error(std::string("block mask: ") + countsName + " = " +
                           std::to_string(count) + where + " is outside [0, " +
                           std::to_string(columns) + "]");
    int64_t previous = -1;
    for (int32_t i = 0; i < count; ++i) {
      const int32_t index = indices[size_t(r * columns + i)];
      if (index <= previous || index >= columns)
        return Status::error("block mask: entry " + std::to_string(i) + " (" +
                             std::to_string(index) + ")" + where +
                             (index >= columns ? " is past the last " + blockName(!keyRows) +
                                                     " (" + std::to_string(columns - 1) + ")"
                                               : " does not ascend (lists are strictly "
                                                 "ascending)"));
      previous = index;
      dense[size_t(r * columns + index)] = 1;
    }
  }
  return Status::ok();
}

} // namespace

Status validateBlockMask(const AttentionParams &p, bool backward) {
  const BlockMask &m = p.blockMask;
  if (!m.present())
    return Status::ok();
  if (p.varlen())
    return Status::error("block mask: not available with packed sequences (cu_seqlens)");
  if (!m.kvCounts || !m.kvIndices)
    return Status::error("block mask: kvCounts and kvIndices must both be given");
  if (backward && (!m.qCounts || !m.qIndices))
    return Status::error("block mask: the backward needs the transposed lists too (qCounts, "
                         "qIndices)");
  for (const int32_t *list : {m.kvCounts, m.kvIndices, m.qCounts, m.qIndices})
    if (list && !aligned4(list))
      return Status::error("block mask: the lists must be 4-byte aligned int32");
  const int64_t limit = int64_t(1) << 20;
  if (m.blockQ < 16 || m.blockK < 16 || m.blockQ % 16 != 0 || m.blockK % 16 != 0 ||
      m.blockQ > limit || m.blockK > limit)
    return Status::error("block mask: block sizes must be multiples of 16 in [16, 2^20], got " +
                         std::to_string(m.blockQ) + " x " + std::to_string(m.blockK));
  if (m.batches != 1 && m.batches != p.batch)
    return Status::error("block mask: batches must be 1 (shared) or the batch (" +
                         std::to_string(p.batch) + "), got " + std::to_string(m.batches));
  if (m.heads != 1 && m.heads != p.headsQ)
    return Status::error("block mask: heads must be 1 (shared) or heads_q (" +
                         std::to_string(p.headsQ) + "), got " + std::to_string(m.heads));
  const int64_t entries = m.batches * m.heads * m.queryBlocks(p.seqQ) * m.keyBlocks(p.seqK);
  if (entries > std::numeric_limits<int32_t>::max())
    return Status::error("block mask: " + std::to_string(entries) +
                         " list entries exceed 2^31 - 1 (use larger blocks)");
  return Status::ok();
}

Status checkBlockMaskLists(const CudaDriver &d, const AttentionParams &p, bool backward,
                           CUstream stream) {
  const BlockMask &m = p.blockMask;
  if (!m.present() || m.trusted || p.batch == 0 || p.seqQ == 0 || p.seqK == 0)
    return Status::ok();
  if (Status s = d.check("synchronizing before reading the block mask",
                         d.cuStreamSynchronize(stream));
      !s)
    return s;
  const int64_t masks = m.batches * m.heads;
  const int64_t queryBlocks = m.queryBlocks(p.seqQ), keyBlocks = m.keyBlocks(p.seqK);
  // One direction's lists, copied and checked; `dense` as checkLists fills it.
  auto readAndCheck = [&](const int32_t *counts, const int32_t *indices, int64_t rows,
                          int64_t columns, bool keyRows, std::vector<uint8_t> &dense) {
    std::vector<int32_t> hostCounts, hostIndices;
    if (Status s = copyToHost(d, counts, size_t(masks * rows), hostCounts,
                              keyRows ? "qCounts" : "kvCounts");
        !s)
      return s;
    if (Status s = copyToHost(d, indices, size_t(masks * rows * columns), hostIndices,
                              keyRows ? "qIndices" : "kvIndices");
        !s)
      return s;
    return checkLists(hostCounts, hostIndices, masks, rows, columns, keyRows, dense);
  };
  std::vector<uint8_t> kvDense, qDense;
  if (Status s = readAndCheck(m.kvCounts, m.kvIndices, queryBlocks, keyBlocks, false, kvDense);
      !s)
    return s;
  if (!backward)
    return Status::ok();
  if (Status s = readAndCheck(m.qCounts, m.qIndices, keyBlocks, queryBlocks, true, qDense); !s)
    return s;
  for (int64_t x = 0; x < masks; ++x)
    for (int64_t r = 0; r < queryBlocks; ++r)
      for (int64_t c = 0; c < keyBlocks; ++c)
        if (kvDense[size_t((x * queryBlocks + r) * keyBlocks + c)] !=
            qDense[size_t((x * keyBlocks + c) * queryBlocks + r)])
          return Status::error("block mask: the transposed lists disagree with kvIndices at "
                               "query block " + std::to_string(r) + ", key block " +
                               std::to_string(c) + " (mask " + std::to_string(x) + ")");
  return Status::ok();
}

Status fitTileToBlockMask(TileConfig &t, KernelKind kind, const BlockMask &m, bool given) {
  if (!m.present())
    return Status::ok();
  // Key-block kernels own n key rows and stream m query rows; the others
  // own m query rows and stream n keys.
  const bool keyRows = kind != KernelKind::Forward && !isQueryBlockKind(kind);
  // A default or tuned wgmma tile of several warpgroups (64 owned rows
  // each) takes fewer where the blocks are multiples of fewer: three (192
  // rows) become two where they are multiples of 128, two one where of 64.
  int64_t &owned = keyRows ? t.n : t.m;
  const int64_t ownedBlock = keyRows ? m.blockK : m.blockQ;
  while (!given && t.qkWgmma && t.warps > 4 && owned == 16 * t.warps && ownedBlock % owned != 0 &&
         ownedBlock % 64 == 0) {
    t.warps -= 4;
    owned = 16 * t.warps;
  }
  int64_t &streamed = keyRows ? t.m : t.n;
  const int64_t streamedBlock = keyRows ? m.blockQ : m.blockK;
  if (!given && streamedBlock % streamed != 0)
    for (int64_t rows = streamed / 16 * 16; rows >= 16; rows -= 16)
      if (streamedBlock % rows == 0) {
        streamed = rows;
        break;
      }
  if (m.blockQ % t.m != 0 || m.blockK % t.n != 0)
    return Status::error("block mask: blocks of " + std::to_string(m.blockQ) + " x " +
                         std::to_string(m.blockK) + " are not multiples of the " +
                         kernelKindName(kind) + " tile " + tileName(t) + " (m | block_q and n | "
                         "block_k); use blocks that are multiples of 128" +
                         (given ? " or another tile" : ""));
  return Status::ok();
}

abi::BlockMaskParams derivedBlockMaskShape(const AttentionParams &p, int64_t blockQ,
                                           int64_t blockK) {
  std::string error;
  ModifierTree mask = parseModifier(p.maskMod ? p.maskMod : "", ModifierKind::Mask, error);
  abi::BlockMaskParams k;
  k.blockQ = int32_t(blockQ);
  k.blockK = int32_t(blockK);
  k.queryBlocks = int32_t((p.seqQ + blockQ - 1) / blockQ);
  k.keyBlocks = int32_t((p.seqK + blockK - 1) / blockK);
  k.batches = modifierReads(mask, "b") ? int32_t(p.batch) : 1;
  k.heads = modifierReads(mask, "h") ? int32_t(p.headsQ) : 1;
  return k;
}

static size_t listRows(const abi::BlockMaskParams &k) {
  return size_t(k.batches) * size_t(k.heads) * size_t(k.queryBlocks);
}

size_t derivedBlockMaskIndicesOffset(const abi::BlockMaskParams &k) {
  return (listRows(k) * sizeof(int32_t) + 255) / 256 * 256;
}

size_t derivedBlockMaskBytes(const abi::BlockMaskParams &k) {
  return derivedBlockMaskIndicesOffset(k) + listRows(k) * size_t(k.keyBlocks) * sizeof(int32_t);
}

bool derivesBlockMask(const AttentionSpec &spec, const AttentionParams &p) {
  if (spec.maskMod.empty() || p.blockMask.present() || spec.varlen || spec.packGQA ||
      !p.maskModBlockLists)
    return false;
  // (The cap also keeps the kernels' i32 list offsets in range.)
  return derivedBlockMaskBytes(derivedBlockMaskShape(p, spec.tile.m, spec.tile.n)) <=
         kMaxDerivedBlockMaskBytes;
}

abi::BlockMaskParams blockMaskParamsOf(const AttentionParams &p) {
  abi::BlockMaskParams k;
  const BlockMask &m = p.blockMask;
  if (!m.present())
    return k;
  k.kvCounts = m.kvCounts;
  k.kvIndices = m.kvIndices;
  k.qCounts = m.qCounts;
  k.qIndices = m.qIndices;
  k.blockQ = int32_t(m.blockQ);
  k.blockK = int32_t(m.blockK);
  k.queryBlocks = int32_t(m.queryBlocks(p.seqQ));
  k.keyBlocks = int32_t(m.keyBlocks(p.seqK));
  k.batches = int32_t(m.batches);
  k.heads = int32_t(m.heads);
  return k;
}

} // namespace flashjit
