//===- LoadedKernel.cpp ---------------------------------------------------===//
#include "runtime/LoadedKernel.h"

#include <utility>
#include <vector>

namespace flashjit {

Status LoadedKernel::load(const CudaDriver &driver, const std::string &image,
                          const std::string &name, int64_t threads, int64_t sharedMemoryBytes,
                          LoadedKernel &out) {
  // Keep the driver JIT's error log: it is the only explanation of a bad PTX.
  std::vector<char> log(8192, 0);
  CUjit_option options[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *values[] = {log.data(), reinterpret_cast<void *>(log.size() - 1)};
  CUmodule module = nullptr;
  CUresult r = driver.cuModuleLoadDataEx(&module, image.c_str(), 2, options, values);
  if (r != CUDA_SUCCESS)
    return Status::error(driver.describe("loading kernel module", r) + " for " + name + ": " +
                         log.data());
  LoadedKernel k;
  k.driver_ = &driver;
  k.module_ = module;
  k.name_ = name;
  k.threads_ = unsigned(threads);
  k.sharedMemoryBytes_ = unsigned(sharedMemoryBytes);
  if (Status s = driver.check("cuModuleGetFunction", driver.cuModuleGetFunction(
                                                         &k.function_, module, name.c_str()));
      !s)
    return Status::error(s.message() + " (kernel " + name + ")");
  if (Status s = driver.check("setting the dynamic shared-memory size",
                              driver.cuFuncSetAttribute(
                                  k.function_, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                  int(sharedMemoryBytes)));
      !s)
    return Status::error(s.message() + " (kernel " + name + " wants " +
                         std::to_string(sharedMemoryBytes) + " bytes)");
  driver.cuFuncGetAttribute(&k.registers_, CU_FUNC_ATTRIBUTE_NUM_REGS, k.function_);
  // What registers and shared memory allow (a persistent grid's size).
  if (Status s = driver.check("cuOccupancyMaxActiveBlocksPerMultiprocessor",
                              driver.cuOccupancyMaxActiveBlocksPerMultiprocessor(
                                  &k.residentBlocksPerSM_, k.function_, int(threads),
                                  size_t(sharedMemoryBytes)));
      !s)
    return Status::error(s.message() + " (kernel " + name + ")");
  out = std::move(k);
  return Status::ok();
}

LoadedKernel::LoadedKernel(LoadedKernel &&o) noexcept { *this = std::move(o); }

LoadedKernel &LoadedKernel::operator=(LoadedKernel &&o) noexcept {
  std::swap(driver_, o.driver_);
  std::swap(module_, o.module_);
  std::swap(function_, o.function_);
  std::swap(name_, o.name_);
  std::swap(threads_, o.threads_);
  std::swap(sharedMemoryBytes_, o.sharedMemoryBytes_);
  std::swap(registers_, o.registers_);
  std::swap(residentBlocksPerSM_, o.residentBlocksPerSM_);
  return *this;
}

LoadedKernel::~LoadedKernel() {
  if (module_ && driver_)
    driver_->cuModuleUnload(module_);
}

// Points args[first...] at the score-modifier values (ScoreModifierParam order).
static void pointAtModifiers(void **args, int first, const abi::ScoreModifierParams &m) {
  args[first + abi::kWindowLeftParam] = const_cast<int32_t *>(&m.windowLeft);
  args[first + abi::kWindowRightParam] = const_cast<int32_t *>(&m.windowRight);
  args[first + abi::kSoftcapInputScaleParam] = const_cast<float *>(&m.softcapInputScale);
  args[first + abi::kAlibiSlopesParam] = const_cast<const float **>(&m.alibiSlopes);
  args[first + abi::kAlibiBatchStrideParam] = const_cast<int64_t *>(&m.alibiBatchStride);
}

// Points args[first...] at the varlen values (VarlenParam order).
static void pointAtVarlen(void **args, int first, const abi::VarlenParams &v) {
  args[first + abi::kCuSeqlensQParam] = const_cast<const int32_t **>(&v.cuSeqlensQ);
  args[first + abi::kCuSeqlensKParam] = const_cast<const int32_t **>(&v.cuSeqlensK);
  args[first + abi::kTotalQParam] = const_cast<int32_t *>(&v.totalQ);
}

// Points args[first...] at the dropout values (DropoutParam order).
static void pointAtDropout(void **args, int first, const abi::DropoutParams &d) {
  args[first + abi::kDropoutSeedParam] = const_cast<uint64_t *>(&d.seed);
  args[first + abi::kDropoutOffsetParam] = const_cast<uint32_t *>(&d.offset);
  args[first + abi::kDropoutThresholdParam] = const_cast<uint32_t *>(&d.threshold);
  args[first + abi::kDropoutKeepScaleParam] = const_cast<float *>(&d.keepScale);
}

// Points args[first...] at the block-mask values (BlockMaskParam order).
static void pointAtBlockMask(void **args, int first, const abi::BlockMaskParams &m) {
  const int32_t *const *lists[] = {&m.kvCounts, &m.kvIndices, &m.qCounts, &m.qIndices};
  for (int i = 0; i < 4; ++i)
    args[first + abi::kKvCountsParam + i] = const_cast<const int32_t **>(lists[i]);
  const int32_t *sizes[] = {&m.blockQ,      &m.blockK,  &m.queryBlocks,
                            &m.keyBlocks,   &m.batches, &m.heads};
  for (int i = 0; i < 6; ++i)
    args[first + abi::kBlockQParam + i] = const_cast<int32_t *>(sizes[i]);
}

Status LoadedKernel::launch(const abi::AttentionKernelParams &p, const abi::TensorMap *tensorMaps,
                            unsigned gridX, unsigned gridY, unsigned gridZ,
                            CUstream stream) const {
  // One pointer per kernel parameter, in compiler/KernelABI.h order.
  void *args[abi::kNumParamsWarpSpecialized];
  args[abi::kQ] = const_cast<const void **>(&p.q);
  args[abi::kK] = const_cast<const void **>(&p.k);
  args[abi::kV] = const_cast<const void **>(&p.v);
  args[abi::kO] = const_cast<void **>(&p.o);
  args[abi::kLse] = const_cast<float **>(&p.lse);
  for (int i = 0; i < 3; ++i) {
    args[abi::kQStride0 + i] = const_cast<int64_t *>(&p.qStride[i]);
    args[abi::kKStride0 + i] = const_cast<int64_t *>(&p.kStride[i]);
    args[abi::kVStride0 + i] = const_cast<int64_t *>(&p.vStride[i]);
    args[abi::kOStride0 + i] = const_cast<int64_t *>(&p.oStride[i]);
  }
  args[abi::kSeqQ] = const_cast<int32_t *>(&p.seqQ);
  args[abi::kSeqK] = const_cast<int32_t *>(&p.seqK);
  args[abi::kHeadsQ] = const_cast<int32_t *>(&p.headsQ);
  args[abi::kGroupSize] = const_cast<int32_t *>(&p.groupSize);
  args[abi::kScaleLog2] = const_cast<float *>(&p.scaleLog2);
  args[abi::kBatch] = const_cast<int32_t *>(&p.batch);
  pointAtModifiers(args, abi::kScoreModifiers0, p.modifiers);
  pointAtVarlen(args, abi::kVarlen0, p.varlen);
  pointAtDropout(args, abi::kDropout0, p.dropout);
  pointAtBlockMask(args, abi::kBlockMask0, p.blockMask);
  if (tensorMaps) { // by value: the driver copies the 128 bytes behind each pointer
    for (int i = 0; i < abi::kNumTensorMaps; ++i)
      args[abi::kTensorMapQ + i] = const_cast<abi::TensorMap *>(&tensorMaps[i]);
    args[abi::kTileCounter] = const_cast<int32_t **>(&p.tileCounter);
  }
  return launchRaw(args, gridX, gridY, gridZ, stream);
}

Status LoadedKernel::launch(const abi::BackwardKernelParams &p, const abi::TensorMap *tensorMaps,
                            unsigned gridX, unsigned gridY, unsigned gridZ,
                            CUstream stream) const {
  using namespace abi::bwd;
  void *args[kNumParamsWarpSpecialized];
  const void *const *pointers[] = {&p.q, &p.k, &p.v, &p.o, &p.dO};
  for (int i = 0; i < 5; ++i)
    args[kQ + i] = const_cast<const void **>(pointers[i]);
  args[kLse] = const_cast<const float **>(&p.lse);
  args[kDelta] = const_cast<float **>(&p.delta);
  args[kDQ] = const_cast<void **>(&p.dQ);
  args[kDK] = const_cast<void **>(&p.dK);
  args[kDV] = const_cast<void **>(&p.dV);
  args[kDQAccum] = const_cast<float **>(&p.dQAccum);
  const int64_t *strides[] = {p.qStride,  p.kStride,  p.vStride,  p.oStride,  p.dOStride,
                              p.dQStride, p.dKStride, p.dVStride, p.dQAccumStride};
  for (int t = 0; t < 9; ++t)
    for (int i = 0; i < 3; ++i)
      args[kQStride0 + 3 * t + i] = const_cast<int64_t *>(&strides[t][i]);
  args[kSeqQ] = const_cast<int32_t *>(&p.seqQ);
  args[kSeqK] = const_cast<int32_t *>(&p.seqK);
  args[kHeadsQ] = const_cast<int32_t *>(&p.headsQ);
  args[kGroupSize] = const_cast<int32_t *>(&p.groupSize);
  args[kScaleLog2] = const_cast<float *>(&p.scaleLog2);
  args[kScale] = const_cast<float *>(&p.scale);
  args[kBatch] = const_cast<int32_t *>(&p.batch);
  pointAtModifiers(args, kScoreModifiers0, p.modifiers);
  pointAtVarlen(args, kVarlen0, p.varlen);
  pointAtDropout(args, kDropout0, p.dropout);
  pointAtBlockMask(args, kBlockMask0, p.blockMask);
  if (tensorMaps) // by value, as the forward's
    for (int i = 0; i < abi::kNumTensorMaps; ++i)
      args[kTensorMapQ + i] = const_cast<abi::TensorMap *>(&tensorMaps[i]);
  return launchRaw(args, gridX, gridY, gridZ, stream);
}

Status LoadedKernel::launchRaw(void **args, unsigned gridX, unsigned gridY, unsigned gridZ,
                               CUstream stream) const {
  CUresult r = driver_->cuLaunchKernel(function_, gridX, gridY, gridZ, threads_, 1, 1,
                                       sharedMemoryBytes_, stream, args, nullptr);
  if (r != CUDA_SUCCESS)
    return Status::error(driver_->describe("cuLaunchKernel", r) + " (kernel " + name_ + ")");
  return Status::ok();
}

} // namespace flashjit
