//===- KernelCache.cpp ----------------------------------------------------===//
#include "runtime/KernelCache.h"

#include "runtime/Ptxas.h"

#include <cstdio>
#include <cstdlib>

namespace flashjit {

const std::vector<std::string> &cacheRelevantEnvironment() {
  static const std::vector<std::string> names = {"FLASHJIT_OPT_LEVEL"};
  return names;
}

KernelCacheOptions kernelCacheOptionsFromEnvironment() {
  KernelCacheOptions o;
  auto flag = [](const char *name) {
    const char *v = std::getenv(name);
    return v && *v && std::string(v) != "0";
  };
  o.disableJit = flag("FLASHJIT_DISABLE_JIT");
  if (const char *d = std::getenv("FLASHJIT_DUMP_DIR"))
    o.compile.dumpDir = d;
  if (const char *l = std::getenv("FLASHJIT_OPT_LEVEL"))
    o.compile.optLevel = unsigned(std::strtoul(l, nullptr, 10));
  o.compile.verifyEachPass = false;
  return o;
}

KernelCache::KernelCache(const CudaDriver *driver, KernelCacheOptions options)
    : driver_(driver), options_(std::move(options)) {
  identity_ = compilerIdentity(options_.compile);
  // The assembler is part of what a cached cubin depends on.
  ptxas_ = findPtxas();
  identity_ += "; assembler " + (ptxas_.empty() ? std::string("driver") : ptxasVersion(ptxas_));
  for (const std::string &name : cacheRelevantEnvironment()) {
    const char *v = std::getenv(name.c_str());
    environment_ += name + "=" + (v ? v : "") + ";";
  }
  if (!options_.useDiskCache) {
    diskProblem_ = "disabled by the caller";
    return;
  }
  Status s = DiskCache::open(options_.cacheDir, FLASHJIT_VERSION_STRING, disk_, options_.warn);
  if (!s) {
    // The disk cache only saves time: run without it, but say why, once.
    diskProblem_ = s.message();
    std::string message = "kernel disk cache disabled: " + s.message();
    if (options_.warn)
      options_.warn(message);
    else
      fprintf(stderr, "flashjit: warning: %s\n", message.c_str());
  }
}

CacheKey KernelCache::keyFor(const AttentionSpec &spec) const {
  return CacheKey::make(spec.variantName(), spec.arch, spec.canonical(), identity_, environment_);
}

Status KernelCache::produce(const AttentionSpec &spec, CachedKernel &out) {
  if (options_.disableJit)
    return Status::error("FLASHJIT_DISABLE_JIT is set and variant " + spec.variantName() +
                         " is not in the kernel cache" +
                         (disk_ ? " (" + disk_->entryDir(keyFor(spec)) + ")"
                                : " (no disk cache: " + diskProblem_ + ")"));
  auto compiled = compileAttention(spec, options_.compile);
  if (!compiled)
    return Status::error(llvm::toString(compiled.takeError()));
  out.name = compiled->name;
  out.ptx = std::move(compiled->ptx);
  out.threads = compiled->threads;
  out.sharedMemoryBytes = compiled->sharedMemoryBytes;
  if (!driver_ || ptxas_.empty())
    return Status::ok(); // PTX only: cuModuleLoadDataEx compiles it (see runtime/Ptxas.h)
  if (Status s = assembleWithPtxas(ptxas_, spec.arch, out.ptx, out.cubin); !s)
    return Status::error(s.message() + " (set FLASHJIT_PTXAS=none to let the driver compile "
                                       "the PTX instead)");
  return Status::ok();
}

Status KernelCache::resolve(const AttentionSpec &spec, CachedKernel &out, bool &compiled) {
  compiled = true;
  if (!disk_)
    return produce(spec, out);
  return disk_->getOrProduce(
      keyFor(spec), [&](CachedKernel &entry) { return produce(spec, entry); }, out, compiled);
}

Status KernelCache::get(const AttentionSpec &spec, const LoadedKernel *&kernel,
                        const char **event) {
  std::string key = spec.canonical();
  std::shared_ptr<Slot> slot;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto &s = slots_[key];
    if (!s)
      s = std::make_shared<Slot>();
    slot = s;
  }
  // One thread compiles a variant; others asking for it wait on its slot,
  // while threads asking for other variants go on.
  std::lock_guard<std::mutex> lock(slot->mutex);
  if (slot->kernel) {
    kernel = slot->kernel.get();
    if (event)
      *event = "memory";
    return Status::ok();
  }
  if (!driver_)
    return Status::error("no CUDA driver: kernels can be compiled but not loaded");
  CachedKernel entry;
  bool compiled = true;
  if (Status s = resolve(spec, entry, compiled); !s)
    return s;
  auto loaded = std::make_unique<LoadedKernel>();
  const std::string &image = entry.cubin.empty() ? entry.ptx : entry.cubin;
  if (Status s = LoadedKernel::load(*driver_, image, entry.name, entry.threads,
                                    entry.sharedMemoryBytes, *loaded);
      !s)
    return s;
  slot->kernel = std::move(loaded);
  kernel = slot->kernel.get();
  if (event)
    *event = compiled ? "compiled" : "disk";
  return Status::ok();
}

} // namespace flashjit
