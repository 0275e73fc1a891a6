//===- TensorMaps.cpp -----------------------------------------------------===//
#include "runtime/TensorMaps.h"

#include <algorithm>
#include <string>

namespace flashjit {

namespace {

// A tiled, 128-byte-swizzled map of `rank` dims (innermost first): extents,
// byte strides of dims 1.. and the box. Empty dims still need extent 1
// (nothing is read then); a dim of extent 1 never steps, so any legal stride
// will do for it.
Status encodeTiled(const CudaDriver &driver, const char *name, DType dtype, const void *base,
                   int rank, const int64_t *extents, const int64_t *byteStrides,
                   const uint32_t *box, abi::TensorMap &out) {
  static_assert(sizeof(abi::TensorMap) == sizeof(CUtensorMap), "tensor map size");
  cuuint64_t dims[5], strides[4];
  cuuint32_t boxDims[5], elementStrides[5];
  int64_t any = 16;
  for (int i = 0; i + 1 < rank; ++i)
    any = std::max(any, byteStrides[i]);
  for (int i = 0; i < rank; ++i) {
    dims[i] = cuuint64_t(std::max<int64_t>(extents[i], 1));
    boxDims[i] = box[i];
    elementStrides[i] = 1;
  }
  for (int i = 0; i + 1 < rank; ++i)
    strides[i] = cuuint64_t(dims[i + 1] == 1 || byteStrides[i] == 0 ? any : byteStrides[i]);
  CUresult r = driver.cuTensorMapEncodeTiled(
      reinterpret_cast<CUtensorMap *>(&out),
      dtype == DType::BF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
      cuuint32_t(rank), const_cast<void *>(base), dims, strides, boxDims, elementStrides,
      CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
      CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    return Status::error(driver.describe("cuTensorMapEncodeTiled", r) + " for " + name +
                         " (TMA needs 16-byte aligned base and strides below 2^40 bytes)");
  return Status::ok();
}

// [dim, seq, heads, batch] in boxes of 64 columns by boxRows rows.
Status encode(const CudaDriver &driver, const char *name, DType dtype, const void *base,
              int64_t headDim, int64_t seq, int64_t heads, int64_t batch, const int64_t stride[3],
              int64_t boxRows, abi::TensorMap &out) {
  const int64_t elementBytes = 2;
  const int64_t extents[4] = {headDim, seq, heads, batch};
  const int64_t bytes[3] = {stride[1] * elementBytes, stride[2] * elementBytes,
                            stride[0] * elementBytes};
  const uint32_t box[4] = {uint32_t(abi::kTensorMapBoxColumns), uint32_t(boxRows), 1, 1};
  return encodeTiled(driver, name, dtype, base, 4, extents, bytes, box, out);
}

// Packed GQA Q: [dim, group, seq, heads_k, batch], a box of the whole group
// for ⌊m / group⌋ queries.
Status encodePackedQuery(const CudaDriver &driver, const AttentionParams &p, int64_t m,
                         abi::TensorMap &out) {
  const int64_t group = p.headsQ / p.headsK, elementBytes = 2;
  const int64_t extents[5] = {p.headDimQK, group, p.seqQ, p.headsK, p.batch};
  const int64_t bytes[4] = {p.qStride[2] * elementBytes, p.qStride[1] * elementBytes,
                            group * p.qStride[2] * elementBytes, p.qStride[0] * elementBytes};
  const uint32_t box[5] = {uint32_t(abi::kTensorMapBoxColumns), uint32_t(group),
                           uint32_t(abi::packedTileQueries(m, group)), 1, 1};
  return encodeTiled(driver, "q (packed GQA)", p.dtype, p.q, 5, extents, bytes, box, out);
}

} // namespace

bool outputSuitsTmaStores(const AttentionParams &p) {
  if (reinterpret_cast<uintptr_t>(p.o) % 16 != 0)
    return false;
  for (int i = 0; i < 3; ++i)
    if (p.oStride[i] % 8 != 0) // 2-byte elements
      return false;
  return true;
}

namespace {

// Rows and batches of the maps: packed (varlen) tensors are one batch of all
// rows; the kernel adds the sequence's first row to the row coordinate.
struct MapExtents {
  int64_t rowsQ, rowsK, batch;
};
MapExtents mapExtents(const AttentionParams &p) {
  const bool packed = p.varlen();
  return {packed ? p.totalQ : p.seqQ, packed ? p.totalK : p.seqK, packed ? 1 : p.batch};
}

Status checkDriver(const CudaDriver &driver) {
  if (!driver.cuTensorMapEncodeTiled)
    return Status::error("the CUDA driver lacks cuTensorMapEncodeTiled (needed by the "
                         "warp-specialized Hopper kernels; CUDA 12 or newer)");
  return Status::ok();
}

// K and V in boxes of tile.n rows, into maps[1] and maps[2].
Status encodeKeyValue(const CudaDriver &driver, const AttentionParams &p, const TileConfig &tile,
                      abi::TensorMap maps[abi::kNumTensorMaps]) {
  const MapExtents x = mapExtents(p);
  if (Status s = encode(driver, "k", p.dtype, p.k, p.headDimQK, x.rowsK, p.headsK, x.batch,
                        p.kStride, tile.n, maps[1]);
      !s)
    return s;
  return encode(driver, "v", p.dtype, p.v, p.headDimV, x.rowsK, p.headsK, x.batch, p.vStride,
                tile.n, maps[2]);
}

} // namespace

Status encodeTensorMaps(const CudaDriver &driver, const AttentionParams &p,
                        const TileConfig &tile, bool packGQA,
                        abi::TensorMap maps[abi::kNumTensorMaps]) {
  if (Status s = checkDriver(driver); !s)
    return s;
  const MapExtents x = mapExtents(p);
  Status query = packGQA ? encodePackedQuery(driver, p, tile.m, maps[0])
                         : encode(driver, "q", p.dtype, p.q, p.headDimQK, x.rowsQ, p.headsQ,
                                  x.batch, p.qStride, tile.m, maps[0]);
  if (!query)
    return query;
  if (Status s = encodeKeyValue(driver, p, tile, maps); !s)
    return s;
  if (!tile.tmaStore) // (the kernel stores O thread by thread)
    return Status::ok();
  return encode(driver, "o", p.dtype, p.o, p.headDimV, x.rowsQ, p.headsQ, x.batch, p.oStride,
                abi::kTensorMapOutputRows, maps[3]);
}

Status encodeBackwardTensorMaps(const CudaDriver &driver, const AttentionBackwardParams &p,
                                const TileConfig &tile, abi::TensorMap maps[abi::kNumTensorMaps]) {
  if (Status s = checkDriver(driver); !s)
    return s;
  // With no queries (or no keys) that side's pointers may be null; its maps
  // are never read then, but need some 16-byte aligned address.
  AttentionParams f = p.forward;
  const void *dO = p.dO;
  const void *any = f.q ? f.q : f.k ? f.k : f.v ? f.v : dO;
  for (const void **side : {&f.q, &f.k, &f.v, &dO})
    if (!*side)
      *side = any;
  const MapExtents x = mapExtents(f);
  if (Status s = encode(driver, "q", f.dtype, f.q, f.headDimQK, x.rowsQ, f.headsQ, x.batch,
                        f.qStride, tile.m, maps[0]);
      !s)
    return s;
  if (Status s = encodeKeyValue(driver, f, tile, maps); !s)
    return s;
  return encode(driver, "do", f.dtype, dO, f.headDimV, x.rowsQ, f.headsQ, x.batch, p.dOStride,
                tile.m, maps[3]);
}

} // namespace flashjit
