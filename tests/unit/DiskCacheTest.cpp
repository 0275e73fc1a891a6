//===- DiskCacheTest.cpp - keys, damaged entries, permissions, processes --===//
#include "runtime/DiskCache.h"
#include "runtime/Json.h"
#include "runtime/KernelCache.h"
#include "runtime/Sha256.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <fstream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace flashjit;

namespace {

std::string freshDir(const std::string &name) {
  std::string dir = ::testing::TempDir() + "/flashjit-" + name + "-" + std::to_string(getpid());
  std::string cmd = "rm -rf '" + dir + "'";
  EXPECT_EQ(system(cmd.c_str()), 0);
  return dir;
}

CacheKey key(const std::string &canonical = "spec A") {
  return CacheKey::make("flash_fwd_bf16_d64_m128n64w4s2_sm80", "sm_80", canonical,
                        "flashjit test; LLVM x", "FLASHJIT_OPT_LEVEL=;");
}

CachedKernel kernel(const std::string &ptx = "// ptx\n.version 8.0\n") {
  CachedKernel k;
  k.name = "flash_fwd_bf16_d64_m128n64w4s2_sm80";
  k.ptx = ptx;
  k.cubin = "CUBIN\x7f" "ELF";
  k.threads = 128;
  k.sharedMemoryBytes = 1234;
  return k;
}

struct Warnings {
  std::vector<std::string> seen;
  DiskCache::WarningSink sink() {
    return [this](const std::string &m) { seen.push_back(m); };
  }
};

std::string slurp(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void overwrite(const std::string &path, const std::string &data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

} // namespace

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(Sha256::hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256::hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256::hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Json, RoundTripsAndReportsErrors) {
  json::Value v = json::Value::object();
  v["name"] = "a \"quoted\"\nline";
  v["n"] = 42;
  v["x"] = 0.5;
  v["list"].push(json::Value(true));
  v["list"].push(json::Value());
  json::Value back;
  std::string error;
  ASSERT_TRUE(json::parse(v.dump(), back, error)) << error;
  EXPECT_EQ(back.get("name")->str(), "a \"quoted\"\nline");
  EXPECT_EQ(back.get("n")->number(), 42);
  EXPECT_EQ(back.get("x")->number(), 0.5);
  EXPECT_EQ(back.get("list")->items().size(), 2u);
  EXPECT_FALSE(json::parse("{\"a\": 1", back, error));
  EXPECT_NE(error.find("offset"), std::string::npos);
  EXPECT_FALSE(json::parse("[1] x", back, error));
}

TEST(CacheKey, EveryInputChangesTheHash) {
  std::set<std::string> hashes;
  auto add = [&](const CacheKey &k) { EXPECT_TRUE(hashes.insert(k.hash).second); };
  add(CacheKey::make("v", "sm_80", "spec", "id", "env"));
  add(CacheKey::make("v", "sm_90a", "spec", "id", "env"));
  add(CacheKey::make("v", "sm_80", "spec2", "id", "env"));
  add(CacheKey::make("v", "sm_80", "spec", "id2", "env"));
  add(CacheKey::make("v", "sm_80", "spec", "id", "env2"));
  // Fields are length-prefixed: moving a boundary changes the hash.
  add(CacheKey::make("v", "sm_80", "specid", "", "env"));
  EXPECT_EQ(CacheKey::make("v", "sm_80", "spec", "id", "env").hash.size(), 64u);
}

TEST(DiskCache, StoresAndLoadsWithReadableNamesAndPrivateModes) {
  std::string root = freshDir("store");
  std::unique_ptr<DiskCache> cache;
  ASSERT_TRUE(DiskCache::open(root, "0.1.0", cache).isOk());
  struct stat st;
  ASSERT_EQ(stat(root.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  CacheKey k = key();
  ASSERT_TRUE(cache->store(k, kernel()).isOk());
  std::string dir = cache->entryDir(k);
  EXPECT_EQ(dir, root + "/0.1.0/sm_80/flash_fwd_bf16_d64_m128n64w4s2_sm80-" + k.hash.substr(0, 12));
  CachedKernel back;
  bool hit = false;
  ASSERT_TRUE(cache->load(k, back, hit).isOk());
  ASSERT_TRUE(hit);
  EXPECT_EQ(back.ptx, kernel().ptx);
  EXPECT_EQ(back.cubin, kernel().cubin);
  EXPECT_EQ(back.threads, 128);
  EXPECT_EQ(back.sharedMemoryBytes, 1234);
  ASSERT_TRUE(cache->load(key("spec B"), back, hit).isOk());
  EXPECT_FALSE(hit);
}

TEST(DiskCache, DamagedEntriesAreReportedOnceAndRebuilt) {
  struct Damage {
    const char *what;
    std::function<void(const std::string &dir)> apply;
  };
  std::vector<Damage> damages = {
      {"truncated ptx", [](const std::string &d) { overwrite(d + "/kernel.ptx", "// pt"); }},
      {"altered cubin",
       [](const std::string &d) { overwrite(d + "/kernel.cubin", "CUBIN\x7f" "ELG"); }},
      {"missing cubin", [](const std::string &d) { unlink((d + "/kernel.cubin").c_str()); }},
      {"garbage meta", [](const std::string &d) { overwrite(d + "/meta.json", "{\"key\": "); }},
      {"meta of another key",
       [](const std::string &d) {
         std::string m = slurp(d + "/meta.json");
         size_t at = m.find("\"key\": \"") + 8;
         m[at] = m[at] == 'a' ? 'b' : 'a';
         overwrite(d + "/meta.json", m);
       }},
      {"missing meta", [](const std::string &d) { unlink((d + "/meta.json").c_str()); }},
  };
  for (const Damage &damage : damages) {
    std::string root = freshDir("damage");
    Warnings warnings;
    std::unique_ptr<DiskCache> cache;
    ASSERT_TRUE(DiskCache::open(root, "0.1.0", cache, warnings.sink()).isOk());
    CacheKey k = key();
    ASSERT_TRUE(cache->store(k, kernel()).isOk());
    damage.apply(cache->entryDir(k));
    CachedKernel back;
    bool hit = true;
    ASSERT_TRUE(cache->load(k, back, hit).isOk()) << damage.what;
    EXPECT_FALSE(hit) << damage.what;
    ASSERT_TRUE(cache->load(k, back, hit).isOk());
    ASSERT_EQ(warnings.seen.size(), 1u) << damage.what << ": warned once, not per load";
    EXPECT_NE(warnings.seen[0].find("is damaged"), std::string::npos) << warnings.seen[0];
    int produced = 0;
    bool didProduce = false;
    ASSERT_TRUE(cache
                    ->getOrProduce(
                        k,
                        [&](CachedKernel &out) {
                          ++produced;
                          out = kernel("// rebuilt\n");
                          return Status::ok();
                        },
                        back, didProduce)
                    .isOk());
    EXPECT_EQ(produced, 1) << damage.what;
    ASSERT_TRUE(cache->load(k, back, hit).isOk());
    EXPECT_TRUE(hit) << damage.what;
    EXPECT_EQ(back.ptx, "// rebuilt\n");
  }
}

TEST(DiskCache, EightProcessesCompileAVariantOnce) {
  std::string root = freshDir("procs");
  std::string counter = root + "-count";
  unlink(counter.c_str());
  std::vector<pid_t> children;
  for (int i = 0; i < 8; ++i) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      std::unique_ptr<DiskCache> cache;
      if (!DiskCache::open(root, "0.1.0", cache, [](const std::string &) {}))
        _exit(2);
      CachedKernel out;
      bool produced = false;
      Status s = cache->getOrProduce(
          key(),
          [&](CachedKernel &k) {
            int fd = open(counter.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
            (void)!write(fd, "x\n", 2);
            close(fd);
            usleep(200 * 1000); // a slow compile widens the race
            k = kernel();
            return Status::ok();
          },
          out, produced);
      _exit(s.isOk() && out.ptx == kernel().ptx && out.cubin == kernel().cubin ? 0 : 3);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  }
  EXPECT_EQ(slurp(counter), "x\n") << "the variant was compiled more than once";
}

TEST(DiskCache, UnwritableLocationGivesAClearError) {
  std::string file = freshDir("file");
  overwrite(file, "not a directory");
  std::unique_ptr<DiskCache> cache;
  Status s = DiskCache::open(file + "/cache", "0.1.0", cache);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("cannot create cache directory"), std::string::npos) << s.message();
  if (geteuid() != 0) { // root writes through any mode
    std::string ro = freshDir("readonly");
    ASSERT_EQ(mkdir(ro.c_str(), 0500), 0);
    s = DiskCache::open(ro, "0.1.0", cache);
    ASSERT_FALSE(s.isOk());
    EXPECT_NE(s.message().find("cannot create cache directory"), std::string::npos)
        << s.message();
  }
}

TEST(DiskCache, SharedWritableOrForeignDirectoriesAreRefused) {
  std::string root = freshDir("shared");
  ASSERT_EQ(mkdir(root.c_str(), 0700), 0);
  ASSERT_EQ(chmod(root.c_str(), 0777), 0);
  std::unique_ptr<DiskCache> cache;
  Status s = DiskCache::open(root, "0.1.0", cache);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("is writable by other users (mode 0777)"), std::string::npos)
      << s.message();

  std::string foreign = freshDir("foreign");
  ASSERT_EQ(mkdir(foreign.c_str(), 0700), 0);
  if (geteuid() == 0) {
    ASSERT_EQ(chown(foreign.c_str(), 65534, 65534), 0);
  } else {
    foreign = "/usr"; // owned by root, not by this user
  }
  s = DiskCache::open(foreign, "0.1.0", cache);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("not by this user"), std::string::npos) << s.message();

  // An entry planted by another user inside a private root is refused too.
  std::string mine = freshDir("planted");
  ASSERT_TRUE(DiskCache::open(mine, "0.1.0", cache).isOk());
  CacheKey k = key();
  ASSERT_TRUE(cache->store(k, kernel()).isOk());
  ASSERT_EQ(chmod(cache->entryDir(k).c_str(), 0777), 0);
  CachedKernel out;
  bool hit = false;
  s = cache->load(k, out, hit);
  EXPECT_FALSE(s.isOk());
  EXPECT_FALSE(hit);
}

// KernelCache without a GPU: compile once, then serve from disk; production mode.
TEST(KernelCache, CompilesOnceThenServesFromDiskAndHonoursDisableJit) {
  std::string root = freshDir("kernelcache");
  AttentionSpec spec;
  spec.headDimQK = spec.headDimV = 64;
  spec.maxSharedMemory = documentedMaxSharedMemory(spec.arch);
  spec.tile = defaultTile(64, 64, spec.maxSharedMemory);
  KernelCacheOptions options;
  options.cacheDir = root;
  options.compile.verifyEachPass = false;

  KernelCacheOptions production = options;
  production.disableJit = true;
  KernelCache strict(nullptr, production);
  CachedKernel out;
  bool compiled = false;
  Status s = strict.resolve(spec, out, compiled);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("FLASHJIT_DISABLE_JIT is set and variant " + spec.variantName() +
                             " is not in the kernel cache"),
            std::string::npos)
      << s.message();

  KernelCache first(nullptr, options);
  ASSERT_TRUE(first.resolve(spec, out, compiled).isOk());
  EXPECT_TRUE(compiled);
  EXPECT_NE(out.ptx.find(".entry " + spec.variantName()), std::string::npos);

  KernelCache second(nullptr, options);
  CachedKernel again;
  ASSERT_TRUE(second.resolve(spec, again, compiled).isOk());
  EXPECT_FALSE(compiled);
  EXPECT_EQ(again.ptx, out.ptx);

  // Now in the cache: production mode finds it.
  KernelCache strictAgain(nullptr, production);
  ASSERT_TRUE(strictAgain.resolve(spec, again, compiled).isOk());
  EXPECT_FALSE(compiled);

  // A different optimisation level is a different key: production mode refuses it.
  KernelCacheOptions o1 = production;
  o1.compile.optLevel = 1;
  KernelCache otherOptions(nullptr, o1);
  EXPECT_FALSE(otherOptions.resolve(spec, again, compiled).isOk());
}
