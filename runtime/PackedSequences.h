//===- PackedSequences.h - check varlen prefix sums before a launch -*- C++ -*-===//
#ifndef FLASHJIT_RUNTIME_PACKEDSEQUENCES_H
#define FLASHJIT_RUNTIME_PACKEDSEQUENCES_H

#include "runtime/CudaDriver.h"
#include "runtime/flashjit.h"

namespace flashjit {

/// For normalized varlen params not marked seqlensTrusted: copies the prefix
/// sums to the host (after `stream`'s work) and checks them against the
/// totals and the longest lengths. Nothing to do for padded batches.
Status checkPackedSequences(const CudaDriver &driver, const AttentionParams &params,
                            CUstream stream);

} // namespace flashjit

#endif
