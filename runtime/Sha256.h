//===- Sha256.h - SHA-256 for cache keys and checksums ----------*- C++ -*-===//
// Plain C++ (FIPS 180-4), so the runtime-only library needs no LLVM.
#ifndef FLASHJIT_RUNTIME_SHA256_H
#define FLASHJIT_RUNTIME_SHA256_H

#include <array>
#include <cstdint>
#include <string>

namespace flashjit {

class Sha256 {
public:
  Sha256();
  Sha256 &update(const void *data, size_t size);
  Sha256 &update(const std::string &s) { return update(s.data(), s.size()); }
  /// Appends a length-prefixed field, so ("ab","c") and ("a","bc") differ.
  Sha256 &field(const std::string &s);
  std::array<uint8_t, 32> digest();
  std::string hexDigest();

  static std::string hex(const std::string &data) { return Sha256().update(data).hexDigest(); }

private:
  void block(const uint8_t *p);
  uint32_t h_[8];
  uint8_t buffer_[64];
  uint64_t length_ = 0;
  size_t buffered_ = 0;
};

} // namespace flashjit

#endif
