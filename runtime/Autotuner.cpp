//===- Autotuner.cpp ------------------------------------------------------===//
#include "compiler/KernelABI.h"
#include "compiler/ModifierExpression.h"
#include "runtime/Autotuner.h"

#include "runtime/Bundle.h"

#include "dialect/SharedMemoryLayout.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <unistd.h>

namespace flashjit {

std::string TuningProblem::describe() const {
  std::ostringstream os;
  if (kind != KernelKind::Forward)
    os << kernelKindName(kind) << " ";
  os << dtypeName(dtype) << " d" << headDimQK;
  if (headDimV != headDimQK)
    os << "/" << headDimV;
  os << (causal ? " causal" : "") << " b" << batch << " h" << headsQ;
  if (headsK != headsQ)
    os << "/" << headsK;
  os << " sq" << seqQ << " sk" << seqK;
  if (windowLeft >= 0 || windowRight >= 0)
    os << " window(" << windowLeft << "," << windowRight << ")";
  os << (softcap ? " softcap" : "") << (alibi ? " alibi" : "");
  if (!scoreMod.empty())
    os << " score_mod " << scoreMod;
  if (!maskMod.empty())
    os << " mask_mod " << maskMod;
  if (dropout)
    os << " dropout";
  return os.str();
}

void TuningProblem::setWindow(int64_t left, int64_t right) {
  left = left < 0 ? -1 : left;
  right = causal ? 0 : (right < 0 ? -1 : right);
  windowLeft = windowRight = -1;
  if (left < 0 && right == 0) {
    causal = true;
  } else if (left >= 0 || right >= 0) {
    causal = false;
    windowLeft = left;
    windowRight = right;
  }
}

TuningProblem TuningProblem::withoutModifiers() const {
  TuningProblem p = *this;
  p.causal = causal || windowLeft >= 0 || windowRight >= 0;
  p.windowLeft = p.windowRight = -1;
  p.softcap = p.alibi = false;
  p.scoreMod.clear();
  p.maskMod.clear();
  p.dropout = false;
  return p;
}

// (query, key) pairs the mask keeps: bottom-right aligned, one interval a row.
static double keptPairs(const TuningProblem &p) {
  if (!p.causal && p.windowLeft < 0 && p.windowRight < 0)
    return double(p.seqQ) * double(p.seqK);
  const int64_t right = p.causal ? 0 : p.windowRight;
  double pairs = 0;
  for (int64_t i = 0; i < p.seqQ; ++i) {
    const int64_t diagonal = i + p.seqK - p.seqQ;
    const int64_t lo = p.windowLeft >= 0 ? std::max<int64_t>(0, diagonal - p.windowLeft) : 0;
    const int64_t hi = right >= 0 ? std::min(p.seqK - 1, diagonal + right) : p.seqK - 1;
    pairs += double(std::max<int64_t>(0, hi - lo + 1));
  }
  return pairs;
}

double TuningProblem::flops() const {
  double f = 2.0 * double(batch) * double(headsQ) * keptPairs(*this) * double(headDimQK + headDimV);
  return kind != KernelKind::Forward ? f * 2.5 : f;
}

static int64_t bucket(int64_t n) {
  int64_t b = 128;
  while (b < n)
    b *= 2;
  return b;
}

std::string tuningKey(const TuningProblem &p) {
  std::ostringstream os;
  if (p.kind != KernelKind::Forward)
    os << kernelKindName(p.kind) << " ";
  os << dtypeName(p.dtype) << " d" << p.headDimQK << " v" << p.headDimV
     << (p.causal ? " causal" : " none") << " lse" << (p.withLse ? 1 : 0) << " sq<=" << bucket(p.seqQ)
     << " sk<=" << bucket(p.seqK);
  auto side = [](int64_t w) { return w < 0 ? std::string("inf") : std::to_string(bucket(w)); };
  if (p.windowLeft >= 0 || p.windowRight >= 0)
    os << " window<=" << side(p.windowLeft) << "," << side(p.windowRight);
  os << (p.softcap ? " softcap" : "") << (p.alibi ? " alibi" : "");
  if (!p.scoreMod.empty())
    os << " smod" << modifierHash(p.scoreMod);
  if (!p.maskMod.empty())
    os << " mmod" << modifierHash(p.maskMod);
  if (p.dropout)
    os << " dropout";
  return os.str();
}

// The backward kernels' tiles: the warps own m (dQ) or n (key-block kernels)
// rows, the other dimension streams. Registers: the gradient accumulators of
// the owned rows plus S and dP of a step (and LSE/Δ of the streamed columns).
// On sm_90a also the wgmma tiles (one 16-row tile a warp, whole warpgroups).
static std::vector<TileConfig> backwardConfigurationSpace(const TuningProblem &p,
                                                          const DeviceLimits &limits) {
  std::vector<TileConfig> space;
  const bool queryBlocks = p.kind == KernelKind::BackwardDQ;
  const bool addsDQ = addsQueryGradient(p.kind); // wgmma only
  const bool dk = p.kind == KernelKind::BackwardDKV || p.kind == KernelKind::BackwardDK || addsDQ;
  const bool dv = p.kind == KernelKind::BackwardDKV || p.kind == KernelKind::BackwardDV ||
                  p.kind == KernelKind::BackwardDKVQ;
  if (isAuxiliaryKind(p.kind))
    return {}; // fixed tile: nothing to tune
  const bool wgmmaTarget = limits.arch == "sm_90a" && p.headDimQK % 16 == 0 &&
                           p.headDimV % 16 == 0;
  for (bool wgmma : {false, true})
    for (int64_t m : {16, 32, 64, 128})
      for (int64_t n : {32, 64, 128})
        for (int64_t warps : {2, 4, 8})
          for (int64_t stages : {1, 2, 3}) {
            const int64_t owned = queryBlocks ? m : n, streamed = queryBlocks ? n : m;
            if (owned % (16 * warps) != 0 || owned > 128)
              continue;
            if (wgmma && (!wgmmaTarget || warps % 4 != 0 || owned != 16 * warps))
              continue;
            if (addsDQ && !wgmma)
              continue;
            if (limits.maxThreadsPerBlock && warps * 32 > limits.maxThreadsPerBlock)
              continue;
            auto smem = flash::SharedMemoryLayout::computeBackward(
                p.headDimQK, p.headDimV, 2, owned, streamed, stages, wgmma, addsDQ);
            if (limits.maxSharedMemoryPerBlock && smem.totalBytes > limits.maxSharedMemoryPerBlock)
              continue;
            const int64_t tiles = owned / (16 * warps);
            int64_t accumulators = 2 * tiles * (streamed / 8) * 4;
            // The key-block kernels' LSE (and for dK, Δ) of this thread's
            // streamed columns, in registers unless warp-specialized (there
            // they wait in shared memory).
            int64_t stats = 0;
            if (queryBlocks) {
              accumulators += tiles * (p.headDimQK / 8) * 4;
            } else {
              accumulators += (dk ? tiles * (p.headDimQK / 8) * 4 : 0) +
                              (dv ? tiles * (p.headDimV / 8) * 4 : 0);
              stats = (dk ? streamed / 4 : 0) + streamed / 4;
            }
            if (addsDQ) { // this warpgroup's share of dQᵀ in flight (gradQueryShare)
              const GradQueryShare share = gradQueryShare(p.headDimQK, warps, streamed, p.dropout);
              if (!share.byChunks && share.columns % 8 != 0)
                continue; // the verifier: no wgmma that narrow
              accumulators += share.atOnce * share.columns / 2;
            }
            // ptxas: 224 spills (d128 key blocks, 64 queries a step, LSE and Δ held)
            const bool fitsHeld = accumulators + stats <= 212, fitsStaged = accumulators <= 212;
            // Warp-specialized consumers take more (setmaxnreg), less ~16 for
            // addresses: the atomic d 128 default m64n128w8 (224) assembles
            // without spills.
            const bool fitsConsumer =
                accumulators <=
                abi::warpSpecializedRegisters(warps, std::max(p.headDimQK, p.headDimV)).consumer -
                    16;
            if (fitsHeld)
              space.push_back({m, n, warps, stages, wgmma, wgmma});
            // Also with a TMA producer warpgroup.
            if (wgmma && stages >= 2 && (fitsStaged || fitsConsumer) &&
                (!limits.maxThreadsPerBlock || (warps + 4) * 32 <= limits.maxThreadsPerBlock)) {
              TileConfig ws{m, n, warps, stages, true, true, true};
              if (!limits.maxSharedMemoryPerBlock ||
                  flash::SharedMemoryLayout::computeBackward(p.headDimQK, p.headDimV, 2, owned,
                                                             streamed, stages, true, addsDQ, true,
                                                             /*stagedRowStats=*/!queryBlocks)
                          .totalBytes <= limits.maxSharedMemoryPerBlock) {
                space.push_back(ws);
                // And with blocks walking many key blocks (one consumer
                // warpgroup: 8 registers fewer, abi::warpSpecializedRegisters).
                if (!queryBlocks && flash::SharedMemoryLayout::computeBackward(
                                        p.headDimQK, p.headDimV, 2, owned, streamed, stages,
                                        true, addsDQ, true, true, /*persistent=*/true)
                                            .totalBytes <= limits.maxSharedMemoryPerBlock) {
                  ws.persistent = true;
                  space.push_back(ws);
                }
              }
            }
          }
  return space;
}

std::vector<TileConfig> configurationSpace(const TuningProblem &p, const DeviceLimits &limits) {
  if (p.kind != KernelKind::Forward)
    return backwardConfigurationSpace(p, limits);
  std::vector<TileConfig> space;
  for (int64_t m : {64, 128})
    for (int64_t n : {32, 64, 128})
      for (int64_t warps : {4, 8})
        for (int64_t stages : {1, 2, 3})
          for (bool qkWgmma : {false, true})
          for (bool pvWgmma : {false, true}) {
          if (pvWgmma && !qkWgmma) // searched together with the Q Kᵀ switch
            continue;
          if (m % (16 * warps) != 0)
            continue;
          if (qkWgmma && (limits.arch != "sm_90a" || warps % 4 != 0 || m != 16 * warps ||
                          p.headDimQK % 16 != 0))
            continue;
          int64_t threads = warps * 32;
          if (limits.maxThreadsPerBlock && threads > limits.maxThreadsPerBlock)
            continue;
          auto smem = flash::SharedMemoryLayout::compute(p.headDimQK, p.headDimV, 2, m, n, stages,
                                                         qkWgmma, pvWgmma);
          if (limits.maxSharedMemoryPerBlock && smem.totalBytes > limits.maxSharedMemoryPerBlock)
            continue;
          // Accumulators alone (O and S, f32) must leave room in the 255
          // registers a thread can have; beyond ~200 the kernel spills badly.
          int64_t mTiles = m / (16 * warps);
          int64_t accumulators = mTiles * (p.headDimV / 8) * 4 + mTiles * (n / 8) * 4;
          if (accumulators > 200)
            continue;
          // Plus addresses, fragments and softmax state: roughly 48 more.
          int64_t registers = std::min<int64_t>(255, accumulators + 48);
          if (limits.maxRegistersPerBlock && threads * registers > limits.maxRegistersPerBlock)
            continue;
          space.push_back({m, n, warps, stages, qkWgmma, pvWgmma});
          }
  // Warp-specialized (TMA producer + two wgmma consumer warpgroups, or one
  // and two blocks an SM, or three, up to d = 128): the consumers hold O
  // (d_v / 2), S (n / 2) and P (n / 4) registers each, out of 240 (232 with
  // one, 160 with three: 128 of them leave room for the rest, ptxas -v);
  // key-block sizes between the powers of two fit more stages.
  const bool upTo128 = std::max(p.headDimQK, p.headDimV) <= 128;
  if (limits.arch == "sm_90a" && p.headDimQK % 16 == 0)
    for (int64_t consumers : {2, 1, 3})
      for (int64_t n : {64, 80, 96, 128, 176, 192})
        for (int64_t stages : {2, 3, 4}) {
          // O, S and P registers a consumer thread holds (d 128 n 192: 0 B
          // spills at 240).
          const int64_t accumulators = p.headDimV / 2 + n / 2 + n / 4;
          if ((consumers != 2 && !upTo128) || accumulators > (consumers == 3 ? 128 : 208))
            continue;
          TileConfig t{64 * consumers, n, 4 * consumers, stages, true, true, true};
          // O by TMA stores where it fits where Q was (ahead of per-thread
          // stores in 11 of 12 H200 cells, bench/results/h200-tma-store.md),
          // unless GQA packing would run instead (the run then packs and
          // drops the TMA store; the timing should be of that kernel).
          t.tmaStore = outputFitsQueryTile(p.headDimQK, p.headDimV) &&
                       !abi::packingSavesTiles(t.m, p.seqQ, p.headsQ, p.headsK);
          if (limits.maxThreadsPerBlock && t.threads() > limits.maxThreadsPerBlock)
            continue;
          auto smem = flash::SharedMemoryLayout::compute(p.headDimQK, p.headDimV, 2, t.m, n, stages,
                                                         true, true, true);
          if (limits.maxSharedMemoryPerBlock && smem.totalBytes > limits.maxSharedMemoryPerBlock)
            continue;
          space.push_back(t);
          t.persistent = true; // with the TMA store and without
          space.push_back(t);
          if (t.tmaStore) {
            t.tmaStore = false;
            space.push_back(t);
          }
        }
  return space;
}

Status tune(const std::vector<TileConfig> &space, ConfigTimer &timer, TuningResult &result,
            const TuningProgress &progress) {
  result = TuningResult{};
  result.bestMs = std::numeric_limits<double>::infinity();
  for (const TileConfig &t : space) {
    TimedConfig timed{t, 0, ""};
    timed.ms = timer.timeMs(t, timed.note);
    if (!(timed.ms > 0)) // NaN, zero or negative: not a real measurement
      timed.ms = std::numeric_limits<double>::infinity();
    if (timed.ms < result.bestMs) {
      result.bestMs = timed.ms;
      result.best = t;
    }
    result.all.push_back(timed);
    if (progress)
      progress(result.all.size(), space.size(), timed);
  }
  if (!std::isfinite(result.bestMs)) {
    std::string why = space.empty() ? "the configuration space is empty" : "no configuration ran";
    if (!result.all.empty() && !result.all.front().note.empty())
      why += " (first failure: " + result.all.front().note + ")";
    return Status::error("autotuning failed: " + why);
  }
  return Status::ok();
}

static json::Value identityJson(const DeviceIdentity &id) {
  json::Value v = json::Value::object();
  v["gpu"] = id.gpuName;
  v["arch"] = id.arch;
  v["driver"] = id.driverVersion;
  v["flashjit"] = id.flashjitVersion;
  return v;
}

Status TuningDatabase::merge(const json::Value &doc, const std::string &origin,
                             std::vector<std::string> &notes) {
  const json::Value *id = doc.get("identity");
  const json::Value *entries = doc.get("entries");
  if (!id || !entries || !entries->isObject())
    return Status::error(origin + " is not a flashjit tuning database");
  auto field = [&](const char *name) { return id->stringOr(name); };
  if (field("gpu") != identity_.gpuName || field("arch") != identity_.arch ||
      field("flashjit") != identity_.flashjitVersion) {
    notes.push_back(origin + " was tuned on " + field("gpu") + " (" + field("arch") +
                    ") with flashjit " + field("flashjit") + "; not trusting its " +
                    std::to_string(entries->fields().size()) + " entries on " +
                    identity_.gpuName + " with flashjit " + identity_.flashjitVersion);
    return Status::ok();
  }
  if (field("driver") != identity_.driverVersion)
    notes.push_back(origin + " was tuned with driver " + field("driver") + ", this is " +
                    identity_.driverVersion + " (entries kept)");
  for (const auto &[key, e] : entries->fields()) {
    TileConfig t;
    const json::Value *ms = e.get("ms");
    if (!tileFrom(e.get("tile"), t) || !ms || !ms->isNumber()) {
      notes.push_back(origin + ": skipping malformed entry '" + key + "'");
      continue;
    }
    entries_[key] = Entry{t, ms->number()};
  }
  return Status::ok();
}

static Status readJson(const std::string &path, json::Value &doc, bool &exists) {
  std::ifstream in(path);
  exists = bool(in);
  if (!exists)
    return Status::ok();
  std::stringstream ss;
  ss << in.rdbuf();
  std::string error;
  if (!json::parse(ss.str(), doc, error))
    return Status::error("tuning database " + path + " is not valid JSON: " + error);
  return Status::ok();
}

Status TuningDatabase::load(const std::string &path, std::vector<std::string> &notes) {
  json::Value doc;
  bool exists = false;
  if (Status s = readJson(path, doc, exists); !s || !exists)
    return s;
  return merge(doc, path, notes);
}

Status TuningDatabase::import(const std::string &path, std::vector<std::string> &notes) {
  json::Value doc;
  bool exists = false;
  if (Status s = readJson(path, doc, exists); !s)
    return s;
  if (!exists)
    return Status::error("cannot read tuning database " + path);
  return merge(doc, path, notes);
}

Status TuningDatabase::save(const std::string &path) const {
  json::Value doc = json::Value::object();
  doc["format"] = 1;
  doc["identity"] = identityJson(identity_);
  json::Value &entries = doc["entries"] = json::Value::object();
  for (const auto &[key, e] : entries_) {
    json::Value v = json::Value::object();
    v["tile"] = tileJson(e.tile);
    v["ms"] = e.ms;
    entries[key] = v;
  }
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out)
      return Status::error("cannot write tuning database " + tmp);
    out << doc.dump() << "\n";
    if (!out)
      return Status::error("cannot write tuning database " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return Status::error("cannot replace tuning database " + path);
  return Status::ok();
}

std::optional<TileConfig> TuningDatabase::lookup(const std::string &key) const {
  auto it = entries_.find(key);
  if (it == entries_.end())
    return std::nullopt;
  return it->second.tile;
}

void TuningDatabase::record(const std::string &key, const TileConfig &tile, double ms) {
  entries_[key] = Entry{tile, ms};
}

} // namespace flashjit
