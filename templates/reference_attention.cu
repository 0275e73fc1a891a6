// Plain reference attention for checking flashjit on the GPU: one warp per
// query row, fp32 arithmetic with expf/logf, same mask and GQA conventions as
// the generated kernels. Compiled at run time with NVRTC (no headers needed).
typedef unsigned short u16;

__device__ __forceinline__ float toFloat(u16 x, int isF16) {
  if (isF16) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x));
    return f;
  }
  return __uint_as_float(((unsigned)x) << 16); // bf16 is the top half of an f32
}

// User modifiers (AttentionParams::scoreMod / maskMod). Their expressions
// are C++ with the meaning flashjit gives them, so the checker compiles this
// file with -DFLASHJIT_SCORE_MOD=<expression> / -DFLASHJIT_MASK_MOD=... and
// they run here as written: in double precision, with `score` a dual number
// whose second part is d/d score (the backward's chain rule), independently
// of the generator's regions and their symbolic derivative.
namespace usermod {
struct Dual {
  double v, d;
  __device__ Dual(double value = 0.0, double slope = 0.0) : v(value), d(slope) {}
};
// d · f, and 0 where d is 0 (a constant stays constant where f is 0/0 or inf,
// e.g. sqrt at 0), as flashjit's symbolic derivative has it.
__device__ double chain(double d, double f) { return d == 0.0 ? 0.0 : d * f; }
__device__ Dual operator+(Dual a, Dual b) { return Dual(a.v + b.v, a.d + b.d); }
__device__ Dual operator-(Dual a, Dual b) { return Dual(a.v - b.v, a.d - b.d); }
__device__ Dual operator*(Dual a, Dual b) { return Dual(a.v * b.v, chain(a.d, b.v) + chain(b.d, a.v)); }
__device__ Dual operator/(Dual a, Dual b) {
  const double r = a.v / b.v;
  return Dual(r, chain(a.d, 1.0 / b.v) - chain(b.d, r / b.v));
}
__device__ Dual operator-(Dual a) { return Dual(-a.v, -a.d); }
__device__ Dual operator+(Dual a) { return a; }
__device__ bool operator<(Dual a, Dual b) { return a.v < b.v; }
__device__ bool operator<=(Dual a, Dual b) { return a.v <= b.v; }
__device__ bool operator>(Dual a, Dual b) { return a.v > b.v; }
__device__ bool operator>=(Dual a, Dual b) { return a.v >= b.v; }
__device__ bool operator==(Dual a, Dual b) { return a.v == b.v; }
__device__ bool operator!=(Dual a, Dual b) { return a.v != b.v; }
__device__ Dual tanh(Dual a) {
  double t = ::tanh(a.v);
  return Dual(t, chain(a.d, 1.0 - t * t));
}
__device__ Dual exp(Dual a) { double e = ::exp(a.v); return Dual(e, chain(a.d, e)); }
__device__ Dual exp2(Dual a) {
  double e = ::exp2(a.v);
  return Dual(e, chain(a.d, e * 0.6931471805599453));
}
__device__ Dual log(Dual a) { return Dual(::log(a.v), chain(a.d, 1.0 / a.v)); }
__device__ Dual log2(Dual a) {
  return Dual(::log2(a.v), chain(a.d, 1.0 / (a.v * 0.6931471805599453)));
}
__device__ Dual sqrt(Dual a) { double r = ::sqrt(a.v); return Dual(r, chain(a.d, 0.5 / r)); }
__device__ Dual abs(Dual a) { return a.v < 0 ? -a : a; }
__device__ Dual abs(double a) { return Dual(a < 0 ? -a : a); }
__device__ int abs(int a) { return a < 0 ? -a : a; }
// min / max: int with int stays int, anything with a float is float (as flashjit).
__device__ Dual min(Dual a, Dual b) { return b.v < a.v ? b : a; }
__device__ Dual max(Dual a, Dual b) { return b.v > a.v ? b : a; }
__device__ int min(int a, int b) { return b < a ? b : a; }
__device__ int max(int a, int b) { return b > a ? b : a; }
__device__ Dual min(double a, double b) { return min(Dual(a), Dual(b)); }
__device__ Dual max(double a, double b) { return max(Dual(a), Dual(b)); }
__device__ Dual min(int a, double b) { return min(Dual(a), Dual(b)); }
__device__ Dual max(int a, double b) { return max(Dual(a), Dual(b)); }
__device__ Dual min(double a, int b) { return min(Dual(a), Dual(b)); }
__device__ Dual max(double a, int b) { return max(Dual(a), Dual(b)); }
#ifdef FLASHJIT_SCORE_MOD
__device__ Dual scoreMod(Dual score, int b, int h, int q_idx, int kv_idx) {
  const double inf = __longlong_as_double(0x7ff0000000000000LL);
  return Dual(FLASHJIT_SCORE_MOD);
}
#endif
#ifdef FLASHJIT_MASK_MOD
__device__ bool maskMod(int b, int h, int q_idx, int kv_idx) {
  const double inf = __longlong_as_double(0x7ff0000000000000LL);
  return FLASHJIT_MASK_MOD;
}
#endif
} // namespace usermod

// The mask and score modifiers, written from their definitions (flashjit.h's
// AttentionParams), independently of the generated kernels' formulation.
struct ScoreMods {
  int causal, useWindow, windowLeft, windowRight; // a negative window side is unbounded
  float softcap;                                  // > 0: on
  int batchBase; // the batch index of blockIdx.z = 0 (a packed batch's sequence)
  const float *alibi; // slopes [batch?, heads_q]; null = off
  long long alibiBatchStride;
  float dropoutP; // > 0: dropout on P (AttentionParams::dropoutP)
  unsigned dropoutOffset;
  unsigned long long dropoutSeed;
  // Block mask, dense: [maskBatches][maskHeads][queryBlocks][keyBlocks] bytes,
  // nonzero = the block is visited; null = none.
  const unsigned char *blockMask;
  int blockQ, blockK, maskBatches, maskHeads, queryBlocks, keyBlocks;
};

// Philox-4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as
// easy as 1, 2, 3", SC'11), as Random123 defines it.
__device__ void philox4x32_10(unsigned c[4], unsigned key0, unsigned key1) {
  for (int round = 0; round < 10; ++round) {
    const unsigned lo0 = 0xD2511F53u * c[0], hi0 = __umulhi(0xD2511F53u, c[0]);
    const unsigned lo1 = 0xCD9E8D57u * c[2], hi1 = __umulhi(0xCD9E8D57u, c[2]);
    const unsigned next[4] = {hi1 ^ c[1] ^ key0, lo1, hi0 ^ c[3] ^ key1, lo0};
    for (int w = 0; w < 4; ++w)
      c[w] = next[w];
    key0 += 0x9E3779B9u;
    key1 += 0xBB67AE85u;
  }
}

// For the known-answer test: out[4 n..] = Philox of in[6 n..] = (key0, key1, counter).
extern "C" __global__ void reference_philox(const unsigned *in, unsigned *out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n)
    return;
  unsigned c[4] = {in[6 * i + 2], in[6 * i + 3], in[6 * i + 4], in[6 * i + 5]};
  philox4x32_10(c, in[6 * i], in[6 * i + 1]);
  for (int w = 0; w < 4; ++w)
    out[4 * i + w] = c[w];
}

// Dropout's factor for P of query `row`, key `key` (flashjit.h's
// AttentionParams::dropoutP, element mapping of compiler/Dropout.cpp written
// from its definition): 0 when dropped, 1 / (1 - quantized p) when kept.
__device__ float dropoutFactor(const ScoreMods &m, int row, int key, int b, int h, int headsQ) {
  if (!(m.dropoutP > 0.f))
    return 1.f;
  const unsigned threshold = (unsigned)floor((double)m.dropoutP * 65536.0 + 0.5);
  unsigned c[4] = {(unsigned)((key >> 4) * 4 + ((key & 7) >> 1)),
                   (unsigned)((row >> 4) * 8 + (row & 7)),
                   (unsigned)((b + m.batchBase) * headsQ + h), m.dropoutOffset};
  philox4x32_10(c, (unsigned)m.dropoutSeed, (unsigned)(m.dropoutSeed >> 32));
  const unsigned word = c[2 * ((row >> 3) & 1) + ((key >> 3) & 1)];
  const unsigned bits = (word >> (16 * (key & 1))) & 0xffffu;
  return bits >= threshold ? (float)(65536.0 / (65536.0 - threshold)) : 0.f;
}

__device__ bool sees(const ScoreMods &m, int row, int key, int b, int h, int seqQ, int seqK) {
  if (m.blockMask) {
    const long long block =
        ((((long long)(b % m.maskBatches) * m.maskHeads + h % m.maskHeads) * m.queryBlocks +
          row / m.blockQ) * m.keyBlocks) + key / m.blockK;
    if (!m.blockMask[block])
      return false;
  }
#ifdef FLASHJIT_MASK_MOD
  if (!usermod::maskMod(b + m.batchBase, h, row, key))
    return false;
#endif
  const int diagonal = row + seqK - seqQ; // bottom-right aligned
  if (m.causal && key > diagonal)
    return false;
  if (m.useWindow && m.windowLeft >= 0 && key < diagonal - m.windowLeft)
    return false;
  if (m.useWindow && m.windowRight >= 0 && key > diagonal + m.windowRight)
    return false;
  return true;
}

// The logit of dot product s = q.k, and its derivative d logit / d s.
__device__ float logitOf(const ScoreMods &m, float s, float scale, int row, int key, int b, int h,
                         int seqQ, int seqK, float *derivative) {
  float x = s * scale, g = scale;
  if (m.softcap > 0.f) {
    const float t = tanhf(x / m.softcap);
    x = m.softcap * t;
    g = scale * (1.f - t * t);
  }
  if (m.alibi)
    x -= m.alibi[b * m.alibiBatchStride + h] * fabsf((float)(row + seqK - seqQ - key));
#ifdef FLASHJIT_SCORE_MOD
  const usermod::Dual y = usermod::scoreMod(usermod::Dual(x, 1.0), b + m.batchBase, h, row, key);
  x = (float)y.v;
  g *= (float)y.d;
#endif
  if (derivative)
    *derivative = g;
  return x;
}

extern "C" __global__ void reference_attention(
    const u16 *q, const u16 *k, const u16 *v, float *o, float *lse,
    long long qs0, long long qs1, long long qs2, long long ks0, long long ks1, long long ks2,
    long long vs0, long long vs1, long long vs2, int seqQ, int seqK, int headsQ, int group,
    int dQK, int dV, ScoreMods mods, float scale, int isF16) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row = blockIdx.x * (blockDim.x / 32) + warp;
  if (row >= seqQ)
    return;
  const int h = blockIdx.y, b = blockIdx.z, hk = h / group;
  const u16 *qr = q + b * qs0 + row * qs1 + h * qs2;
  float qv[8], acc[8];
  for (int i = 0; i < 8; ++i) {
    int d = lane + 32 * i;
    qv[i] = d < dQK ? toFloat(qr[d], isF16) : 0.f;
    acc[i] = 0.f;
  }
  float m = -__int_as_float(0x7f800000), l = 0.f;
  for (int j = 0; j < seqK; ++j) {
    if (!sees(mods, row, j, b, h, seqQ, seqK))
      continue;
    const u16 *kr = k + b * ks0 + j * ks1 + hk * ks2;
    const u16 *vr = v + b * vs0 + j * vs1 + hk * vs2;
    float s = 0.f;
    for (int i = 0; i < 8; ++i) {
      int d = lane + 32 * i;
      if (d < dQK)
        s += qv[i] * toFloat(kr[d], isF16);
    }
    for (int off = 16; off > 0; off >>= 1)
      s += __shfl_xor_sync(0xffffffffu, s, off);
    s = logitOf(mods, s, scale, row, j, b, h, seqQ, seqK, 0);
    if (s == -__int_as_float(0x7f800000)) // a score_mod's -inf: a masked key
      continue;
    float mNew = fmaxf(m, s);
    float corr = expf(m - mNew), p = expf(s - mNew);
    l = l * corr + p; // the softmax's sum, before dropout
    const float pv = p * dropoutFactor(mods, row, j, b, h, headsQ);
    for (int i = 0; i < 8; ++i) {
      int d = lane + 32 * i;
      acc[i] = acc[i] * corr + (d < dV ? pv * toFloat(vr[d], isF16) : 0.f);
    }
    m = mNew;
  }
  float *orow = o + ((long long)(b * seqQ + row) * headsQ + h) * dV;
  for (int i = 0; i < 8; ++i) {
    int d = lane + 32 * i;
    if (d < dV)
      orow[d] = l > 0.f ? acc[i] / l : 0.f;
  }
  if (lane == 0 && lse)
    lse[((long long)b * headsQ + h) * seqQ + row] = l > 0.f ? m + logf(l) : -__int_as_float(0x7f800000);
}

// Backward reference, fp32, from the inputs and the reference forward's fp32
// O and LSE. dO has O's strides; gradients are written contiguous
// ([batch, seq, heads, dim]) in fp32. Step 1, one warp per query row:
// delta = rowsum(dO * O), dQ = sum_j dS_ij (d logit_ij / d s_ij) k_j, where
// dS = P (dP - delta) and dP = dO.v_j times the dropout factor.
extern "C" __global__ void reference_attention_bwd_dq(
    const u16 *q, const u16 *k, const u16 *v, const u16 *dO, const float *o, const float *lse,
    float *delta, float *dq, long long qs0, long long qs1, long long qs2, long long ks0,
    long long ks1, long long ks2, long long vs0, long long vs1, long long vs2, long long os0,
    long long os1, long long os2, int seqQ, int seqK, int headsQ, int group, int dQK, int dV,
    ScoreMods mods, float scale, int isF16) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row = blockIdx.x * (blockDim.x / 32) + warp;
  if (row >= seqQ)
    return;
  const int h = blockIdx.y, b = blockIdx.z, hk = h / group;
  const u16 *qr = q + b * qs0 + row * qs1 + h * qs2;
  const u16 *dor = dO + b * os0 + row * os1 + h * os2;
  const float *orow = o + ((long long)(b * seqQ + row) * headsQ + h) * dV;
  float qv[8], dov[8], acc[8];
  float dl = 0.f;
  for (int i = 0; i < 8; ++i) {
    int d = lane + 32 * i;
    qv[i] = d < dQK ? toFloat(qr[d], isF16) : 0.f;
    dov[i] = d < dV ? toFloat(dor[d], isF16) : 0.f;
    dl += d < dV ? dov[i] * orow[d] : 0.f;
    acc[i] = 0.f;
  }
  for (int off = 16; off > 0; off >>= 1)
    dl += __shfl_xor_sync(0xffffffffu, dl, off);
  const long long statRow = ((long long)b * headsQ + h) * seqQ + row;
  const float l = lse[statRow];
  if (lane == 0)
    delta[statRow] = dl;
  for (int j = 0; j < seqK && l > -__int_as_float(0x7f800000); ++j) {
    if (!sees(mods, row, j, b, h, seqQ, seqK))
      continue;
    const u16 *kr = k + b * ks0 + j * ks1 + hk * ks2;
    const u16 *vr = v + b * vs0 + j * vs1 + hk * vs2;
    float s = 0.f, dp = 0.f;
    for (int i = 0; i < 8; ++i) {
      int d = lane + 32 * i;
      if (d < dQK)
        s += qv[i] * toFloat(kr[d], isF16);
      if (d < dV)
        dp += dov[i] * toFloat(vr[d], isF16);
    }
    for (int off = 16; off > 0; off >>= 1) {
      s += __shfl_xor_sync(0xffffffffu, s, off);
      dp += __shfl_xor_sync(0xffffffffu, dp, off);
    }
    float g;
    float p = expf(logitOf(mods, s, scale, row, j, b, h, seqQ, seqK, &g) - l);
    dp *= dropoutFactor(mods, row, j, b, h, headsQ); // d loss / d P through the dropout
    float ds = p * (dp - dl) * g; // d loss / d (q.k)
    for (int i = 0; i < 8; ++i) {
      int d = lane + 32 * i;
      if (d < dQK)
        acc[i] += ds * toFloat(kr[d], isF16);
    }
  }
  float *dqr = dq + ((long long)(b * seqQ + row) * headsQ + h) * dQK;
  for (int i = 0; i < 8; ++i) {
    int d = lane + 32 * i;
    if (d < dQK)
      dqr[d] = acc[i];
  }
}

// Step 2, one warp per key row of a key/value head, summing over the query
// heads of its group: dV = sum_i P_ij dO_i, dK = sum_i dS_ij (d logit_ij / d s_ij) q_i.
extern "C" __global__ void reference_attention_bwd_dkv(
    const u16 *q, const u16 *k, const u16 *v, const u16 *dO, const float *lse,
    const float *delta, float *dk, float *dv, long long qs0, long long qs1, long long qs2,
    long long ks0, long long ks1, long long ks2, long long vs0, long long vs1, long long vs2,
    long long os0, long long os1, long long os2, int seqQ, int seqK, int headsQ, int group,
    int dQK, int dV, ScoreMods mods, float scale, int isF16) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int key = blockIdx.x * (blockDim.x / 32) + warp;
  if (key >= seqK)
    return;
  const int hk = blockIdx.y, b = blockIdx.z, headsK = headsQ / group;
  const u16 *kr = k + b * ks0 + key * ks1 + hk * ks2;
  const u16 *vr = v + b * vs0 + key * vs1 + hk * vs2;
  float kv[8], vv[8], dkAcc[8], dvAcc[8];
  for (int i = 0; i < 8; ++i) {
    int d = lane + 32 * i;
    kv[i] = d < dQK ? toFloat(kr[d], isF16) : 0.f;
    vv[i] = d < dV ? toFloat(vr[d], isF16) : 0.f;
    dkAcc[i] = dvAcc[i] = 0.f;
  }
  for (int g = 0; g < group; ++g) {
    const int h = hk * group + g;
    for (int row = 0; row < seqQ; ++row) {
      if (!sees(mods, row, key, b, h, seqQ, seqK))
        continue;
      const long long statRow = ((long long)b * headsQ + h) * seqQ + row;
      const float l = lse[statRow];
      if (!(l > -__int_as_float(0x7f800000)))
        continue;
      const u16 *qr = q + b * qs0 + row * qs1 + h * qs2;
      const u16 *dor = dO + b * os0 + row * os1 + h * os2;
      float s = 0.f, dp = 0.f;
      for (int i = 0; i < 8; ++i) {
        int d = lane + 32 * i;
        if (d < dQK)
          s += kv[i] * toFloat(qr[d], isF16);
        if (d < dV)
          dp += vv[i] * toFloat(dor[d], isF16);
      }
      for (int off = 16; off > 0; off >>= 1) {
        s += __shfl_xor_sync(0xffffffffu, s, off);
        dp += __shfl_xor_sync(0xffffffffu, dp, off);
      }
      float gradLogit;
      float p = expf(logitOf(mods, s, scale, row, key, b, h, seqQ, seqK, &gradLogit) - l);
      const float factor = dropoutFactor(mods, row, key, b, h, headsQ);
      dp *= factor;
      float ds = p * (dp - delta[statRow]) * gradLogit;
      for (int i = 0; i < 8; ++i) {
        int d = lane + 32 * i;
        if (d < dQK)
          dkAcc[i] += ds * toFloat(qr[d], isF16);
        if (d < dV)
          dvAcc[i] += p * factor * toFloat(dor[d], isF16);
      }
    }
  }
  const long long outRow = (long long)(b * seqK + key) * headsK + hk;
  for (int i = 0; i < 8; ++i) {
    int d = lane + 32 * i;
    if (d < dQK)
      dk[outRow * dQK + d] = dkAcc[i];
    if (d < dV)
      dv[outRow * dV + d] = dvAcc[i];
  }
}
