//===- AttentionCheck.cpp -------------------------------------------------===//
#include "tools/check/AttentionCheck.h"

#include "runtime/Sha256.h"
#include "tools/check/HalfFloat.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>
#include <vector>

namespace flashjit {

std::string CheckCase::describe() const {
  std::ostringstream os;
  os << dtypeName(dtype) << " b" << batch << " sq" << seqQ << " sk" << seqK << " hq" << headsQ
     << " hk" << headsK << " d" << headDimQK;
  if (headDimV && headDimV != headDimQK)
    os << "/" << headDimV;
  os << (causal ? " causal" : "") << (headMajor ? " bhsd" : "") << (outputsOffset4 ? " o+4" : "");
  if (queryKeyAmplitude != 1.0f)
    os << " qk-amplitude" << queryKeyAmplitude;
  auto list = [&](const char *name, const std::vector<int64_t> &lengths) {
    os << " " << name << "[";
    for (size_t i = 0; i < lengths.size(); ++i)
      os << (i ? "," : "") << lengths[i];
    os << "]";
  };
  if (varlen()) {
    list("varlen q", seqlensQ);
    if (seqlensK != seqlensQ)
      list("k", seqlensK);
  }
  if (windowLeft >= 0 || windowRight >= 0)
    os << " window" << windowLeft << "," << windowRight;
  if (softcap > 0)
    os << " softcap" << softcap;
  if (alibi)
    os << (alibiPerBatch ? " alibi-per-batch" : " alibi");
  if (!scoreMod.empty())
    os << " score_mod{" << scoreMod << "}";
  if (!maskMod.empty())
    os << " mask_mod{" << maskMod << "}" << (maskModBlockLists ? "" : " no-lists");
  if (dropoutP > 0)
    os << " dropout" << dropoutP << " seed" << dropoutSeed << " offset" << dropoutOffset;
  if (blockMaskKeep > 0)
    os << " block-mask" << blockMaskQ << "x" << blockMaskK << " keep" << blockMaskKeep
       << (blockMaskPerBatch ? " per-batch" : "") << (blockMaskPerHead ? " per-head" : "");
  if (packGQA)
    os << (*packGQA ? " pack-gqa" : " no-pack-gqa");
  if (tile)
    os << " tile " << tileName(*tile);
  if (tileDQ)
    os << " dq " << tileName(*tileDQ);
  if (tileDKV)
    os << " dkv " << tileName(*tileDKV);
  if (atomicQueryGradient)
    os << " atomic-dq";
  if (defaultQueryGradient)
    os << " default-dq";
  return os.str();
}

void CheckCase::setSeqlens(std::vector<int64_t> q, std::vector<int64_t> k) {
  seqlensQ = std::move(q);
  seqlensK = std::move(k);
  batch = int64_t(seqlensQ.size());
  seqQ = seqlensQ.empty() ? 0 : *std::max_element(seqlensQ.begin(), seqlensQ.end());
  seqK = seqlensK.empty() ? 0 : *std::max_element(seqlensK.begin(), seqlensK.end());
}

std::vector<float> alibiSlopes(const CheckCase &c) {
  std::vector<float> slopes;
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t h = 0; h < c.headsQ; ++h)
      slopes.push_back(std::exp2(-8.0f * float(h + 1) / float(c.headsQ)) *
                       (c.alibiPerBatch ? 1.0f + 0.25f * float(b) : 1.0f));
  return slopes;
}

namespace {

// Device buffer freed on scope exit.
struct DeviceBuffer {
  const CudaDriver *d = nullptr;
  CUdeviceptr ptr = 0;
  ~DeviceBuffer() {
    if (ptr)
      d->cuMemFree(ptr);
  }
  Status allocate(const CudaDriver &driver, size_t bytes) {
    d = &driver;
    return driver.check("cuMemAlloc", driver.cuMemAlloc(&ptr, bytes ? bytes : 16));
  }
};

uint64_t nextRandom(uint64_t &state) { // xorshift64*
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return state * 0x2545F4914F6CDD1DULL;
}

std::vector<uint16_t> randomTensor(size_t n, DType t, uint64_t seed, float amplitude = 1.0f) {
  std::vector<uint16_t> out(n);
  uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (size_t i = 0; i < n; ++i) {
    float u = (float(nextRandom(s) >> 40) / float(1 << 24) * 2.f - 1.f) * amplitude; // [-a, a)
    out[i] = t == DType::BF16 ? floatToBF16(u) : floatToHalf(u);
  }
  return out;
}

void stridesFor(bool headMajor, int64_t seq, int64_t heads, int64_t dim, int64_t s[3]) {
  if (headMajor) {
    s[0] = heads * seq * dim; s[1] = dim; s[2] = seq * dim;
  } else {
    s[0] = seq * heads * dim; s[1] = heads * dim; s[2] = dim;
  }
}

std::vector<float> widened(const std::vector<uint16_t> &h, DType t) {
  std::vector<float> out(h.size());
  for (size_t i = 0; i < h.size(); ++i)
    out[i] = t == DType::BF16 ? bf16ToFloat(h[i]) : halfToFloat(h[i]);
  return out;
}

// Compares a 16-bit [batch, seq, heads, dim] tensor laid out by `stride`
// with the contiguous fp32 reference; NaN (the poison) counts as unwritten.
struct Comparison {
  double relativeL2 = 0, maxAbsError = 0;
  int64_t unwritten = 0;
};
Comparison compareWithReference(const std::vector<uint16_t> &got, const int64_t stride[3],
                                const std::vector<float> &ref, DType t, int64_t batch,
                                int64_t seq, int64_t heads, int64_t dim) {
  Comparison c;
  double errSq = 0, refSq = 0;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t s = 0; s < seq; ++s)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t x = 0; x < dim; ++x) {
          size_t at = size_t(b * stride[0] + s * stride[1] + h * stride[2] + x);
          float g = t == DType::BF16 ? bf16ToFloat(got[at]) : halfToFloat(got[at]);
          double want = ref[size_t(((b * seq + s) * heads + h) * dim + x)];
          if (std::isnan(g)) {
            ++c.unwritten;
            continue;
          }
          double e = std::fabs(double(g) - want);
          c.maxAbsError = std::max(c.maxAbsError, e);
          errSq += e * e;
          refSq += want * want;
        }
  c.relativeL2 = refSq > 0 ? std::sqrt(errSq / refSq) : std::sqrt(errSq);
  return c;
}

// The tensors' outer extent: [batch, seq] padded, or one batch of all rows
// packed (varlen); and each sequence's first packed rows.
struct Extent {
  int64_t batch, rowsQ, rowsK;
  std::vector<int32_t> cuQ, cuK; // prefix sums (varlen)
};
Extent extentOf(const CheckCase &c) {
  if (!c.varlen())
    return {c.batch, c.seqQ, c.seqK, {}, {}};
  Extent e{1, 0, 0, {0}, {0}};
  for (size_t b = 0; b < c.seqlensQ.size(); ++b) {
    e.cuQ.push_back(int32_t(e.cuQ.back() + c.seqlensQ[b]));
    e.cuK.push_back(int32_t(e.cuK.back() + c.seqlensK[b]));
  }
  e.rowsQ = e.cuQ.back();
  e.rowsK = e.cuK.back();
  return e;
}

// The reference's LSE of sequence b is [heads, length] at heads · cuQ[b];
// flashjit's packed LSE is [heads, totalQ].
std::vector<float> packedLse(const std::vector<float> &ref, const Extent &e, int64_t heads) {
  std::vector<float> out(ref.size());
  for (size_t b = 0; b + 1 < e.cuQ.size(); ++b) {
    const int64_t first = e.cuQ[b], length = e.cuQ[b + 1] - first;
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < length; ++i)
        out[size_t(h * e.rowsQ + first + i)] = ref[size_t(heads * first + h * length + i)];
  }
  return out;
}

} // namespace

// Runs `run(params, firstQ, firstK)` for the whole batch (0, 0), or (varlen)
// once per sequence with batch-1 params whose pointers start at its rows and
// that sequence's first query and key rows, for offsetting other buffers.
template <typename Run>
static Status forEachSequence(const CheckCase &c, const Extent &e, const AttentionParams &packed,
                              Run &&run) {
  if (!c.varlen())
    return run(packed, int64_t(0), int64_t(0), 0);
  for (size_t b = 0; b < c.seqlensQ.size(); ++b) {
    AttentionParams p = packed;
    const int64_t firstQ = e.cuQ[b], firstK = e.cuK[b];
    auto advance = [](const void *base, int64_t rows, const int64_t stride[3]) {
      return static_cast<const void *>(static_cast<const uint16_t *>(base) + rows * stride[1]);
    };
    p.q = advance(packed.q, firstQ, packed.qStride);
    p.k = advance(packed.k, firstK, packed.kStride);
    p.v = advance(packed.v, firstK, packed.vStride);
    p.batch = 1;
    p.seqQ = c.seqlensQ[b];
    p.seqK = c.seqlensK[b];
    p.cuSeqlensQ = p.cuSeqlensK = nullptr;
    p.totalQ = p.totalK = 0;
    if (p.alibiSlopes) {
      p.alibiSlopes += int64_t(b) * packed.alibiBatchStride;
      p.alibiBatchStride = 0;
    }
    if (Status s = run(p, firstQ, firstK, int(b)); !s)
      return s;
  }
  return Status::ok();
}

Status AttentionChecker::create(Runtime &runtime, std::unique_ptr<AttentionChecker> &out) {
  auto c = std::make_unique<AttentionChecker>();
  c->runtime_ = &runtime;
  if (Status s = CudaDriver::get(c->driver_); !s)
    return s;
  const ReferenceAttention *plain = nullptr; // compiled up front: setup errors show early
  if (Status s = c->referenceFor(CheckCase{}, plain); !s)
    return s;
  out = std::move(c);
  return Status::ok();
}

Status AttentionChecker::referenceFor(const CheckCase &c, const ReferenceAttention *&out) {
  std::unique_ptr<ReferenceAttention> &ref = references_[{c.scoreMod, c.maskMod}];
  if (!ref)
    if (Status s = ReferenceAttention::create(*driver_, runtime_->device().ccMajor,
                                              runtime_->device().ccMinor, ref, c.scoreMod,
                                              c.maskMod);
        !s)
      return s;
  out = ref.get();
  return Status::ok();
}

// Device inputs (random), poisoned outputs and the fp32 reference's outputs of one case.
// A case's random block mask: dense ([masks][query blocks][key blocks], 1 =
// visited) and as the kernels' lists, kvCounts, kvIndices, qCounts,
// qIndices back to back (entries past a count poisoned with INT32_MAX).
struct RandomBlockMask {
  std::vector<uint8_t> dense;
  std::vector<int32_t> lists;
  size_t kvIndices = 0, qCounts = 0, qIndices = 0; // offsets into lists
};

RandomBlockMask randomBlockMask(const CheckCase &c, int64_t queryBlocks, int64_t keyBlocks) {
  RandomBlockMask m;
  const int64_t masks = (c.blockMaskPerBatch ? c.batch : 1) * (c.blockMaskPerHead ? c.headsQ : 1);
  std::mt19937_64 rng(c.seed * 7 + 11);
  std::bernoulli_distribution keep(c.blockMaskKeep);
  m.dense.resize(size_t(masks * queryBlocks * keyBlocks));
  for (uint8_t &x : m.dense)
    x = keep(rng) ? 1 : 0;
  // One direction's lists: `rows` rows of `columns`, visited(x, row, column).
  auto appendLists = [&](int64_t rows, int64_t columns, auto &&visited, size_t &indicesAt) {
    const size_t countsAt = m.lists.size();
    m.lists.resize(countsAt + size_t(masks * rows), 0);
    indicesAt = m.lists.size();
    m.lists.resize(indicesAt + size_t(masks * rows * columns),
                   std::numeric_limits<int32_t>::max());
    for (int64_t x = 0; x < masks; ++x)
      for (int64_t r = 0; r < rows; ++r) {
        int32_t &count = m.lists[countsAt + size_t(x * rows + r)];
        for (int64_t col = 0; col < columns; ++col)
          if (visited(x, r, col))
            m.lists[indicesAt + size_t((x * rows + r) * columns) + size_t(count++)] =
                int32_t(col);
      }
  };
  auto at = [&](int64_t x, int64_t qb, int64_t kb) {
    return m.dense[size_t((x * queryBlocks + qb) * keyBlocks + kb)] != 0;
  };
  appendLists(queryBlocks, keyBlocks, at, m.kvIndices);
  m.qCounts = m.lists.size();
  appendLists(keyBlocks, queryBlocks,
              [&](int64_t x, int64_t kb, int64_t qb) { return at(x, qb, kb); }, m.qIndices);
  return m;
}

// Bytes from an output buffer's (256-byte aligned) start to the tensor.
static size_t outputOffset(const CheckCase &c) { return c.outputsOffset4 ? 4 : 0; }

struct AttentionChecker::Prepared {
  DeviceBuffer q, k, v, o, lse, refO, refLse, alibi, cuSeqlens, blockLists, denseBlockMask;
  std::vector<uint16_t> hq, hk, hv;
  AttentionParams params;
  Extent ext;
  size_t no = 0, nl = 0;
  static constexpr size_t guard = 4096; // elements after O that nothing may touch
};

Status AttentionChecker::prepare(const CheckCase &c, Prepared &x) {
  const CudaDriver &d = *driver_;
  const int64_t dv = c.headDimV ? c.headDimV : c.headDimQK;
  x.ext = extentOf(c);
  const Extent &ext = x.ext;
  if (c.varlen()) { // batch and the longest lengths must follow the lengths
    CheckCase expected = c;
    expected.setSeqlens(c.seqlensQ, c.seqlensK);
    if (c.seqlensK.size() != c.seqlensQ.size() || c.batch != expected.batch ||
        c.seqQ != expected.seqQ || c.seqK != expected.seqK)
      return Status::error("check case: set varlen lengths with CheckCase::setSeqlens");
  }
  const size_t nq = size_t(ext.batch * ext.rowsQ * c.headsQ * c.headDimQK);
  const size_t nk = size_t(ext.batch * ext.rowsK * c.headsK * c.headDimQK);
  const size_t nv = size_t(ext.batch * ext.rowsK * c.headsK * dv);
  x.no = size_t(ext.batch * ext.rowsQ * c.headsQ * dv);
  x.nl = size_t(ext.batch * c.headsQ * ext.rowsQ);
  const size_t no = x.no, nl = x.nl, guard = Prepared::guard;
  const std::vector<float> slopes = alibiSlopes(c);
  std::vector<int32_t> prefixSums = ext.cuQ;
  prefixSums.insert(prefixSums.end(), ext.cuK.begin(), ext.cuK.end());
  for (auto [buf, bytes] : {std::pair{&x.q, nq * 2}, {&x.k, nk * 2}, {&x.v, nv * 2},
                            {&x.o, (no + guard) * 2 + 4}, {&x.lse, nl * 4}, {&x.refO, no * 4},
                            {&x.refLse, nl * 4}, {&x.alibi, slopes.size() * 4},
                            {&x.cuSeqlens, prefixSums.size() * 4}})
    if (Status s = buf->allocate(d, bytes); !s)
      return s;
  for (auto [buf, host, bytes] :
       {std::tuple{&x.alibi, (const void *)slopes.data(), slopes.size() * 4},
        {&x.cuSeqlens, (const void *)prefixSums.data(), prefixSums.size() * 4}})
    if (bytes)
      if (Status s = d.check("cuMemcpyHtoD", d.cuMemcpyHtoD(buf->ptr, host, bytes)); !s)
        return s;
  x.hq = randomTensor(nq, c.dtype, c.seed * 3 + 0, c.queryKeyAmplitude);
  x.hk = randomTensor(nk, c.dtype, c.seed * 3 + 1, c.queryKeyAmplitude);
  x.hv = randomTensor(nv, c.dtype, c.seed * 3 + 2);
  for (auto [buf, host] : {std::pair{&x.q, &x.hq}, {&x.k, &x.hk}, {&x.v, &x.hv}})
    if (Status s = d.check("cuMemcpyHtoD",
                           d.cuMemcpyHtoD(buf->ptr, host->data(), host->size() * 2));
        !s)
      return s;
  // Poison: 0xFFFF is NaN in bf16 and f16, 0xFFFFFFFF in f32.
  for (auto [buf, bytes] : {std::pair{&x.o, (no + guard) * 2 + 4}, {&x.lse, nl * 4}})
    if (Status s = d.check("cuMemsetD8", d.cuMemsetD8(buf->ptr, 0xFF, bytes)); !s)
      return s;

  AttentionParams &p = x.params;
  p.dtype = c.dtype;
  p.q = reinterpret_cast<const void *>(x.q.ptr);
  p.k = reinterpret_cast<const void *>(x.k.ptr);
  p.v = reinterpret_cast<const void *>(x.v.ptr);
  p.o = reinterpret_cast<void *>(x.o.ptr + outputOffset(c));
  p.lse = c.withLse ? reinterpret_cast<float *>(x.lse.ptr) : nullptr;
  p.batch = c.batch;
  p.seqQ = c.seqQ;
  p.seqK = c.seqK;
  p.headsQ = c.headsQ;
  p.headsK = c.headsK;
  p.headDimQK = c.headDimQK;
  p.headDimV = dv;
  p.causal = c.causal;
  p.windowLeft = c.windowLeft;
  p.windowRight = c.windowRight;
  p.softcap = c.softcap;
  if (c.alibi) {
    p.alibiSlopes = reinterpret_cast<const float *>(x.alibi.ptr);
    p.alibiBatchStride = c.alibiPerBatch ? c.headsQ : 0;
  }
  p.scoreMod = c.scoreMod.empty() ? nullptr : c.scoreMod.c_str();
  p.maskMod = c.maskMod.empty() ? nullptr : c.maskMod.c_str();
  p.maskModBlockLists = c.maskModBlockLists;
  p.dropoutP = c.dropoutP;
  p.dropoutSeed = c.dropoutSeed;
  p.dropoutOffset = c.dropoutOffset;
  p.tile = c.tile;
  if (c.packGQA)
    p.packGQA = *c.packGQA ? AttentionParams::PackGQA::Always : AttentionParams::PackGQA::Never;
  if (c.varlen()) {
    p.cuSeqlensQ = reinterpret_cast<const int32_t *>(x.cuSeqlens.ptr);
    p.cuSeqlensK = p.cuSeqlensQ + ext.cuQ.size();
    p.totalQ = ext.rowsQ;
    p.totalK = ext.rowsK;
  }
  stridesFor(c.headMajor, ext.rowsQ, c.headsQ, c.headDimQK, p.qStride);
  stridesFor(c.headMajor, ext.rowsK, c.headsK, c.headDimQK, p.kStride);
  stridesFor(c.headMajor, ext.rowsK, c.headsK, dv, p.vStride);
  stridesFor(c.headMajor, ext.rowsQ, c.headsQ, dv, p.oStride);
  if (c.blockMaskKeep > 0) {
    BlockMask &m = p.blockMask;
    m.blockQ = c.blockMaskQ;
    m.blockK = c.blockMaskK;
    m.batches = c.blockMaskPerBatch ? c.batch : 1;
    m.heads = c.blockMaskPerHead ? c.headsQ : 1;
    const RandomBlockMask r = randomBlockMask(c, m.queryBlocks(c.seqQ), m.keyBlocks(c.seqK));
    if (Status s = x.blockLists.allocate(d, r.lists.size() * 4); !s)
      return s;
    if (Status s = x.denseBlockMask.allocate(d, r.dense.size()); !s)
      return s;
    for (auto [buf, host, bytes] :
         {std::tuple{&x.blockLists, (const void *)r.lists.data(), r.lists.size() * 4},
          {&x.denseBlockMask, (const void *)r.dense.data(), r.dense.size()}})
      if (Status s = d.check("cuMemcpyHtoD", d.cuMemcpyHtoD(buf->ptr, host, bytes)); !s)
        return s;
    const int32_t *lists = reinterpret_cast<const int32_t *>(x.blockLists.ptr);
    m.kvCounts = lists;
    m.kvIndices = lists + r.kvIndices;
    m.qCounts = lists + r.qCounts;
    m.qIndices = lists + r.qIndices;
  }
  AttentionParams normalized = p;
  if (Status s = normalizeAndValidate(normalized); !s)
    return s;
  // The reference knows no packing: it runs each sequence on its own, its O
  // rows landing packed ([total, heads, d_v] contiguous).
  const ReferenceAttention *reference = nullptr;
  if (Status s = referenceFor(c, reference); !s)
    return s;
  return forEachSequence(c, ext, normalized, [&](const AttentionParams &q, int64_t firstQ,
                                                 int64_t, int sequence) {
    return reference->run(q, x.refO.ptr + size_t(firstQ * c.headsQ * dv) * 4,
                          x.refLse.ptr + size_t(firstQ * c.headsQ) * 4, nullptr, sequence,
                          reinterpret_cast<const uint8_t *>(x.denseBlockMask.ptr));
  });
}

Status AttentionChecker::referencePhilox(const std::vector<uint32_t> &in,
                                         std::vector<uint32_t> &out) {
  const ReferenceAttention *ref = nullptr;
  if (Status s = referenceFor(CheckCase{}, ref); !s)
    return s;
  const CudaDriver &d = *driver_;
  const int n = int(in.size() / 6);
  DeviceBuffer input, output;
  out.assign(size_t(n) * 4, 0);
  if (Status s = input.allocate(d, in.size() * 4); !s)
    return s;
  if (Status s = output.allocate(d, out.size() * 4); !s)
    return s;
  if (Status s = d.check("cuMemcpyHtoD", d.cuMemcpyHtoD(input.ptr, in.data(), in.size() * 4)); !s)
    return s;
  if (Status s = ref->runPhilox(input.ptr, output.ptr, n, nullptr); !s)
    return s;
  return d.check("cuMemcpyDtoH", d.cuMemcpyDtoH(out.data(), output.ptr, out.size() * 4));
}

Status AttentionChecker::referenceOnly(const CheckCase &c, std::vector<float> &q,
                                       std::vector<float> &k, std::vector<float> &v,
                                       std::vector<float> &o, std::vector<float> &lse) {
  Prepared x;
  if (Status s = prepare(c, x); !s)
    return s;
  const CudaDriver &d = *driver_;
  if (Status s = d.check("synchronize after the reference", d.cuCtxSynchronize()); !s)
    return s;
  q = widened(x.hq, c.dtype);
  k = widened(x.hk, c.dtype);
  v = widened(x.hv, c.dtype);
  o.resize(x.no);
  lse.resize(x.nl);
  if (Status s = d.check("cuMemcpyDtoH", d.cuMemcpyDtoH(o.data(), x.refO.ptr, x.no * 4)); !s)
    return s;
  return d.check("cuMemcpyDtoH", d.cuMemcpyDtoH(lse.data(), x.refLse.ptr, x.nl * 4));
}

Status AttentionChecker::run(const CheckCase &c, CheckResult &r) {
  const CudaDriver &d = *driver_;
  Prepared x;
  if (Status s = prepare(c, x); !s)
    return s;
  const AttentionParams &p = x.params;
  const int64_t dv = p.headDimV;
  const size_t no = x.no, nl = x.nl, guard = Prepared::guard;
  AttentionSpec spec;
  if (Status s = runtime_->selectVariant(p, spec); !s)
    return s;
  r.variant = spec.variantName();
  if (Status s = runtime_->attention(p, nullptr); !s)
    return s;
  r.kernelSource = runtime_->lastKernelSource();
  if (Status s = d.check("synchronize after the kernels", d.cuCtxSynchronize()); !s)
    return s;

  std::vector<uint16_t> ho(no + guard);
  std::vector<float> hRef(no), hLse(nl), hRefLse(nl);
  for (auto [dst, src, bytes] :
       {std::tuple{(void *)ho.data(), x.o.ptr + outputOffset(c), (no + guard) * 2},
        {(void *)hRef.data(), x.refO.ptr, no * 4}, {(void *)hLse.data(), x.lse.ptr, nl * 4},
        {(void *)hRefLse.data(), x.refLse.ptr, nl * 4}})
    if (Status s = d.check("cuMemcpyDtoH", d.cuMemcpyDtoH(dst, src, bytes)); !s)
      return s;

  r = CheckResult{0, 0, 0, 0, 0, r.variant, Sha256::hex(std::string(
                                                reinterpret_cast<const char *>(ho.data()), no * 2)),
                  r.kernelSource};
  const Extent &ext = x.ext;
  if (c.varlen())
    hRefLse = packedLse(hRefLse, ext, c.headsQ);
  Comparison cmp = compareWithReference(ho, p.oStride, hRef, c.dtype, ext.batch, ext.rowsQ,
                                        c.headsQ, dv);
  r.relativeL2 = cmp.relativeL2;
  r.maxAbsError = cmp.maxAbsError;
  r.unwritten = cmp.unwritten;
  for (size_t i = no; i < no + guard; ++i)
    r.guardDamaged += ho[i] != 0xFFFF;
  if (c.withLse)
    for (size_t i = 0; i < nl; ++i) {
      if (std::isinf(hRefLse[i]) && hLse[i] == hRefLse[i])
        continue;
      double e = std::fabs(double(hLse[i]) - double(hRefLse[i]));
      r.maxLseError = std::isnan(e) ? INFINITY : std::max(r.maxLseError, e);
    }
  return Status::ok();
}

// dO (random, O's layout) and the reference gradients of one prepared case.
struct AttentionChecker::PreparedBackward {
  DeviceBuffer dO, refDelta, refDQ, refDK, refDV;
  std::vector<uint16_t> hdO;
  size_t nq = 0, nk = 0, nv = 0;
};

Status AttentionChecker::prepareBackward(const CheckCase &c, const Prepared &x,
                                         PreparedBackward &y) {
  const CudaDriver &d = *driver_;
  const AttentionParams &p = x.params;
  const Extent &ext = x.ext;
  y.nq = size_t(ext.batch * ext.rowsQ * c.headsQ * p.headDimQK);
  y.nk = size_t(ext.batch * ext.rowsK * c.headsK * p.headDimQK);
  y.nv = size_t(ext.batch * ext.rowsK * c.headsK * p.headDimV);
  for (auto [buf, bytes] : {std::pair{&y.dO, x.no * 2}, {&y.refDelta, x.nl * 4},
                            {&y.refDQ, y.nq * 4}, {&y.refDK, y.nk * 4}, {&y.refDV, y.nv * 4}})
    if (Status s = buf->allocate(d, bytes); !s)
      return s;
  y.hdO = randomTensor(x.no, c.dtype, c.seed * 3 + 0x5eed);
  if (Status s = d.check("cuMemcpyHtoD", d.cuMemcpyHtoD(y.dO.ptr, y.hdO.data(), x.no * 2)); !s)
    return s;
  AttentionParams normalized = p;
  if (Status s = normalizeAndValidate(normalized); !s)
    return s;
  // Per sequence when packed (see prepare): every buffer starts at its rows.
  const int64_t dqk = p.headDimQK, dv = p.headDimV, hq = c.headsQ, hk = c.headsK;
  const ReferenceAttention *reference = nullptr;
  if (Status s = referenceFor(c, reference); !s)
    return s;
  return forEachSequence(c, ext, normalized, [&](const AttentionParams &q, int64_t firstQ,
                                                 int64_t firstK, int sequence) {
    auto f32 = [](CUdeviceptr base, int64_t elements) { return base + size_t(elements) * 4; };
    const void *dO = reinterpret_cast<const uint16_t *>(y.dO.ptr) + firstQ * normalized.oStride[1];
    return reference->runBackward(q, dO, normalized.oStride, f32(x.refO.ptr, firstQ * hq * dv),
                                   f32(x.refLse.ptr, firstQ * hq), f32(y.refDelta.ptr, firstQ * hq),
                                   f32(y.refDQ.ptr, firstQ * hq * dqk),
                                   f32(y.refDK.ptr, firstK * hk * dqk),
                                   f32(y.refDV.ptr, firstK * hk * dv), nullptr, sequence,
                                   reinterpret_cast<const uint8_t *>(x.denseBlockMask.ptr));
  });
}

Status AttentionChecker::runBackward(const CheckCase &original, BackwardCheckResult &r) {
  const CudaDriver &d = *driver_;
  CheckCase c = original;
  c.withLse = true; // the backward reads the forward's LSE
  c.tile.reset();
  Prepared x;
  PreparedBackward y;
  if (Status s = prepare(c, x); !s)
    return s;
  if (Status s = prepareBackward(c, x, y); !s)
    return s;
  // flashjit's forward gives the O and LSE a training step would hand back.
  if (Status s = runtime_->attention(x.params, nullptr); !s)
    return s;

  const size_t guard = Prepared::guard;
  const AttentionParams &p = x.params;
  DeviceBuffer grads[3];
  const size_t counts[3] = {y.nq, y.nk, y.nv};
  for (int i = 0; i < 3; ++i) {
    if (Status s = grads[i].allocate(d, (counts[i] + guard) * 2 + 4); !s)
      return s;
    if (Status s =
            d.check("cuMemsetD8", d.cuMemsetD8(grads[i].ptr, 0xFF, (counts[i] + guard) * 2 + 4));
        !s)
      return s;
  }
  AttentionBackwardParams bp;
  bp.forward = p;
  bp.dO = reinterpret_cast<const void *>(y.dO.ptr);
  bp.dQ = reinterpret_cast<void *>(grads[0].ptr + outputOffset(c));
  bp.dK = reinterpret_cast<void *>(grads[1].ptr + outputOffset(c));
  bp.dV = reinterpret_cast<void *>(grads[2].ptr + outputOffset(c));
  for (int i = 0; i < 3; ++i)
    bp.dOStride[i] = p.oStride[i];
  const Extent &ext = x.ext;
  stridesFor(c.headMajor, ext.rowsQ, c.headsQ, p.headDimQK, bp.dQStride);
  stridesFor(c.headMajor, ext.rowsK, c.headsK, p.headDimQK, bp.dKStride);
  stridesFor(c.headMajor, ext.rowsK, c.headsK, p.headDimV, bp.dVStride);
  bp.tileDQ = original.tileDQ;
  bp.tileDKV = original.tileDKV;
  bp.atomicQueryGradient = original.atomicQueryGradient;
  bp.deterministic = !original.atomicQueryGradient && !original.defaultQueryGradient;
  std::vector<AttentionSpec> specs;
  if (Status s = runtime_->selectBackwardVariants(bp, specs); !s)
    return s;
  r = BackwardCheckResult{};
  for (const AttentionSpec &spec : specs)
    r.variants += (r.variants.empty() ? "" : " + ") + spec.variantName();
  if (Status s = runtime_->attentionBackward(bp, nullptr); !s)
    return s;
  if (Status s = d.check("synchronize after the backward", d.cuCtxSynchronize()); !s)
    return s;

  const CUdeviceptr refs[3] = {y.refDQ.ptr, y.refDK.ptr, y.refDV.ptr};
  const int64_t *strides[3] = {bp.dQStride, bp.dKStride, bp.dVStride};
  const int64_t seqs[3] = {ext.rowsQ, ext.rowsK, ext.rowsK},
                heads[3] = {c.headsQ, c.headsK, c.headsK};
  const int64_t dims[3] = {p.headDimQK, p.headDimQK, p.headDimV};
  std::string bytes;
  for (int i = 0; i < 3; ++i) {
    std::vector<uint16_t> got(counts[i] + guard);
    std::vector<float> ref(counts[i]);
    const CUdeviceptr gradient = grads[i].ptr + outputOffset(c);
    if (Status s = d.check("cuMemcpyDtoH", d.cuMemcpyDtoH(got.data(), gradient, got.size() * 2));
        !s)
      return s;
    if (Status s = d.check("cuMemcpyDtoH", d.cuMemcpyDtoH(ref.data(), refs[i], ref.size() * 4));
        !s)
      return s;
    Comparison cmp = compareWithReference(got, strides[i], ref, c.dtype, ext.batch, seqs[i],
                                          heads[i], dims[i]);
    r.relativeL2[i] = cmp.relativeL2;
    r.maxAbsError[i] = cmp.maxAbsError;
    r.unwritten += cmp.unwritten;
    for (size_t k = counts[i]; k < counts[i] + guard; ++k)
      r.guardDamaged += got[k] != 0xFFFF;
    bytes.append(reinterpret_cast<const char *>(got.data()), counts[i] * 2);
  }
  r.gradientsSha256 = Sha256::hex(bytes);
  return Status::ok();
}

Status AttentionChecker::referenceBackwardOnly(const CheckCase &original, std::vector<float> &q,
                                               std::vector<float> &k, std::vector<float> &v,
                                               std::vector<float> &dO, std::vector<float> &dq,
                                               std::vector<float> &dk, std::vector<float> &dv) {
  CheckCase c = original;
  c.withLse = true;
  c.headMajor = false; // the widened inputs are returned contiguous
  Prepared x;
  PreparedBackward y;
  if (Status s = prepare(c, x); !s)
    return s;
  if (Status s = prepareBackward(c, x, y); !s)
    return s;
  const CudaDriver &d = *driver_;
  if (Status s = d.check("synchronize after the reference", d.cuCtxSynchronize()); !s)
    return s;
  q = widened(x.hq, c.dtype);
  k = widened(x.hk, c.dtype);
  v = widened(x.hv, c.dtype);
  dO = widened(y.hdO, c.dtype);
  for (auto [out, src, n] : {std::tuple{&dq, y.refDQ.ptr, y.nq}, {&dk, y.refDK.ptr, y.nk},
                             {&dv, y.refDV.ptr, y.nv}}) {
    out->resize(n);
    if (Status s = d.check("cuMemcpyDtoH", d.cuMemcpyDtoH(out->data(), src, n * 4)); !s)
      return s;
  }
  return Status::ok();
}

} // namespace flashjit
