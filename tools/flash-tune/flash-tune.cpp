//===- flash-tune.cpp - autotuning sweeps ---------------------------------===//
//
//   flash-tune [--dtype bf16,f16] [--dims 64,128] [--seqs 512,...,16384]
//              [--causal no|yes|both] [--pass fwd|bwd|both] [--shapes FILE.json] [--out table.md]
//              [--window LEFT,RIGHT] [--softcap] [--alibi] [--dropout]
//              [--score-mod EXPR] [--mask-mod EXPR]
//              [--export FILE] [--import FILE] [--cache-dir DIR] [--quiet]
//
// Shapes default to the standard grid: b = 16384/s, h = 2048/d. A shapes file
// is a JSON array of {"dtype", "d", "d_v", "seq_q", "seq_k", "batch", "heads",
// "heads_k", "causal", "window": [left, right], "softcap", "alibi", "dropout"}. The score
// modifiers and user modifier expressions (--score-mod / --mask-mod, for every shape)
// tune their own variants,
// recorded under their own keys; untuned modifier problems use the tile of
// the same shape without them. Shapes are timed as attention() runs them: a
// mask_mod with its derived block lists (their listing launch included), a
// GQA shape (heads_k < heads) packed where the tile under test makes
// packing pay (AttentionParams::packGQA's Auto). A user-given block mask is
// per call data, not a problem: its calls take the tuned tile of their shape,
// narrowed to the blocks. --pass bwd tunes the backward's kernels of each shape
// (each kernel's tiles, timing the whole backward). Prints progress, then a table of default vs tuned;
// writes the tuning database (<cache>/tune/<arch>.json).
//
#include "compiler/ModifierExpression.h"
#include "runtime/Json.h"
#include "runtime/flashjit.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace flashjit;

namespace {

std::vector<std::string> split(const std::string &s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty())
      out.push_back(item);
  return out;
}

int usage(const char *why) {
  fprintf(stderr, "flash-tune: %s\n(see the comment at the top of tools/flash-tune/flash-tune.cpp)\n",
          why);
  return 2;
}

bool readShapes(const std::string &path, std::vector<TuningProblem> &out, std::string &error) {
  std::ifstream in(path);
  if (!in) {
    error = "cannot read " + path;
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  json::Value doc;
  if (!json::parse(ss.str(), doc, error))
    return false;
  if (!doc.isArray()) {
    error = path + ": expected a JSON array of shapes";
    return false;
  }
  for (const json::Value &s : doc.items()) {
    auto num = [&](const char *k, int64_t fallback) { return s.intOr(k, fallback); };
    TuningProblem p;
    const json::Value *dt = s.get("dtype");
    auto dtype = parseDType(dt && dt->isString() ? dt->str() : "bf16");
    if (!dtype) {
      error = path + ": unknown dtype";
      return false;
    }
    p.dtype = *dtype;
    p.headDimQK = num("d", 128);
    p.headDimV = num("d_v", p.headDimQK);
    p.seqQ = num("seq_q", num("seq", 4096));
    p.seqK = num("seq_k", p.seqQ);
    p.batch = num("batch", 1);
    p.headsQ = num("heads", 16);
    p.headsK = num("heads_k", p.headsQ);
    p.causal = s.boolOr("causal", false);
    if (const json::Value *w = s.get("window")) {
      if (!w->isArray() || w->items().size() != 2) {
        error = path + ": \"window\" must be [left, right]";
        return false;
      }
      p.setWindow(int64_t(w->items()[0].number()), int64_t(w->items()[1].number()));
    }
    p.softcap = s.boolOr("softcap", false);
    p.alibi = s.boolOr("alibi", false);
    p.dropout = s.boolOr("dropout", false);
    out.push_back(p);
  }
  return true;
}

} // namespace

int main(int argc, char **argv) {
  std::string dtypes = "bf16", dims = "64,128", seqs = "512,1024,2048,4096,8192,16384",
              causal = "both", pass = "fwd", shapesFile, out, exportPath, importPath, cacheDir;
  std::string window, scoreMod, maskMod;
  bool quiet = false, gridRequested = false, softcap = false, alibi = false, dropout = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string &dst) {
      if (i + 1 >= argc)
        return false;
      dst = argv[++i];
      return true;
    };
    bool ok = true;
    if (a == "--dtype" || a == "--dims" || a == "--seqs" || a == "--causal")
      gridRequested = true;
    if (a == "--dtype") ok = value(dtypes);
    else if (a == "--dims") ok = value(dims);
    else if (a == "--seqs") ok = value(seqs);
    else if (a == "--causal") ok = value(causal);
    else if (a == "--shapes") ok = value(shapesFile);
    else if (a == "--pass") ok = value(pass);
    else if (a == "--out") ok = value(out);
    else if (a == "--export") ok = value(exportPath);
    else if (a == "--import") ok = value(importPath);
    else if (a == "--cache-dir") ok = value(cacheDir);
    else if (a == "--window") ok = value(window);
    else if (a == "--score-mod") ok = value(scoreMod);
    else if (a == "--mask-mod") ok = value(maskMod);
    else if (a == "--softcap") softcap = true;
    else if (a == "--alibi") alibi = true;
    else if (a == "--dropout") dropout = true;
    else if (a == "--quiet") quiet = true;
    else return usage(("unknown argument " + a).c_str());
    if (!ok)
      return usage(("missing value for " + a).c_str());
  }

  RuntimeOptions options = RuntimeOptions::fromEnvironment();
  options.cacheDir = cacheDir;
  options.autotune = false;
  std::unique_ptr<Runtime> rt;
  if (Status s = Runtime::create(rt, options); !s) {
    fprintf(stderr, "flash-tune: %s\n", s.message().c_str());
    return 1;
  }
  TuningDatabase &db = rt->tuningDatabase();
  if (!importPath.empty()) {
    std::vector<std::string> notes;
    Status s = db.import(importPath, notes);
    for (auto &n : notes)
      printf("note: %s\n", n.c_str());
    if (!s) {
      fprintf(stderr, "flash-tune: %s\n", s.message().c_str());
      return 1;
    }
    if (Status st = rt->saveTuningDatabase(); !st) {
      fprintf(stderr, "flash-tune: %s\n", st.message().c_str());
      return 1;
    }
    printf("imported %s: the database %s now holds %zu entries\n", importPath.c_str(),
           rt->tuningDatabasePath().c_str(), db.size());
  }

  std::vector<TuningProblem> problems;
  if (!shapesFile.empty()) {
    std::string error;
    if (!readShapes(shapesFile, problems, error)) {
      fprintf(stderr, "flash-tune: %s\n", error.c_str());
      return 2;
    }
  } else if (gridRequested || (importPath.empty() && exportPath.empty())) {
    for (const std::string &dt : split(dtypes))
      for (const std::string &d : split(dims))
        for (const std::string &c : causal == "both" ? std::vector<std::string>{"no", "yes"}
                                                     : std::vector<std::string>{causal})
          for (const std::string &s : split(seqs)) {
            TuningProblem p;
            auto dtype = parseDType(dt);
            if (!dtype)
              return usage(("unknown dtype " + dt).c_str());
            p.dtype = *dtype;
            p.headDimQK = p.headDimV = std::stoll(d);
            p.seqQ = p.seqK = std::stoll(s);
            p.batch = std::max<int64_t>(1, 16384 / p.seqQ);
            p.headsQ = p.headsK = std::max<int64_t>(1, 2048 / p.headDimQK);
            p.causal = c == "yes";
            problems.push_back(p);
          }
  }

  // Modifier flags apply to every shape.
  int64_t windowLeft = -1, windowRight = -1;
  if (!window.empty() && std::sscanf(window.c_str(), "%lld,%lld",
                                     reinterpret_cast<long long *>(&windowLeft),
                                     reinterpret_cast<long long *>(&windowRight)) != 2)
    return usage(("--window wants LEFT,RIGHT (-1 = unbounded), got " + window).c_str());
  std::string canonicalScoreMod, canonicalMaskMod, error;
  if (!canonicalizeModifier(scoreMod, ModifierKind::Score, canonicalScoreMod, error) ||
      !canonicalizeModifier(maskMod, ModifierKind::Mask, canonicalMaskMod, error))
    return usage(error.c_str());
  for (TuningProblem &p : problems) {
    if (!window.empty())
      p.setWindow(windowLeft, windowRight);
    p.softcap = p.softcap || softcap;
    p.alibi = p.alibi || alibi;
    p.dropout = p.dropout || dropout;
    p.scoreMod = canonicalScoreMod;
    p.maskMod = canonicalMaskMod;
  }

  if (pass != "fwd" && pass != "bwd" && pass != "both")
    return usage(("--pass wants fwd, bwd or both, got " + pass).c_str());
  if (pass != "fwd") { // each shape's backward kernels, after (or instead of) its forward
    std::vector<TuningProblem> all;
    for (const TuningProblem &p : problems) {
      if (pass == "both")
        all.push_back(p);
      std::vector<KernelKind> kinds = backwardKernels(p.headDimQK, p.headDimV);
      if (rt->device().arch == "sm_90a") // and the atomic-dQ key-block kernel(s)
        for (KernelKind kind : backwardKernels(p.headDimQK, p.headDimV, true))
          if (!isAuxiliaryKind(kind) && std::find(kinds.begin(), kinds.end(), kind) == kinds.end())
            kinds.push_back(kind);
      for (KernelKind kind : kinds) {
        TuningProblem b = p;
        b.kind = kind;
        b.withLse = false;
        all.push_back(b);
      }
    }
    problems = all;
  }

  const DeviceInfo &dev = rt->device();
  printf("flash-tune: %s (%s), %zu problems, database %s\n", dev.name.c_str(), dev.arch.c_str(),
         problems.size(), rt->tuningDatabasePath().c_str());
  std::vector<std::string> rows;
  for (size_t i = 0; i < problems.size(); ++i) {
    const TuningProblem &p = problems[i];
    TileConfig def =
        p.kind == KernelKind::Forward
            ? defaultTile(p.headDimQK, p.headDimV, dev.maxSharedMemoryPerBlock, dev.arch)
            : defaultBackwardTile(p.kind, p.headDimQK, p.headDimV, dev.maxSharedMemoryPerBlock,
                                  dev.arch);
    TuningResult result;
    size_t space = 0;
    Status s = rt->tune(p, result, [&](size_t done, size_t total, const TimedConfig &t) {
      space = total;
      if (quiet)
        return;
      if (std::isinf(t.ms))
        printf("  [%zu/%zu] [%zu/%zu] %-40s %-12s failed: %s\n", i + 1, problems.size(), done,
               total, p.describe().c_str(), tileName(t.tile).c_str(), t.note.substr(0, 160).c_str());
      else
        printf("  [%zu/%zu] [%zu/%zu] %-40s %-12s %8.3f ms %5.0f TFLOP/s\n", i + 1,
               problems.size(), done, total, p.describe().c_str(), tileName(t.tile).c_str(), t.ms,
               p.flops() / (t.ms * 1e-3) / 1e12);
      fflush(stdout);
    });
    if (!s) {
      printf("[%zu/%zu] %s: %s\n", i + 1, problems.size(), p.describe().c_str(),
             s.message().c_str());
      continue;
    }
    double defaultMs = -1;
    for (const TimedConfig &t : result.all)
      if (tileName(t.tile) == tileName(def))
        defaultMs = t.ms;
    double tflops = p.flops() / (result.bestMs * 1e-3) / 1e12;
    double defaultTflops = defaultMs > 0 ? p.flops() / (defaultMs * 1e-3) / 1e12 : 0;
    char row[512];
    snprintf(row, sizeof(row), "| %s | %zu | %s | %.0f | %s | %.0f | %.2f |", p.describe().c_str(),
             space, tileName(def).c_str(), defaultTflops, tileName(result.best).c_str(), tflops,
             defaultMs > 0 ? defaultMs / result.bestMs : 0.0);
    rows.push_back(row);
    printf("[%zu/%zu] %s: best %s %.3f ms (%.0f TFLOP/s), default %s %.0f TFLOP/s\n", i + 1,
           problems.size(), p.describe().c_str(), tileName(result.best).c_str(), result.bestMs,
           tflops, tileName(def).c_str(), defaultTflops);
    fflush(stdout);
  }
  if (!problems.empty()) {
    std::string table = "| problem | configs | default tile | default TFLOP/s | tuned tile | tuned "
                        "TFLOP/s | speedup |\n| --- | --- | --- | --- | --- | --- | --- |\n";
    for (const std::string &r : rows)
      table += r + "\n";
    printf("\n%s", table.c_str());
    if (!out.empty())
      std::ofstream(out) << "GPU: " << dev.name << " (" << dev.arch << ")\n\n" << table;
  }
  if (!exportPath.empty()) {
    if (Status s = db.save(exportPath); !s) {
      fprintf(stderr, "flash-tune: %s\n", s.message().c_str());
      return 1;
    }
    printf("exported %zu entries to %s\n", db.size(), exportPath.c_str());
  }
  return rows.size() == problems.size() ? 0 : 1;
}
