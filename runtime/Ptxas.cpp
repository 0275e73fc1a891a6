//===- Ptxas.cpp ----------------------------------------------------------===//
#include "runtime/Ptxas.h"

#include "runtime/Files.h"

#include <cstdio>
#include <cstdlib>
#include <unistd.h>

namespace flashjit {

namespace {

bool executable(const std::string &path) { return access(path.c_str(), X_OK) == 0; }

std::string quoted(const std::string &s) {
  std::string q = "'";
  for (char c : s)
    q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

} // namespace

std::string findPtxas() {
  if (const char *env = std::getenv("FLASHJIT_PTXAS"); env && *env)
    return std::string(env) == "none" ? "" : env;
  if (const char *home = std::getenv("CUDA_HOME"); home && executable(std::string(home) + "/bin/ptxas"))
    return std::string(home) + "/bin/ptxas";
  if (executable("/usr/local/cuda/bin/ptxas"))
    return "/usr/local/cuda/bin/ptxas";
  if (std::system("command -v ptxas > /dev/null 2>&1") == 0)
    return "ptxas";
  return "";
}

std::string ptxasVersion(const std::string &ptxas) {
  std::string version = "ptxas " + ptxas;
  if (FILE *pipe = popen((quoted(ptxas) + " --version 2>&1").c_str(), "r")) {
    char buf[256];
    std::string last;
    while (fgets(buf, sizeof(buf), pipe))
      if (buf[0] != '\n')
        last = buf;
    pclose(pipe);
    while (!last.empty() && last.back() == '\n')
      last.pop_back();
    version += ": " + last;
  }
  return version;
}

Status assembleWithPtxas(const std::string &ptxas, const std::string &arch, const std::string &ptx,
                         std::string &cubin, std::string *report) {
  const char *tmp = std::getenv("TMPDIR");
  std::string base = std::string(tmp && *tmp ? tmp : "/tmp") + "/flashjit-ptxas-XXXXXX";
  int fd = mkstemp(base.data());
  if (fd < 0)
    return Status::error("cannot create a temporary file for ptxas in " + base);
  close(fd);
  const std::string ptxPath = base + ".ptx", cubinPath = base + ".cubin";
  unlink(base.c_str());
  Status s = writeWholeFile(ptxPath, ptx);
  std::string output;
  int rc = -1;
  if (s) {
    std::string cmd = quoted(ptxas) + " -arch=" + arch + " -v " + quoted(ptxPath) + " -o " +
                      quoted(cubinPath) + " 2>&1";
    if (FILE *pipe = popen(cmd.c_str(), "r")) {
      char buf[512];
      while (fgets(buf, sizeof(buf), pipe))
        output += buf;
      rc = pclose(pipe);
    }
    if (rc != 0)
      s = Status::error("ptxas (" + ptxas + ") failed for " + arch + ": " + output);
    else if (!readWholeFile(cubinPath, cubin))
      s = Status::error("ptxas wrote no " + cubinPath);
  }
  unlink(ptxPath.c_str());
  unlink(cubinPath.c_str());
  if (s && report) {
    report->clear();
    size_t at = 0;
    while (at < output.size()) {
      size_t end = output.find('\n', at);
      std::string line = output.substr(at, end == std::string::npos ? end : end - at);
      if (line.find("registers") != std::string::npos || line.find("spill") != std::string::npos)
        *report += line + "\n";
      at = end == std::string::npos ? output.size() : end + 1;
    }
  }
  return s;
}

} // namespace flashjit
