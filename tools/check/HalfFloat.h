//===- HalfFloat.h - host conversions between float and bf16/f16 -*- C++ -*-===//
#ifndef FLASHJIT_TOOLS_CHECK_HALFFLOAT_H
#define FLASHJIT_TOOLS_CHECK_HALFFLOAT_H

#include <cmath>
#include <cstdint>
#include <cstring>

namespace flashjit {

inline float bitsToFloat(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline uint32_t floatToBits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

inline uint16_t floatToBF16(float f) {
  uint32_t u = floatToBits(f);
  if (std::isnan(f))
    return 0x7fc0;
  u += 0x7fff + ((u >> 16) & 1); // round to nearest even
  return uint16_t(u >> 16);
}
inline float bf16ToFloat(uint16_t h) { return bitsToFloat(uint32_t(h) << 16); }

inline float halfToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  if (exp == 0x1f)
    return bitsToFloat(sign | 0x7f800000 | (man << 13));
  if (exp == 0) {
    float f = std::ldexp(float(man), -24);
    return sign ? -f : f;
  }
  return bitsToFloat(sign | ((exp + 112) << 23) | (man << 13));
}
inline uint16_t floatToHalf(float f) {
  // Inputs here are small test values: normal range or zero, round to nearest.
  uint32_t u = floatToBits(f), sign = (u >> 16) & 0x8000;
  float a = std::fabs(f);
  if (std::isnan(f))
    return 0x7e00;
  if (a >= 65520.f)
    return uint16_t(sign | 0x7c00);
  if (a < 6.103515625e-05f) // subnormal half
    return uint16_t(sign | uint32_t(std::nearbyint(a * 16777216.f)));
  uint32_t au = floatToBits(a);
  uint32_t exp = (au >> 23) - 112, man = au & 0x7fffff;
  uint32_t h = (exp << 10) | (man >> 13);
  uint32_t rest = man & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
    ++h;
  return uint16_t(sign | h);
}

} // namespace flashjit

#endif
