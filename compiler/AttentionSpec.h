//===- AttentionSpec.h - one forward-attention kernel variant ---*- C++ -*-===//
//
// Plain C++ (no LLVM/MLIR), so the runtime-only library can name variants.
// The canonical text is the cache-key input; the variant name is readable and
// is the kernel's symbol name.
//
#ifndef FLASHJIT_COMPILER_ATTENTIONSPEC_H
#define FLASHJIT_COMPILER_ATTENTIONSPEC_H

#include <cstdint>
#include <optional>
#include <string>

namespace flashjit {

enum class DType { F16, BF16 };
enum class Mask { None, Causal };

const char *dtypeName(DType t); // "f16" / "bf16"
const char *maskName(Mask m);   // "none" / "causal"
std::optional<DType> parseDType(const std::string &s);

struct TileConfig {
  int64_t m = 128, n = 64, warps = 4, stages = 2;
  // Hopper switch: S = Q Kᵀ on wgmma (operands from 128B-swizzled shared
  // memory) instead of mma.sync. sm_90a only.
  bool qkWgmma = false;
  // Hopper switch: O += P V on wgmma (P from registers, V from swizzled shared
  // memory, N-major). sm_90a only.
  bool pvWgmma = false;
  // Hopper switch (needs both wgmma switches): a producer warpgroup loads
  // Q/K/V with TMA into an mbarrier ring; `warps` counts the consumer warps.
  bool warpSpecialized = false;
  // Launch switch of the warp-specialized kernel: one block per SM walking
  // many tiles, instead of one block a tile (same code, other grid).
  bool persistent = false;
  int64_t threads() const { return (warps + (warpSpecialized ? 4 : 0)) * 32; }
};

/// "m128n64w4s2", with "g" when Q Kᵀ and "p" when P V runs on wgmma, and
/// "ws" when a TMA producer warpgroup feeds the `w` consumer warps, "ps" when
/// its grid is persistent.
std::string tileName(const TileConfig &t);
bool sameTile(const TileConfig &a, const TileConfig &b);

struct AttentionSpec {
  DType dtype = DType::BF16;
  int64_t headDimQK = 128;
  int64_t headDimV = 128;
  Mask mask = Mask::None;
  bool withLse = false;
  TileConfig tile;
  std::string arch = "sm_80";
  int64_t maxSharedMemory = 0; // bytes a block may use on the target; 0 = the arch's documented limit

  std::string canonical() const;   // complete, stable text of every field
  std::string variantName() const; // e.g. flash_fwd_bf16_d128_causal_m128n64w4s2_sm90a
  int64_t threads() const { return tile.threads(); }
  int64_t sharedMemoryBytes() const;
};

/// Shared memory one block may use on `arch` per the CUDA programming guide;
/// used only when no device is at hand (flash-gen). The runtime reads the
/// limit from the device instead. Returns 0 for an unknown arch.
int64_t documentedMaxSharedMemory(const std::string &arch);

/// A tile configuration measured to do well for this head dim and target
/// (until the autotuner has something better for a shape).
TileConfig defaultTile(int64_t headDimQK, int64_t headDimV, int64_t maxSharedMemory,
                       const std::string &arch = "sm_80");

} // namespace flashjit

#endif
