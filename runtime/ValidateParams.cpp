//===- ValidateParams.cpp - check an attention request before any launch --===//
#include "runtime/BlockMasks.h"
#include "runtime/flashjit.h"

#include "compiler/ModifierExpression.h"
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <vector>

namespace flashjit {

namespace {

std::string tensorStrides(const char *name, const int64_t s[3]) {
  std::ostringstream os;
  os << name << " strides (batch, seq, head) = (" << s[0] << ", " << s[1] << ", " << s[2] << ")";
  return os.str();
}

void fillContiguous(int64_t stride[3], int64_t seq, int64_t heads, int64_t dim) {
  if (stride[0] == 0 && stride[1] == 0 && stride[2] == 0) {
    stride[2] = dim;
    stride[1] = heads * dim;
    stride[0] = seq * heads * dim;
  }
}

bool aligned(const void *p, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// Packed (varlen) tensors have no batch stride: rows of every sequence follow each other.
void fillStrides(const AttentionParams &p, int64_t stride[3], int64_t seq, int64_t heads,
                 int64_t dim) {
  fillContiguous(stride, seq, heads, dim);
  if (p.varlen())
    stride[0] = 0;
}

Status validatePackedShape(const AttentionParams &p) {
  if (!p.varlen())
    return Status::ok();
  if (!p.cuSeqlensQ || !p.cuSeqlensK)
    return Status::error("varlen: both cu_seqlens_q and cu_seqlens_k must be given");
  if (!aligned(p.cuSeqlensQ, 4) || !aligned(p.cuSeqlensK, 4))
    return Status::error("varlen: cu_seqlens_q and cu_seqlens_k must be 4-byte aligned int32");
  const int64_t int32Max = std::numeric_limits<int32_t>::max();
  if (p.totalQ < 0 || p.totalK < 0 || p.totalQ > int32Max || p.totalK > int32Max)
    return Status::error("varlen: total_q and total_k must be in [0, 2^31) (got " +
                         std::to_string(p.totalQ) + ", " + std::to_string(p.totalK) + ")");
  if (p.batch > 0 && (p.seqQ > p.totalQ || p.seqK > p.totalK))
    return Status::error("varlen: the longest lengths (seq_q " + std::to_string(p.seqQ) +
                         ", seq_k " + std::to_string(p.seqK) + ") exceed the totals (" +
                         std::to_string(p.totalQ) + ", " + std::to_string(p.totalK) + ")");
  return Status::ok();
}

struct Input { const char *name; const void *ptr; const int64_t *stride; };

// Read with 16-byte cp.async: base and every row start must be 16-byte aligned.
Status checkInput(const Input &in) {
  if (!aligned(in.ptr, 16))
    return Status::error(std::string(in.name) + " is not 16-byte aligned");
  for (int i = 0; i < 3; ++i)
    if (in.stride[i] % 8 != 0 || in.stride[i] < 0)
      return Status::error(tensorStrides(in.name, in.stride) +
                           ": each must be a non-negative multiple of 8 elements (16 bytes)");
  return Status::ok();
}

} // namespace

Status normalizeAndValidate(AttentionParams &p) {
  if (p.dtype != DType::BF16 && p.dtype != DType::F16)
    return Status::error("dtype must be bf16 or f16");
  if (p.headDimV == 0)
    p.headDimV = p.headDimQK;
  for (int64_t d : {p.headDimQK, p.headDimV})
    if (d < 8 || d > 256 || d % 8 != 0)
      return Status::error("head dim " + std::to_string(d) +
                           " is not supported: it must be a multiple of 8 in [8, 256]");
  if (p.batch < 0 || p.seqQ < 0 || p.seqK < 0 || p.headsQ < 1 || p.headsK < 1)
    return Status::error("batch, seq_q and seq_k must be >= 0 and heads_q, heads_k >= 1 (got batch " +
                         std::to_string(p.batch) + ", seq_q " + std::to_string(p.seqQ) +
                         ", seq_k " + std::to_string(p.seqK) + ", heads_q " +
                         std::to_string(p.headsQ) + ", heads_k " + std::to_string(p.headsK) + ")");
  if (p.headsQ % p.headsK != 0)
    return Status::error("heads_q (" + std::to_string(p.headsQ) +
                         ") must be a multiple of heads_k (" + std::to_string(p.headsK) + ")");
  const int64_t int32Max = std::numeric_limits<int32_t>::max();
  if (p.seqQ > int32Max || p.seqK > int32Max || p.batch > 65535 || p.headsQ > 65535)
    return Status::error("problem too large: seq lengths must fit in int32, batch and heads_q "
                         "must be <= 65535");
  if (p.softmaxScale == 0.0f)
    p.softmaxScale = 1.0f / std::sqrt(float(p.headDimQK));
  if (!(p.softmaxScale > 0.0f) || !std::isfinite(p.softmaxScale))
    return Status::error("softmax scale must be a positive finite number");

  if (p.causal)
    p.windowRight = 0;
  if (p.windowLeft < 0)
    p.windowLeft = -1;
  if (p.windowRight < 0)
    p.windowRight = -1;
  p.causal = attentionMask(p) == Mask::Causal; // a (-1, 0) window is causal
  if (attentionMask(p) == Mask::Window && p.seqQ + p.seqK > int32Max)
    return Status::error("sliding window: seq_q + seq_k must fit in int32");
  if (!(p.softcap >= 0.0f) || !std::isfinite(p.softcap))
    return Status::error("softcap must be 0 (off) or a positive finite number");
  if (p.alibiBatchStride < 0)
    return Status::error("alibi batch stride must be >= 0");
  if (!(p.dropoutP >= 0.0f && p.dropoutP <= 1.0f))
    return Status::error("dropout probability must be in [0, 1], got " +
                         std::to_string(p.dropoutP));
  for (auto [text, kind] : {std::pair{p.scoreMod, ModifierKind::Score},
                            std::pair{p.maskMod, ModifierKind::Mask}}) {
    std::string canonical, error;
    if (!canonicalizeModifier(text ? text : "", kind, canonical, error))
      return Status::error(error);
  }

  if (Status s = validatePackedShape(p); !s)
    return s;
  if (Status s = validateBlockMask(p, /*backward=*/false); !s)
    return s;
  fillStrides(p, p.qStride, p.seqQ, p.headsQ, p.headDimQK);
  fillStrides(p, p.kStride, p.seqK, p.headsK, p.headDimQK);
  fillStrides(p, p.vStride, p.seqK, p.headsK, p.headDimV);
  fillStrides(p, p.oStride, p.seqQ, p.headsQ, p.headDimV);

  if (p.batch == 0 || p.seqQ == 0)
    return Status::ok(); // nothing to compute
  if (!p.q || !p.k || !p.v || !p.o)
    return Status::error("q, k, v and o must be non-null device pointers");

  // Inputs are read with 16-byte cp.async. The output is written in 4-byte pairs.
  for (const Input &in : {Input{"q", p.q, p.qStride}, Input{"k", p.k, p.kStride},
                          Input{"v", p.v, p.vStride}})
    if (Status s = checkInput(in); !s)
      return s;
  if (!aligned(p.o, 4))
    return Status::error("o is not 4-byte aligned");
  for (int i = 0; i < 3; ++i)
    if (p.oStride[i] % 2 != 0 || p.oStride[i] < 0)
      return Status::error(tensorStrides("o", p.oStride) + ": each must be a non-negative even number");
  if (p.lse && !aligned(p.lse, 4))
    return Status::error("lse is not 4-byte aligned");
  if (p.alibiSlopes && !aligned(p.alibiSlopes, 4))
    return Status::error("alibi slopes are not 4-byte aligned");
  return Status::ok();
}

Mask attentionMask(const AttentionParams &p) {
  bool left = p.windowLeft >= 0, right = p.windowRight >= 0;
  if (!left && !right)
    return p.causal ? Mask::Causal : Mask::None;
  if (!left && p.windowRight == 0)
    return Mask::Causal;
  return Mask::Window;
}

Status normalizeAndValidate(AttentionBackwardParams &p) {
  AttentionParams &f = p.forward;
  if (Status s = normalizeAndValidate(f); !s)
    return s;
  if (Status s = validateBlockMask(f, /*backward=*/true); !s)
    return s;
  fillStrides(f, p.dOStride, f.seqQ, f.headsQ, f.headDimV);
  fillStrides(f, p.dQStride, f.seqQ, f.headsQ, f.headDimQK);
  fillStrides(f, p.dKStride, f.seqK, f.headsK, f.headDimQK);
  fillStrides(f, p.dVStride, f.seqK, f.headsK, f.headDimV);
  if (f.batch == 0 || (f.seqQ == 0 && f.seqK == 0))
    return Status::ok(); // nothing to compute
  if (!p.dK || !p.dV || (f.seqQ > 0 && (!p.dQ || !p.dO || !f.lse || !f.q || !f.o)) ||
      (f.seqK > 0 && (!f.k || !f.v)))
    return Status::error("backward: q, k, v, o, lse (the forward's), dO, dQ, dK and dV must be "
                         "non-null device pointers");
  // The key-block kernel loads K and V even when there are no queries (it
  // writes dK = dV = 0 then); dO like the inputs; O is read in 4-byte pairs.
  std::vector<Input> inputs = {{"k", f.k, f.kStride}, {"v", f.v, f.vStride}};
  if (f.seqQ > 0)
    inputs.push_back({"dO", p.dO, p.dOStride});
  for (const Input &in : inputs)
    if (Status s = checkInput(in); !s)
      return s;
  struct Output { const char *name; const void *ptr; const int64_t *stride; };
  for (const Output &out : {Output{"dQ", p.dQ, p.dQStride}, Output{"dK", p.dK, p.dKStride},
                            Output{"dV", p.dV, p.dVStride}}) {
    if (f.seqQ == 0 && out.ptr == p.dQ)
      continue;
    if (!aligned(out.ptr, 4))
      return Status::error(std::string(out.name) + " is not 4-byte aligned");
    for (int i = 0; i < 3; ++i)
      if (out.stride[i] % 2 != 0 || out.stride[i] < 0)
        return Status::error(tensorStrides(out.name, out.stride) +
                             ": each must be a non-negative even number");
  }
  if (p.delta && !aligned(p.delta, 4))
    return Status::error("delta is not 4-byte aligned");
  return Status::ok();
}

} // namespace flashjit
