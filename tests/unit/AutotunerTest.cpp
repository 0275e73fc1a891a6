//===- AutotunerTest.cpp - selection logic with a fake timer (no GPU) -----===//
#include "dialect/SharedMemoryLayout.h"
#include "runtime/Autotuner.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <unistd.h>

using namespace flashjit;

namespace {

// Times from a table; configurations not in it "fail to compile".
class FakeTimer : public ConfigTimer {
public:
  std::map<std::string, double> times;
  std::vector<std::string> asked;
  double timeMs(const TileConfig &t, std::string &note) override {
    asked.push_back(tileName(t));
    auto it = times.find(tileName(t));
    if (it == times.end()) {
      note = "compile error: made up";
      return std::numeric_limits<double>::infinity();
    }
    return it->second;
  }
};

TuningProblem problem(int64_t d = 128) {
  TuningProblem p;
  p.headDimQK = p.headDimV = d;
  p.batch = 4;
  p.seqQ = p.seqK = 4096;
  p.headsQ = p.headsK = 16;
  return p;
}

DeviceIdentity h200() { return {"NVIDIA H200", "sm_90a", "13000", "0.1.0"}; }

std::string tempPath(const std::string &name) {
  return ::testing::TempDir() + "/flashjit-" + name + "-" + std::to_string(getpid()) + ".json";
}

} // namespace

TEST(Autotuner, PicksTheFastestAndNeverAFailure) {
  FakeTimer timer;
  timer.times = {{"m128n64w4s2", 2.0}, {"m64n64w4s2", 1.5}, {"m128n32w4s2", 1.7}};
  std::vector<TileConfig> space = {{128, 64, 4, 2}, {64, 64, 4, 2}, {128, 32, 4, 2},
                                   {128, 128, 8, 3}}; // the last one "fails"
  TuningResult r;
  size_t progressCalls = 0;
  ASSERT_TRUE(tune(space, timer, r, [&](size_t done, size_t total, const TimedConfig &) {
                EXPECT_EQ(total, 4u);
                EXPECT_EQ(done, ++progressCalls);
              }).isOk());
  EXPECT_EQ(tileName(r.best), "m64n64w4s2");
  EXPECT_EQ(r.bestMs, 1.5);
  ASSERT_EQ(r.all.size(), 4u);
  EXPECT_TRUE(std::isinf(r.all[3].ms));
  EXPECT_EQ(r.all[3].note, "compile error: made up");
  EXPECT_EQ(progressCalls, 4u);
}

TEST(Autotuner, FailsWhenNothingRuns) {
  FakeTimer timer;
  TuningResult r;
  Status s = tune({{128, 64, 4, 2}}, timer, r);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("no configuration ran (first failure: compile error: made up)"),
            std::string::npos)
      << s.message();
  EXPECT_FALSE(tune({}, timer, r).isOk());
}

TEST(Autotuner, ZeroOrNaNTimesAreNotMeasurements) {
  FakeTimer timer;
  timer.times = {{"m128n64w4s2", 0.0}, {"m64n64w4s2", std::nan("")}, {"m128n32w4s2", 3.0}};
  TuningResult r;
  ASSERT_TRUE(tune({{128, 64, 4, 2}, {64, 64, 4, 2}, {128, 32, 4, 2}}, timer, r).isOk());
  EXPECT_EQ(tileName(r.best), "m128n32w4s2");
}

TEST(Autotuner, SpaceIsPrunedByTheDeviceLimitsAndValid) {
  DeviceLimits big{232448, 65536, 1024}, small{49152, 65536, 1024};
  for (int64_t d : {64, 128, 256}) {
    auto wide = configurationSpace(problem(d), big);
    auto narrow = configurationSpace(problem(d), small);
    EXPECT_FALSE(wide.empty()) << d;
    EXPECT_LT(narrow.size(), wide.size()) << d;
    for (const TileConfig &t : narrow) {
      EXPECT_EQ(t.m % (16 * t.warps), 0);
      EXPECT_LE(flash::SharedMemoryLayout::compute(d, d, 2, t.m, t.n, t.stages).totalBytes, 49152);
    }
  }
  // d = 256 with 32 rows a warp would need > 200 accumulator registers: pruned.
  for (const TileConfig &t : configurationSpace(problem(256), big))
    EXPECT_LE(t.m / (16 * t.warps) * (256 / 8) * 4 + t.m / (16 * t.warps) * (t.n / 8) * 4, 200)
        << tileName(t);
  // A smaller register file (32768 per block) drops the 8-warp tiles whose
  // estimated registers (accumulators + 48) would not fit.
  auto full = configurationSpace(problem(128), big);
  auto fewerRegisters = configurationSpace(problem(128), DeviceLimits{232448, 32768, 1024});
  EXPECT_LT(fewerRegisters.size(), full.size());
  for (const TileConfig &t : fewerRegisters) {
    int64_t mTiles = t.m / (16 * t.warps);
    int64_t estimate = std::min<int64_t>(255, mTiles * 16 * 4 + mTiles * (t.n / 8) * 4 + 48);
    EXPECT_LE(t.warps * 32 * estimate, 32768) << tileName(t);
  }
}

// Three consumer warpgroups (160 registers a thread) only up to d = 128 and
// only with key blocks whose O, S and P fit 128 of them.
TEST(Autotuner, ThreeConsumerTilesOnlyWhereTheirRegistersSuffice) {
  const DeviceLimits hopper{232448, 65536, 1024, "sm_90a"};
  for (int64_t d : {64, 128, 256}) {
    int64_t threeConsumerTiles = 0;
    for (const TileConfig &t : configurationSpace(problem(d), hopper)) {
      if (!t.warpSpecialized || t.warps != 12)
        continue;
      ++threeConsumerTiles;
      EXPECT_LE(t.n, 192) << tileName(t); // (the verifier's limit)
      EXPECT_LE(d / 2 + t.n / 2 + t.n / 4, 128) << tileName(t);
    }
    EXPECT_EQ(threeConsumerTiles > 0, d <= 128) << d;
  }
}

TEST(Autotuner, KeysBucketSequenceLengths) {
  TuningProblem a = problem(), b = problem();
  b.seqQ = b.seqK = 3000; // same power-of-two bucket as 4096
  EXPECT_EQ(tuningKey(a), tuningKey(b));
  b.seqK = 5000;
  EXPECT_NE(tuningKey(a), tuningKey(b));
  b = problem();
  b.causal = true;
  EXPECT_NE(tuningKey(a), tuningKey(b));
  b = problem();
  b.dtype = DType::F16;
  EXPECT_NE(tuningKey(a), tuningKey(b));
  EXPECT_EQ(tuningKey(a), "bf16 d128 v128 none lse0 sq<=4096 sk<=4096");
}

TEST(TuningDatabase, RoundTripsAndDistrustsOtherGpusAndVersions) {
  std::string path = tempPath("tune");
  TuningDatabase db(h200());
  db.record("k1", {64, 64, 4, 2}, 1.25);
  db.record("k2", {128, 32, 4, 3}, 2.5);
  ASSERT_TRUE(db.save(path).isOk());

  TuningDatabase same(h200());
  std::vector<std::string> notes;
  ASSERT_TRUE(same.load(path, notes).isOk());
  EXPECT_TRUE(notes.empty());
  ASSERT_TRUE(same.lookup("k1").has_value());
  EXPECT_EQ(tileName(*same.lookup("k2")), "m128n32w4s3");
  EXPECT_FALSE(same.lookup("k3").has_value());

  TuningDatabase otherGpu(DeviceIdentity{"NVIDIA H100 80GB HBM3", "sm_90a", "13000", "0.1.0"});
  ASSERT_TRUE(otherGpu.load(path, notes).isOk());
  EXPECT_EQ(otherGpu.size(), 0u);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("not trusting its 2 entries"), std::string::npos) << notes[0];

  notes.clear();
  TuningDatabase otherVersion(DeviceIdentity{"NVIDIA H200", "sm_90a", "13000", "0.2.0"});
  ASSERT_TRUE(otherVersion.load(path, notes).isOk());
  EXPECT_EQ(otherVersion.size(), 0u);

  notes.clear();
  TuningDatabase otherDriver(DeviceIdentity{"NVIDIA H200", "sm_90a", "12080", "0.1.0"});
  ASSERT_TRUE(otherDriver.load(path, notes).isOk());
  EXPECT_EQ(otherDriver.size(), 2u) << "a driver change keeps entries, with a note";
  EXPECT_EQ(notes.size(), 1u);
}

TEST(TuningDatabase, ImportMergesAndRejectsGarbage) {
  std::string exported = tempPath("export");
  TuningDatabase a(h200());
  a.record("k1", {64, 64, 4, 2}, 1.0);
  ASSERT_TRUE(a.save(exported).isOk());
  TuningDatabase b(h200());
  b.record("k2", {128, 64, 4, 2}, 2.0);
  std::vector<std::string> notes;
  ASSERT_TRUE(b.import(exported, notes).isOk());
  EXPECT_EQ(b.size(), 2u);

  std::string garbage = tempPath("garbage");
  std::ofstream(garbage) << "{\"identity\": 3";
  Status s = b.import(garbage, notes);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("is not valid JSON"), std::string::npos);
  EXPECT_FALSE(b.import(tempPath("missing"), notes).isOk());
  std::ofstream(garbage, std::ios::trunc) << "{\"x\": 1}";
  s = b.import(garbage, notes);
  EXPECT_NE(s.message().find("is not a flashjit tuning database"), std::string::npos);
}

// Each backward kernel has its own space: tiles whose owned rows (m for dQ,
// n for the key-block kernels) are whole warp tiles, that fit the device,
// with the default among them; and its own tuning key. wgmma tiles only on
// sm_90a, with both switches and one 16-row tile a warp; there also the
// atomic-dQ key-block kernels (the auxiliary ones have a fixed tile).
TEST(Autotuner, BackwardSpacesHoldValidTilesAndTheDefault) {
  for (const DeviceLimits &limits :
       {DeviceLimits{232448, 65536, 1024, "sm_90a"}, DeviceLimits{166912, 65536, 1024, "sm_80"}})
    for (int64_t d : {64, 96, 128, 256})
      for (bool atomic : {false, true})
      for (KernelKind kind : backwardKernels(d, d, atomic)) {
        if (isAuxiliaryKind(kind) || (atomic && limits.arch != "sm_90a") ||
            (atomic && !addsQueryGradient(kind) && d > 128))
          continue; // (above d = 128 the atomic form's dV kernel is the deterministic one's)
        TuningProblem p = problem(d);
        p.kind = kind;
        std::vector<TileConfig> space = configurationSpace(p, limits);
        ASSERT_FALSE(space.empty()) << kernelKindName(kind) << " d" << d;
        const bool dq = kind == KernelKind::BackwardDQ;
        bool hasDefault = false, hasWgmma = false, hasWarpSpecialized = false,
             hasPersistent = false;
        TileConfig def =
            defaultBackwardTile(kind, d, d, limits.maxSharedMemoryPerBlock, limits.arch);
        EXPECT_EQ(def.qkWgmma, limits.arch == "sm_90a") << tileName(def);
        for (const TileConfig &t : space) {
          const int64_t owned = dq ? t.m : t.n;
          EXPECT_EQ(owned % (16 * t.warps), 0) << tileName(t);
          // The backward stores with the threads; only the warp-specialized
          // key-block kernels may walk many tiles a block.
          EXPECT_FALSE(t.tmaStore) << tileName(t);
          if (t.persistent) {
            hasPersistent = true;
            EXPECT_TRUE(t.warpSpecialized && !dq) << tileName(t);
          }
          if (t.warpSpecialized) {
            hasWarpSpecialized = true;
            EXPECT_TRUE(t.qkWgmma && t.stages >= 2 && (t.warps == 4 || t.warps == 8))
                << tileName(t);
          }
          EXPECT_EQ(t.qkWgmma, t.pvWgmma) << tileName(t);
          if (t.qkWgmma) {
            hasWgmma = true;
            EXPECT_EQ(limits.arch, "sm_90a") << tileName(t);
            EXPECT_EQ(owned, 16 * t.warps) << tileName(t);
          }
          auto smem = flash::SharedMemoryLayout::computeBackward(
              d, d, 2, owned, dq ? t.n : t.m, t.stages, t.qkWgmma, addsQueryGradient(kind),
              t.warpSpecialized, t.warpSpecialized && !dq, t.persistent);
          EXPECT_LE(smem.totalBytes, limits.maxSharedMemoryPerBlock) << tileName(t);
          hasDefault |= sameTile(t, def);
        }
        EXPECT_EQ(hasWgmma, limits.arch == "sm_90a") << kernelKindName(kind) << " d" << d;
        EXPECT_EQ(hasWarpSpecialized, limits.arch == "sm_90a")
            << kernelKindName(kind) << " d" << d;
        EXPECT_EQ(hasPersistent, limits.arch == "sm_90a" && !dq)
            << kernelKindName(kind) << " d" << d;
        EXPECT_TRUE(hasDefault) << kernelKindName(kind) << " d" << d << " default "
                                << tileName(def);
        EXPECT_NE(tuningKey(p), tuningKey(problem(d)));
        EXPECT_EQ(tuningKey(p).rfind(kernelKindName(kind), 0), 0u) << tuningKey(p);
      }
}

TEST(Autotuner, ScoreModifierProblemsHaveTheirOwnKeys) {
  TuningProblem plain = problem();
  plain.causal = true;
  const std::string plainKey = tuningKey(plain);
  EXPECT_EQ(plainKey, "bf16 d128 v128 causal lse0 sq<=4096 sk<=4096"); // unchanged by modifiers

  TuningProblem softcap = plain;
  softcap.softcap = true;
  EXPECT_EQ(tuningKey(softcap), plainKey + " softcap");
  TuningProblem alibi = plain;
  alibi.alibi = true;
  EXPECT_EQ(tuningKey(alibi), plainKey + " alibi");
  EXPECT_EQ(tuningKey(softcap.withoutModifiers()), plainKey);
  TuningProblem dropout = plain;
  dropout.dropout = true;
  EXPECT_TRUE(dropout.hasModifiers());
  EXPECT_EQ(tuningKey(dropout), plainKey + " dropout");
  EXPECT_EQ(tuningKey(dropout.withoutModifiers()), plainKey);

  // A causal window keeps its right side at 0 and is a window problem; its
  // fallback is the causal shape. (-1, 0) is plain causal.
  TuningProblem window = plain;
  window.setWindow(3000, 17);
  EXPECT_FALSE(window.causal);
  EXPECT_EQ(window.windowRight, 0);
  EXPECT_EQ(tuningKey(window), "bf16 d128 v128 none lse0 sq<=4096 sk<=4096 window<=4096,128");
  EXPECT_EQ(tuningKey(window.withoutModifiers()), plainKey);
  TuningProblem causal = plain;
  causal.setWindow(-1, 5);
  EXPECT_TRUE(causal.causal);
  EXPECT_FALSE(causal.hasModifiers());
  TuningProblem leftOnly = problem();
  leftOnly.setWindow(100, -1);
  EXPECT_EQ(tuningKey(leftOnly), "bf16 d128 v128 none lse0 sq<=4096 sk<=4096 window<=128,inf");
  EXPECT_EQ(tuningKey(leftOnly.withoutModifiers()), plainKey); // a window counts as causal

  // FLOPs count the pairs the window keeps: 4 * b * h * d * pairs.
  TuningProblem small = problem(64);
  small.batch = small.headsQ = small.headsK = 1;
  small.seqQ = small.seqK = 4;
  EXPECT_DOUBLE_EQ(small.flops(), 2.0 * 128 * 16);
  small.causal = true;
  EXPECT_DOUBLE_EQ(small.flops(), 2.0 * 128 * 10);
  small.setWindow(1, -1); // rows keep 1, 2, 2, 2 keys
  EXPECT_DOUBLE_EQ(small.flops(), 2.0 * 128 * 7);
}
