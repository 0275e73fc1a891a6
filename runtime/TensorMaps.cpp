//===- TensorMaps.cpp -----------------------------------------------------===//
#include "runtime/TensorMaps.h"

#include <algorithm>
#include <string>

namespace flashjit {

namespace {

Status encode(const CudaDriver &driver, const char *name, DType dtype, const void *base,
              int64_t headDim, int64_t seq, int64_t heads, int64_t batch, const int64_t stride[3],
              int64_t boxRows, abi::TensorMap &out) {
  static_assert(sizeof(abi::TensorMap) == sizeof(CUtensorMap), "tensor map size");
  const int64_t elementBytes = 2;
  // Innermost first. Empty dims still need extent 1 (nothing is read then);
  // a dim of extent 1 never steps, so any legal stride will do for it.
  cuuint64_t dims[4] = {cuuint64_t(headDim), cuuint64_t(std::max<int64_t>(seq, 1)),
                        cuuint64_t(heads), cuuint64_t(std::max<int64_t>(batch, 1))};
  // strides[] of cuTensorMapEncodeTiled: bytes between steps of dims 1..3.
  const int64_t bytes[3] = {stride[1] * elementBytes, stride[2] * elementBytes,
                            stride[0] * elementBytes};
  const int64_t any = std::max<int64_t>({16, bytes[0], bytes[1], bytes[2]});
  cuuint64_t strides[3];
  for (int i = 0; i < 3; ++i)
    strides[i] = cuuint64_t(dims[i + 1] == 1 || bytes[i] == 0 ? any : bytes[i]);
  cuuint32_t box[4] = {cuuint32_t(abi::kTensorMapBoxColumns), cuuint32_t(boxRows), 1, 1};
  cuuint32_t elementStrides[4] = {1, 1, 1, 1};
  CUresult r = driver.cuTensorMapEncodeTiled(
      reinterpret_cast<CUtensorMap *>(&out),
      dtype == DType::BF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
      4, const_cast<void *>(base), dims, strides, box, elementStrides,
      CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
      CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    return Status::error(driver.describe("cuTensorMapEncodeTiled", r) + " for " + name +
                         " (TMA needs 16-byte aligned base and strides below 2^40 bytes)");
  return Status::ok();
}

} // namespace

Status encodeTensorMaps(const CudaDriver &driver, const AttentionParams &p,
                        const TileConfig &tile, abi::TensorMap maps[3]) {
  if (!driver.cuTensorMapEncodeTiled)
    return Status::error("the CUDA driver lacks cuTensorMapEncodeTiled (needed by the "
                         "warp-specialized Hopper kernels; CUDA 12 or newer)");
  // Packed (varlen) tensors are one batch of all rows; the kernel adds the
  // sequence's first row to the row coordinate.
  const bool packed = p.varlen();
  const int64_t rowsQ = packed ? p.totalQ : p.seqQ, rowsK = packed ? p.totalK : p.seqK;
  const int64_t batch = packed ? 1 : p.batch;
  if (Status s = encode(driver, "q", p.dtype, p.q, p.headDimQK, rowsQ, p.headsQ, batch,
                        p.qStride, tile.m, maps[0]);
      !s)
    return s;
  if (Status s = encode(driver, "k", p.dtype, p.k, p.headDimQK, rowsK, p.headsK, batch,
                        p.kStride, tile.n, maps[1]);
      !s)
    return s;
  return encode(driver, "v", p.dtype, p.v, p.headDimV, rowsK, p.headsK, batch, p.vStride,
                tile.n, maps[2]);
}

} // namespace flashjit
