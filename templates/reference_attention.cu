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
