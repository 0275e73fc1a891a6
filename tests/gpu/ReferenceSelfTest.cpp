//===- ReferenceSelfTest.cpp - the GPU reference vs float64 on the CPU ----===//
//
// The GPU tests trust the NVRTC reference; this checks it against a direct
// float64 computation on the CPU, on sizes small enough for the CPU.
//
#include "GpuTestEnvironment.h"

#include <array>
#include <cmath>

using namespace flashjit;
using flashjit::testing::Gpu;

namespace {

// GQA and causal with seq_q < seq_k, head dim 256 with seq_q > seq_k (queries
// that see no key), fp16 with different head dims for Q/K and V; then the
// score modifiers: a two-sided window with ALiBi per batch, and a causal
// sliding window with softcap; user modifiers (the expressions below, which
// the reference compiles as C++ and this file spells out by hand); dropout
// with GQA over two batches.
const char *const kScoreMod = "20 * tanh(score / 20) - 0.1 * abs(q_idx - kv_idx) + 0.5 * h";
const char *const kMaskMod = "q_idx / 16 == kv_idx / 16 || kv_idx < 3";

std::vector<CheckCase> referenceCases() {
  std::vector<CheckCase> cases(7);
  cases[0].seqQ = 37; cases[0].seqK = 91; cases[0].headsQ = 4; cases[0].headsK = 2;
  cases[0].headDimQK = 40; cases[0].causal = true;
  cases[1].seqQ = 130; cases[1].seqK = 65; cases[1].headDimQK = 256; cases[1].causal = true;
  cases[2].dtype = DType::F16; cases[2].batch = 2; cases[2].seqQ = 64; cases[2].seqK = 200;
  cases[2].headDimQK = 96; cases[2].headDimV = 64; cases[2].headsQ = 3;
  cases[3].batch = 2; cases[3].seqQ = 70; cases[3].seqK = 50; cases[3].headsQ = 2;
  cases[3].windowLeft = 9; cases[3].windowRight = 4; cases[3].alibi = cases[3].alibiPerBatch = true;
  cases[4].seqQ = 60; cases[4].seqK = 80; cases[4].causal = true; cases[4].windowLeft = 20;
  cases[4].softcap = 0.5f;
  cases[5].seqQ = 50; cases[5].seqK = 70; cases[5].headsQ = 2; cases[5].causal = true;
  cases[5].scoreMod = kScoreMod; cases[5].maskMod = kMaskMod;
  cases[6].batch = 2; cases[6].seqQ = 45; cases[6].seqK = 77; cases[6].headsQ = 3;
  cases[6].headsK = 1; cases[6].causal = true; cases[6].dropoutP = 0.3f;
  cases[6].dropoutSeed = 0x123456789abcdefULL; cases[6].dropoutOffset = 7;
  return cases;
}

// Philox-4x32-10 on the CPU, from Random123's definition.
std::array<uint32_t, 4> philox(std::array<uint32_t, 4> c, uint32_t key0, uint32_t key1) {
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = uint64_t(0xD2511F53u) * c[0], p1 = uint64_t(0xCD9E8D57u) * c[2];
    c = {uint32_t(p1 >> 32) ^ c[1] ^ key0, uint32_t(p1), uint32_t(p0 >> 32) ^ c[3] ^ key1,
         uint32_t(p0)};
    key0 += 0x9E3779B9u;
    key1 += 0xBB67AE85u;
  }
  return c;
}

// Random123's known answers (kat_vectors): key, counter -> output.
struct PhiloxAnswer {
  uint32_t key0, key1;
  std::array<uint32_t, 4> counter, output;
};
const PhiloxAnswer kPhiloxAnswers[] = {
    {0, 0, {0, 0, 0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {0xffffffff, 0xffffffff, {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {0xa4093822, 0x299f31d0, {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}};

// Dropout's factor for P[i, j] of (b, h): AttentionParams::dropoutP's
// definition with compiler/Dropout.cpp's counter layout.
double dropoutFactor(const CheckCase &c, int64_t b, int64_t h, int64_t i, int64_t j) {
  if (c.dropoutP <= 0)
    return 1.0;
  const uint32_t threshold = uint32_t(std::floor(double(c.dropoutP) * 65536.0 + 0.5));
  auto words = philox({uint32_t((j / 16) * 4 + (j % 8) / 2), uint32_t((i / 16) * 8 + i % 8),
                       uint32_t(b * c.headsQ + h), c.dropoutOffset},
                      uint32_t(c.dropoutSeed), uint32_t(c.dropoutSeed >> 32));
  const uint32_t bits = (words[size_t(2 * ((i / 8) % 2) + (j / 8) % 2)] >> (16 * (j % 2))) & 0xffff;
  return bits >= threshold ? 65536.0 / (65536.0 - threshold) : 0.0;
}

// The mask and the logit from their definitions (flashjit.h), in float64.
bool sees(const CheckCase &c, int64_t i, int64_t j) {
  if (!c.maskMod.empty() && !(i / 16 == j / 16 || j < 3)) // kMaskMod
    return false;
  const int64_t diagonal = i + c.seqK - c.seqQ;
  if (c.causal && j > diagonal)
    return false;
  if (c.windowLeft >= 0 && j < diagonal - c.windowLeft)
    return false;
  if (c.windowRight >= 0 && j > diagonal + c.windowRight)
    return false;
  return true;
}

// Logit of dot product s for query i, key j of (batch b, head h), and d logit / d s.
double logitOf(const CheckCase &c, double s, int64_t b, int64_t h, int64_t i, int64_t j,
               double &derivative) {
  const double scale = 1.0 / std::sqrt(double(c.headDimQK));
  double x = s * scale;
  derivative = scale;
  if (c.softcap > 0) {
    const double t = std::tanh(x / c.softcap);
    x = c.softcap * t;
    derivative = scale * (1 - t * t);
  }
  if (c.alibi)
    x -= double(alibiSlopes(c)[size_t(b * c.headsQ + h)]) *
         std::fabs(double(i + c.seqK - c.seqQ - j));
  if (!c.scoreMod.empty()) { // kScoreMod
    const double t = std::tanh(x / 20);
    x = 20 * t - 0.1 * double(std::abs(i - j)) + 0.5 * double(h);
    derivative *= 1 - t * t;
  }
  return x;
}

void cpuAttention(const CheckCase &c, const std::vector<float> &q, const std::vector<float> &k,
                  const std::vector<float> &v, std::vector<double> &o, std::vector<double> &lse) {
  const int64_t d = c.headDimQK, dv = c.headDimV ? c.headDimV : d, group = c.headsQ / c.headsK;
  o.assign(size_t(c.batch * c.seqQ * c.headsQ * dv), 0.0);
  lse.assign(size_t(c.batch * c.headsQ * c.seqQ), -INFINITY);
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t h = 0; h < c.headsQ; ++h)
      for (int64_t i = 0; i < c.seqQ; ++i) {
        std::vector<double> s(size_t(c.seqK), -INFINITY); // exp gives 0 for hidden keys
        double mx = -INFINITY;
        for (int64_t j = 0; j < c.seqK; ++j) {
          if (!sees(c, i, j))
            continue;
          double acc = 0, unused;
          for (int64_t x = 0; x < d; ++x)
            acc += double(q[size_t(((b * c.seqQ + i) * c.headsQ + h) * d + x)]) *
                   double(k[size_t(((b * c.seqK + j) * c.headsK + h / group) * d + x)]);
          s[size_t(j)] = logitOf(c, acc, b, h, i, j, unused);
          mx = std::max(mx, s[size_t(j)]);
        }
        if (mx == -INFINITY)
          continue; // sees no key: O = 0, LSE = -inf
        double sum = 0;
        for (double &x : s)
          sum += (x = std::exp(x - mx));
        for (int64_t j = 0; j < c.seqK; ++j)
          for (int64_t x = 0; x < dv; ++x)
            o[size_t(((b * c.seqQ + i) * c.headsQ + h) * dv + x)] +=
                s[size_t(j)] / sum * dropoutFactor(c, b, h, i, j) *
                double(v[size_t(((b * c.seqK + j) * c.headsK + h / group) * dv + x)]);
        lse[size_t((b * c.headsQ + h) * c.seqQ + i)] = mx + std::log(sum);
      }
}

TEST(ReferenceSelfTest, PhiloxMatchesRandom123KnownAnswers) {
  for (const PhiloxAnswer &a : kPhiloxAnswers)
    EXPECT_EQ(philox(a.counter, a.key0, a.key1), a.output) << "CPU Philox, key " << a.key0;
  FLASHJIT_REQUIRE_GPU();
  std::vector<uint32_t> in, out;
  for (const PhiloxAnswer &a : kPhiloxAnswers)
    in.insert(in.end(), {a.key0, a.key1, a.counter[0], a.counter[1], a.counter[2], a.counter[3]});
  Status s = Gpu::get().checker->referencePhilox(in, out);
  ASSERT_TRUE(s.isOk()) << s.message();
  for (size_t i = 0; i < std::size(kPhiloxAnswers); ++i)
    for (size_t w = 0; w < 4; ++w)
      EXPECT_EQ(out[4 * i + w], kPhiloxAnswers[i].output[w]) << "GPU reference, answer " << i;
}

TEST(ReferenceSelfTest, GpuReferenceMatchesFloat64) {
  FLASHJIT_REQUIRE_GPU();
  for (const CheckCase &c : referenceCases()) {
    std::vector<float> q, k, v, o, lse;
    Status s = Gpu::get().checker->referenceOnly(c, q, k, v, o, lse);
    ASSERT_TRUE(s.isOk()) << s.message();
    std::vector<double> o64, lse64;
    cpuAttention(c, q, k, v, o64, lse64);
    double maxErr = 0;
    for (size_t i = 0; i < o.size(); ++i)
      maxErr = std::max(maxErr, std::fabs(double(o[i]) - o64[i]));
    double maxLseErr = 0;
    for (size_t i = 0; i < lse.size(); ++i)
      if (!(std::isinf(lse64[i]) && lse[i] == lse64[i]))
        maxLseErr = std::max(maxLseErr, std::fabs(double(lse[i]) - lse64[i]));
    // fp32 arithmetic on bf16/f16 inputs: far below the 1e-2 the kernels are held to.
    EXPECT_LT(maxErr, 1e-5) << c.describe();
    EXPECT_LT(maxLseErr, 1e-5) << c.describe();
  }
}

// Gradients in float64: P from the row's LSE, dS = P (dP - rowsum(P dP)).
void cpuAttentionBackward(const CheckCase &c, const std::vector<float> &q,
                          const std::vector<float> &k, const std::vector<float> &v,
                          const std::vector<float> &dO, std::vector<double> &dq,
                          std::vector<double> &dk, std::vector<double> &dv) {
  const int64_t d = c.headDimQK, dvDim = c.headDimV ? c.headDimV : d, group = c.headsQ / c.headsK;
  dq.assign(size_t(c.batch * c.seqQ * c.headsQ * d), 0.0);
  dk.assign(size_t(c.batch * c.seqK * c.headsK * d), 0.0);
  dv.assign(size_t(c.batch * c.seqK * c.headsK * dvDim), 0.0);
  auto at = [](int64_t b, int64_t s, int64_t h, int64_t seq, int64_t heads, int64_t dim) {
    return size_t(((b * seq + s) * heads + h) * dim);
  };
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t h = 0; h < c.headsQ; ++h)
      for (int64_t i = 0; i < c.seqQ; ++i) {
        const int64_t limit = c.seqK;
        const size_t qi = at(b, i, h, c.seqQ, c.headsQ, d);
        const size_t oi = at(b, i, h, c.seqQ, c.headsQ, dvDim);
        std::vector<double> p(size_t(limit), -INFINITY), dp(size_t(limit), 0.0),
            derivative(size_t(limit), 0.0);
        double mx = -INFINITY, sum = 0, delta = 0;
        for (int64_t j = 0; j < limit; ++j) {
          if (!sees(c, i, j))
            continue;
          const size_t kj = at(b, j, h / group, c.seqK, c.headsK, d);
          const size_t vj = at(b, j, h / group, c.seqK, c.headsK, dvDim);
          double s = 0, g = 0;
          for (int64_t x = 0; x < d; ++x)
            s += double(q[qi + size_t(x)]) * double(k[kj + size_t(x)]);
          for (int64_t x = 0; x < dvDim; ++x)
            g += double(dO[oi + size_t(x)]) * double(v[vj + size_t(x)]);
          p[size_t(j)] = logitOf(c, s, b, h, i, j, derivative[size_t(j)]);
          dp[size_t(j)] = g * dropoutFactor(c, b, h, i, j); // d loss / d P through dropout
          mx = std::max(mx, p[size_t(j)]);
        }
        if (mx == -INFINITY)
          continue; // sees no key: no gradient
        for (double &x : p)
          sum += (x = std::exp(x - mx));
        for (int64_t j = 0; j < limit; ++j) {
          p[size_t(j)] /= sum;
          delta += p[size_t(j)] * dp[size_t(j)];
        }
        for (int64_t j = 0; j < limit; ++j) {
          const size_t kj = at(b, j, h / group, c.seqK, c.headsK, d);
          const size_t vj = at(b, j, h / group, c.seqK, c.headsK, dvDim);
          double ds = p[size_t(j)] * (dp[size_t(j)] - delta) * derivative[size_t(j)];
          for (int64_t x = 0; x < d; ++x) {
            dq[qi + size_t(x)] += ds * double(k[kj + size_t(x)]);
            dk[kj + size_t(x)] += ds * double(q[qi + size_t(x)]);
          }
          for (int64_t x = 0; x < dvDim; ++x)
            dv[vj + size_t(x)] +=
                p[size_t(j)] * dropoutFactor(c, b, h, i, j) * double(dO[oi + size_t(x)]);
        }
      }
}

TEST(ReferenceSelfTest, GpuReferenceGradientsMatchFloat64) {
  FLASHJIT_REQUIRE_GPU();
  for (const CheckCase &c : referenceCases()) {
    std::vector<float> q, k, v, dO, dq, dk, dv;
    Status s = Gpu::get().checker->referenceBackwardOnly(c, q, k, v, dO, dq, dk, dv);
    ASSERT_TRUE(s.isOk()) << s.message();
    std::vector<double> dq64, dk64, dv64;
    cpuAttentionBackward(c, q, k, v, dO, dq64, dk64, dv64);
    for (auto [gpu, cpu, name] : {std::tuple{&dq, &dq64, "dQ"}, {&dk, &dk64, "dK"},
                                  {&dv, &dv64, "dV"}}) {
      ASSERT_EQ(gpu->size(), cpu->size()) << name;
      double maxErr = 0, maxRef = 0;
      for (size_t i = 0; i < cpu->size(); ++i) {
        maxErr = std::max(maxErr, std::fabs(double((*gpu)[i]) - (*cpu)[i]));
        maxRef = std::max(maxRef, std::fabs((*cpu)[i]));
      }
      EXPECT_GT(maxRef, 0.0) << name << " of " << c.describe() << " is all zeros";
      EXPECT_LT(maxErr, 1e-4) << name << " of " << c.describe();
    }
  }
}

} // namespace
