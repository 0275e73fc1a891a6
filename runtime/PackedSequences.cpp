//===- PackedSequences.cpp - check varlen prefix sums before a launch -----===//
//
// The kernels trust cu_seqlens to stay inside the packed tensors; a wrong
// prefix sum would read or write out of bounds. The sums live on the device,
// so checking them costs one small copy after the caller's stream work.
//
#include "runtime/PackedSequences.h"

#include <string>
#include <vector>

namespace flashjit {

namespace {

Status readPrefixSums(const CudaDriver &d, const int32_t *device, int64_t count,
                      std::vector<int32_t> &host) {
  host.resize(size_t(count));
  return d.check("copying cu_seqlens to the host for checking",
                 d.cuMemcpyDtoH(host.data(), reinterpret_cast<CUdeviceptr>(device),
                                size_t(count) * sizeof(int32_t)));
}

Status checkPrefixSums(const char *name, const std::vector<int32_t> &cu, int64_t total,
                       int64_t longest) {
  if (cu[0] < 0)
    return Status::error(std::string("varlen: ") + name + "[0] = " + std::to_string(cu[0]) +
                         " is negative");
  for (size_t b = 0; b + 1 < cu.size(); ++b) {
    const int64_t length = int64_t(cu[b + 1]) - int64_t(cu[b]);
    if (length < 0 || length > longest)
      return Status::error(std::string("varlen: sequence ") + std::to_string(b) + " of " + name +
                           " has length " + std::to_string(length) +
                           (length < 0 ? " (the prefix sums decrease)"
                                       : ", longer than the longest given (" +
                                             std::to_string(longest) + ")"));
  }
  if (cu.back() > total)
    return Status::error(std::string("varlen: ") + name + " ends at " +
                         std::to_string(cu.back()) + ", past the " + std::to_string(total) +
                         " packed rows");
  return Status::ok();
}

} // namespace

Status checkPackedSequences(const CudaDriver &d, const AttentionParams &p, CUstream stream) {
  if (!p.varlen() || p.seqlensTrusted || p.batch == 0)
    return Status::ok();
  if (Status s = d.check("synchronizing before reading cu_seqlens", d.cuStreamSynchronize(stream));
      !s)
    return s;
  std::vector<int32_t> cuQ, cuK;
  if (Status s = readPrefixSums(d, p.cuSeqlensQ, p.batch + 1, cuQ); !s)
    return s;
  if (Status s = readPrefixSums(d, p.cuSeqlensK, p.batch + 1, cuK); !s)
    return s;
  if (Status s = checkPrefixSums("cu_seqlens_q", cuQ, p.totalQ, p.seqQ); !s)
    return s;
  return checkPrefixSums("cu_seqlens_k", cuK, p.totalK, p.seqK);
}

} // namespace flashjit
