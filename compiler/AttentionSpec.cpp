//===- AttentionSpec.cpp --------------------------------------------------===//
#include "compiler/AttentionSpec.h"
#include "compiler/ModifierExpression.h"

#include "dialect/SharedMemoryLayout.h"

#include <algorithm>
#include <sstream>

namespace flashjit {

const char *dtypeName(DType t) { return t == DType::F16 ? "f16" : "bf16"; }
const char *maskName(Mask m) {
  switch (m) {
  case Mask::None: return "none";
  case Mask::Causal: return "causal";
  case Mask::Window: return "window";
  }
  return "?";
}

std::optional<Mask> parseMask(const std::string &s) {
  for (Mask m : {Mask::None, Mask::Causal, Mask::Window})
    if (s == maskName(m))
      return m;
  return std::nullopt;
}

const char *kernelKindName(KernelKind k) {
  switch (k) {
  case KernelKind::Forward: return "fwd";
  case KernelKind::BackwardDQ: return "bwd_dq";
  case KernelKind::BackwardDKV: return "bwd_dkv";
  case KernelKind::BackwardDK: return "bwd_dk";
  case KernelKind::BackwardDV: return "bwd_dv";
  case KernelKind::BackwardDelta: return "bwd_delta";
  case KernelKind::BackwardDKVQ: return "bwd_dkvq";
  case KernelKind::BackwardDKQ: return "bwd_dkq";
  case KernelKind::BackwardConvertDQ: return "bwd_dq_convert";
  case KernelKind::ForwardBlockLists: return "fwd_block_lists";
  }
  return "?";
}

bool isBackwardKind(KernelKind k) {
  return k != KernelKind::Forward && k != KernelKind::ForwardBlockLists;
}
bool isQueryBlockKind(KernelKind k) {
  return k == KernelKind::BackwardDQ || k == KernelKind::BackwardDelta ||
         k == KernelKind::BackwardConvertDQ;
}
bool addsQueryGradient(KernelKind k) {
  return k == KernelKind::BackwardDKVQ || k == KernelKind::BackwardDKQ;
}
bool isAuxiliaryKind(KernelKind k) {
  return k == KernelKind::BackwardDelta || k == KernelKind::BackwardConvertDQ;
}

void normalizeSpecForKind(AttentionSpec &spec) {
  if (spec.backward())
    spec.withLse = spec.packGQA = false;
  if (spec.kind == KernelKind::ForwardBlockLists) {
    // Lists depend on where keys are kept, nothing on how scores are formed.
    spec.withLse = spec.packGQA = spec.softcap = spec.alibi = spec.dropout = false;
    spec.scoreMod.clear();
    spec.blockMask = true;
    spec.tile = TileConfig{spec.tile.m, spec.tile.n, 1, 1}; // one warp a query block
    return;
  }
  if (!isAuxiliaryKind(spec.kind))
    return;
  spec.mask = Mask::None;
  spec.softcap = spec.alibi = spec.dropout = spec.blockMask = false;
  spec.scoreMod.clear();
  spec.maskMod.clear();
  spec.tile = TileConfig{64, 64, 4, 1};
}

std::optional<KernelKind> parseKernelKind(const std::string &s) {
  for (KernelKind k : {KernelKind::Forward, KernelKind::BackwardDQ, KernelKind::BackwardDKV,
                       KernelKind::BackwardDK, KernelKind::BackwardDV, KernelKind::BackwardDelta,
                       KernelKind::BackwardDKVQ, KernelKind::BackwardDKQ,
                       KernelKind::BackwardConvertDQ, KernelKind::ForwardBlockLists})
    if (s == kernelKindName(k))
      return k;
  return std::nullopt;
}

std::optional<DType> parseDType(const std::string &s) {
  if (s == "f16" || s == "fp16" || s == "half")
    return DType::F16;
  if (s == "bf16")
    return DType::BF16;
  return std::nullopt;
}

std::string AttentionSpec::canonical() const {
  std::ostringstream os;
  os << "flash.attention." << kernelKindName(kind) << " dtype=" << dtypeName(dtype) << " d_qk=" << headDimQK
     << " d_v=" << headDimV << " mask=" << maskName(mask) << " softcap=" << (softcap ? 1 : 0)
     << " alibi=" << (alibi ? 1 : 0) << " varlen=" << (varlen ? 1 : 0) << " lse=" << (withLse ? 1 : 0)
     << " tile.m=" << tile.m << " tile.n=" << tile.n << " tile.warps=" << tile.warps
     << " tile.stages=" << tile.stages << " tile.qk_wgmma=" << (tile.qkWgmma ? 1 : 0)
     << " tile.pv_wgmma=" << (tile.pvWgmma ? 1 : 0)
     << " tile.warp_specialized=" << (tile.warpSpecialized ? 1 : 0)
     << " tile.persistent=" << (tile.persistent ? 1 : 0)
     << " arch=" << arch << " max_smem=" << maxSharedMemory;
  // Appended only when present, so the keys of plain variants stay as they were.
  if (tile.tmaStore)
    os << " tile.tma_store=1";
  if (!scoreMod.empty())
    os << " score_mod=" << scoreMod;
  if (!maskMod.empty())
    os << " mask_mod=" << maskMod;
  if (dropout)
    os << " dropout=1";
  if (blockMask)
    os << " block_mask=1";
  if (packGQA)
    os << " pack_gqa=1";
  return os.str();
}

std::string AttentionSpec::variantName() const {
  std::ostringstream os;
  os << "flash_" << kernelKindName(kind) << "_" << dtypeName(dtype) << "_d" << headDimQK;
  if (headDimV != headDimQK)
    os << "v" << headDimV;
  if (mask != Mask::None)
    os << "_" << maskName(mask);
  if (softcap)
    os << "_softcap";
  if (alibi)
    os << "_alibi";
  if (!scoreMod.empty())
    os << "_smod" << modifierHash(scoreMod);
  if (!maskMod.empty())
    os << "_mmod" << modifierHash(maskMod);
  if (varlen)
    os << "_varlen";
  if (dropout)
    os << "_dropout";
  if (blockMask)
    os << "_blockmask";
  if (packGQA)
    os << "_packgqa";
  if (withLse)
    os << "_lse";
  os << "_" << tileName(tile);
  std::string a = arch;
  a.erase(std::remove(a.begin(), a.end(), '_'), a.end());
  os << "_" << a;
  return os.str();
}

// The backward kernels keep the tiles of the rows their warps own resident.
static flash::SharedMemoryLayout backwardLayout(KernelKind kind, int64_t headDimQK,
                                                int64_t headDimV, const TileConfig &t) {
  bool queryBlocksOuter = kind == KernelKind::BackwardDQ;
  return flash::SharedMemoryLayout::computeBackward(
      headDimQK, headDimV, 2, queryBlocksOuter ? t.m : t.n, queryBlocksOuter ? t.n : t.m,
      t.stages, t.qkWgmma, addsQueryGradient(kind), t.warpSpecialized,
      t.warpSpecialized && !queryBlocksOuter, t.persistent);
}

// The forward's shared memory layout for tile t (16-bit elements) on a
// target of maxSharedMemory bytes a block, as the kernel's.
static flash::SharedMemoryLayout forwardLayout(int64_t headDimQK, int64_t headDimV,
                                               const TileConfig &t, int64_t maxSharedMemory) {
  return flash::SharedMemoryLayout::computeForward(headDimQK, headDimV, 2, t.m, t.n, t.stages,
                                                   t.qkWgmma, t.pvWgmma, t.warpSpecialized,
                                                   t.persistent, maxSharedMemory);
}

static int64_t forwardBytes(int64_t headDimQK, int64_t headDimV, const TileConfig &t,
                            int64_t maxSharedMemory) {
  return forwardLayout(headDimQK, headDimV, t, maxSharedMemory).totalBytes;
}

int64_t AttentionSpec::sharedMemoryBytes() const {
  if (isAuxiliaryKind(kind) || kind == KernelKind::ForwardBlockLists)
    return 0;
  if (backward())
    return backwardLayout(kind, headDimQK, headDimV, tile).totalBytes;
  return forwardBytes(headDimQK, headDimV, tile, targetMaxSharedMemory());
}

int64_t AttentionSpec::targetMaxSharedMemory() const {
  return maxSharedMemory ? maxSharedMemory : documentedMaxSharedMemory(arch);
}

std::string tileName(const TileConfig &t) {
  return "m" + std::to_string(t.m) + "n" + std::to_string(t.n) + "w" + std::to_string(t.warps) +
         "s" + std::to_string(t.stages) + (t.qkWgmma ? "g" : "") + (t.pvWgmma ? "p" : "") +
         (t.warpSpecialized ? "ws" : "") + (t.persistent ? "ps" : "") + (t.tmaStore ? "ts" : "");
}

bool sameTile(const TileConfig &a, const TileConfig &b) {
  return a.m == b.m && a.n == b.n && a.warps == b.warps && a.stages == b.stages &&
         a.qkWgmma == b.qkWgmma && a.pvWgmma == b.pvWgmma &&
         a.warpSpecialized == b.warpSpecialized && a.persistent == b.persistent &&
         a.tmaStore == b.tmaStore;
}

int64_t documentedMaxSharedMemory(const std::string &arch) {
  if (arch == "sm_80" || arch == "sm_87")
    return 163 * 1024;
  if (arch == "sm_86" || arch == "sm_89")
    return 99 * 1024;
  if (arch == "sm_90" || arch == "sm_90a" || arch == "sm_100" || arch == "sm_100a")
    return 227 * 1024;
  return 0;
}

void fitTileToProblemSize(TileConfig &t, const AttentionSpec &spec, int64_t seqQ, int64_t seqK,
                          int64_t maxSharedMemory) {
  if (spec.backward() || !t.warpSpecialized)
    return;
  const bool causal = spec.mask == Mask::Causal;
  const bool smallHead = std::max(spec.headDimQK, spec.headDimV) <= 64;
  if ((causal && seqK <= 4096) || (smallHead && seqK <= 1024))
    t.n = std::min<int64_t>(t.n, 128);
  // The rest was measured on plain attention only (GQA packing is decided
  // after this; packed kernels of these tiles are tested, not measured).
  const bool plain = spec.mask != Mask::Window && !spec.softcap && !spec.alibi && !spec.varlen &&
                     spec.scoreMod.empty() && spec.maskMod.empty() && !spec.dropout &&
                     !spec.blockMask;
  if (!plain)
    return;
  const int64_t d = std::max(spec.headDimQK, spec.headDimV);
  auto fits = [&](int64_t m, int64_t n) {
    TileConfig wider = t;
    wider.m = m;
    wider.n = n;
    return forwardBytes(spec.headDimQK, spec.headDimV, wider, maxSharedMemory) <= maxSharedMemory;
  };
  // d = 256: 64 keys a step rather than 80 (with lazy rescaling and the
  // P V wait below the softmax; H200, three runs: +1.5-7% bf16, -0.5 to
  // +6% fp16; h200-forward-tiles-after-lazy-rescale.md).
  if (d > 192 && t.n == 80 && fits(t.m, 64))
    t.n = 64;
  // Long non-causal rows at d <= 128: 192 keys a step where they fit.
  if (!causal && d > 64 && d <= 128 && seqQ >= 4096 && seqK >= 4096 && t.n == 176 &&
      !t.persistent && fits(t.m, 192))
    t.n = 192;
  // Does a persistent block of tile c keep a second Q tile (the next tile's
  // Q loads while this one runs, so O can leave through this one's Q tile)?
  auto twoQueryTiles = [&](const TileConfig &c) {
    return forwardLayout(spec.headDimQK, spec.headDimV, c, maxSharedMemory).querySlots == 2;
  };
  // Short rows: persistent, 128 keys a step; O by TMA stores where a second
  // Q tile fits (else Q would wait for the store: per-thread stores). At
  // d = 128 up to 4096 keys too, since the O store's wait moved into the
  // next tile (H200 bf16 4096 keys, not causal: 616 against 591 TFLOP/s for
  // 192 keys a step, one tile a block; bench/results/
  // h200-forward-deferred-store-wait.md; causal, with lazy rescaling:
  // +2-7% over one tile a block, h200-forward-tiles-after-lazy-rescale.md).
  const int64_t shortRows = d > 64 ? 4096 : 2048;
  if (d <= 128 && seqK <= shortRows) {
    t.persistent = true;
    t.n = std::min<int64_t>(t.n, 128);
    t.tmaStore = t.tmaStore && twoQueryTiles(t);
  }
  // Small heads: three consumer warpgroups of 64 rows, two on the tensor
  // cores while the third runs a softmax as long as its GEMMs: from 512
  // queries and keys (causal 2048, and past 2048 keys from 4096); persistent
  // with O by TMA stores over at most 2048 keys, beyond that persistent
  // without them (not causal) or one tile a block with them (causal).
  const int64_t threeFrom = !causal ? 512 : seqK <= 2048 ? 2048 : 4096;
  if (smallHead && seqQ >= threeFrom && seqK >= threeFrom && fits(192, 128)) {
    TileConfig three = t;
    three.m = 192;
    three.warps = 12;
    three.n = 128;
    three.persistent = !causal || seqK <= 2048;
    three.tmaStore = t.tmaStore && (causal || (seqK <= 2048 && twoQueryTiles(three)));
    t = three;
  }
}

bool tmaStoreAvailable(const AttentionSpec &spec) {
  return !spec.backward() && !spec.varlen && !spec.packGQA &&
         outputFitsQueryTile(spec.headDimQK, spec.headDimV);
}

// A user mask's block test and second mask branch spill the 176-key
// warp-specialized consumers (ptxas: ~200 B at d = 128), dropout's Philox
// words 20 B at 176 keys (d = 128) and at 80 (d = 256), 60 B when
// persistent; these narrower tiles do not (ptxas -v, sm_90a).
void narrowTileForRegisters(TileConfig &t, const AttentionSpec &spec) {
  // The key-block kernels that add dQ hold its chunks on top of dK and dV:
  // with dropout's keep masks a step of 32 queries (64 at d = 64) spills
  // 16-52 B; half of it does not.
  if (addsQueryGradient(spec.kind) && spec.dropout && t.qkWgmma)
    t.m = std::max<int64_t>(16, t.m / 2);
  // So do the dK/dV kernels' 64 queries a step at d = 128 with them (64 B;
  // adding dQ 180 B) or with a slope per score (softcap's tanh: 108 B, adding
  // dQ 76 B; a score_mod may have one).
  if ((spec.kind == KernelKind::BackwardDKV || spec.kind == KernelKind::BackwardDKVQ) &&
      t.qkWgmma &&
      (spec.dropout || spec.softcap || !spec.scoreMod.empty()) &&
      std::max(spec.headDimQK, spec.headDimV) > 64)
    t.m = std::min<int64_t>(t.m, 32);
  // The warp-specialized dQ kernel's 128 keys a step spill with softcap's
  // slopes (12-260 B) or a mask_mod's block test (48 B at d = 128).
  if (spec.kind == KernelKind::BackwardDQ && t.warpSpecialized &&
      (spec.softcap || !spec.scoreMod.empty() || !spec.maskMod.empty()))
    t.n = std::min<int64_t>(t.n, 64);
  if (spec.backward() || !t.warpSpecialized)
    return;
  if (!spec.maskMod.empty())
    t.n = std::min<int64_t>(t.n, 128);
  if (spec.dropout) {
    t.n = std::min<int64_t>(t.n, std::max(spec.headDimQK, spec.headDimV) > 128 ? 64 : 128);
    t.persistent = false;
  }
}

std::vector<KernelKind> backwardKernels(int64_t headDimQK, int64_t headDimV,
                                        bool atomicQueryGradient) {
  const bool split = std::max(headDimQK, headDimV) > 128;
  if (atomicQueryGradient)
    return split ? std::vector<KernelKind>{KernelKind::BackwardDelta, KernelKind::BackwardDKQ,
                                           KernelKind::BackwardDV, KernelKind::BackwardConvertDQ}
                 : std::vector<KernelKind>{KernelKind::BackwardDelta, KernelKind::BackwardDKVQ,
                                           KernelKind::BackwardConvertDQ};
  if (!split)
    return {KernelKind::BackwardDQ, KernelKind::BackwardDKV};
  return {KernelKind::BackwardDQ, KernelKind::BackwardDK, KernelKind::BackwardDV};
}

GradQueryShare gradQueryShare(int64_t headDimQK, int64_t warps, int64_t m, bool dropout) {
  const int64_t warpgroups = warps / 4, chunks = (headDimQK + 63) / 64;
  GradQueryShare share = chunks % warpgroups == 0
                             ? GradQueryShare{chunks / warpgroups, m, true, 0}
                             : GradQueryShare{chunks, m / warpgroups, false, 0};
  share.atOnce = headDimQK <= 128 && !dropout && share.chunks * share.columns / 2 <= 32
                     ? share.chunks
                     : std::min<int64_t>(share.chunks, 1);
  return share;
}

TileConfig defaultBackwardTile(KernelKind kind, int64_t headDimQK, int64_t headDimV,
                               int64_t maxSharedMemory, const std::string &arch) {
  int64_t d = std::max(headDimQK, headDimV);
  TileConfig t;
  if (isAuxiliaryKind(kind)) {
    AttentionSpec aux;
    aux.kind = kind;
    normalizeSpecForKind(aux);
    return aux.tile;
  }
  t.stages = 2;
  const bool hopper = arch == "sm_90a" && headDimQK % 16 == 0 && headDimV % 16 == 0 && d >= 64;
  if (hopper) {
    // Hopper: every product on wgmma; with cp.async rings one warpgroup (64
    // owned rows) a block: in the H100 sweep (bench/results/
    // h100-backward-wgmma.md) one warpgroup beat two by 1.01-1.15x per kernel
    // (two or three blocks share an SM and overlap each other's waits). The
    // step (streamed rows) is as wide as the registers allow without
    // spilling (ptxas -v): the dQ kernel holds dQ, S and dP; the key-block
    // kernels dK and/or dV, Sᵀ, dPᵀ, and LSE and Δ of the step's queries.
    t.qkWgmma = t.pvWgmma = true;
    t.warps = 4;
    if (kind == KernelKind::BackwardDQ) {
      t.m = 64;
      t.n = d <= 128 ? 64 : 32;
      t.stages = d > 64 && d <= 128 ? 1 : 2;
    } else {
      t.n = 64;
      t.m = d <= 64 || kind == KernelKind::BackwardDV ? 64 : 32;
      if (kind == KernelKind::BackwardDKQ && d > 192)
        t.m = 16; // dK (128 registers at d = 256) and a dQ chunk: 32 query rows spill
      t.stages = d <= 64 ? 2 : 3;
    }
  } else {
    // Four warps on mma.sync. The dQ kernel holds S, dP and dQ per warp: two
    // 16-row tiles a warp up to d = 128 (with 32 keys a step above d = 64),
    // one above. The key-block kernels hold dK and/or dV of 16 key rows a warp
    // plus S and dP of 32 query rows a step (no spills at d = 128 with both;
    // above, they split, see backwardKernels). The best of the H200 sweep at
    // s = 4096 (bench/results/h200-backward.md): 1.02-1.14x the earlier
    // 64-row tiles.
    t.warps = 4;
    if (kind == KernelKind::BackwardDQ) {
      t.m = d <= 128 ? 128 : 64;
      t.n = d <= 64 ? 64 : 32;
    } else {
      t.n = 64;
      t.m = 32;
    }
  }
  auto fits = [&](const TileConfig &c) {
    return maxSharedMemory <= 0 ||
           backwardLayout(kind, headDimQK, headDimV, c).totalBytes <= maxSharedMemory;
  };
  // Up to d = 128 on Hopper both kernels take a TMA producer warpgroup
  // (bench/results/h200-backward-warp-specialized.md, H200 fwd+bwd):
  //   dQ: 128 keys a step, one consumer warpgroup at d = 64 (two blocks an
  //     SM), two above (one): +9-11% at d = 128 from s = 4096, +4-5% at
  //     d = 64 s = 16384, -2-4% at s <= 1024 there;
  //   key blocks: one consumer warpgroup (two blocks an SM), two stages, 64
  //     queries a step for dK/dV (LSE and Δ wait in shared memory, not in
  //     registers): 1.16-1.33x the cp.async tile at d = 128, 1.16-1.28x at
  //     d = 64.
  if (hopper && d <= 128) {
    TileConfig ws = t;
    ws.warpSpecialized = true;
    ws.stages = 2;
    if (kind == KernelKind::BackwardDQ) {
      ws.n = 128;
      if (d > 64) {
        ws.m = 128;
        ws.warps = 8;
      }
    } else if (kind == KernelKind::BackwardDKV) {
      ws.m = 64;
    } else if (kind == KernelKind::BackwardDKVQ && d > 64) {
      // The atomic form: two consumer warpgroups share each step's dQ
      // product over 128 keys (one bulk reduction a step for both) with 64
      // queries a step: 1.06-1.15x one warpgroup's 32 (H200, d = 128,
      // bench/results/h200-backward-atomic-whole-step.md).
      ws.m = 64;
      ws.n = 128;
      ws.warps = 8;
    }
    // (Persistent key-block kernels, whose blocks walk many key blocks,
    // measured 0.96-1.05x these in the H200 runs where ptxas did not
    // serialize their wgmma, no cell reliably faster: bench/results/
    // h200-backward-persistent.md. Not the default; flash-tune searches them.)
    if (fits(ws))
      return ws;
  }
  while (!fits(t) && t.stages > 1)
    --t.stages;
  return t;
}

TileConfig defaultTile(int64_t headDimQK, int64_t headDimV, int64_t maxSharedMemory,
                       const std::string &arch) {
  int64_t d = std::max(headDimQK, headDimV);
  // The best configurations of the H200 tuning sweep (bench/results/
  // h200-cache-and-tuning.md): 128 query rows a block throughout; 128 keys a
  // step for small heads; 8 warps above d = 128, where 4 warps would need more
  // than 200 accumulator registers each. Shrink n, then stages, then m until
  // the tiles fit the target's shared memory.
  TileConfig t;
  t.m = 128;
  t.warps = d <= 128 ? 4 : 8;
  t.n = d <= 64 ? 128 : 64;
  t.stages = 2;
  auto bytes = [&] { return forwardBytes(headDimQK, headDimV, t, maxSharedMemory); };
  // Hopper: the warp-specialized kernel (TMA producer, two wgmma consumer
  // warpgroups) with a two-stage ring and the largest key block that fits:
  // 176 (the H200 sweeps: +6% over 128 at d = 128, causal or not; at d = 64
  // +2-7% from 2048 keys, bench/results/h200-tune-d64.md), else 128, 96, 80
  // or 64 (bench/results/h200-warp-specialized.md); shorter problems narrow
  // it (fitTileToProblemSize). O
  // leaves by TMA stores where it can (H200, d = 128: +3-8% at s <= 4096,
  // even above; bench/results/h200-tma-store.md).
  if (arch == "sm_90a" && headDimQK % 16 == 0 && d >= 64) {
    t.warps = 8;
    t.stages = 2;
    t.qkWgmma = t.pvWgmma = t.warpSpecialized = true;
    t.tmaStore = outputFitsQueryTile(headDimQK, headDimV);
    for (int64_t n : {176, 128, 96, 80, 64}) {
      t.n = n;
      if (maxSharedMemory <= 0 || bytes() <= maxSharedMemory)
        return t;
    }
    // Not even 64 keys fit: the all-warps wgmma tile, shrunk below.
    t.warpSpecialized = t.tmaStore = false;
  }
  while (maxSharedMemory > 0 && bytes() > maxSharedMemory && t.n > 16)
    t.n /= 2;
  while (maxSharedMemory > 0 && bytes() > maxSharedMemory && t.stages > 1)
    --t.stages;
  while (maxSharedMemory > 0 && bytes() > maxSharedMemory && t.m > 16) {
    t.m /= 2;
    t.warps = std::min<int64_t>(t.warps, t.m / 16);
    if ((t.qkWgmma || t.pvWgmma) && (t.warps % 4 != 0 || t.m != 16 * t.warps))
      t.qkWgmma = t.pvWgmma = t.warpSpecialized = t.persistent = false; // no whole warpgroups
  }
  return t;
}

} // namespace flashjit
