//===- DiskCache.cpp ------------------------------------------------------===//
#include "runtime/DiskCache.h"

#include "runtime/Files.h"

#include "runtime/Json.h"
#include "runtime/Sha256.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <fstream>
#include <random>
#include <sstream>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

namespace flashjit {

CacheKey CacheKey::make(const std::string &variant, const std::string &arch,
                        const std::string &canonical, const std::string &compilerIdentity,
                        const std::string &environment) {
  CacheKey k;
  k.variant = variant;
  k.arch = arch;
  k.canonical = canonical;
  k.hash = Sha256()
               .field("flashjit-kernel-cache-v1")
               .field(compilerIdentity)
               .field(canonical)
               .field(arch)
               .field(environment)
               .hexDigest();
  return k;
}

namespace {

std::string errnoText() { return std::strerror(errno); }

// mkdir -p with mode 0700 for every component it creates.
Status makeDirectories(const std::string &path) {
  std::string partial;
  std::stringstream ss(path);
  std::string part;
  if (!path.empty() && path[0] == '/')
    partial = "/";
  while (std::getline(ss, part, '/')) {
    if (part.empty())
      continue;
    partial += part;
    if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST)
      return Status::error("cannot create cache directory " + partial + ": " + errnoText());
    partial += "/";
  }
  return Status::ok();
}

void removeTree(const std::string &path) {
  if (DIR *d = ::opendir(path.c_str())) {
    while (dirent *e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == "..")
        continue;
      std::string child = path + "/" + name;
      struct stat st;
      if (::lstat(child.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
        removeTree(child);
      else
        ::unlink(child.c_str());
    }
    ::closedir(d);
  }
  ::rmdir(path.c_str());
}

std::string uniqueSuffix() {
  static thread_local std::mt19937_64 rng(std::random_device{}() ^ uint64_t(::getpid()));
  char buf[64];
  snprintf(buf, sizeof(buf), "%d-%016llx", int(::getpid()), (unsigned long long)rng());
  return buf;
}

// flock on a lock file, released on destruction (and by the kernel if the process dies).
class FileLock {
public:
  Status acquire(const std::string &path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0)
      return Status::error("cannot open lock file " + path + ": " + errnoText());
    while (::flock(fd_, LOCK_EX) != 0)
      if (errno != EINTR)
        return Status::error("cannot lock " + path + ": " + errnoText());
    return Status::ok();
  }
  ~FileLock() {
    if (fd_ >= 0)
      ::close(fd_);
  }

private:
  int fd_ = -1;
};

} // namespace

Status checkPrivateDirectory(const std::string &path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0)
    return Status::error("cache directory " + path + " is not accessible: " + errnoText());
  if (!S_ISDIR(st.st_mode))
    return Status::error("cache path " + path + " is not a directory (or is a symbolic link)");
  if (st.st_uid != ::geteuid())
    return Status::error("cache directory " + path + " is owned by uid " +
                         std::to_string(st.st_uid) + ", not by this user (uid " +
                         std::to_string(::geteuid()) +
                         "); refusing to load kernels from it. Set FLASHJIT_CACHE_DIR to a "
                         "directory of your own");
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    char mode[8];
    snprintf(mode, sizeof(mode), "%04o", unsigned(st.st_mode & 07777));
    return Status::error("cache directory " + path + " is writable by other users (mode " + mode +
                         "); refusing to load kernels from it. Run chmod 700 on it or set "
                         "FLASHJIT_CACHE_DIR to a private directory");
  }
  return Status::ok();
}

std::string DiskCache::defaultRoot() {
  if (const char *d = std::getenv("FLASHJIT_CACHE_DIR"); d && *d)
    return d;
  if (const char *x = std::getenv("XDG_CACHE_HOME"); x && *x)
    return std::string(x) + "/flashjit";
  if (const char *h = std::getenv("HOME"); h && *h)
    return std::string(h) + "/.cache/flashjit";
  return "";
}

Status DiskCache::open(const std::string &rootIn, const std::string &version,
                       std::unique_ptr<DiskCache> &out, WarningSink warn) {
  std::string root = rootIn.empty() ? defaultRoot() : rootIn;
  if (root.empty())
    return Status::error("no cache directory: set FLASHJIT_CACHE_DIR (HOME is not set)");
  if (Status s = makeDirectories(root); !s)
    return s;
  if (Status s = checkPrivateDirectory(root); !s)
    return s;
  std::string versionDir = root + "/" + version;
  if (Status s = makeDirectories(versionDir); !s)
    return s;
  if (Status s = checkPrivateDirectory(versionDir); !s)
    return s;
  // Writable? Probe now so the error names the directory, not a later temp file.
  std::string probe = versionDir + "/.probe-" + uniqueSuffix();
  if (Status s = writeWholeFile(probe, ""); !s)
    return Status::error("cache directory " + versionDir + " is not writable: " + s.message());
  ::unlink(probe.c_str());
  if (!warn)
    warn = [](const std::string &m) { fprintf(stderr, "flashjit: warning: %s\n", m.c_str()); };
  out.reset(new DiskCache(root, versionDir, std::move(warn)));
  return Status::ok();
}

std::string DiskCache::entryDir(const CacheKey &key) const {
  return versionDir_ + "/" + key.arch + "/" + key.variant + "-" + key.hash.substr(0, 12);
}

void DiskCache::warnOnce(const std::string &dir, const std::string &message) {
  if (warned_.insert(dir).second && warn_)
    warn_(message);
}

Status DiskCache::loadEntry(const std::string &dir, const CacheKey &key, CachedKernel &out,
                            std::string &damage) {
  std::string metaText;
  if (!readWholeFile(dir + "/meta.json", metaText)) {
    damage = "meta.json is missing";
    return Status::ok();
  }
  json::Value meta;
  std::string parseError;
  if (!json::parse(metaText, meta, parseError)) {
    damage = "meta.json is not valid JSON (" + parseError + ")";
    return Status::ok();
  }
  auto text = [&](const char *field) { return meta.stringOr(field); };
  auto number = [&](const char *field) { return meta.intOr(field, -1); };
  if (text("key") != key.hash) {
    damage = "its key does not match (another version or a hash collision of the directory name)";
    return Status::ok();
  }
  std::string ptx, cubin;
  if (!readWholeFile(dir + "/kernel.ptx", ptx) || Sha256::hex(ptx) != text("ptx_sha256")) {
    damage = "kernel.ptx is missing or does not match its checksum";
    return Status::ok();
  }
  if (!text("cubin_sha256").empty() &&
      (!readWholeFile(dir + "/kernel.cubin", cubin) || Sha256::hex(cubin) != text("cubin_sha256"))) {
    damage = "kernel.cubin is missing or does not match its checksum";
    return Status::ok();
  }
  out.name = text("kernel");
  out.threads = number("threads");
  out.sharedMemoryBytes = number("shared_memory_bytes");
  if (out.name.empty() || out.threads <= 0 || out.sharedMemoryBytes < 0) {
    damage = "meta.json lacks the kernel's name or launch configuration";
    return Status::ok();
  }
  out.ptx = std::move(ptx);
  out.cubin = std::move(cubin);
  return Status::ok();
}

Status DiskCache::load(const CacheKey &key, CachedKernel &out, bool &hit) {
  hit = false;
  std::string dir = entryDir(key);
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0)
    return Status::ok(); // a plain miss
  if (Status s = checkPrivateDirectory(dir); !s)
    return s;
  std::string damage;
  if (Status s = loadEntry(dir, key, out, damage); !s)
    return s;
  if (!damage.empty()) {
    warnOnce(dir, "cache entry " + dir + " is damaged (" + damage + "); recompiling it");
    return Status::ok();
  }
  hit = true;
  return Status::ok();
}

Status DiskCache::store(const CacheKey &key, const CachedKernel &kernel) {
  std::string archDir = versionDir_ + "/" + key.arch;
  if (Status s = makeDirectories(archDir); !s)
    return s;
  std::string dir = entryDir(key);
  std::string tmp = archDir + "/.tmp-" + key.variant + "-" + uniqueSuffix();
  if (::mkdir(tmp.c_str(), 0700) != 0)
    return Status::error("cannot create " + tmp + ": " + errnoText());
  json::Value meta = json::Value::object();
  meta["format"] = 1;
  meta["key"] = key.hash;
  meta["variant"] = key.variant;
  meta["spec"] = key.canonical;
  meta["arch"] = key.arch;
  meta["kernel"] = kernel.name;
  meta["threads"] = kernel.threads;
  meta["shared_memory_bytes"] = kernel.sharedMemoryBytes;
  meta["ptx_sha256"] = Sha256::hex(kernel.ptx);
  meta["cubin_sha256"] = kernel.cubin.empty() ? std::string() : Sha256::hex(kernel.cubin);
  meta["created_unix"] = int64_t(std::time(nullptr));
  Status s = writeWholeFile(tmp + "/kernel.ptx", kernel.ptx);
  if (s && !kernel.cubin.empty())
    s = writeWholeFile(tmp + "/kernel.cubin", kernel.cubin);
  if (s)
    s = writeWholeFile(tmp + "/meta.json", meta.dump() + "\n"); // written last: marks completeness
  if (!s) {
    removeTree(tmp);
    return s;
  }
  // Replace a damaged entry: move it aside first, since rename() will not
  // replace a non-empty directory.
  struct stat st;
  if (::lstat(dir.c_str(), &st) == 0) {
    std::string trash = archDir + "/.trash-" + uniqueSuffix();
    if (::rename(dir.c_str(), trash.c_str()) == 0)
      removeTree(trash);
  }
  if (::rename(tmp.c_str(), dir.c_str()) != 0) {
    std::string why = errnoText();
    removeTree(tmp);
    return Status::error("cannot move the new cache entry into " + dir + ": " + why);
  }
  return Status::ok();
}

Status DiskCache::getOrProduce(const CacheKey &key,
                               const std::function<Status(CachedKernel &)> &produce,
                               CachedKernel &out, bool &produced) {
  produced = false;
  bool hit = false;
  if (Status s = load(key, out, hit); !s || hit)
    return s;
  std::string archDir = versionDir_ + "/" + key.arch;
  if (Status s = makeDirectories(archDir); !s)
    return s;
  FileLock lock;
  if (Status s = lock.acquire(entryDir(key) + ".lock"); !s)
    return s;
  if (Status s = load(key, out, hit); !s || hit) // another process may have finished it
    return s;
  if (Status s = produce(out); !s)
    return s;
  produced = true;
  return store(key, out);
}

} // namespace flashjit
