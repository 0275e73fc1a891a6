//===- BundleProvider.cpp -------------------------------------------------===//
#include "runtime/KernelProvider.h"

namespace flashjit {

Status BundleProvider::find(const AttentionSpec &spec, bool exactTile,
                            const std::string &tuningKey, ProvidedKernel &out, bool &found,
                            std::string &missing) {
  found = false;
  const BundleVariant *v = bundle_.select(spec, exactTile, tuningKey, missing);
  if (!v)
    return Status::ok();
  std::lock_guard<std::mutex> lock(mutex_);
  auto &slot = loaded_[v->spec.variantName()];
  if (!slot) {
    std::string image;
    if (Status s = bundle_.image(*v, /*preferCubin=*/true, image); !s)
      return s;
    auto k = std::make_unique<LoadedKernel>();
    Status s = LoadedKernel::load(driver_, image, v->kernel, v->threads, v->sharedMemoryBytes, *k);
    if (!s && !v->cubinPath.empty()) {
      // A cubin for another driver/GPU revision may not load: fall back to the
      // same variant's PTX (the driver JIT compiles it), never to another kernel.
      if (Status p = bundle_.image(*v, false, image); !p)
        return p;
      s = LoadedKernel::load(driver_, image, v->kernel, v->threads, v->sharedMemoryBytes, *k);
    }
    if (!s)
      return Status::error(bundle_.origin() + ": " + s.message());
    slot = std::move(k);
  }
  out.kernel = slot.get();
  out.tile = v->spec.tile;
  out.source = "bundle";
  found = true;
  return Status::ok();
}

} // namespace flashjit
