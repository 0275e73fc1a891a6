//===- GpuConfigTimer.h - time a tile configuration on the GPU --*- C++ -*-===//
#ifndef FLASHJIT_RUNTIME_GPUCONFIGTIMER_H
#define FLASHJIT_RUNTIME_GPUCONFIGTIMER_H

#include "runtime/Autotuner.h"
#include "runtime/CudaDriver.h"
#include "runtime/flashjit.h"

#include <vector>

namespace flashjit {

/// Times `problem` at its real size through Runtime::attention (or, for a
/// backward kind, Runtime::attentionBackward) with CUDA events. Inputs are random and rotate among enough sets that together they
/// exceed the L2 cache several times, so the cache does not flatter.
class GpuConfigTimer : public ConfigTimer {
public:
  static Status create(Runtime &runtime, const TuningProblem &problem,
                       std::unique_ptr<GpuConfigTimer> &out);
  ~GpuConfigTimer() override;
  double timeMs(const TileConfig &tile, std::string &note) override;

private:
  GpuConfigTimer(Runtime &runtime, const CudaDriver &driver, const TuningProblem &problem)
      : runtime_(runtime), driver_(driver), problem_(problem) {}
  Status timeLaunches(const TileConfig &tile, int launches, float &ms);
  Status launch(const TileConfig &tile, int set);
  AttentionParams forwardParams(int set) const; // the problem on buffer set `set`

  Runtime &runtime_;
  const CudaDriver &driver_;
  TuningProblem problem_;
  std::vector<CUdeviceptr> buffers_; // per set: q, k, v, o (backward: + dO, lse, dQ, dK, dV)
  size_t buffersPerSet_ = 4;
  CUdeviceptr alibiSlopes_ = 0; // [heads_q] fp32, for ALiBi problems
  int sets_ = 0;
  CUevent start_ = nullptr, stop_ = nullptr;
};

} // namespace flashjit

#endif
