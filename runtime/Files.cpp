//===- Files.cpp ----------------------------------------------------------===//
#include "runtime/Files.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace flashjit {

static std::string errnoText() { return std::strerror(errno); }

bool readWholeFile(const std::string &path, std::string &out) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return bool(in) || in.eof();
}

Status writeWholeFile(const std::string &path, const std::string &data, unsigned mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0)
    return Status::error("cannot write " + path + ": " + errnoText());
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      std::string why = errnoText();
      ::close(fd);
      return Status::error("cannot write " + path + ": " + why);
    }
    done += size_t(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0)
    return Status::error("cannot write " + path + ": " + errnoText());
  return Status::ok();
}

} // namespace flashjit
