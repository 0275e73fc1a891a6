//===- ReferenceAttention.cpp ---------------------------------------------===//
#include "templates/ReferenceAttention.h"

#include <nvrtc.h>

#include <string>
#include <vector>

namespace flashjit {

extern const char *const kReferenceAttentionSource; // generated from reference_attention.cu

namespace {
// reference_attention.cu's ScoreMods, passed by value.
struct ReferenceScoreMods {
  int32_t causal, useWindow, windowLeft, windowRight;
  float softcap;
  int32_t batchBase;
  const float *alibi;
  int64_t alibiBatchStride;
  float dropoutP;
  uint32_t dropoutOffset;
  uint64_t dropoutSeed;
  const uint8_t *blockMask;
  int32_t blockQ, blockK, maskBatches, maskHeads, queryBlocks, keyBlocks;
};

ReferenceScoreMods scoreModsOf(const AttentionParams &p, int batchBase,
                               const uint8_t *denseBlockMask) {
  const BlockMask &m = p.blockMask;
  return {p.causal ? 1 : 0, p.windowLeft >= 0 || p.windowRight >= 0,
          int32_t(p.windowLeft), int32_t(p.windowRight), p.softcap, batchBase, p.alibiSlopes,
          p.alibiBatchStride, p.dropoutP, p.dropoutOffset, p.dropoutSeed, denseBlockMask,
          int32_t(m.blockQ), int32_t(m.blockK), int32_t(m.batches), int32_t(m.heads),
          int32_t(m.queryBlocks(p.seqQ)), int32_t(m.keyBlocks(p.seqK))};
}
} // namespace

static Status nvrtcCheck(nvrtcResult r, const char *what) {
  if (r == NVRTC_SUCCESS)
    return Status::ok();
  return Status::error(std::string(what) + ": " + nvrtcGetErrorString(r));
}

Status ReferenceAttention::create(const CudaDriver &driver, int ccMajor, int ccMinor,
                                  std::unique_ptr<ReferenceAttention> &out,
                                  const std::string &scoreMod, const std::string &maskMod) {
  nvrtcProgram prog;
  if (Status s = nvrtcCheck(nvrtcCreateProgram(&prog, kReferenceAttentionSource,
                                               "reference_attention.cu", 0, nullptr, nullptr),
                            "nvrtcCreateProgram");
      !s)
    return s;
  std::string arch = "--gpu-architecture=sm_" + std::to_string(ccMajor) + std::to_string(ccMinor);
  std::vector<std::string> options = {arch};
  if (!scoreMod.empty())
    options.push_back("-DFLASHJIT_SCORE_MOD=" + scoreMod);
  if (!maskMod.empty())
    options.push_back("-DFLASHJIT_MASK_MOD=" + maskMod);
  std::vector<const char *> opts;
  for (const std::string &o : options)
    opts.push_back(o.c_str());
  nvrtcResult compiled = nvrtcCompileProgram(prog, int(opts.size()), opts.data());
  if (compiled != NVRTC_SUCCESS) {
    size_t size = 0;
    nvrtcGetProgramLogSize(prog, &size);
    std::string log(size, '\0');
    nvrtcGetProgramLog(prog, log.data());
    nvrtcDestroyProgram(&prog);
    return Status::error("NVRTC failed on the reference kernel: " + log);
  }
  size_t size = 0;
  nvrtcGetCUBINSize(prog, &size);
  std::string cubin(size, '\0');
  nvrtcGetCUBIN(prog, cubin.data());
  nvrtcDestroyProgram(&prog);
  auto ref = std::make_unique<ReferenceAttention>();
  for (auto [name, kernel] : {std::pair{"reference_attention", &ref->kernel_},
                              {"reference_attention_bwd_dq", &ref->backwardDQ_},
                              {"reference_attention_bwd_dkv", &ref->backwardDKV_},
                              {"reference_philox", &ref->philox_}})
    if (Status s = LoadedKernel::load(driver, cubin, name, 128, 0, *kernel); !s)
      return s;
  out = std::move(ref);
  return Status::ok();
}

Status ReferenceAttention::run(const AttentionParams &p, CUdeviceptr outF32, CUdeviceptr lseF32,
                               CUstream stream, int batchBase,
                               const uint8_t *denseBlockMask) const {
  long long qs[3], ks[3], vs[3];
  for (int i = 0; i < 3; ++i) {
    qs[i] = p.qStride[i];
    ks[i] = p.kStride[i];
    vs[i] = p.vStride[i];
  }
  int seqQ = int(p.seqQ), seqK = int(p.seqK), headsQ = int(p.headsQ),
      group = int(p.headsQ / p.headsK), dQK = int(p.headDimQK), dV = int(p.headDimV),
      isF16 = p.dtype == DType::F16;
  ReferenceScoreMods mods = scoreModsOf(p, batchBase, denseBlockMask);
  float scale = p.softmaxScale;
  if (seqQ == 0 || p.batch == 0) // an empty grid is a launch error
    return Status::ok();
  void *args[] = {const_cast<const void **>(&p.q), const_cast<const void **>(&p.k),
                  const_cast<const void **>(&p.v), &outF32, &lseF32,
                  &qs[0], &qs[1], &qs[2], &ks[0], &ks[1], &ks[2], &vs[0], &vs[1], &vs[2],
                  &seqQ, &seqK, &headsQ, &group, &dQK, &dV, &mods, &scale, &isF16};
  return kernel_.launchRaw(args, unsigned((seqQ + 3) / 4), unsigned(headsQ), unsigned(p.batch),
                           stream);
}

Status ReferenceAttention::runPhilox(CUdeviceptr in, CUdeviceptr out, int n,
                                     CUstream stream) const {
  void *args[] = {&in, &out, &n};
  return philox_.launchRaw(args, unsigned((n + 127) / 128), 1, 1, stream);
}

Status ReferenceAttention::runBackward(const AttentionParams &p, const void *dO,
                                       const int64_t dOStride[3], CUdeviceptr refO,
                                       CUdeviceptr refLse, CUdeviceptr delta, CUdeviceptr dq,
                                       CUdeviceptr dk, CUdeviceptr dv, CUstream stream,
                                       int batchBase, const uint8_t *denseBlockMask) const {
  long long qs[3], ks[3], vs[3], os[3];
  for (int i = 0; i < 3; ++i) {
    qs[i] = p.qStride[i];
    ks[i] = p.kStride[i];
    vs[i] = p.vStride[i];
    os[i] = dOStride[i];
  }
  int seqQ = int(p.seqQ), seqK = int(p.seqK), headsQ = int(p.headsQ),
      group = int(p.headsQ / p.headsK), dQK = int(p.headDimQK), dV = int(p.headDimV),
      isF16 = p.dtype == DType::F16;
  ReferenceScoreMods mods = scoreModsOf(p, batchBase, denseBlockMask);
  float scale = p.softmaxScale;
  void *strideArgs[] = {&qs[0], &qs[1], &qs[2], &ks[0], &ks[1], &ks[2],
                        &vs[0], &vs[1], &vs[2], &os[0], &os[1], &os[2]};
  void *shapeArgs[] = {&seqQ, &seqK, &headsQ, &group, &dQK, &dV, &mods, &scale, &isF16};
  auto launch = [&](const LoadedKernel &kernel, std::vector<void *> args, int rows, int heads) {
    args.insert(args.end(), std::begin(strideArgs), std::end(strideArgs));
    args.insert(args.end(), std::begin(shapeArgs), std::end(shapeArgs));
    return kernel.launchRaw(args.data(), unsigned((rows + 3) / 4), unsigned(heads),
                            unsigned(p.batch), stream);
  };
  if (seqQ > 0)
    if (Status s = launch(backwardDQ_,
                          {const_cast<const void **>(&p.q), const_cast<const void **>(&p.k),
                           const_cast<const void **>(&p.v), const_cast<const void **>(&dO), &refO,
                           &refLse, &delta, &dq},
                          seqQ, headsQ);
        !s)
      return s;
  if (seqK == 0)
    return Status::ok();
  return launch(backwardDKV_,
                {const_cast<const void **>(&p.q), const_cast<const void **>(&p.k),
                 const_cast<const void **>(&p.v), const_cast<const void **>(&dO), &refLse, &delta,
                 &dk, &dv},
                seqK, int(p.headsK));
}

} // namespace flashjit
