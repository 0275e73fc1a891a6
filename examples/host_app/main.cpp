//===- main.cpp - a host application on flashjit's runtime-only library ---===//
//
//   host_app --bundle DIR [--validate]    kernels from a flash-gen bundle
//   host_app_embedded [--validate]        kernels compiled into the program
//
// Loads the pre-generated kernels (checksums verified), runs causal attention
// on random bf16 data with FLASHJIT_DISABLE_JIT semantics built in (the
// runtime-only library cannot compile), and checks the result against a
// float64 reference on the CPU. --validate stops after loading the bundle.
//
#include "runtime/Bundle.h"
#include "runtime/flashjit.h"
#ifdef FLASHJIT_EMBEDDED_KERNELS
#include "host_app_kernels.h"
#endif

#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace flashjit;

static uint16_t toBF16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fff + ((u >> 16) & 1);
  return uint16_t(u >> 16);
}
static float fromBF16(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

int main(int argc, char **argv) {
  std::string bundleDir;
  bool validateOnly = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--bundle" && i + 1 < argc)
      bundleDir = argv[++i];
    else if (a == "--validate")
      validateOnly = true;
    else {
      fprintf(stderr, "usage: %s [--bundle DIR] [--validate]\n", argv[0]);
      return 2;
    }
  }
  RuntimeOptions options;
#ifdef FLASHJIT_EMBEDDED_KERNELS
  options.embeddedBundle = host_app_kernels();
#else
  if (bundleDir.empty()) {
    fprintf(stderr, "host_app: --bundle DIR is required\n");
    return 2;
  }
  options.bundlePath = bundleDir;
#endif

  // Load and verify the kernels (manifest, versions, SHA-256 of every file).
  Bundle bundle;
  Status loaded = options.embeddedBundle ? Bundle::loadEmbedded(*options.embeddedBundle, bundle)
                                         : Bundle::loadDirectory(bundleDir, bundle);
  if (!loaded) {
    fprintf(stderr, "host_app: %s\n", loaded.message().c_str());
    return 1;
  }
  printf("%s: %zu variants, flashjit %s, checksums verified\n", bundle.origin().c_str(),
         bundle.variants().size(), bundle.flashjitVersion().c_str());
  if (validateOnly)
    return 0;

  std::unique_ptr<Runtime> rt;
  if (Status s = Runtime::create(rt, options); !s) {
    printf("host_app: no GPU run: %s\n", s.message().c_str());
    return 0;
  }

  const int b = 2, s = 300, h = 4, d = 64;
  const size_t n = size_t(b) * s * h * d;
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  std::vector<uint16_t> q(n), k(n), v(n), o(n);
  for (auto *t : {&q, &k, &v})
    for (uint16_t &x : *t)
      x = toBF16(uniform(rng));
  void *dq, *dk, *dv, *dout;
  for (void **p : {&dq, &dk, &dv, &dout})
    if (cudaMalloc(p, n * 2) != cudaSuccess) {
      fprintf(stderr, "host_app: cudaMalloc failed\n");
      return 1;
    }
  cudaMemcpy(dq, q.data(), n * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(dk, k.data(), n * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(dv, v.data(), n * 2, cudaMemcpyHostToDevice);
  cudaMemset(dout, 0xff, n * 2); // NaN: every element must be written

  AttentionParams p;
  p.dtype = DType::BF16;
  p.q = dq; p.k = dk; p.v = dv; p.o = dout;
  p.batch = b; p.seqQ = p.seqK = s; p.headsQ = p.headsK = h; p.headDimQK = d;
  p.causal = true;
  AttentionSpec spec;
  rt->selectVariant(p, spec);
  if (Status st = rt->attention(p, nullptr); !st) {
    fprintf(stderr, "host_app: %s\n", st.message().c_str());
    return 1;
  }
  if (cudaDeviceSynchronize() != cudaSuccess) {
    fprintf(stderr, "host_app: the kernel failed\n");
    return 1;
  }
  cudaMemcpy(o.data(), dout, n * 2, cudaMemcpyDeviceToHost);

  // float64 reference: softmax(q k^T / sqrt(d)) v, causal.
  double errSq = 0, refSq = 0;
  long unwritten = 0;
  for (int bi = 0; bi < b; ++bi)
    for (int hi = 0; hi < h; ++hi)
      for (int i = 0; i < s; ++i) {
        std::vector<double> w(size_t(i) + 1);
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j <= i; ++j) {
          double acc = 0;
          for (int x = 0; x < d; ++x)
            acc += double(fromBF16(q[((size_t(bi) * s + i) * h + hi) * d + x])) *
                   fromBF16(k[((size_t(bi) * s + j) * h + hi) * d + x]);
          w[size_t(j)] = acc / std::sqrt(double(d));
          mx = std::max(mx, w[size_t(j)]);
        }
        for (double &x : w)
          sum += (x = std::exp(x - mx));
        for (int x = 0; x < d; ++x) {
          double ref = 0;
          for (int j = 0; j <= i; ++j)
            ref += w[size_t(j)] / sum * fromBF16(v[((size_t(bi) * s + j) * h + hi) * d + x]);
          float got = fromBF16(o[((size_t(bi) * s + i) * h + hi) * d + x]);
          if (std::isnan(got)) {
            ++unwritten;
            continue;
          }
          errSq += (got - ref) * (got - ref);
          refSq += ref * ref;
        }
      }
  double rel = std::sqrt(errSq / refSq);
  bool ok = unwritten == 0 && rel < 1e-2; // bf16 output vs float64: within 1e-2
  printf("host_app: %s via %s (%s): relative L2 error %.2e, unwritten %ld -> %s\n",
         spec.variantName().c_str(), rt->lastKernelSource(), rt->device().name.c_str(), rel,
         unwritten, ok ? "ok" : "FAILED");
  for (void *ptr : {dq, dk, dv, dout})
    cudaFree(ptr);
  return ok ? 0 : 1;
}
