//===- BundleWriter.cpp ---------------------------------------------------===//
#include "tools/flash-gen/BundleWriter.h"

#include "compiler/Compiler.h"
#include "runtime/Sha256.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace flashjit {

namespace {

Status writeText(const std::string &path, const std::string &data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  out.close();
  if (!out)
    return Status::error("cannot write " + path);
  return Status::ok();
}

bool readText(const std::string &path, std::string &data) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return false;
  std::stringstream ss;
  ss << in.rdbuf();
  data = ss.str();
  return true;
}

Status assemble(const std::string &ptxas, const std::string &arch, const std::string &ptxPath,
                const std::string &cubinPath) {
  std::string cmd = "'" + ptxas + "' -arch=" + arch + " '" + ptxPath + "' -o '" + cubinPath +
                    "' 2>&1";
  FILE *pipe = popen(cmd.c_str(), "r");
  if (!pipe)
    return Status::error("cannot run " + ptxas);
  std::string output;
  char buf[512];
  while (fgets(buf, sizeof(buf), pipe))
    output += buf;
  if (pclose(pipe) != 0)
    return Status::error("ptxas failed on " + ptxPath + ": " + output);
  return Status::ok();
}

} // namespace

Status writeBundle(const std::string &dir, const BundleRequest &request,
                   std::vector<BundleVariant> &written) {
  ::mkdir(dir.c_str(), 0755);
  std::set<std::string> names;
  std::vector<AttentionSpec> specs;
  for (const AttentionSpec &s : request.specs) // one entry per distinct variant
    if (names.insert(s.canonical()).second)
      specs.push_back(s);
  for (const AttentionSpec &s : specs)
    ::mkdir((dir + "/" + s.arch).c_str(), 0755);

  std::vector<BundleVariant> variants(specs.size());
  std::vector<std::string> errors(specs.size());
  std::atomic<size_t> next{0}, done{0};
  std::mutex progressMutex;
  auto worker = [&] {
    for (size_t i = next++; i < specs.size(); i = next++) {
      auto start = std::chrono::steady_clock::now();
      const AttentionSpec &spec = specs[i];
      BundleVariant &v = variants[i];
      auto kernel = compileAttention(spec, CompileOptions{"", false, 3});
      if (!kernel) {
        errors[i] = llvm::toString(kernel.takeError());
      } else {
        v.spec = spec;
        v.kernel = kernel->name;
        v.threads = kernel->threads;
        v.sharedMemoryBytes = kernel->sharedMemoryBytes;
        v.ptxPath = spec.arch + "/" + spec.variantName() + ".ptx";
        v.ptxSha256 = Sha256::hex(kernel->ptx);
        if (Status s = writeText(dir + "/" + v.ptxPath, kernel->ptx); !s)
          errors[i] = s.message();
        if (errors[i].empty() && !request.ptxas.empty()) {
          std::string cubinPath = spec.arch + "/" + spec.variantName() + ".cubin";
          std::string cubin;
          if (Status s = assemble(request.ptxas, spec.arch, dir + "/" + v.ptxPath,
                                  dir + "/" + cubinPath);
              !s)
            errors[i] = s.message();
          else if (!readText(dir + "/" + cubinPath, cubin))
            errors[i] = "cannot read back " + cubinPath;
          else {
            v.cubinPath = cubinPath;
            v.cubinSha256 = Sha256::hex(cubin);
          }
        }
      }
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                      .count();
      std::lock_guard<std::mutex> lock(progressMutex);
      ++done;
      if (request.progress)
        request.progress(done, specs.size(), spec.variantName(), ms, errors[i]);
    }
  };
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < std::max(1u, request.jobs); ++t)
    threads.emplace_back(worker);
  for (std::thread &t : threads)
    t.join();

  std::string failures;
  for (size_t i = 0; i < specs.size(); ++i)
    if (!errors[i].empty())
      failures += "\n  " + errors[i];
  if (!failures.empty())
    return Status::error("some variants failed:" + failures);
  if (Status s = writeText(dir + "/manifest.json",
                           Bundle::manifest(variants, request.tuning).dump() + "\n");
      !s)
    return s;
  written = std::move(variants);
  return Status::ok();
}

Status writeEmbeddedSource(const std::string &bundleDir, const std::string &outDir,
                           const std::string &name) {
  Bundle bundle;
  if (Status s = Bundle::loadDirectory(bundleDir, bundle); !s)
    return s;
  std::string manifest;
  if (!readText(bundleDir + "/manifest.json", manifest))
    return Status::error("cannot read " + bundleDir + "/manifest.json");
  std::vector<std::string> files;
  for (const BundleVariant &v : bundle.variants()) {
    files.push_back(v.ptxPath);
    if (!v.cubinPath.empty())
      files.push_back(v.cubinPath);
  }
  ::mkdir(outDir.c_str(), 0755);
  std::ostringstream h;
  h << "/* Generated by flash-gen --emit-source: flashjit kernels embedded as bytes. */\n"
    << "#ifndef " << name << "_H\n#define " << name << "_H\n\n"
    << "#include \"runtime/flashjit_c.h\"\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n"
    << "/* Pass to flashjit_runtime_create_from_embedded(); variants:\n";
  for (const BundleVariant &v : bundle.variants())
    h << " *   " << v.spec.variantName() << "\n";
  h << " */\nconst struct flashjit_embedded_bundle *" << name << "(void);\n\n"
    << "#ifdef __cplusplus\n}\n#endif\n\n#endif\n";

  std::ostringstream c;
  c << "/* Generated by flash-gen --emit-source from " << bundleDir << ". Do not edit. */\n"
    << "#include \"" << name << ".h\"\n\n";
  auto bytes = [&](const std::string &symbol, const std::string &data) {
    c << "static const unsigned char " << symbol << "[" << data.size() + 1 << "] = {";
    for (size_t i = 0; i < data.size(); ++i)
      c << (i % 24 ? "" : "\n  ") << unsigned(static_cast<unsigned char>(data[i])) << ",";
    c << "0};\n";
  };
  for (size_t i = 0; i < files.size(); ++i) {
    std::string data;
    if (!readText(bundleDir + "/" + files[i], data))
      return Status::error("cannot read " + bundleDir + "/" + files[i]);
    bytes("file" + std::to_string(i), data);
  }
  bytes("manifest", manifest);
  c << "\nstatic const struct flashjit_embedded_file files[] = {\n";
  for (size_t i = 0; i < files.size(); ++i) {
    std::string data;
    readText(bundleDir + "/" + files[i], data);
    c << "  {\"" << files[i] << "\", file" << i << ", " << data.size() << "ULL},\n";
  }
  c << "};\n\nstatic const struct flashjit_embedded_bundle bundle = {\n"
    << "  (const char *)manifest, files, " << files.size() << "ULL};\n\n"
    << "const struct flashjit_embedded_bundle *" << name << "(void) { return &bundle; }\n";
  if (Status s = writeText(outDir + "/" + name + ".h", h.str()); !s)
    return s;
  return writeText(outDir + "/" + name + ".c", c.str());
}

Status addTunedVariants(const std::string &path, BundleRequest &request) {
  std::string text;
  if (!readText(path, text))
    return Status::error("cannot read tuning database " + path);
  json::Value doc;
  std::string error;
  if (!json::parse(text, doc, error))
    return Status::error("tuning database " + path + " is not valid JSON: " + error);
  const json::Value *id = doc.get("identity");
  const json::Value *entries = doc.get("entries");
  const json::Value *arch = id ? id->get("arch") : nullptr;
  if (!entries || !entries->isObject() || !arch || !arch->isString())
    return Status::error(path + " is not a flashjit tuning database");
  if (!request.tuning.isObject())
    request.tuning = json::Value::object();
  std::vector<AttentionSpec> added;
  for (const auto &[key, entry] : entries->fields()) {
    const json::Value *tile = entry.get("tile");
    TileConfig tuned;
    if (!tileFrom(tile, tuned))
      continue;
    request.tuning[arch->str()][key] = *tile;
    // "bf16 d128 v128 causal lse0 sq<=4096 sk<=4096": the problem the tile is for.
    char dtype[8], mask[8];
    long d = 0, dv = 0;
    int lse = 0;
    if (sscanf(key.c_str(), "%7s d%ld v%ld %7s lse%d", dtype, &d, &dv, mask, &lse) != 5)
      continue;
    for (const AttentionSpec &s : request.specs)
      if (s.arch == arch->str() && dtypeName(s.dtype) == std::string(dtype) &&
          s.headDimQK == d && s.headDimV == dv && maskName(s.mask) == std::string(mask) &&
          s.withLse == (lse != 0)) {
        AttentionSpec variant = s;
        variant.tile = tuned;
        added.push_back(variant);
      }
  }
  request.specs.insert(request.specs.end(), added.begin(), added.end());
  return Status::ok();
}

} // namespace flashjit
