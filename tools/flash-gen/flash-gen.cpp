//===- flash-gen.cpp - offline generation of attention kernel variants ----===//
//
// One variant, any stage:
//   flash-gen --arch sm_90a --dtype bf16 --head-dim 128 [--causal] [--lse]
//             [--window] [--softcap] [--alibi] [--varlen] [--dropout] [--block-mask]
//             [--pack-gqa]
//             [--score-mod EXPR] [--mask-mod EXPR]
//             [--kind fwd|bwd_dq|bwd_dkv|bwd_dk|bwd_dv]
//             [--tile m,n,warps,stages] --emit ptx|mlir|kernel-mlir|llvm -o FILE
// A bundle for deployments that must not compile (variants x architectures):
//   flash-gen --bundle DIR --arch sm_80,sm_90a --dtype bf16,f16 --head-dim 64,128,256
//             [--causal no|yes|both] [--lse no|yes|both] [--kind fwd,bwd] [--tile m,n,w,s;...]
//             [--variants FILE.json] [--tuning tuned.json] [--emit-source SRCDIR]
//             [--no-cubin] [-j N]
// A variants file is a JSON array of {"arch", "dtype", "head_dim", "head_dim_v",
// "causal", "window", "softcap", "alibi", "varlen", "dropout", "block_mask", "pack_gqa",
// "score_mod", "mask_mod", "lse",
// "kind",
// "tile": [m, n, warps, stages]} (all but arch and head_dim optional: fwd, the default tile).
// --window, --softcap and --alibi compile the score modifiers in (their values
// are kernel parameters given at run time), --varlen makes packed
// variable-length kernels (cu_seqlens), --dropout drops probabilities (p,
// seed and offset at run time), --block-mask walks a block mask's lists
// given at run time (FlexAttention's BlockMask), --pack-gqa packs the query
// heads of a GQA group into the forward's tile rows, --score-mod / --mask-mod compile user
// modifier expressions in (compiler/ModifierExpression.h); they apply to every variant.
//
#include "compiler/Compiler.h"
#include "compiler/ModifierExpression.h"
#include "runtime/Ptxas.h"
#include "tools/flash-gen/BundleWriter.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>
#include <unistd.h>

#include "llvm/Support/FormatVariadic.h"

namespace cl = llvm::cl;
using namespace flashjit;

static cl::opt<std::string> arch("arch", cl::desc("target(s): sm_80, sm_90a, ..."),
                                 cl::init("sm_80"));
static cl::opt<std::string> dtype("dtype", cl::desc("element type(s): bf16, f16"), cl::init("bf16"));
static cl::opt<std::string> headDim("head-dim", cl::desc("head dim(s) of Q/K (and V)"),
                                    cl::init("128"));
static cl::opt<int> headDimV("head-dim-v", cl::desc("head dim of V/O"), cl::init(0));
static cl::opt<std::string> causal("causal", cl::ValueOptional,
                                   cl::desc("bottom-right causal mask: yes (flag alone), no, both"),
                                   cl::init("no"));
static cl::opt<bool> window("window",
                           cl::desc("sliding-window mask (its bounds are run-time parameters); "
                                    "replaces --causal"));
static cl::opt<bool> softcap("softcap", cl::desc("softcap the scores (tanh; cap given at run time)"));
static cl::opt<bool> alibi("alibi", cl::desc("ALiBi bias (slopes given at run time)"));
static cl::opt<bool> varlen("varlen", cl::desc("packed variable-length sequences (cu_seqlens "
                                               "given at run time)"));
static cl::opt<bool> dropout("dropout", cl::desc("dropout on the probabilities (p, seed and "
                                                 "offset given at run time)"));
static cl::opt<bool> blockMask("block-mask", cl::desc("visit only the key blocks a block mask "
                                                     "lists (lists given at run time)"));
static cl::opt<bool> packGQA("pack-gqa", cl::desc("forward: the query heads of a GQA group "
                                                  "share the tile's rows (decoding)"));
static cl::opt<std::string> lse("lse", cl::ValueOptional,
                                cl::desc("also write the log-sum-exp: yes (flag alone), no, both"),
                                cl::init("no"));
static cl::opt<std::string> kind("kind",
                                 cl::desc("kernel: fwd (default), bwd_dq, bwd_dkv, bwd_dk, bwd_dv; "
                                          "for --bundle also 'bwd' (the kernels of a backward "
                                          "pass) and lists"),
                                 cl::init("fwd"));
static cl::opt<std::string> tile("tile",
                                 cl::desc("m,n,warps,stages[,qk_wgmma[,pv_wgmma[,warp_specialized[,persistent[,tma_store]]]]][;...] "
                                          "(default: per head dim)"),
                                 cl::init(""));
static cl::opt<std::string> scoreMod("score-mod",
                                     cl::desc("user score modifier, a C expression of score, b, "
                                              "h, q_idx, kv_idx (e.g. \"score - abs(q_idx - "
                                              "kv_idx) * 0.01\")"),
                                     cl::init(""));
static cl::opt<std::string> maskMod("mask-mod",
                                    cl::desc("user mask modifier, a C condition of b, h, q_idx, "
                                             "kv_idx (e.g. \"q_idx / 64 == kv_idx / 64\")"),
                                    cl::init(""));

// `text` as a spec's canonical modifier; false (with a message) when it does not parse.
static bool userModifier(const std::string &text, ModifierKind kind, std::string &canonical) {
  std::string error;
  if (canonicalizeModifier(text, kind, canonical, error))
    return true;
  llvm::errs() << "flash-gen: " << error << "\n";
  return false;
}

// The mask and score modifiers of the command line.
static bool setMaskAndModifiers(AttentionSpec &spec, bool causalMask) {
  spec.mask = window ? Mask::Window : causalMask ? Mask::Causal : Mask::None;
  spec.softcap = softcap;
  spec.alibi = alibi;
  spec.varlen = varlen;
  spec.dropout = dropout;
  spec.blockMask = blockMask;
  spec.packGQA = packGQA;
  return userModifier(scoreMod, ModifierKind::Score, spec.scoreMod) &&
         userModifier(maskMod, ModifierKind::Mask, spec.maskMod);
}

static cl::opt<std::string> bundleDir("bundle", cl::desc("write a bundle to this directory"),
                                      cl::init(""));
static cl::opt<std::string> variantsFile("variants", cl::desc("JSON list of variants for --bundle"),
                                         cl::init(""));
static cl::opt<std::string> tuningFile("tuning",
                                       cl::desc("ship this tuning database (flash-tune --export)"),
                                       cl::init(""));
static cl::opt<std::string> emitSource("emit-source",
                                       cl::desc("also write C source embedding the bundle here"),
                                       cl::init(""));
static cl::opt<std::string> sourceName("source-name", cl::desc("symbol/file name for --emit-source"),
                                       cl::init("flashjit_kernels"));
static cl::opt<bool> noCubin("no-cubin", cl::desc("bundle PTX only (no ptxas)"));
static cl::opt<std::string> ptxasPath("ptxas", cl::desc("ptxas for cubins"), cl::init(""));
static cl::opt<unsigned> jobs("j", cl::desc("variants compiled at once (default: all cores)"),
                              cl::init(0));
static cl::opt<long> maxSmem("max-smem", cl::desc("shared memory limit in bytes (default: the arch's)"),
                             cl::init(0));
static cl::opt<std::string> emit("emit", cl::desc("mlir | kernel-mlir | llvm | ptx"), cl::init("ptx"));
static cl::opt<std::string> output("o", cl::desc("output file"), cl::init("-"));
static cl::opt<std::string> dumpDir("dump-dir", cl::desc("write every stage here"), cl::init(""));
static cl::opt<bool> timing("time", cl::desc("print the compile time to stderr"));

static std::vector<std::string> split(const std::string &s, char sep = ',') {
  std::vector<std::string> out;
  std::string item;
  std::stringstream ss(s);
  while (std::getline(ss, item, sep))
    if (!item.empty())
      out.push_back(item);
  return out;
}

// "yes"/"no"/"both" (and the flag alone, "") to the values to generate.
static bool choices(const std::string &v, const char *name, std::vector<bool> &out) {
  if (v.empty() || v == "yes" || v == "true" || v == "1")
    out = {true};
  else if (v == "no" || v == "false" || v == "0")
    out = {false};
  else if (v == "both")
    out = {false, true};
  else {
    llvm::errs() << "flash-gen: --" << name << " takes yes, no or both, not '" << v << "'\n";
    return false;
  }
  return true;
}

// The default tile of a spec's kind, head dims, target and modifiers (the
// runtime's choice when nothing is tuned).
static TileConfig defaultTileOf(const AttentionSpec &spec) {
  if (spec.backward()) {
    TileConfig t = defaultBackwardTile(spec.kind, spec.headDimQK, spec.headDimV,
                                       spec.maxSharedMemory, spec.arch);
    narrowTileForRegisters(t, spec);
    return t;
  }
  TileConfig t = defaultTile(spec.headDimQK, spec.headDimV, spec.maxSharedMemory, spec.arch);
  narrowTileForRegisters(t, spec);
  t.tmaStore = t.tmaStore && tmaStoreAvailable(spec); // (as the runtime clears it)
  return t;
}

// --kind: "bwd" names every kernel of a backward pass at these head dims:
// the deterministic ones, and on sm_90a also the atomic-dQ ones.
static bool parseKinds(const std::string &text, int64_t dQK, int64_t dV, const std::string &arch,
                       std::vector<KernelKind> &out) {
  for (const std::string &k : split(text)) {
    if (k == "bwd") {
      for (bool atomic : {false, true})
        if (!atomic || arch == "sm_90a")
          for (KernelKind b : backwardKernels(dQK, dV, atomic))
            if (std::find(out.begin(), out.end(), b) == out.end())
              out.push_back(b);
    } else if (auto parsed = parseKernelKind(k)) {
      out.push_back(*parsed);
    } else {
      llvm::errs() << "flash-gen: unknown --kind '" << k << "'\n";
      return false;
    }
  }
  return true;
}

// m,n,warps,stages[,qk_wgmma[,pv_wgmma[,warp_specialized[,persistent[,tma_store]]]]] (switches 0 or 1)
static bool parseTile(const std::string &text, TileConfig &t) {
  long m, n, w, st, g = 0, pv = 0, ws = 0, ps = 0, ts = 0;
  int fields = sscanf(text.c_str(), "%ld,%ld,%ld,%ld,%ld,%ld,%ld,%ld,%ld", &m, &n, &w, &st, &g,
                      &pv, &ws, &ps, &ts);
  if (fields < 4)
    return false;
  t = {m, n, w, st, g != 0, pv != 0, ws != 0, ps != 0, ts != 0};
  return true;
}

static std::string ptxasForBundles() { return ptxasPath.empty() ? findPtxas() : ptxasPath; }

// Variants from a JSON file.
static bool readVariants(const std::string &path, std::vector<AttentionSpec> &out) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  json::Value doc;
  std::string error;
  if (!in || !json::parse(ss.str(), doc, error) || !doc.isArray()) {
    llvm::errs() << "flash-gen: " << path << " is not a JSON array of variants " << error << "\n";
    return false;
  }
  for (const json::Value &e : doc.items()) {
    auto str = [&](const char *k, const char *fallback) { return e.stringOr(k, fallback); };
    auto num = [&](const char *k, int64_t fallback) { return e.intOr(k, fallback); };
    auto flag = [&](const char *k) { return e.boolOr(k, false); };
    AttentionSpec spec;
    auto dt = parseDType(str("dtype", "bf16"));
    if (!dt) {
      llvm::errs() << "flash-gen: " << path << ": unknown dtype\n";
      return false;
    }
    spec.dtype = *dt;
    spec.arch = str("arch", "sm_80");
    spec.headDimQK = num("head_dim", 128);
    spec.headDimV = num("head_dim_v", spec.headDimQK);
    spec.mask = flag("window") ? Mask::Window : flag("causal") ? Mask::Causal : Mask::None;
    spec.softcap = flag("softcap");
    spec.alibi = flag("alibi");
    spec.varlen = flag("varlen");
    spec.dropout = flag("dropout");
    spec.blockMask = flag("block_mask");
    spec.packGQA = flag("pack_gqa");
    if (!userModifier(str("score_mod", ""), ModifierKind::Score, spec.scoreMod) ||
        !userModifier(str("mask_mod", ""), ModifierKind::Mask, spec.maskMod))
      return false;
    spec.withLse = flag("lse");
    auto k = parseKernelKind(str("kind", "fwd"));
    if (!k) {
      llvm::errs() << "flash-gen: " << path << ": unknown kind\n";
      return false;
    }
    spec.kind = *k;
    spec.maxSharedMemory = documentedMaxSharedMemory(spec.arch);
    spec.tile = defaultTileOf(spec);
    if (const json::Value *t = e.get("tile"); t && !tileFrom(t, spec.tile)) {
      llvm::errs() << "flash-gen: " << path << ": a tile is [m, n, warps, stages(, qk_wgmma"
                   << "(, pv_wgmma(, warp_specialized(, persistent(, tma_store)))))]\n";
      return false;
    }
    normalizeSpecForKind(spec);
    out.push_back(spec);
  }
  return true;
}

static int generateBundle() {
  BundleRequest request;
  std::vector<bool> masks, lses;
  if (!choices(causal, "causal", masks) || !choices(lse, "lse", lses))
    return 2;
  std::vector<TileConfig> tiles;
  for (const std::string &t : split(tile, ';')) {
    TileConfig parsed;
    if (!parseTile(t, parsed)) {
      llvm::errs() << "flash-gen: --tile wants m,n,warps,stages[;...]\n";
      return 2;
    }
    tiles.push_back(parsed);
  }
  if (!variantsFile.empty()) {
    if (!readVariants(variantsFile, request.specs))
      return 2;
  } else {
    for (const std::string &a : split(arch))
      for (const std::string &dt : split(dtype))
        for (const std::string &d : split(headDim))
          for (bool c : masks)
            for (bool l : lses) {
              std::vector<KernelKind> kinds;
              int64_t dQK = std::stoll(d), dV = headDimV ? int64_t(headDimV) : dQK;
              if (!parseKinds(kind, dQK, dV, a, kinds))
                return 2;
              for (KernelKind k : kinds) {
              if (k != KernelKind::Forward && l)
                continue; // the LSE switch is the forward's
              AttentionSpec spec;
              spec.kind = k;
              auto parsed = parseDType(dt);
              if (!parsed) {
                llvm::errs() << "flash-gen: unknown dtype '" << dt << "'\n";
                return 2;
              }
              spec.dtype = *parsed;
              spec.arch = a;
              spec.headDimQK = std::stoll(d);
              spec.headDimV = headDimV ? int64_t(headDimV) : spec.headDimQK;
              if (!setMaskAndModifiers(spec, c))
                return 2;
              spec.withLse = l;
              spec.maxSharedMemory = documentedMaxSharedMemory(a);
              if (spec.maxSharedMemory == 0) {
                llvm::errs() << "flash-gen: no documented shared-memory limit for " << a << "\n";
                return 2;
              }
              if (tiles.empty())
                tiles.push_back(defaultTileOf(spec));
              for (const TileConfig &t : tiles) {
                spec.tile = t;
                normalizeSpecForKind(spec); // one per dtype, head dims, packing, arch
                bool seen = false;
                for (const AttentionSpec &other : request.specs)
                  seen = seen || other.canonical() == spec.canonical();
                if (!seen)
                  request.specs.push_back(spec);
              }
              if (tile.empty())
                tiles.clear();
              }
            }
  }
  if (!tuningFile.empty())
    if (Status s = addTunedVariants(tuningFile, request); !s) {
      llvm::errs() << "flash-gen: " << s.message() << "\n";
      return 2;
    }
  request.ptxas = noCubin ? "" : ptxasForBundles();
  request.jobs = jobs ? unsigned(jobs) : std::max(1u, std::thread::hardware_concurrency());
  request.progress = [](size_t done, size_t total, const std::string &name, double ms,
                        const std::string &error) {
    llvm::errs() << "[" << done << "/" << total << "] " << name << " "
                 << (error.empty() ? llvm::formatv("{0:f1} ms", ms).str() : "FAILED") << "\n";
  };
  llvm::errs() << "flash-gen: " << request.specs.size() << " variants into " << bundleDir
               << " with " << request.jobs << " jobs"
               << (request.ptxas.empty() ? " (PTX only: no ptxas)" : ", cubins by " + request.ptxas)
               << "\n";
  std::vector<BundleVariant> written;
  if (Status s = writeBundle(bundleDir, request, written); !s) {
    llvm::errs() << "flash-gen: " << s.message() << "\n";
    return 1;
  }
  llvm::errs() << "flash-gen: wrote " << written.size() << " variants and " << bundleDir
               << "/manifest.json\n";
  if (!emitSource.empty()) {
    if (Status s = writeEmbeddedSource(bundleDir, emitSource, sourceName); !s) {
      llvm::errs() << "flash-gen: " << s.message() << "\n";
      return 1;
    }
    llvm::errs() << "flash-gen: wrote " << emitSource << "/" << sourceName << ".{h,c}\n";
  }
  return 0;
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  // "--causal both" as well as "--causal=both" and the flag alone.
  std::vector<std::string> storage(argv, argv + argc);
  std::vector<const char *> args;
  for (size_t i = 0; i < storage.size(); ++i) {
    const std::string &a = storage[i];
    bool takesChoice = a == "--causal" || a == "--lse";
    if (takesChoice && i + 1 < storage.size() &&
        (storage[i + 1] == "yes" || storage[i + 1] == "no" || storage[i + 1] == "both")) {
      storage[i] = a + "=" + storage[i + 1];
      storage[++i].clear();
    }
  }
  for (const std::string &a : storage)
    if (!a.empty())
      args.push_back(a.c_str());
  cl::ParseCommandLineOptions(int(args.size()), args.data(), "flashjit offline kernel generator\n");
  if (!bundleDir.empty())
    return generateBundle();

  std::vector<bool> masks, lses;
  if (!choices(causal, "causal", masks) || !choices(lse, "lse", lses))
    return 2;
  if (masks.size() > 1 || lses.size() > 1 || split(arch).size() > 1 || split(dtype).size() > 1 ||
      split(headDim).size() > 1) {
    llvm::errs() << "flash-gen: lists and 'both' need --bundle DIR\n";
    return 2;
  }
  AttentionSpec spec;
  auto dt = parseDType(dtype);
  if (!dt) {
    llvm::errs() << "flash-gen: unknown --dtype '" << dtype << "' (bf16 or f16)\n";
    return 2;
  }
  spec.dtype = *dt;
  spec.headDimQK = std::stoll(headDim);
  spec.headDimV = headDimV ? int64_t(headDimV) : spec.headDimQK;
  if (!setMaskAndModifiers(spec, masks[0]))
    return 2;
  spec.withLse = lses[0];
  spec.arch = arch;
  spec.maxSharedMemory = maxSmem ? maxSmem : documentedMaxSharedMemory(arch);
  if (spec.maxSharedMemory == 0) {
    llvm::errs() << "flash-gen: no documented shared-memory limit for " << arch
                 << "; pass --max-smem\n";
    return 2;
  }
  std::vector<KernelKind> kinds;
  if (!parseKinds(kind, spec.headDimQK, spec.headDimV, spec.arch, kinds))
    return 2;
  if (kinds.size() != 1) {
    llvm::errs() << "flash-gen: one --kind at a time without --bundle\n";
    return 2;
  }
  spec.kind = kinds[0];
  spec.tile = defaultTileOf(spec);
  if (!tile.empty() && !parseTile(tile, spec.tile)) {
    llvm::errs() << "flash-gen: --tile wants m,n,warps,stages\n";
    return 2;
  }
  normalizeSpecForKind(spec);
  Stage stage;
  if (emit == "mlir")
    stage = Stage::FlashIR;
  else if (emit == "kernel-mlir")
    stage = Stage::KernelIR;
  else if (emit == "llvm")
    stage = Stage::LLVMIR;
  else if (emit == "ptx")
    stage = Stage::PTX;
  else {
    llvm::errs() << "flash-gen: unknown --emit '" << emit << "'\n";
    return 2;
  }

  CompileOptions options;
  options.dumpDir = dumpDir;
  auto start = std::chrono::steady_clock::now();
  auto text = compileToStage(spec, stage, options);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                  .count();
  if (!text) {
    llvm::errs() << "flash-gen: " << llvm::toString(text.takeError()) << "\n";
    return 1;
  }
  std::error_code ec;
  llvm::ToolOutputFile out(output, ec, llvm::sys::fs::OF_None);
  if (ec) {
    llvm::errs() << "flash-gen: cannot write " << output << ": " << ec.message() << "\n";
    return 1;
  }
  out.os() << *text;
  out.keep();
  if (timing)
    llvm::errs() << "flash-gen: " << spec.variantName() << " compiled to " << emit << " in "
                 << llvm::format("%.1f", ms) << " ms\n";
  return 0;
}
