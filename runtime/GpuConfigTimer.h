//===- GpuConfigTimer.h - time a tile configuration on the GPU --*- C++ -*-===//
#ifndef FLASHJIT_RUNTIME_GPUCONFIGTIMER_H
#define FLASHJIT_RUNTIME_GPUCONFIGTIMER_H

#include "runtime/Autotuner.h"
#include "runtime/CudaDriver.h"
#include "runtime/flashjit.h"

#include <vector>

namespace flashjit {

/// Times `problem` at its real size through Runtime::attention with CUDA
/// events. Inputs are random and rotate among enough sets that together they
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

  Runtime &runtime_;
  const CudaDriver &driver_;
  TuningProblem problem_;
  std::vector<CUdeviceptr> buffers_; // q, k, v, o per set
  int sets_ = 0;
  CUevent start_ = nullptr, stop_ = nullptr;
};

} // namespace flashjit

#endif
