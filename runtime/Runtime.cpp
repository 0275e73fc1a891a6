//===- Runtime.cpp - bind to a device, JIT-compile, cache, launch ---------===//
#include "runtime/flashjit.h"

#include "compiler/ModifierExpression.h"
#include "runtime/BlockMasks.h"
#include "runtime/CudaDriver.h"
#include "runtime/DiskCache.h"
#include "runtime/GpuConfigTimer.h"
#include "runtime/KernelProvider.h"
#include "runtime/PackedSequences.h"
#include "runtime/TensorMaps.h"

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace flashjit {

struct Runtime::Impl {
  const CudaDriver *driver = nullptr;
  CUcontext context = nullptr;
  DeviceInfo device;
  DeviceLimits limits;
  // Asked in order: the bundle, then (full library only) the JIT and its caches.
  std::vector<std::unique_ptr<KernelProvider>> providers;
  std::string diskCacheProblem;
  bool jitAvailable = false;
  std::unique_ptr<TuningDatabase> tuning;
  std::string tuningPath;
  bool autotune = false;
  mutable std::mutex tuningMutex; // guards `tuning`; locked from const lookups too
  // The stream-ordered workspaces (the backward's Δ and dQ accumulator, the
  // persistent kernel's tile counter, derived block lists) come from this
  // pool, which keeps what it mapped: the driver's default pool gives its
  // memory back at every synchronization, so a training loop that syncs each
  // step mapped the accumulator (128 MiB at 16K tokens, d 128) again each
  // step. Null where the device has no memory pools: the default pool then.
  CUmemoryPool workspacePool = nullptr;
  ~Impl() {
    if (workspacePool)
      driver->cuMemPoolDestroy(workspacePool); // (its memory goes once the frees are done)
  }
};

static thread_local const char *lastSource = "";

RuntimeOptions RuntimeOptions::fromEnvironment() {
  RuntimeOptions o;
  auto flag = [](const char *name) {
    const char *v = std::getenv(name);
    return v && *v && std::string(v) != "0";
  };
  o.disableJit = flag("FLASHJIT_DISABLE_JIT");
  o.autotune = flag("FLASHJIT_AUTOTUNE");
  if (const char *b = std::getenv("FLASHJIT_BUNDLE"))
    o.bundlePath = b;
  return o;
}

const char *Runtime::lastKernelSource() const { return lastSource; }
const std::string &Runtime::diskCacheProblem() const { return impl_->diskCacheProblem; }

Runtime::Runtime(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Runtime::~Runtime() = default;
const DeviceInfo &Runtime::device() const { return impl_->device; }

static Status readDeviceInfo(const CudaDriver &d, CUdevice dev, DeviceInfo &info) {
  char name[256] = {0};
  if (Status s = d.check("cuDeviceGetName", d.cuDeviceGetName(name, sizeof(name) - 1, dev)); !s)
    return s;
  info.name = name;
  int smem = 0;
  struct { CUdevice_attribute attr; int *out; } attrs[] = {
      {CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, &info.ccMajor},
      {CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, &info.ccMinor},
      {CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, &info.smCount},
      {CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, &smem}};
  for (auto &a : attrs)
    if (Status s = d.check("cuDeviceGetAttribute", d.cuDeviceGetAttribute(a.out, a.attr, dev)); !s)
      return s;
  info.maxSharedMemoryPerBlock = smem;
  info.arch = "sm_" + std::to_string(info.ccMajor) + std::to_string(info.ccMinor);
  // Hopper's architecture-specific features (wgmma, setmaxnreg) need sm_90a.
  if (info.ccMajor == 9 && info.ccMinor == 0)
    info.arch += "a";
  if (info.ccMajor < 8)
    return Status::error("GPU " + info.name + " (" + info.arch +
                         ") is not supported: flashjit needs sm_80 or newer");
  return Status::ok();
}

static Status openTuningDatabase(Runtime::Impl &impl, const RuntimeOptions &options) {
  const CudaDriver &d = *impl.driver;
  int driverVersion = 0;
  d.cuDriverGetVersion(&driverVersion);
  impl.tuning = std::make_unique<TuningDatabase>(DeviceIdentity{
      impl.device.name, impl.device.arch, std::to_string(driverVersion), FLASHJIT_VERSION_STRING});
  impl.autotune = options.autotune;
  std::string root = options.cacheDir.empty() ? DiskCache::defaultRoot() : options.cacheDir;
  if (root.empty())
    return Status::ok();
  std::string dir = root + "/tune";
  ::mkdir(root.c_str(), 0700);
  ::mkdir(dir.c_str(), 0700);
  impl.tuningPath = dir + "/" + impl.device.arch + ".json";
  std::vector<std::string> notes;
  Status s = impl.tuning->load(impl.tuningPath, notes);
  auto warn = [&](const std::string &m) {
    if (options.warn)
      options.warn(m);
    else
      fprintf(stderr, "flashjit: warning: %s\n", m.c_str());
  };
  for (const std::string &n : notes)
    warn(n);
  if (!s) // a broken database only loses tuned choices
    warn(s.message() + "; using default tiles");
  return Status::ok();
}

// The score modifiers' kernel parameters. Unbounded window sides become
// seq_k (left) and seq_q (right), which no diagonal distance exceeds.
static abi::ScoreModifierParams scoreModifiersOf(const AttentionParams &p) {
  abi::ScoreModifierParams m;
  m.windowLeft = int32_t(p.windowLeft < 0 ? p.seqK : std::min(p.windowLeft, p.seqK));
  m.windowRight = int32_t(p.windowRight < 0 ? p.seqQ : std::min(p.windowRight, p.seqQ));
  m.softcapInputScale = p.softcap > 0.0f ? p.softmaxScale / p.softcap : 0.0f;
  m.alibiSlopes = p.alibiSlopes;
  m.alibiBatchStride = p.alibiBatchStride;
  return m;
}

// Dropout's kernel parameters: p quantized to 1/65536 (the kernels compare
// 16 random bits with the threshold) and the scale that keeps O unbiased.
static abi::DropoutParams dropoutOf(const AttentionParams &p) {
  abi::DropoutParams d;
  d.seed = p.dropoutSeed;
  d.offset = p.dropoutOffset;
  d.threshold = uint32_t(std::lround(double(p.dropoutP) * 65536.0));
  d.keepScale = d.threshold < 65536 ? float(65536.0 / double(65536 - d.threshold)) : 0.0f;
  return d;
}

// softmax(scale' · s) runs in the log2 domain; with a softcap, s is already
// tanh(scale · s / softcap) and scale' = softcap.
static float scaleLog2Of(const AttentionParams &p) {
  return (p.softcap > 0.0f ? p.softcap : p.softmaxScale) * float(M_LOG2E);
}

// Fills the variant fields that follow from the request's mask and modifiers;
// the user modifiers' canonical text comes from the call's tuning problem
// (parsed once per call).
static void setScoreModifiers(AttentionSpec &spec, const AttentionParams &p,
                              const TuningProblem &problem) {
  spec.mask = attentionMask(p);
  spec.softcap = p.softcap > 0.0f;
  spec.alibi = p.alibiSlopes != nullptr;
  spec.varlen = p.varlen();
  spec.scoreMod = problem.scoreMod;
  spec.maskMod = problem.maskMod;
  spec.dropout = problem.dropout;
  spec.blockMask = p.blockMask.present();
}

// The kernel parameters the forward and backward kernels share, from the
// forward's normalized params (both ABI structs name them alike).
template <typename KernelParams>
static void setForwardFields(KernelParams &k, const AttentionParams &p) {
  k.q = p.q;
  k.k = p.k;
  k.v = p.v;
  k.o = p.o;
  k.lse = p.lse;
  for (int i = 0; i < 3; ++i) {
    k.qStride[i] = p.qStride[i];
    k.kStride[i] = p.kStride[i];
    k.vStride[i] = p.vStride[i];
    k.oStride[i] = p.oStride[i];
  }
  k.seqQ = int32_t(p.seqQ);
  k.seqK = int32_t(p.seqK);
  k.headsQ = int32_t(p.headsQ);
  k.groupSize = int32_t(p.headsQ / p.headsK);
  k.scaleLog2 = scaleLog2Of(p);
  k.batch = int32_t(p.batch);
  k.modifiers = scoreModifiersOf(p);
  k.varlen = {p.cuSeqlensQ, p.cuSeqlensK, int32_t(p.totalQ)};
  k.dropout = dropoutOf(p);
  k.blockMask = blockMaskParamsOf(p);
}

// The tuning problem of normalized params. Varlen requests are tuned as the
// padded shape (batch x the longest lengths).
static TuningProblem problemOf(const AttentionParams &p) {
  TuningProblem t;
  t.dtype = p.dtype;
  t.headDimQK = p.headDimQK;
  t.headDimV = p.headDimV;
  const Mask mask = attentionMask(p);
  t.causal = mask == Mask::Causal;
  if (mask == Mask::Window) {
    t.windowLeft = p.windowLeft;
    t.windowRight = p.windowRight;
  }
  t.softcap = p.softcap > 0.0f;
  t.alibi = p.alibiSlopes != nullptr;
  t.scoreMod = canonicalModifierText(p.scoreMod, ModifierKind::Score);
  t.maskMod = canonicalModifierText(p.maskMod, ModifierKind::Mask);
  t.dropout = p.dropoutP > 0.0f;
  t.withLse = p.lse != nullptr;
  t.batch = p.batch;
  t.seqQ = p.seqQ;
  t.seqK = p.seqK;
  t.headsQ = p.headsQ;
  t.headsK = p.headsK;
  return t;
}

// A device pool that keeps its memory (release threshold: unlimited).
static Status createWorkspacePool(const CudaDriver &d, CUdevice dev, CUmemoryPool &pool) {
  int supported = 0;
  d.cuDeviceGetAttribute(&supported, CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED, dev);
  if (!supported)
    return Status::ok();
  CUmemPoolProps props{};
  props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
  props.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  props.location.id = int(dev);
  if (Status s = d.check("creating the workspace pool (cuMemPoolCreate)",
                         d.cuMemPoolCreate(&pool, &props));
      !s)
    return s;
  cuuint64_t keepAll = ~cuuint64_t(0);
  return d.check("setting the workspace pool's release threshold",
                 d.cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &keepAll));
}

Status Runtime::create(std::unique_ptr<Runtime> &out, const RuntimeOptions &options) {
  auto impl = std::make_unique<Impl>();
  if (Status s = CudaDriver::get(impl->driver); !s)
    return s;
  const CudaDriver &d = *impl->driver;
  if (Status s = d.check("cuCtxGetCurrent", d.cuCtxGetCurrent(&impl->context)); !s)
    return s;
  CUdevice dev = 0;
  if (!impl->context) {
    int count = 0;
    if (Status s = d.check("cuDeviceGetCount", d.cuDeviceGetCount(&count)); !s)
      return s;
    if (count == 0)
      return Status::error("no CUDA device is present");
    if (Status s = d.check("cuDeviceGet", d.cuDeviceGet(&dev, 0)); !s)
      return s;
    if (Status s = d.check("cuDevicePrimaryCtxRetain",
                           d.cuDevicePrimaryCtxRetain(&impl->context, dev));
        !s)
      return s;
    // Make it current, as the CUDA runtime would: later allocations, module
    // loads and launches on this thread all need a current context.
    if (Status s = d.check("cuCtxSetCurrent", d.cuCtxSetCurrent(impl->context)); !s)
      return s;
  } else if (Status s = d.check("cuCtxGetDevice", d.cuCtxGetDevice(&dev)); !s) {
    return s;
  }
  impl->device.ordinal = int(dev);
  if (Status s = readDeviceInfo(d, dev, impl->device); !s)
    return s;
  if (Status s = createWorkspacePool(d, dev, impl->workspacePool); !s)
    return s;
  int registers = 0, threads = 0;
  d.cuDeviceGetAttribute(&registers, CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK, dev);
  d.cuDeviceGetAttribute(&threads, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, dev);
  impl->limits = {impl->device.maxSharedMemoryPerBlock, registers, threads, impl->device.arch};
  if (options.embeddedBundle || !options.bundlePath.empty()) {
    Bundle bundle;
    Status s = options.embeddedBundle ? Bundle::loadEmbedded(*options.embeddedBundle, bundle)
                                      : Bundle::loadDirectory(options.bundlePath, bundle);
    if (!s)
      return s;
    impl->providers.push_back(std::make_unique<BundleProvider>(d, std::move(bundle)));
  }
  std::unique_ptr<KernelProvider> jit;
  if (Status s = makeJitProvider(d, options, jit, impl->diskCacheProblem); !s)
    return s;
  impl->jitAvailable = jit != nullptr;
  if (jit)
    impl->providers.push_back(std::move(jit));
  if (impl->providers.empty())
    return Status::error("no kernels: " + impl->diskCacheProblem +
                         "; give it a bundle (RuntimeOptions::bundlePath or FLASHJIT_BUNDLE)");
  if (Status s = openTuningDatabase(*impl, options); !s)
    return s;
  out.reset(new Runtime(std::move(impl)));
  return Status::ok();
}

// The variant for already-normalized params whose tuning key is `key`.
// The tile tuned for `problem` (key `key`), else, for a problem with score
// modifiers that was not tuned itself, the one tuned for the same shape
// without them (their blocks do the same work plus a few operations).
// The tile tuned for this problem, else (modifier problems) the one tuned
// for the same shape without modifiers; `exact` (when given) says which.
static std::optional<TileConfig> lookupTuned(const Runtime::Impl &impl,
                                             const TuningProblem &problem,
                                             const std::string &key, bool *exact = nullptr) {
  std::lock_guard<std::mutex> lock(impl.tuningMutex);
  if (auto tuned = impl.tuning->lookup(key)) {
    if (exact)
      *exact = true;
    return tuned;
  }
  if (exact)
    *exact = false;
  if (!problem.hasModifiers())
    return std::nullopt;
  return impl.tuning->lookup(tuningKey(problem.withoutModifiers()));
}

// Whether the forward packs a GQA group's heads into its tiles: where asked
// (an error where it cannot) or, by default, where that needs fewer tiles.
static Status choosePackGQA(AttentionSpec &spec, const AttentionParams &p) {
  const int64_t group = p.headsQ / p.headsK;
  const int64_t queriesPerTile = abi::packedTileQueries(spec.tile.m, group);
  std::string obstacle = group == 1                ? "heads_q == heads_k (no group)"
                         : queriesPerTile == 0     ? "the group is larger than the tile's rows"
                         : p.seqQ * group > std::numeric_limits<int32_t>::max()
                             ? "seq_q x group exceeds 2^31 - 1 rows"
                         : spec.alibi              ? "ALiBi (slopes per head)"
                         : !spec.scoreMod.empty() || !spec.maskMod.empty()
                             ? "user modifiers (they see one head)"
                         : spec.dropout   ? "dropout"
                         : spec.varlen    ? "packed sequences"
                         : spec.blockMask ? "a block mask"
                         : p.tile && p.tile->tmaStore
                             ? "the given tile stores O with TMA (tma_store)"
                             : "";
  using PackGQA = AttentionParams::PackGQA;
  if (p.packGQA == PackGQA::Always && !obstacle.empty())
    return Status::error("packGQA: cannot pack the query heads of a group here: " + obstacle);
  spec.packGQA = obstacle.empty() &&
                 (p.packGQA == PackGQA::Always ||
                  (p.packGQA == PackGQA::Auto &&
                   abi::packingSavesTiles(spec.tile.m, p.seqQ, p.headsQ, p.headsK)));
  return Status::ok();
}

// The forward spec's fields that follow from the request and the device
// (all but the tile and the per-call choices).
static AttentionSpec requestSpec(const Runtime::Impl &impl, const AttentionParams &p,
                                 const TuningProblem &problem) {
  AttentionSpec spec;
  spec.dtype = p.dtype;
  spec.headDimQK = p.headDimQK;
  spec.headDimV = p.headDimV;
  setScoreModifiers(spec, p, problem);
  spec.withLse = p.lse != nullptr;
  spec.arch = impl.device.arch;
  spec.maxSharedMemory = impl.device.maxSharedMemoryPerBlock;
  return spec;
}

static Status specFor(const Runtime::Impl &impl, const AttentionParams &p,
                      const TuningProblem &problem, const std::string &key, AttentionSpec &spec) {
  spec = requestSpec(impl, p, problem);
  if (p.tile) {
    spec.tile = *p.tile;
  } else {
    bool exact = false;
    std::optional<TileConfig> tuned = lookupTuned(impl, problem, key, &exact);
    spec.tile = tuned ? *tuned
                      : defaultTile(p.headDimQK, p.headDimV, impl.device.maxSharedMemoryPerBlock,
                                    impl.device.arch);
    if (!exact) {
      narrowTileForRegisters(spec.tile, spec);
      fitTileToProblemSize(spec.tile, spec, p.seqQ, p.seqK, impl.device.maxSharedMemoryPerBlock);
    }
  }
  if (Status s = fitTileToBlockMask(spec.tile, spec.kind, p.blockMask, p.tile.has_value()); !s)
    return s;
  if (Status s = choosePackGQA(spec, p); !s)
    return s;
  // A tuned or default tile's TMA store of O where it cannot be (a given
  // tile asking for it there is an error: the compiler's, or this one).
  if (!p.tile && !(tmaStoreAvailable(spec) && outputSuitsTmaStores(p)))
    spec.tile.tmaStore = false;
  if (p.tile && p.tile->tmaStore && !outputSuitsTmaStores(p))
    return Status::error("tile: tma_store writes O with TMA, which needs o 16-byte aligned and "
                         "its strides multiples of 8 elements; got o strides (" +
                         std::to_string(p.oStride[0]) + ", " + std::to_string(p.oStride[1]) +
                         ", " + std::to_string(p.oStride[2]) + ") (or drop tma_store)");
  spec.blockMask = spec.blockMask || derivesBlockMask(spec, p); // its lists derived per call
  return Status::ok();
}

Status Runtime::selectVariant(const AttentionParams &params, AttentionSpec &spec) const {
  AttentionParams p = params;
  if (Status s = normalizeAndValidate(p); !s)
    return s;
  const TuningProblem problem = problemOf(p);
  return specFor(*impl_, p, problem, tuningKey(problem), spec);
}

TuningDatabase &Runtime::tuningDatabase() { return *impl_->tuning; }
const std::string &Runtime::tuningDatabasePath() const { return impl_->tuningPath; }
DeviceLimits Runtime::deviceLimits() const { return impl_->limits; }

Status Runtime::saveTuningDatabase() {
  if (impl_->tuningPath.empty())
    return Status::error("no cache directory for the tuning database (set FLASHJIT_CACHE_DIR)");
  std::lock_guard<std::mutex> lock(impl_->tuningMutex);
  return impl_->tuning->save(impl_->tuningPath);
}

Status Runtime::tune(const TuningProblem &problem, TuningResult &result,
                     const TuningProgress &progress) {
  std::unique_ptr<GpuConfigTimer> timer;
  if (Status s = GpuConfigTimer::create(*this, problem, timer); !s)
    return s;
  if (Status s = flashjit::tune(configurationSpace(problem, impl_->limits), *timer, result,
                                progress);
      !s)
    return Status::error(s.message() + " for " + problem.describe());
  {
    std::lock_guard<std::mutex> lock(impl_->tuningMutex);
    impl_->tuning->record(tuningKey(problem), result.best, result.bestMs);
  }
  return impl_->tuningPath.empty() ? Status::ok() : saveTuningDatabase();
}

// Launches go to the context the kernels were loaded into. A thread with no
// current context gets ours; one with another context current is an error
// (its pointers and stream belong to that context).
static Status bindContext(const CudaDriver &d, CUcontext ours) {
  CUcontext current = nullptr;
  if (Status s = d.check("cuCtxGetCurrent", d.cuCtxGetCurrent(&current)); !s)
    return s;
  if (current == ours)
    return Status::ok();
  if (current)
    return Status::error("the calling thread has a different CUDA context current than the one "
                         "this flashjit runtime was created in");
  return d.check("cuCtxSetCurrent", d.cuCtxSetCurrent(ours));
}

// Asks the providers in order for `spec`'s kernel.
static Status findKernel(Runtime::Impl &impl, const AttentionSpec &spec, bool exactTile,
                         const std::string &tuningKey, ProvidedKernel &provided) {
  bool found = false;
  std::string missing;
  for (auto &provider : impl.providers) {
    std::string why;
    if (Status s = provider->find(spec, exactTile, tuningKey, provided, found, why); !s)
      return missing.empty() ? s : Status::error(missing + "; " + s.message());
    if (found)
      break;
    missing += (missing.empty() ? "" : "; ") + why;
  }
  if (!found)
    return Status::error(missing + (impl.jitAvailable ? "" : "; " + impl.diskCacheProblem));
  lastSource = provided.source;
  return Status::ok();
}

// Runs `use` with `bytes` of stream-ordered device memory (0 when bytes is 0)
// and frees it on the stream after; the first error wins.
static Status withStreamWorkspace(const Runtime::Impl &impl, size_t bytes, CUstream stream,
                                  const char *what,
                                  const std::function<Status(CUdeviceptr)> &use) {
  if (bytes == 0)
    return use(0);
  // (Messages built only on failure: this is every launch's path.)
  const CudaDriver &d = *impl.driver;
  CUdeviceptr workspace = 0;
  const bool pooled = impl.workspacePool != nullptr;
  if (CUresult r = pooled ? d.cuMemAllocFromPoolAsync(&workspace, bytes, impl.workspacePool,
                                                      stream)
                          : d.cuMemAllocAsync(&workspace, bytes, stream);
      r != CUDA_SUCCESS)
    return d.check((std::string("allocating ") + what +
                    (pooled ? " (cuMemAllocFromPoolAsync)" : " (cuMemAllocAsync)"))
                       .c_str(),
                   r);
  Status used = use(workspace);
  if (CUresult r = d.cuMemFreeAsync(workspace, stream); r != CUDA_SUCCESS && used)
    return d.check((std::string("freeing ") + what).c_str(), r);
  return used;
}

// Launches the forward kernel `provided` on parameters `k`.
static Status launchForward(const Runtime::Impl &impl, const AttentionSpec &spec,
                            const ProvidedKernel &provided, const AttentionParams &p,
                            const abi::AttentionKernelParams &k, CUstream stream) {
  // Packed GQA: tiles of ⌊m / group⌋ whole queries of every head of a group.
  const int64_t group = p.headsQ / p.headsK;
  const int64_t tileQueries =
      spec.packGQA ? abi::packedTileQueries(provided.tile.m, group) : provided.tile.m;
  const int64_t queryBlocks = (p.seqQ + tileQueries - 1) / tileQueries;
  const int64_t tileHeads = spec.packGQA ? p.headsK : p.headsQ;
  if (!provided.tile.warpSpecialized)
    return provided.kernel->launch(k, nullptr, unsigned(queryBlocks), unsigned(tileHeads),
                                   unsigned(p.batch), stream);
  // The warp-specialized kernel: one block a tile, or persistent, as many
  // blocks as the SMs hold at once, walking tiles x + k gridDim.x or (causal)
  // taking them from a tile counter.
  const int64_t tiles = queryBlocks * tileHeads * p.batch;
  if (tiles > std::numeric_limits<int32_t>::max())
    return Status::error("problem too large for the warp-specialized kernel: " +
                         std::to_string(tiles) + " tiles (query blocks x heads x batch) "
                         "exceed 2^31 - 1");
  abi::TensorMap tensorMaps[abi::kNumTensorMaps] = {};
  if (Status s = encodeTensorMaps(*impl.driver, p, provided.tile, spec.packGQA, tensorMaps); !s)
    return s;
  const int64_t residentBlocks =
      int64_t(impl.device.smCount) * std::max(1, provided.kernel->residentBlocksPerSM());
  const int64_t grid =
      provided.tile.persistent ? abi::persistentGridSize(tiles, residentBlocks) : tiles;
  if (provided.tile.persistent && tiles + grid > std::numeric_limits<int32_t>::max())
    return Status::error("problem too large for the persistent kernel: " + std::to_string(tiles) +
                         " tiles (query blocks x heads x batch) plus " + std::to_string(grid) +
                         " blocks exceed 2^31 - 1 (the next tile's index)");
  if (!provided.tile.persistent || spec.mask != Mask::Causal)
    return provided.kernel->launch(k, tensorMaps, unsigned(grid), 1, 1, stream);
  // Persistent causal: the blocks take tiles past their first from a counter
  // that starts at zero, one per launch (stream-ordered, so concurrent
  // launches on other streams never share one).
  const CudaDriver &d = *impl.driver;
  return withStreamWorkspace(
      impl, sizeof(int32_t), stream, "the persistent kernel's tile counter", [&](CUdeviceptr counter) {
        abi::AttentionKernelParams withCounter = k;
        withCounter.tileCounter = reinterpret_cast<int32_t *>(counter);
        if (Status s = d.check("zeroing the tile counter (cuMemsetD32Async)",
                               d.cuMemsetD32Async(counter, 0, 1, stream));
            !s)
          return s;
        return provided.kernel->launch(withCounter, tensorMaps, unsigned(grid), 1, 1, stream);
      });
}

// The ForwardBlockLists kernel for `forward`'s mask and mask_mod, blocks of
// blockQ x blockK.
static Status findBlockListsKernel(Runtime::Impl &impl, const AttentionSpec &forward,
                                   int64_t blockQ, int64_t blockK, ProvidedKernel &provided) {
  AttentionSpec spec = forward;
  spec.kind = KernelKind::ForwardBlockLists;
  spec.tile = TileConfig{blockQ, blockK};
  normalizeSpecForKind(spec);
  return findKernel(impl, spec, /*exactTile=*/true, "", provided);
}

// Writes the lists `lists` points to: one warp a query block, grid (query
// blocks, mask heads, mask batches).
static Status launchBlockLists(const ProvidedKernel &kernel, const AttentionParams &p,
                               const abi::BlockMaskParams &lists, CUstream stream) {
  abi::AttentionKernelParams k{};
  setForwardFields(k, p);
  k.blockMask = lists;
  return kernel.kernel->launch(k, nullptr, unsigned(lists.queryBlocks), unsigned(lists.heads),
                               unsigned(lists.batches), stream);
}

Status Runtime::listMaskModBlocks(const AttentionParams &params, int32_t *kvCounts,
                                  int32_t *kvIndices, BlockMask &mask, CUstream stream) {
  AttentionParams p = params;
  p.blockMask = BlockMask();
  if (Status s = normalizeAndValidate(p); !s)
    return s;
  if (!p.maskMod || !*p.maskMod)
    return Status::error("listMaskModBlocks: the params have no maskMod to list blocks of");
  if (p.varlen())
    return Status::error("listMaskModBlocks: not with packed sequences (block masks are not)");
  if (!kvCounts || !kvIndices || reinterpret_cast<uintptr_t>(kvCounts) % 4 != 0 ||
      reinterpret_cast<uintptr_t>(kvIndices) % 4 != 0)
    return Status::error("listMaskModBlocks: kvCounts and kvIndices must be 4-byte aligned "
                         "device buffers");
  if (mask.blockQ <= 0 || mask.blockQ % 16 != 0 || mask.blockK <= 0 || mask.blockK % 16 != 0 ||
      mask.blockK > 256)
    return Status::error("listMaskModBlocks: block sizes must be multiples of 16 (block_k at "
                         "most 256), got " +
                         std::to_string(mask.blockQ) + " x " + std::to_string(mask.blockK));
  abi::BlockMaskParams lists = derivedBlockMaskShape(p, mask.blockQ, mask.blockK);
  // Lists the expression needs per batch / head must be allocated so; more is fine.
  if ((mask.batches != 1 && mask.batches != p.batch) || mask.batches < lists.batches ||
      (mask.heads != 1 && mask.heads != p.headsQ) || mask.heads < lists.heads)
    return Status::error("listMaskModBlocks: mask.batches must be " +
                         std::string(lists.batches > 1 ? "" : "1 or ") + "the batch (" +
                         std::to_string(p.batch) + ") and mask.heads " +
                         (lists.heads > 1 ? "" : "1 or ") + "heads_q (" +
                         std::to_string(p.headsQ) + ")" +
                         (lists.batches > 1 || lists.heads > 1 ? ": the mask_mod reads b / h"
                                                               : ""));
  // The kernels index the lists in i32.
  if (mask.batches * mask.heads * int64_t(lists.queryBlocks) * int64_t(lists.keyBlocks) >
      std::numeric_limits<int32_t>::max())
    return Status::error("listMaskModBlocks: the lists would hold more than 2^31 - 1 entries; "
                         "use larger blocks or shared (batches / heads 1) lists");
  lists.batches = int32_t(mask.batches);
  lists.heads = int32_t(mask.heads);
  lists.kvCounts = kvCounts;
  lists.kvIndices = kvIndices;
  mask.kvCounts = kvCounts;
  mask.kvIndices = kvIndices;
  mask.qCounts = mask.qIndices = nullptr;
  mask.trusted = true;
  if (p.batch == 0 || p.seqQ == 0)
    return Status::ok();
  if (Status s = bindContext(*impl_->driver, impl_->context); !s)
    return s;
  const AttentionSpec spec = requestSpec(*impl_, p, problemOf(p));
  ProvidedKernel kernel;
  if (Status s = findBlockListsKernel(*impl_, spec, mask.blockQ, mask.blockK, kernel); !s)
    return s;
  return launchBlockLists(kernel, p, lists, stream);
}

Status Runtime::attention(const AttentionParams &params, CUstream stream) {
  AttentionParams p = params;
  if (Status s = normalizeAndValidate(p); !s)
    return s;
  if (p.batch == 0 || p.seqQ == 0)
    return Status::ok();
  if (Status s = bindContext(*impl_->driver, impl_->context); !s)
    return s;
  // Read in the runtime's context, before tuning or compiling anything.
  if (Status s = checkPackedSequences(*impl_->driver, p, stream); !s)
    return s;
  if (Status s = checkBlockMaskLists(*impl_->driver, p, /*backward=*/false, stream); !s)
    return s;
  const TuningProblem problem = problemOf(p);
  const std::string key = tuningKey(problem);
  if (impl_->autotune && !p.tile) {
    bool tuned;
    {
      std::lock_guard<std::mutex> lock(impl_->tuningMutex);
      tuned = impl_->tuning->lookup(key).has_value();
    }
    TuningResult result;
    if (!tuned)
      if (Status s = tune(problem, result); !s)
        return s;
  }
  AttentionSpec spec;
  if (Status s = specFor(*impl_, p, problem, key, spec); !s)
    return s;

  // A block mask's tile must divide its blocks, and packing was decided for
  // this tile's rows: no other tile may stand in for either. Packing the
  // runtime chose itself (Auto) and lists derived from a mask_mod are
  // optimizations: a bundle without those kernels runs the same attention
  // unpacked, or with the mask_mod's blocks trimmed at the ends only.
  const bool userBlockMask = p.blockMask.present();
  bool derived = spec.blockMask && !userBlockMask;
  ProvidedKernel provided, lists;
  Status found = findKernel(*impl_, spec, p.tile.has_value() || userBlockMask || spec.packGQA,
                            key, provided);
  if (found && derived) {
    found = findBlockListsKernel(*impl_, spec, provided.tile.m, provided.tile.n, lists);
    lastSource = provided.source; // the attention's, not the lists'
  }
  if (!found && derived) {
    derived = spec.blockMask = false;
    found = findKernel(*impl_, spec, p.tile.has_value() || spec.packGQA, key, provided);
  }
  if (!found && spec.packGQA && p.packGQA == AttentionParams::PackGQA::Auto) {
    spec.packGQA = false;
    found = findKernel(*impl_, spec, p.tile.has_value() || spec.blockMask, key, provided);
  }
  if (!found)
    return found;
  // A bundle may serve another tile than asked for; one storing O by TMA
  // needs an O that suits it, else the same tile without.
  if (provided.tile.tmaStore && !outputSuitsTmaStores(p)) {
    spec.tile = provided.tile;
    spec.tile.tmaStore = false;
    if (Status s = findKernel(*impl_, spec, /*exactTile=*/true, key, provided); !s)
      return s;
  }

  abi::AttentionKernelParams k{};
  setForwardFields(k, p);
  if (!derived)
    return launchForward(*impl_, spec, provided, p, k, stream);
  // The lists in a workspace on the stream, freed after the attention.
  k.blockMask = derivedBlockMaskShape(p, provided.tile.m, provided.tile.n);
  return withStreamWorkspace(
      *impl_, derivedBlockMaskBytes(k.blockMask), stream, "the mask_mod's block lists",
      [&](CUdeviceptr workspace) {
        k.blockMask.kvCounts = reinterpret_cast<const int32_t *>(workspace);
        k.blockMask.kvIndices = reinterpret_cast<const int32_t *>(
            workspace + derivedBlockMaskIndicesOffset(k.blockMask));
        if (Status s = launchBlockLists(lists, p, k.blockMask, stream); !s)
          return s;
        return launchForward(*impl_, spec, provided, p, k, stream);
      });
}

// Without `deterministic`, dQ is added atomically where that form was
// measured faster (plain attention from 512 queries and keys, causal from
// 1024, at head dims 64..128 on the sm_90a wgmma tiles; flashjit.h); elsewhere
// (modifiers, varlen, short sequences, other targets, backward tiles given)
// the deterministic kernels run.
static Status chooseQueryGradient(const Runtime::Impl &impl, AttentionBackwardParams &p) {
  if (p.deterministic && p.atomicQueryGradient)
    return Status::error("atomicQueryGradient contradicts deterministic (the atomic dQ's last "
                         "bits vary from run to run)");
  if (p.deterministic || p.atomicQueryGradient)
    return Status::ok();
  const AttentionParams &f = p.forward;
  const int64_t d = std::max(f.headDimQK, f.headDimV);
  const bool plain = attentionMask(f) != Mask::Window && f.softcap == 0.0f &&
                     !f.alibiSlopes && f.dropoutP == 0.0f && !f.scoreMod && !f.maskMod &&
                     !f.blockMask.present() && !f.varlen();
  // Shorter, a key block has few steps to spread its fixed cost over. A causal
  // key block walks half the queries on average: H200 fwd+bwd at 512 tokens,
  // the atomic form 1.02-1.05x the deterministic one without a mask, 0.94-1.00x
  // causal at d = 128 (bench/results/h200-backward-atomic-short-sequences.txt).
  const int64_t shortest = attentionMask(f) == Mask::Causal ? 1024 : 512;
  const bool longEnough = std::min(f.seqQ, f.seqK) >= shortest;
  p.atomicQueryGradient = impl.device.arch == "sm_90a" && plain && longEnough && d >= 64 &&
                          d <= 128 &&
                          f.headDimQK % 16 == 0 && f.headDimV % 16 == 0 && !p.tileDQ &&
                          !p.tileDKV; // a given tile is the deterministic kernels'
  return Status::ok();
}

// The atomic dQ lives in the wgmma key-block kernel: say so instead of
// running other kernels than the ones asked for.
static Status checkAtomicQueryGradient(const AttentionBackwardParams &p,
                                       const std::vector<AttentionSpec> &specs) {
  if (!p.atomicQueryGradient)
    return Status::ok();
  if (p.tileDQ)
    return Status::error("atomicQueryGradient: there is no dQ kernel to give a tile (tileDQ)");
  if (!specs[1].tile.qkWgmma)
    return Status::error("atomicQueryGradient needs the wgmma key-block tile (sm_90a, head dims "
                         "multiples of 16 from 64); this backward's is " +
                         tileName(specs[1].tile) + " on " + specs[1].arch);
  return Status::ok();
}

// normalizeAndValidate, then the dQ form (both backward entry points).
static Status normalizeBackward(const Runtime::Impl &impl, AttentionBackwardParams &p) {
  if (Status s = normalizeAndValidate(p); !s)
    return s;
  return chooseQueryGradient(impl, p);
}

// The backward kernels for normalized params, in launch order (atomic dQ
// when asked for or chosen; checked that it can be served).
static Status backwardSpecs(const Runtime::Impl &impl, const AttentionBackwardParams &p,
                            std::vector<AttentionSpec> &specs) {
  const AttentionParams &f = p.forward;
  const TuningProblem forwardProblem = problemOf(f);
  specs.clear();
  for (KernelKind kind : backwardKernels(f.headDimQK, f.headDimV, p.atomicQueryGradient)) {
    AttentionSpec spec;
    spec.kind = kind;
    spec.dtype = f.dtype;
    spec.headDimQK = f.headDimQK;
    spec.headDimV = f.headDimV;
    setScoreModifiers(spec, f, forwardProblem);
    spec.arch = impl.device.arch;
    spec.maxSharedMemory = impl.device.maxSharedMemoryPerBlock;
    const std::optional<TileConfig> &given = kind == KernelKind::BackwardDQ ? p.tileDQ : p.tileDKV;
    if (isAuxiliaryKind(kind)) {
      normalizeSpecForKind(spec);
      specs.push_back(spec);
      continue;
    }
    if (given) {
      spec.tile = *given;
    } else {
      TuningProblem problem = forwardProblem;
      problem.kind = kind;
      problem.withLse = false;
      auto tuned = lookupTuned(impl, problem, tuningKey(problem));
      if (tuned) {
        spec.tile = *tuned;
      } else {
        spec.tile = defaultBackwardTile(kind, f.headDimQK, f.headDimV,
                                        impl.device.maxSharedMemoryPerBlock, impl.device.arch);
        narrowTileForRegisters(spec.tile, spec);
      }
    }
    if (Status s = fitTileToBlockMask(spec.tile, kind, f.blockMask, given.has_value()); !s)
      return s;
    specs.push_back(spec);
  }
  return checkAtomicQueryGradient(p, specs);
}

Status Runtime::selectBackwardVariants(const AttentionBackwardParams &params,
                                       std::vector<AttentionSpec> &specs) const {
  AttentionBackwardParams p = params;
  if (Status s = normalizeBackward(*impl_, p); !s)
    return s;
  return backwardSpecs(*impl_, p, specs);
}

// A key-block kernel: grid x key blocks, y key/value heads, z batch; or
// persistent, as many blocks as the SMs hold walking the units of
// abi::keyBlockUnitsPerHead.
static Status launchKeyBlocks(const Runtime::Impl &impl, const AttentionSpec &spec,
                              const ProvidedKernel &provided, const AttentionParams &f,
                              const abi::BackwardKernelParams &k, const abi::TensorMap *tensorMaps,
                              CUstream stream) {
  const int64_t keyBlocks = (f.seqK + provided.tile.n - 1) / provided.tile.n;
  if (!provided.tile.persistent)
    return provided.kernel->launch(k, tensorMaps, unsigned(keyBlocks), unsigned(f.headsK),
                                   unsigned(f.batch), stream);
  const int64_t units = abi::keyBlockUnitsPerHead(keyBlocks, spec.mask == Mask::Causal) *
                        f.headsK * f.batch;
  const int64_t residentBlocks =
      int64_t(impl.device.smCount) * std::max(1, provided.kernel->residentBlocksPerSM());
  const int64_t grid = abi::persistentGridSize(units, residentBlocks);
  if (units + grid > std::numeric_limits<int32_t>::max())
    return Status::error("problem too large for the persistent key-block kernel: " +
                         std::to_string(units) + " units (key blocks x heads x batch) plus " +
                         std::to_string(grid) + " blocks exceed 2^31 - 1");
  return provided.kernel->launch(k, tensorMaps, unsigned(grid), 1, 1, stream);
}

Status Runtime::attentionBackward(const AttentionBackwardParams &params, CUstream stream) {
  AttentionBackwardParams p = params;
  if (Status s = normalizeBackward(*impl_, p); !s)
    return s;
  const AttentionParams &f = p.forward;
  if (f.batch == 0 || (f.seqQ == 0 && f.seqK == 0))
    return Status::ok();
  if (Status s = bindContext(*impl_->driver, impl_->context); !s)
    return s;
  const CudaDriver &d = *impl_->driver;
  if (Status s = checkPackedSequences(d, f, stream); !s)
    return s;
  if (Status s = checkBlockMaskLists(d, f, /*backward=*/true, stream); !s)
    return s;

  abi::BackwardKernelParams k{};
  setForwardFields(k, f);
  k.dO = p.dO;
  k.dQ = p.dQ;
  k.dK = p.dK;
  k.dV = p.dV;
  for (int i = 0; i < 3; ++i) {
    k.dOStride[i] = p.dOStride[i];
    k.dQStride[i] = p.dQStride[i];
    k.dKStride[i] = p.dKStride[i];
    k.dVStride[i] = p.dVStride[i];
  }
  k.scale = f.softmaxScale;

  // Find every kernel before allocating or launching anything.
  std::vector<AttentionSpec> specs;
  if (Status s = backwardSpecs(*impl_, p, specs); !s)
    return s;
  std::vector<ProvidedKernel> kernels(specs.size());
  std::vector<std::array<abi::TensorMap, abi::kNumTensorMaps>> tensorMaps(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    if (Status s = findKernel(*impl_, specs[i], true, "", kernels[i]); !s)
      return s;
    if (kernels[i].tile.warpSpecialized)
      if (Status s = encodeBackwardTensorMaps(d, p, kernels[i].tile, tensorMaps[i].data()); !s)
        return s;
  }

  // Workspaces on the stream: delta (unless given) and, for atomic dQ, the
  // fp32 accumulator (rows x heads_q x d_qk).
  const size_t rows = f.varlen() ? size_t(f.totalQ) : size_t(f.batch) * size_t(f.seqQ);
  const bool atomic = specs.back().kind == KernelKind::BackwardConvertDQ;
  const size_t deltaBytes = p.delta ? 0 : rows * size_t(f.headsQ) * sizeof(float);
  const size_t accumElements = atomic ? rows * size_t(f.headsQ) * size_t(f.headDimQK) : 0;
  const size_t accumOffset = (deltaBytes + 255) / 256 * 256;
  const size_t workspaceBytes = deltaBytes + accumElements > 0 ? accumOffset + 4 * accumElements : 0;
  return withStreamWorkspace(*impl_, workspaceBytes, stream, "the backward's workspace",
                             [&](CUdeviceptr workspace) {
    k.delta = p.delta ? p.delta : reinterpret_cast<float *>(workspace);
    if (atomic && workspace) {
      k.dQAccum = reinterpret_cast<float *>(workspace + accumOffset);
      // Head-major ([batch, heads_q, seq_q, d] or [heads_q, total_q, d]): a
      // step's query rows are one contiguous range for the bulk reduction.
      const int64_t headElements = int64_t(f.varlen() ? f.totalQ : f.seqQ) * f.headDimQK;
      k.dQAccumStride[0] = f.varlen() ? 0 : f.headsQ * headElements;
      k.dQAccumStride[1] = f.headDimQK;
      k.dQAccumStride[2] = headElements; // (the delta kernel, first, zeroes it)
    }
    Status launched = Status::ok();
    for (size_t i = 0; i < specs.size() && launched; ++i) {
      const TileConfig &t = kernels[i].tile;
      if (isQueryBlockKind(specs[i].kind)) {
        if (f.seqQ > 0) // x: query blocks, y: query heads, z: batch
          launched = kernels[i].kernel->launch(
              k, t.warpSpecialized ? tensorMaps[i].data() : nullptr,
              unsigned((f.seqQ + t.m - 1) / t.m), unsigned(f.headsQ), unsigned(f.batch), stream);
      } else if (f.seqK > 0) {
        launched = launchKeyBlocks(*impl_, specs[i], kernels[i], f, k,
                                   t.warpSpecialized ? tensorMaps[i].data() : nullptr, stream);
      }
    }
    return launched;
  });
}

} // namespace flashjit
