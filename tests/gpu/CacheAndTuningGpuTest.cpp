//===- CacheAndTuningGpuTest.cpp - disk cache, production mode, autotune --===//
#include "GpuTestEnvironment.h"

#include <fstream>
#include <unistd.h>

using namespace flashjit;
using flashjit::testing::Gpu;

namespace {

std::string freshCache(const char *name) {
  std::string dir = ::testing::TempDir() + "/flashjit-gpu-" + name + "-" + std::to_string(getpid());
  std::string cmd = "rm -rf '" + dir + "'";
  EXPECT_EQ(system(cmd.c_str()), 0);
  return dir;
}

RuntimeOptions optionsFor(const std::string &dir) {
  RuntimeOptions o;
  o.cacheDir = dir;
  return o;
}

// A small request on real buffers (inputs need not be meaningful here: the
// correctness grid covers results; this covers where kernels come from).
struct Problem {
  const CudaDriver *d = nullptr;
  CUdeviceptr buf = 0;
  AttentionParams p;
  explicit Problem(int64_t dim) {
    CudaDriver::get(d);
    size_t bytes = size_t(2 * 256 * 4 * dim * 2);
    d->cuMemAlloc(&buf, 4 * bytes);
    d->cuMemsetD8(buf, 0x3c, 4 * bytes);
    char *base = reinterpret_cast<char *>(buf);
    p.q = base;
    p.k = base + bytes;
    p.v = base + 2 * bytes;
    p.o = base + 3 * bytes;
    p.batch = 2;
    p.seqQ = p.seqK = 256;
    p.headsQ = p.headsK = 4;
    p.headDimQK = dim;
  }
  ~Problem() { d->cuMemFree(buf); }
};

TEST(KernelCacheGpu, SecondRuntimeLoadsFromDiskAndProductionModeRefusesMisses) {
  FLASHJIT_REQUIRE_GPU();
  std::string dir = freshCache("cache");
  Problem prob(64);
  std::unique_ptr<Runtime> first;
  ASSERT_TRUE(Runtime::create(first, optionsFor(dir)).isOk());
  EXPECT_EQ(first->diskCacheProblem(), "");
  Status s = first->attention(prob.p, nullptr);
  ASSERT_TRUE(s.isOk()) << s.message();
  EXPECT_STREQ(first->lastKernelSource(), "compiled");
  ASSERT_TRUE(first->attention(prob.p, nullptr).isOk());
  EXPECT_STREQ(first->lastKernelSource(), "memory");

  RuntimeOptions production = optionsFor(dir);
  production.disableJit = true;
  std::unique_ptr<Runtime> second;
  ASSERT_TRUE(Runtime::create(second, production).isOk());
  s = second->attention(prob.p, nullptr);
  ASSERT_TRUE(s.isOk()) << s.message();
  EXPECT_STREQ(second->lastKernelSource(), "disk");

  Problem other(96); // never compiled into this cache
  AttentionSpec spec;
  ASSERT_TRUE(second->selectVariant(other.p, spec).isOk());
  s = second->attention(other.p, nullptr);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("FLASHJIT_DISABLE_JIT is set and variant " + spec.variantName()),
            std::string::npos)
      << s.message();
}

TEST(AutotuneGpu, TunesOnFirstUseAndRecordsTheChoice) {
  FLASHJIT_REQUIRE_GPU();
  std::string dir = freshCache("tune");
  RuntimeOptions o = optionsFor(dir);
  o.autotune = true;
  std::unique_ptr<Runtime> rt;
  ASSERT_TRUE(Runtime::create(rt, o).isOk());
  Problem prob(64);
  Status s = rt->attention(prob.p, nullptr);
  ASSERT_TRUE(s.isOk()) << s.message();
  ASSERT_EQ(rt->tuningDatabase().size(), 1u);
  std::ifstream db(rt->tuningDatabasePath());
  ASSERT_TRUE(bool(db)) << rt->tuningDatabasePath();

  // A fresh runtime (no autotune) picks the recorded configuration.
  std::unique_ptr<Runtime> later;
  ASSERT_TRUE(Runtime::create(later, optionsFor(dir)).isOk());
  AttentionSpec spec;
  ASSERT_TRUE(later->selectVariant(prob.p, spec).isOk());
  TuningProblem tp;
  tp.dtype = prob.p.dtype;
  tp.headDimQK = tp.headDimV = 64;
  tp.batch = 2;
  tp.seqQ = tp.seqK = 256;
  tp.headsQ = tp.headsK = 4;
  auto tuned = later->tuningDatabase().lookup(tuningKey(tp));
  ASSERT_TRUE(tuned.has_value());
  EXPECT_EQ(tileName(spec.tile), tileName(*tuned));
}

// A score-modifier problem (window + softcap) is tuned with its modifiers
// compiled in and recorded under its own key, which a later request with
// those modifiers uses; the plain shape's key stays untuned.
TEST(AutotuneGpu, TunesScoreModifierProblemsUnderTheirOwnKeys) {
  FLASHJIT_REQUIRE_GPU();
  std::string dir = freshCache("tune-modifiers");
  std::unique_ptr<Runtime> rt;
  ASSERT_TRUE(Runtime::create(rt, optionsFor(dir)).isOk());
  TuningProblem tp;
  tp.headDimQK = tp.headDimV = 64;
  tp.batch = 2;
  tp.seqQ = tp.seqK = 256;
  tp.headsQ = tp.headsK = 4;
  tp.causal = true;
  tp.setWindow(100, -1);
  tp.softcap = true;
  TuningResult result;
  size_t timed = 0;
  Status s = rt->tune(tp, result, [&](size_t, size_t, const TimedConfig &) { ++timed; });
  ASSERT_TRUE(s.isOk()) << s.message();
  EXPECT_GT(timed, 1u);
  ASSERT_TRUE(rt->tuningDatabase().lookup(tuningKey(tp)).has_value());
  EXPECT_FALSE(rt->tuningDatabase().lookup(tuningKey(tp.withoutModifiers())).has_value());

  std::unique_ptr<Runtime> later;
  ASSERT_TRUE(Runtime::create(later, optionsFor(dir)).isOk());
  Problem prob(64);
  prob.p.causal = true;
  prob.p.windowLeft = 100;
  prob.p.softcap = 30.0f;
  AttentionSpec spec;
  ASSERT_TRUE(later->selectVariant(prob.p, spec).isOk());
  EXPECT_EQ(tileName(spec.tile), tileName(result.best));
  EXPECT_NE(spec.variantName().find("_window_softcap_"), std::string::npos) << spec.variantName();
  s = later->attention(prob.p, nullptr);
  EXPECT_TRUE(s.isOk()) << s.message();
}

// The backward's key-block kernel tuned on its own (timing the whole backward),
// recorded under its own key and used by a later runtime's backward.
TEST(AutotuneGpu, TunesABackwardKernelAndTheBackwardUsesIt) {
  FLASHJIT_REQUIRE_GPU();
  std::string dir = freshCache("tune-bwd");
  std::unique_ptr<Runtime> rt;
  ASSERT_TRUE(Runtime::create(rt, optionsFor(dir)).isOk());
  TuningProblem tp;
  tp.kind = KernelKind::BackwardDKV;
  tp.headDimQK = tp.headDimV = 64;
  tp.batch = 2;
  tp.seqQ = tp.seqK = 256;
  tp.headsQ = tp.headsK = 4;
  TuningResult result;
  size_t timed = 0;
  Status s = rt->tune(tp, result, [&](size_t, size_t, const TimedConfig &) { ++timed; });
  ASSERT_TRUE(s.isOk()) << s.message();
  EXPECT_GT(timed, 1u);
  EXPECT_GT(result.bestMs, 0.0);
  ASSERT_TRUE(rt->tuningDatabase().lookup(tuningKey(tp)).has_value());

  std::unique_ptr<Runtime> later;
  ASSERT_TRUE(Runtime::create(later, optionsFor(dir)).isOk());
  AttentionBackwardParams b;
  b.forward.batch = 2;
  b.forward.seqQ = b.forward.seqK = 256;
  b.forward.headsQ = b.forward.headsK = 4;
  b.forward.headDimQK = 64;
  // Validation only looks at pointers' alignment; selection launches nothing.
  alignas(256) static char fake[4096];
  b.forward.q = b.forward.k = b.forward.v = fake;
  b.forward.o = fake;
  b.forward.lse = reinterpret_cast<float *>(fake);
  b.dO = fake;
  b.dQ = b.dK = b.dV = fake;
  b.deterministic = true; // the kernels tuned above (the default may add dQ atomically)
  std::vector<AttentionSpec> specs;
  ASSERT_TRUE(later->selectBackwardVariants(b, specs).isOk());
  ASSERT_EQ(specs.size(), 2u);
  EXPECT_EQ(specs[1].kind, KernelKind::BackwardDKV);
  EXPECT_EQ(tileName(specs[1].tile), tileName(result.best));
}

} // namespace
