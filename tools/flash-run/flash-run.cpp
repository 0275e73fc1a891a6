//===- flash-run.cpp - the main job: generate, check, and (on a GPU) run ---===//
//
// Without a GPU: compiles the default variant for sm_80 and sm_90a, assembles
// the PTX with ptxas when it is installed, and prints a summary.
// With a GPU: also runs the variants on random data, verifies them against the
// fp32 reference, and times one problem.
//
#include "compiler/Compiler.h"
#include "runtime/CudaDriver.h"
#include "runtime/KernelCache.h"
#include "runtime/Ptxas.h"
#include "runtime/flashjit.h"
#ifdef FLASHJIT_HAVE_CHECK
#include "tools/check/AttentionCheck.h"
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <unistd.h>

using namespace flashjit;

// ptxas: the configured one (FLASHJIT_PTXAS at build time), else the runtime's search.
static std::string ptxasForChecks() {
#ifdef FLASHJIT_PTXAS
  if (access(FLASHJIT_PTXAS, X_OK) == 0)
    return FLASHJIT_PTXAS;
#endif
  return findPtxas();
}

// Assembles `ptx` for `arch`; `report` gets ptxas's resource lines or its error.
static bool assemble(const std::string &ptxas, const std::string &ptx, const std::string &arch,
                     std::string &report) {
  std::string cubin;
  Status s = assembleWithPtxas(ptxas, arch, ptx, cubin, &report);
  if (!s)
    report = s.message();
  for (char &ch : report)
    if (ch == '\n')
      ch = ' ';
  return s.isOk();
}

static int generateOnly(const std::string &ptxas) {
  int failures = 0;
  for (const char *arch : {"sm_80", "sm_90a"}) {
    for (bool causal : {false, true}) {
      AttentionSpec spec;
      spec.arch = arch;
      spec.mask = causal ? Mask::Causal : Mask::None;
      spec.maxSharedMemory = documentedMaxSharedMemory(arch);
      spec.tile = defaultTile(spec.headDimQK, spec.headDimV, spec.maxSharedMemory, arch);
      auto start = std::chrono::steady_clock::now();
      auto kernel = compileAttention(spec, CompileOptions{});
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                      .count();
      if (!kernel) {
        printf("FAIL %s: %s\n", spec.variantName().c_str(), llvm::toString(kernel.takeError()).c_str());
        ++failures;
        continue;
      }
      printf("generated %-52s %6zu bytes of PTX in %6.1f ms, %lld B smem\n", kernel->name.c_str(),
             kernel->ptx.size(), ms, (long long)kernel->sharedMemoryBytes);
      if (ptxas.empty())
        continue;
      std::string report;
      bool ok = assemble(ptxas, kernel->ptx, arch, report);
      printf("  ptxas %-7s %s %s\n", arch, ok ? "ok  " : "FAIL", report.c_str());
      failures += !ok;
    }
  }
  if (ptxas.empty())
    printf("ptxas not found: PTX generated but not assembled\n");
  return failures;
}

static std::string temporaryCacheDir() {
  char dir[] = "/tmp/flashjit-run-cache-XXXXXX";
  return mkdtemp(dir) ? dir : "";
}

static double msSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

// Cold compile and disk-cache hit of the default d = 128 variant, with no GPU.
static void cacheTimingsWithoutGpu() {
  AttentionSpec spec;
  spec.maxSharedMemory = documentedMaxSharedMemory(spec.arch);
  spec.tile = defaultTile(spec.headDimQK, spec.headDimV, spec.maxSharedMemory);
  KernelCacheOptions options = kernelCacheOptionsFromEnvironment();
  options.cacheDir = temporaryCacheDir();
  CachedKernel out;
  bool compiled = false;
  auto t0 = std::chrono::steady_clock::now();
  Status s = KernelCache(nullptr, options).resolve(spec, out, compiled);
  double cold = msSince(t0);
  auto t1 = std::chrono::steady_clock::now();
  Status s2 = KernelCache(nullptr, options).resolve(spec, out, compiled);
  double disk = msSince(t1);
  if (s && s2 && !compiled)
    printf("cache: %s cold compile %.1f ms, disk-cache hit %.2f ms (PTX; no GPU to load it)\n",
           spec.variantName().c_str(), cold, disk);
  else
    printf("cache timing failed: %s\n", (s ? s2 : s).message().c_str());
}

#ifdef FLASHJIT_HAVE_CHECK
// First call (compile + assemble + load), disk hit in a new runtime, memory hit.
static void cacheTimingsOnGpu() {
  const CudaDriver *d = nullptr;
  CudaDriver::get(d);
  RuntimeOptions options = RuntimeOptions::fromEnvironment();
  options.cacheDir = temporaryCacheDir();
  options.autotune = false;
  CUdeviceptr buf = 0;
  const int64_t b = 1, s = 128, h = 16, dim = 128;
  d->cuMemAlloc(&buf, size_t(4 * b * s * h * dim * 2));
  d->cuMemsetD8(buf, 0x3c, size_t(4 * b * s * h * dim * 2));
  AttentionParams p;
  p.q = reinterpret_cast<void *>(buf);
  p.k = reinterpret_cast<char *>(buf) + b * s * h * dim * 2;
  p.v = reinterpret_cast<char *>(buf) + 2 * b * s * h * dim * 2;
  p.o = reinterpret_cast<char *>(buf) + 3 * b * s * h * dim * 2;
  p.batch = b; p.seqQ = p.seqK = s; p.headsQ = p.headsK = h; p.headDimQK = dim;
  auto timeCall = [&](Runtime &rt) {
    auto t = std::chrono::steady_clock::now();
    Status st = rt.attention(p, nullptr);
    double ms = msSince(t);
    return st ? ms : -1.0;
  };
  std::unique_ptr<Runtime> first, second;
  Runtime::create(first, options);
  double cold = timeCall(*first);
  Runtime::create(second, options);
  double disk = timeCall(*second);
  const char *diskSource = second->lastKernelSource();
  std::vector<double> hot;
  for (int i = 0; i < 2000; ++i)
    hot.push_back(timeCall(*second));
  std::sort(hot.begin(), hot.end());
  d->cuCtxSynchronize();
  d->cuMemFree(buf);
  printf("cache (host time of Runtime::attention, d = 128 bf16): first call %.1f ms (compile, "
         "assemble, load), new process-equivalent %s hit %.2f ms, memory hit median %.1f us "
         "(launch included)\n",
         cold, diskSource, disk, hot[hot.size() / 2] * 1e3);
}

static int runOnGpu(Runtime &rt) {
  std::unique_ptr<AttentionChecker> checker;
  if (Status s = AttentionChecker::create(rt, checker); !s) {
    printf("FAIL: %s\n", s.message().c_str());
    return 1;
  }
  int failures = 0;
  CheckCase cases[] = {
      {DType::BF16, 2, 1000, 1000, 8, 8, 128, 0, false},
      {DType::BF16, 2, 1000, 1000, 8, 8, 128, 0, true},
      {DType::F16, 1, 4097, 4097, 4, 2, 64, 0, true},
      {DType::BF16, 3, 17, 300, 12, 12, 256, 0, false},
  };
  for (CheckCase &c : cases) {
    CheckResult r;
    if (Status s = checker->run(c, r); !s) {
      printf("FAIL %s: %s\n", c.describe().c_str(), s.message().c_str());
      ++failures;
      continue;
    }
    // bf16/f16 outputs vs an fp32 reference: relative L2 error within 1e-2.
    bool ok = r.relativeL2 < 1e-2 && r.unwritten == 0 && r.guardDamaged == 0 &&
              r.maxLseError < 1e-3;
    printf("%s %-40s rel.L2 %.2e  max|err| %.2e  lse %.1e  (%s)\n", ok ? "ok  " : "FAIL",
           c.describe().c_str(), r.relativeL2, r.maxAbsError, r.maxLseError, r.variant.c_str());
    failures += !ok;
  }
  return failures;
}
#endif

int main() {
  std::string ptxas = ptxasForChecks();
  printf("flashjit: generating the default forward variants (bf16, d = 128)\n");
  int failures = generateOnly(ptxas);
  cacheTimingsWithoutGpu();

  std::unique_ptr<Runtime> rt;
  Status s = Runtime::create(rt);
  if (!s) {
    printf("no GPU run: %s\n", s.message().c_str());
  } else {
    const DeviceInfo &d = rt->device();
    printf("GPU: %s (%s, %d SMs, %lld B shared memory per block)\n", d.name.c_str(),
           d.arch.c_str(), d.smCount, (long long)d.maxSharedMemoryPerBlock);
#ifdef FLASHJIT_HAVE_CHECK
    failures += runOnGpu(*rt);
    cacheTimingsOnGpu();
#else
    printf("built without NVRTC: no GPU verification\n");
#endif
  }
  printf("%s\n", failures ? "flash-run: FAILED" : "flash-run: all checks passed");
  return failures ? 1 : 0;
}
