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

extern "C" __global__ void reference_attention(
    const u16 *q, const u16 *k, const u16 *v, float *o, float *lse,
    long long qs0, long long qs1, long long qs2, long long ks0, long long ks1, long long ks2,
    long long vs0, long long vs1, long long vs2, int seqQ, int seqK, int headsQ, int group,
    int dQK, int dV, int causal, float scale, int isF16) {
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
  int limit = seqK;
  if (causal)
    limit = min(seqK, row + seqK - seqQ + 1); // bottom-right aligned
  for (int j = 0; j < limit; ++j) {
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
    s *= scale;
    float mNew = fmaxf(m, s);
    float corr = expf(m - mNew), p = expf(s - mNew);
    l = l * corr + p;
    for (int i = 0; i < 8; ++i) {
      int d = lane + 32 * i;
      acc[i] = acc[i] * corr + (d < dV ? p * toFloat(vr[d], isF16) : 0.f);
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
// delta = rowsum(dO * O), dQ = scale * sum_j dS_ij k_j.
extern "C" __global__ void reference_attention_bwd_dq(
    const u16 *q, const u16 *k, const u16 *v, const u16 *dO, const float *o, const float *lse,
    float *delta, float *dq, long long qs0, long long qs1, long long qs2, long long ks0,
    long long ks1, long long ks2, long long vs0, long long vs1, long long vs2, long long os0,
    long long os1, long long os2, int seqQ, int seqK, int headsQ, int group, int dQK, int dV,
    int causal, float scale, int isF16) {
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
  int limit = seqK;
  if (causal)
    limit = min(seqK, row + seqK - seqQ + 1);
  for (int j = 0; j < limit && l > -__int_as_float(0x7f800000); ++j) {
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
    float p = expf(s * scale - l), ds = p * (dp - dl);
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
      dqr[d] = acc[i] * scale;
  }
}

// Step 2, one warp per key row of a key/value head, summing over the query
// heads of its group: dV = sum_i P_ij dO_i, dK = scale * sum_i dS_ij q_i.
extern "C" __global__ void reference_attention_bwd_dkv(
    const u16 *q, const u16 *k, const u16 *v, const u16 *dO, const float *lse,
    const float *delta, float *dk, float *dv, long long qs0, long long qs1, long long qs2,
    long long ks0, long long ks1, long long ks2, long long vs0, long long vs1, long long vs2,
    long long os0, long long os1, long long os2, int seqQ, int seqK, int headsQ, int group,
    int dQK, int dV, int causal, float scale, int isF16) {
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
  // causal: query i sees this key when key <= i + seqK - seqQ.
  const int first = causal ? max(0, key - (seqK - seqQ)) : 0;
  for (int g = 0; g < group; ++g) {
    const int h = hk * group + g;
    for (int row = first; row < seqQ; ++row) {
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
      float p = expf(s * scale - l), ds = p * (dp - delta[statRow]);
      for (int i = 0; i < 8; ++i) {
        int d = lane + 32 * i;
        if (d < dQK)
          dkAcc[i] += ds * toFloat(qr[d], isF16);
        if (d < dV)
          dvAcc[i] += p * toFloat(dor[d], isF16);
      }
    }
  }
  const long long outRow = (long long)(b * seqK + key) * headsK + hk;
  for (int i = 0; i < 8; ++i) {
    int d = lane + 32 * i;
    if (d < dQK)
      dk[outRow * dQK + d] = dkAcc[i] * scale;
    if (d < dV)
      dv[outRow * dV + d] = dvAcc[i];
  }
}
