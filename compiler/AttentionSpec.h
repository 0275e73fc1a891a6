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
#include <vector>

namespace flashjit {

enum class DType { F16, BF16 };
/// Which keys a query sees (all bottom-right aligned, FlashAttention-2's
/// convention: query i's diagonal is key i + seq_k - seq_q). Window: keys
/// within (left, right) of the diagonal, both bounds run-time kernel
/// parameters; key blocks outside every row's window are skipped.
enum class Mask { None, Causal, Window };
/// Which kernel of the attention computation a variant is. The deterministic
/// backward is two launches: BackwardDQ (query blocks outer: dQ, and
/// rowsum(dO∘O) for the other) then BackwardDKV (key blocks outer: dK and dV,
/// summed over the query heads of a GQA group); above d = 128 the latter
/// splits into BackwardDK and BackwardDV so that each holds one accumulator
/// in registers. The atomic backward (sm_90a wgmma tiles) runs BackwardDelta
/// (rowsum(dO∘O) only), then BackwardDKVQ (the key-block kernel that also
/// adds each block's dQ share to an fp32 accumulator with atomics; above
/// d = 128 BackwardDKQ and BackwardDV), then BackwardConvertDQ (dQ = scale ·
/// accumulator, in the element type): five products a block pair instead of
/// seven. ForwardBlockLists computes no attention: launched before a forward
/// with a mask_mod, it lists the key blocks each query tile's mask may keep
/// (KernelABI.h's BlockMaskParams, on the forward's parameters), so that the
/// forward's block-mask variant skips every empty block, not only those at
/// the ends of its range.
enum class KernelKind {
  Forward, BackwardDQ, BackwardDKV, BackwardDK, BackwardDV,
  BackwardDelta, BackwardDKVQ, BackwardDKQ, BackwardConvertDQ, ForwardBlockLists
};
/// The kinds of the backward pass (their own parameter list, KernelABI.h's bwd).
bool isBackwardKind(KernelKind k);
/// Grid over query blocks (BackwardDQ, BackwardDelta, BackwardConvertDQ) or,
/// for the other backward kinds, over key blocks.
bool isQueryBlockKind(KernelKind k);
/// The key-block kernels that add dQ atomically (BackwardDKVQ, BackwardDKQ).
bool addsQueryGradient(KernelKind k);
/// BackwardDelta and BackwardConvertDQ: no attention math, so one kernel per
/// dtype, head dims, packing and target serves every mask, modifier and tile.
bool isAuxiliaryKind(KernelKind k);

const char *dtypeName(DType t); // "f16" / "bf16"
const char *maskName(Mask m);   // "none" / "causal" / "window"
std::optional<Mask> parseMask(const std::string &s);
const char *kernelKindName(KernelKind k); // "fwd", "bwd_dq", "bwd_dkv", "bwd_dk", "bwd_dv",
                                          // "bwd_delta", "bwd_dkvq", "bwd_dkq", "bwd_dq_convert",
                                          // "fwd_block_lists"
std::optional<KernelKind> parseKernelKind(const std::string &s);
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
  // Switch of the warp-specialized kernel: O leaves through shared memory
  // (the Q tile's) and TMA stores, one per warpgroup, instead of per-thread
  // stores. Not with varlen or GQA packing (per-thread stores there).
  bool tmaStore = false;
  int64_t threads() const { return (warps + (warpSpecialized ? 4 : 0)) * 32; }
};

/// "m128n64w4s2", with "g" when Q Kᵀ and "p" when P V runs on wgmma, and
/// "ws" when a TMA producer warpgroup feeds the `w` consumer warps, "ps" when
/// its grid is persistent, "ts" when O leaves by TMA stores.
std::string tileName(const TileConfig &t);
bool sameTile(const TileConfig &a, const TileConfig &b);

struct AttentionSpec {
  KernelKind kind = KernelKind::Forward;
  DType dtype = DType::BF16;
  int64_t headDimQK = 128;
  int64_t headDimV = 128;
  Mask mask = Mask::None;
  bool withLse = false; // forward only: also write the LSE (the backward always reads it)
  // Score modifiers compiled in (their values are run-time kernel parameters):
  // softcap · tanh(s / softcap) (Gemma 2), and ALiBi's −slope · |diagonal − key|.
  bool softcap = false;
  bool alibi = false;
  // Packed variable-length sequences (flash_attn_varlen_func): batch b's rows
  // are rows [cu_seqlens[b], cu_seqlens[b + 1]) of [total, heads, dim] tensors.
  bool varlen = false;
  // User modifiers (ModifierExpression.h), in canonical text; empty = none.
  // score_mod rewrites every logit, mask_mod drops keys (after `mask`).
  std::string scoreMod, maskMod;
  // Dropout on the probabilities (its p, seed and offset are run-time kernel
  // parameters; KernelABI.h's DropoutParams).
  bool dropout = false;
  // A block mask given at run time (KernelABI.h's BlockMaskParams): query
  // tiles visit only the key blocks it lists (key tiles of the backward the
  // query blocks of its transpose). Not with varlen.
  bool blockMask = false;
  // Forward only, GQA: the query heads of a key/value head's group share the
  // tile's rows (row r = query r / group of head r % group), so a decode-size
  // seq_q fills a tile once per group instead of once per head and K/V are
  // read once per group. Not with ALiBi, user modifiers, dropout, varlen or
  // a block mask (they are per head).
  bool packGQA = false;
  TileConfig tile;
  std::string arch = "sm_80";
  int64_t maxSharedMemory = 0; // bytes a block may use on the target; 0 = the arch's documented limit

  std::string canonical() const;   // complete, stable text of every field
  std::string variantName() const; // e.g. flash_fwd_bf16_d128_causal_m128n64w4s2_sm90a,
                                   //      flash_bwd_dq_bf16_d128_window_softcap_varlen_m64n64w4s2_sm80,
                                   //      flash_fwd_f16_d64_smod3fa9c2d1e0_mmod..._m128n128w4s2_sm80
  bool backward() const { return isBackwardKind(kind); }
  int64_t threads() const { return tile.threads(); }
  int64_t sharedMemoryBytes() const;
  /// maxSharedMemory, or the arch's documented limit where it is 0: the
  /// kernel's target attribute.
  int64_t targetMaxSharedMemory() const;
};

/// Shared memory one block may use on `arch` per the CUDA programming guide;
/// used only when no device is at hand (flash-gen). The runtime reads the
/// limit from the device instead. Returns 0 for an unknown arch.
int64_t documentedMaxSharedMemory(const std::string &arch);

/// The backward kernels' tiles (wgmma on sm_90a, else mma.sync): BackwardDQ
/// m = query rows a block (owned by the warps), n = keys a step; the
/// key-block kernels n = key rows a block (owned by the warps), m = query
/// rows a step.
TileConfig defaultBackwardTile(KernelKind kind, int64_t headDimQK, int64_t headDimV,
                               int64_t maxSharedMemory, const std::string &arch = "sm_80");
/// The kernel kinds a backward pass of this head dim runs, in launch order.
/// Deterministic: {BackwardDQ, BackwardDKV} up to d = 128, {BackwardDQ,
/// BackwardDK, BackwardDV} above. With atomic dQ: {BackwardDelta,
/// BackwardDKVQ, BackwardConvertDQ}, above d = 128 {BackwardDelta,
/// BackwardDKQ, BackwardDV, BackwardConvertDQ}.
std::vector<KernelKind> backwardKernels(int64_t headDimQK, int64_t headDimV,
                                        bool atomicQueryGradient = false);
/// How the consumer warpgroups of an atomic-dQ key-block kernel (W = warps /
/// 4 of them, m queries a step) share each step's dQᵀ = Kᵀ dSᵀ (chunks of 64
/// head-dim rows by queries): by chunks where they divide among them
/// (warpgroup w takes chunks w, w + W, ...), else every chunk over m / W
/// queries each. `atOnce` of a warpgroup's chunks are in flight with dK and
/// dV (up to d = 128 and 32 accumulators, no dropout), the rest one at a time.
struct GradQueryShare {
  int64_t chunks, columns;
  bool byChunks;
  int64_t atOnce;
};
GradQueryShare gradQueryShare(int64_t headDimQK, int64_t warps, int64_t m, bool dropout);
/// Clears what a spec's kind cannot have: the forward-only switches (LSE,
/// GQA packing) on backward kinds; and gives the auxiliary kinds their fixed
/// form (no mask, modifiers, dropout or block mask, tile m64 (query rows a
/// block) w4), and ForwardBlockLists its own (the mask, mask_mod and the
/// tile's m and n only; block mask on; w1 s1, no Hopper switches). Forward
/// specs are left as they are.
void normalizeSpecForKind(AttentionSpec &spec);

/// Whether O's tile fits the shared memory of Q's (both padded to 64
/// columns): where tma_store stages it.
inline bool outputFitsQueryTile(int64_t headDimQK, int64_t headDimV) {
  return (headDimV + 63) / 64 <= (headDimQK + 63) / 64;
}

/// Whether the forward `spec` may take the tile switch tmaStore: not varlen
/// or GQA-packed, and O's padded head dim no wider than Q's (O is staged
/// where Q was).
bool tmaStoreAvailable(const AttentionSpec &spec);

/// Narrows a tile that fits the plain variant's registers but would spill
/// with `spec`'s extra work per score (a user mask's block test, dropout's
/// Philox words): forward warp-specialized tiles to 128 keys (64 above d =
/// 128 with dropout), and not persistent with dropout; the atomic-dQ
/// key-block kernels with dropout to half the query rows a step. For tiles
/// not tuned for `spec` itself (defaults, fallbacks).
void narrowTileForRegisters(TileConfig &t, const AttentionSpec &spec);

/// Untuned warp-specialized forward tiles by problem size (H200 sweeps):
/// causal over at most 4096 keys, and d <= 64 over at most 1024, take at most
/// 128 keys a step: such rows have few steps, and of a 176-key diagonal step
/// most is masked (d = 128 causal s = 512 / 1024 248 / 361 TFLOP/s at 128
/// keys against 223 / 328 at 176; bench/results/h200-tune-d64.md). Plain
/// (unmodified) attention at d <= 128 over at most 2048 keys runs persistent,
/// 128 keys a step, O by TMA stores where `maxSharedMemory` holds a second Q
/// tile (the next tile's Q loads while this one runs; H200: +3-11% over the
/// persistent kernel with one Q tile and per-thread stores, at or above
/// cuDNN; bench/results/h200-forward-two-query-tiles.md); at d <= 64 on three
/// consumer warpgroups, 192 rows and 128 keys a step, from 512 queries and
/// keys (causal: 2048, past 2048 keys 4096), persistent when not causal or
/// over at most 2048 keys, with TMA stores over at most 2048 keys or causal;
/// and at 64 < d <= 128 non-causal from 4096 keys with 192 keys a step where
/// they fit (+2-4%; bench/results/h200-forward-three-consumers.md).
void fitTileToProblemSize(TileConfig &t, const AttentionSpec &spec, int64_t seqQ, int64_t seqK,
                          int64_t maxSharedMemory);

/// A tile configuration measured to do well for this head dim and target
/// (until the autotuner has something better for a shape).
TileConfig defaultTile(int64_t headDimQK, int64_t headDimV, int64_t maxSharedMemory,
                       const std::string &arch = "sm_80");

} // namespace flashjit

#endif
