//===- AttentionCheck.cpp -------------------------------------------------===//
#include "tools/check/AttentionCheck.h"

#include "runtime/Sha256.h"
#include "tools/check/HalfFloat.h"

#include <cmath>
#include <sstream>
#include <vector>

namespace flashjit {

std::string CheckCase::describe() const {
  std::ostringstream os;
  os << dtypeName(dtype) << " b" << batch << " sq" << seqQ << " sk" << seqK << " hq" << headsQ
     << " hk" << headsK << " d" << headDimQK;
  if (headDimV && headDimV != headDimQK)
    os << "/" << headDimV;
  os << (causal ? " causal" : "") << (headMajor ? " bhsd" : "");
  if (tile)
    os << " tile " << tileName(*tile);
  return os.str();
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

std::vector<uint16_t> randomTensor(size_t n, DType t, uint64_t seed) {
  std::vector<uint16_t> out(n);
  uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (size_t i = 0; i < n; ++i) {
    float u = float(nextRandom(s) >> 40) / float(1 << 24) * 2.f - 1.f; // [-1, 1)
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

} // namespace

Status AttentionChecker::create(Runtime &runtime, std::unique_ptr<AttentionChecker> &out) {
  auto c = std::make_unique<AttentionChecker>();
  c->runtime_ = &runtime;
  if (Status s = CudaDriver::get(c->driver_); !s)
    return s;
  if (Status s = ReferenceAttention::create(*c->driver_, runtime.device().ccMajor,
                                            runtime.device().ccMinor, c->reference_);
      !s)
    return s;
  out = std::move(c);
  return Status::ok();
}

// Device inputs (random), poisoned outputs and the fp32 reference's outputs of one case.
struct AttentionChecker::Prepared {
  DeviceBuffer q, k, v, o, lse, refO, refLse;
  std::vector<uint16_t> hq, hk, hv;
  AttentionParams params;
  size_t no = 0, nl = 0;
  static constexpr size_t guard = 4096; // elements after O that nothing may touch
};

Status AttentionChecker::prepare(const CheckCase &c, Prepared &x) {
  const CudaDriver &d = *driver_;
  const int64_t dv = c.headDimV ? c.headDimV : c.headDimQK;
  const size_t nq = size_t(c.batch * c.seqQ * c.headsQ * c.headDimQK);
  const size_t nk = size_t(c.batch * c.seqK * c.headsK * c.headDimQK);
  const size_t nv = size_t(c.batch * c.seqK * c.headsK * dv);
  x.no = size_t(c.batch * c.seqQ * c.headsQ * dv);
  x.nl = size_t(c.batch * c.headsQ * c.seqQ);
  const size_t no = x.no, nl = x.nl, guard = Prepared::guard;
  for (auto [buf, bytes] : {std::pair{&x.q, nq * 2}, {&x.k, nk * 2}, {&x.v, nv * 2},
                            {&x.o, (no + guard) * 2}, {&x.lse, nl * 4}, {&x.refO, no * 4},
                            {&x.refLse, nl * 4}})
    if (Status s = buf->allocate(d, bytes); !s)
      return s;
  x.hq = randomTensor(nq, c.dtype, c.seed * 3 + 0);
  x.hk = randomTensor(nk, c.dtype, c.seed * 3 + 1);
  x.hv = randomTensor(nv, c.dtype, c.seed * 3 + 2);
  for (auto [buf, host] : {std::pair{&x.q, &x.hq}, {&x.k, &x.hk}, {&x.v, &x.hv}})
    if (Status s = d.check("cuMemcpyHtoD",
                           d.cuMemcpyHtoD(buf->ptr, host->data(), host->size() * 2));
        !s)
      return s;
  // Poison: 0xFFFF is NaN in bf16 and f16, 0xFFFFFFFF in f32.
  for (auto [buf, bytes] : {std::pair{&x.o, (no + guard) * 2}, {&x.lse, nl * 4}})
    if (Status s = d.check("cuMemsetD8", d.cuMemsetD8(buf->ptr, 0xFF, bytes)); !s)
      return s;

  AttentionParams &p = x.params;
  p.dtype = c.dtype;
  p.q = reinterpret_cast<const void *>(x.q.ptr);
  p.k = reinterpret_cast<const void *>(x.k.ptr);
  p.v = reinterpret_cast<const void *>(x.v.ptr);
  p.o = reinterpret_cast<void *>(x.o.ptr);
  p.lse = c.withLse ? reinterpret_cast<float *>(x.lse.ptr) : nullptr;
  p.batch = c.batch;
  p.seqQ = c.seqQ;
  p.seqK = c.seqK;
  p.headsQ = c.headsQ;
  p.headsK = c.headsK;
  p.headDimQK = c.headDimQK;
  p.headDimV = dv;
  p.causal = c.causal;
  p.tile = c.tile;
  stridesFor(c.headMajor, c.seqQ, c.headsQ, c.headDimQK, p.qStride);
  stridesFor(c.headMajor, c.seqK, c.headsK, c.headDimQK, p.kStride);
  stridesFor(c.headMajor, c.seqK, c.headsK, dv, p.vStride);
  stridesFor(c.headMajor, c.seqQ, c.headsQ, dv, p.oStride);
  AttentionParams normalized = p;
  if (Status s = normalizeAndValidate(normalized); !s)
    return s;
  return reference_->run(normalized, x.refO.ptr, x.refLse.ptr, nullptr);
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
  auto widen = [&](const std::vector<uint16_t> &h, std::vector<float> &out) {
    out.resize(h.size());
    for (size_t i = 0; i < h.size(); ++i)
      out[i] = c.dtype == DType::BF16 ? bf16ToFloat(h[i]) : halfToFloat(h[i]);
  };
  widen(x.hq, q);
  widen(x.hk, k);
  widen(x.hv, v);
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
       {std::tuple{(void *)ho.data(), x.o.ptr, (no + guard) * 2},
        {(void *)hRef.data(), x.refO.ptr, no * 4}, {(void *)hLse.data(), x.lse.ptr, nl * 4},
        {(void *)hRefLse.data(), x.refLse.ptr, nl * 4}})
    if (Status s = d.check("cuMemcpyDtoH", d.cuMemcpyDtoH(dst, src, bytes)); !s)
      return s;

  r = CheckResult{0, 0, 0, 0, 0, r.variant, Sha256::hex(std::string(
                                                reinterpret_cast<const char *>(ho.data()), no * 2)),
                  r.kernelSource};
  double errSq = 0, refSq = 0;
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t s = 0; s < c.seqQ; ++s)
      for (int64_t h = 0; h < c.headsQ; ++h)
        for (int64_t x = 0; x < dv; ++x) {
          size_t at = size_t(b * p.oStride[0] + s * p.oStride[1] + h * p.oStride[2] + x);
          float got = c.dtype == DType::BF16 ? bf16ToFloat(ho[at]) : halfToFloat(ho[at]);
          double want = hRef[size_t(((b * c.seqQ + s) * c.headsQ + h) * dv + x)];
          if (std::isnan(got)) {
            ++r.unwritten;
            continue;
          }
          double e = std::fabs(double(got) - want);
          r.maxAbsError = std::max(r.maxAbsError, e);
          errSq += e * e;
          refSq += want * want;
        }
  r.relativeL2 = refSq > 0 ? std::sqrt(errSq / refSq) : std::sqrt(errSq);
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

} // namespace flashjit
