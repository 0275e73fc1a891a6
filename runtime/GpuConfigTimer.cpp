//===- GpuConfigTimer.cpp -------------------------------------------------===//
#include "runtime/GpuConfigTimer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstring>
#include <random>

namespace flashjit {

Status GpuConfigTimer::create(Runtime &runtime, const TuningProblem &p,
                              std::unique_ptr<GpuConfigTimer> &out) {
  const CudaDriver *d = nullptr;
  if (Status s = CudaDriver::get(d); !s)
    return s;
  std::unique_ptr<GpuConfigTimer> t(new GpuConfigTimer(runtime, *d, p));
  const size_t q = size_t(p.batch * p.seqQ * p.headsQ * p.headDimQK) * 2;
  const size_t k = size_t(p.batch * p.seqK * p.headsK * p.headDimQK) * 2;
  const size_t v = size_t(p.batch * p.seqK * p.headsK * p.headDimV) * 2;
  const size_t o = size_t(p.batch * p.seqQ * p.headsQ * p.headDimV) * 2;
  int l2 = 0;
  CUdevice dev = 0;
  d->cuCtxGetDevice(&dev);
  d->cuDeviceGetAttribute(&l2, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, dev);
  // The backward also reads O, dO and the LSE and writes dQ, dK, dV.
  const bool backward = p.kind != KernelKind::Forward;
  const size_t lse = size_t(p.batch * p.headsQ * p.seqQ) * 4;
  std::vector<size_t> sizes = {q, k, v, o};
  if (backward)
    sizes.insert(sizes.end(), {o, lse, q, k, v});
  t->buffersPerSet_ = sizes.size();
  size_t perSet = 0;
  for (size_t bytes : sizes)
    perSet += bytes;
  t->sets_ = int(std::clamp<size_t>((3 * size_t(l2) + perSet - 1) / perSet, 1, 8));
  // Random bf16/f16 values in [-1, 1): one random block, tiled over each buffer.
  std::vector<uint16_t> block(1 << 20);
  std::mt19937 rng(12345);
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  for (uint16_t &x : block) {
    float f = uniform(rng);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    // bf16: top half; f16: reinterpreting would give garbage, so draw f16 bits
    // in a safe exponent range instead (|x| in [2^-4, 2)).
    x = p.dtype == DType::BF16 ? uint16_t(bits >> 16)
                               : uint16_t((bits & 0x80000000u ? 0x8000 : 0) |
                                          ((11 + (rng() % 5)) << 10) | (rng() & 0x3ff));
  }
  for (int s = 0; s < t->sets_; ++s)
    for (size_t bytes : sizes) {
      CUdeviceptr ptr = 0;
      if (Status st = d->check("cuMemAlloc", d->cuMemAlloc(&ptr, bytes)); !st)
        return st;
      t->buffers_.push_back(ptr);
      for (size_t off = 0; off < bytes; off += block.size() * 2)
        if (Status st = d->check("cuMemcpyHtoD",
                                 d->cuMemcpyHtoD(ptr + off, block.data(),
                                                 std::min(bytes - off, block.size() * 2)));
            !st)
          return st;
    }
  if (p.alibi) { // the usual geometric slopes
    std::vector<float> slopes(size_t(p.headsQ));
    for (size_t h = 0; h < slopes.size(); ++h)
      slopes[h] = std::exp2(-8.0f * float(h + 1) / float(p.headsQ));
    if (Status st = d->check("cuMemAlloc", d->cuMemAlloc(&t->alibiSlopes_, slopes.size() * 4)); !st)
      return st;
    if (Status st = d->check("cuMemcpyHtoD", d->cuMemcpyHtoD(t->alibiSlopes_, slopes.data(),
                                                            slopes.size() * 4));
        !st)
      return st;
  }
  // A backward needs the forward's O and LSE of its inputs.
  for (int set = 0; backward && set < t->sets_; ++set) {
    AttentionParams a = t->forwardParams(set);
    a.lse = reinterpret_cast<float *>(t->buffers_[t->buffersPerSet_ * size_t(set) + 5]);
    if (Status st = runtime.attention(a, nullptr); !st)
      return st;
  }
  if (Status s = d->check("cuEventCreate", d->cuEventCreate(&t->start_, CU_EVENT_DEFAULT)); !s)
    return s;
  if (Status s = d->check("cuEventCreate", d->cuEventCreate(&t->stop_, CU_EVENT_DEFAULT)); !s)
    return s;
  out = std::move(t);
  return Status::ok();
}

GpuConfigTimer::~GpuConfigTimer() {
  for (CUdeviceptr p : buffers_)
    driver_.cuMemFree(p);
  if (alibiSlopes_)
    driver_.cuMemFree(alibiSlopes_);
  if (start_)
    driver_.cuEventDestroy(start_);
  if (stop_)
    driver_.cuEventDestroy(stop_);
}

AttentionParams GpuConfigTimer::forwardParams(int set) const {
  AttentionParams a;
  a.dtype = problem_.dtype;
  a.batch = problem_.batch;
  a.seqQ = problem_.seqQ;
  a.seqK = problem_.seqK;
  a.headsQ = problem_.headsQ;
  a.headsK = problem_.headsK;
  a.headDimQK = problem_.headDimQK;
  a.headDimV = problem_.headDimV;
  a.causal = problem_.causal;
  a.windowLeft = problem_.windowLeft;
  a.windowRight = problem_.windowRight;
  a.softcap = problem_.softcap ? 30.0f : 0.0f; // any cap: the work does not depend on it
  a.scoreMod = problem_.scoreMod.c_str();
  a.maskMod = problem_.maskMod.c_str();
  a.dropoutP = problem_.dropout ? 0.1f : 0.0f; // any p: the work does not depend on it
  a.alibiSlopes = reinterpret_cast<const float *>(alibiSlopes_);
  const CUdeviceptr *b = &buffers_[buffersPerSet_ * size_t(set)];
  a.q = reinterpret_cast<const void *>(b[0]);
  a.k = reinterpret_cast<const void *>(b[1]);
  a.v = reinterpret_cast<const void *>(b[2]);
  a.o = reinterpret_cast<void *>(b[3]);
  return a;
}

// One call of the configuration under test: the forward with `tile`, or the
// whole backward with `tile` for the problem's kernel (the others at their
// tuned or default tiles).
Status GpuConfigTimer::launch(const TileConfig &tile, int set) {
  AttentionParams a = forwardParams(set);
  if (problem_.kind == KernelKind::Forward) {
    a.tile = tile;
    return runtime_.attention(a, nullptr);
  }
  const CUdeviceptr *b = &buffers_[buffersPerSet_ * size_t(set)];
  AttentionBackwardParams g;
  g.forward = a;
  g.dO = reinterpret_cast<const void *>(b[4]);
  g.forward.lse = reinterpret_cast<float *>(b[5]);
  g.dQ = reinterpret_cast<void *>(b[6]);
  g.dK = reinterpret_cast<void *>(b[7]);
  g.dV = reinterpret_cast<void *>(b[8]);
  (problem_.kind == KernelKind::BackwardDQ ? g.tileDQ : g.tileDKV) = tile;
  // The atomic-dQ kinds time the atomic backward, the others the deterministic one.
  g.atomicQueryGradient = addsQueryGradient(problem_.kind);
  g.deterministic = !g.atomicQueryGradient;
  return runtime_.attentionBackward(g, nullptr);
}

Status GpuConfigTimer::timeLaunches(const TileConfig &tile, int launches, float &ms) {
  if (Status s = driver_.check("cuEventRecord", driver_.cuEventRecord(start_, nullptr)); !s)
    return s;
  for (int i = 0; i < launches; ++i)
    if (Status s = launch(tile, i % sets_); !s)
      return s;
  if (Status s = driver_.check("cuEventRecord", driver_.cuEventRecord(stop_, nullptr)); !s)
    return s;
  if (Status s = driver_.check("cuEventSynchronize", driver_.cuEventSynchronize(stop_)); !s)
    return s;
  return driver_.check("cuEventElapsedTime", driver_.cuEventElapsedTime(&ms, start_, stop_));
}

double GpuConfigTimer::timeMs(const TileConfig &tile, std::string &note) {
  const double inf = std::numeric_limits<double>::infinity();
  float ms = 0;
  // The first call compiles (or loads) the variant and warms up.
  if (Status s = timeLaunches(tile, 1, ms); !s) {
    note = s.message();
    return inf;
  }
  if (Status s = timeLaunches(tile, 2, ms); !s) {
    note = s.message();
    return inf;
  }
  int launches = int(std::clamp(20.0 / std::max(1e-3, double(ms) / 2), 3.0, 200.0));
  std::vector<double> samples;
  for (int rep = 0; rep < 5; ++rep) {
    if (Status s = timeLaunches(tile, launches, ms); !s) {
      note = s.message();
      return inf;
    }
    samples.push_back(double(ms) / launches);
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

} // namespace flashjit
