//===- BundleTest.cpp - bundle writing, validation and selection (no GPU) -===//
#include "runtime/Autotuner.h"
#include "runtime/Bundle.h"
#include "tools/flash-gen/BundleWriter.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <unistd.h>

using namespace flashjit;

namespace {

AttentionSpec spec(int64_t d, bool causal, TileConfig tile = {128, 64, 4, 2}) {
  AttentionSpec s;
  s.arch = "sm_90a";
  s.headDimQK = s.headDimV = d;
  s.mask = causal ? Mask::Causal : Mask::None;
  s.maxSharedMemory = documentedMaxSharedMemory(s.arch);
  s.tile = tile;
  return s;
}

std::string slurp(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One bundle for the whole suite (compiling is the slow part).
const std::string &bundleDir() {
  static std::string dir = [] {
    std::string d = ::testing::TempDir() + "/flashjit-bundle-" + std::to_string(getpid());
    BundleRequest request;
    AttentionSpec blockMask = spec(96, false), packed = spec(96, false);
    blockMask.blockMask = true;
    packed.packGQA = true;
    request.specs = {spec(64, false), spec(64, true), spec(64, true, {64, 64, 4, 1}),
                     spec(128, false), blockMask, packed,
                     spec(96, true, {128, 128, 8, 2, true, true, true, true, true})};
    request.jobs = 2;
    request.tuning = json::Value::object();
    json::Value tile = json::Value::array();
    for (int x : {64, 64, 4, 1})
      tile.push(json::Value(x));
    request.tuning["sm_90a"]["tuned-key"] = tile;
    std::vector<BundleVariant> written;
    Status s = writeBundle(d, request, written);
    EXPECT_TRUE(s.isOk()) << s.message();
    return d;
  }();
  return dir;
}

std::string copyBundle(const std::string &name) {
  std::string copy = bundleDir() + "-" + name;
  std::string cmd = "rm -rf '" + copy + "' && cp -r '" + bundleDir() + "' '" + copy + "'";
  EXPECT_EQ(system(cmd.c_str()), 0);
  return copy;
}

} // namespace

TEST(Bundle, WritesAManifestThatLoadsAndVerifies) {
  Bundle b;
  Status s = Bundle::loadDirectory(bundleDir(), b);
  ASSERT_TRUE(s.isOk()) << s.message();
  ASSERT_EQ(b.variants().size(), 7u);
  EXPECT_TRUE(b.variants()[4].spec.blockMask); // the switches survive the manifest
  EXPECT_TRUE(b.variants()[5].spec.packGQA);
  EXPECT_TRUE(sameTile(b.variants()[6].spec.tile, {128, 128, 8, 2, true, true, true, true, true}))
      << tileName(b.variants()[6].spec.tile);
  EXPECT_EQ(b.flashjitVersion(), FLASHJIT_VERSION_STRING);
  const BundleVariant &v = b.variants()[0];
  EXPECT_EQ(v.kernel, v.spec.variantName());
  EXPECT_EQ(v.ptxPath, "sm_90a/" + v.spec.variantName() + ".ptx");
  EXPECT_EQ(v.threads, 128);
  EXPECT_EQ(v.sharedMemoryBytes, v.spec.sharedMemoryBytes());
  std::string ptx;
  ASSERT_TRUE(b.image(v, true, ptx).isOk());
  EXPECT_NE(ptx.find(".entry " + v.kernel), std::string::npos);
}

TEST(Bundle, SelectsExactTilesTunedTilesOrAnyTileOfTheProblem) {
  Bundle b;
  ASSERT_TRUE(Bundle::loadDirectory(bundleDir(), b).isOk());
  std::string missing;
  const BundleVariant *v = b.select(spec(64, true), true, "", missing);
  ASSERT_NE(v, nullptr) << missing;
  EXPECT_EQ(tileName(v->spec.tile), "m128n64w4s2");
  // The bundle's tuned tile wins when the caller did not insist on one.
  v = b.select(spec(64, true), false, "tuned-key", missing);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(tileName(v->spec.tile), "m64n64w4s1");
  // A tile the bundle lacks: any tile of the same problem, unless exact.
  v = b.select(spec(128, false, {64, 32, 4, 3}), false, "", missing);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(tileName(v->spec.tile), "m128n64w4s2");
  EXPECT_EQ(b.select(spec(128, false, {64, 32, 4, 3}), true, "", missing), nullptr);
  EXPECT_NE(missing.find("with tile m64n32w4s3"), std::string::npos) << missing;
}

TEST(Bundle, MissingVariantNamesItAndTheClosestOnes) {
  Bundle b;
  ASSERT_TRUE(Bundle::loadDirectory(bundleDir(), b).isOk());
  AttentionSpec want = spec(128, true);
  std::string missing;
  EXPECT_EQ(b.select(want, false, "", missing), nullptr);
  EXPECT_NE(missing.find("has no variant for bf16 d_qk=128 d_v=128 mask=causal lse=no arch=sm_90a"),
            std::string::npos)
      << missing;
  EXPECT_NE(missing.find("(wanted " + want.variantName() + ")"), std::string::npos);
  // Closest first: same head dim (d128, no mask) outranks same mask (d64 causal).
  EXPECT_NE(missing.find("closest: flash_fwd_bf16_d128_m128n64w4s2_sm90a"), std::string::npos)
      << missing;
  AttentionSpec otherArch = spec(64, false);
  otherArch.arch = "sm_80";
  EXPECT_EQ(b.select(otherArch, false, "", missing), nullptr);
}

// A plain kernel computes something else than the dropout or modifier
// variant asked for: never served in its place, whatever the tile rules.
TEST(Bundle, NeverServesAPlainKernelForDropoutOrModifiers) {
  Bundle b;
  ASSERT_TRUE(Bundle::loadDirectory(bundleDir(), b).isOk());
  std::string missing;
  ASSERT_NE(b.select(spec(64, false), false, "", missing), nullptr); // the plain one is there
  AttentionSpec dropout = spec(64, false);
  dropout.dropout = true;
  AttentionSpec scoreMod = spec(64, false);
  scoreMod.scoreMod = "score * 0.5";
  AttentionSpec maskMod = spec(64, false);
  maskMod.maskMod = "kv_idx <= q_idx";
  for (const AttentionSpec &want : {dropout, scoreMod, maskMod}) {
    EXPECT_EQ(b.select(want, false, "", missing), nullptr) << want.variantName();
    EXPECT_EQ(b.select(want, false, "tuned-key", missing), nullptr) << want.variantName();
    EXPECT_NE(missing.find("(wanted " + want.variantName() + ")"), std::string::npos) << missing;
  }
  EXPECT_NE(missing.find("mask_mod=kv_idx <= q_idx"), std::string::npos) << missing;
}

// A block-mask or GQA-packed kernel reads other parameters or walks another
// grid: neither stands in for a plain one, nor a plain one for either.
TEST(Bundle, BlockMaskAndPackedKernelsServeOnlyTheirOwnRequests) {
  Bundle b;
  ASSERT_TRUE(Bundle::loadDirectory(bundleDir(), b).isOk());
  std::string missing;
  AttentionSpec blockMask = spec(96, false), packed = spec(96, false);
  blockMask.blockMask = true;
  packed.packGQA = true;
  for (const AttentionSpec &want : {blockMask, packed}) {
    const BundleVariant *v = b.select(want, true, "", missing);
    ASSERT_NE(v, nullptr) << missing;
    EXPECT_EQ(v->spec.variantName(), want.variantName());
  }
  EXPECT_EQ(b.select(spec(96, false), false, "", missing), nullptr); // only the special ones
  AttentionSpec maskedPacked = packed;
  maskedPacked.blockMask = true;
  EXPECT_EQ(b.select(maskedPacked, false, "", missing), nullptr);
  AttentionSpec plainMasked = spec(64, false);
  plainMasked.blockMask = true; // the bundle has d64 plain only
  EXPECT_EQ(b.select(plainMasked, false, "", missing), nullptr);
}

TEST(Bundle, DamagedOrForeignBundlesAreRejectedAtLoad) {
  std::string damaged = copyBundle("damaged");
  Bundle b;
  {
    std::string path = damaged + "/sm_90a/" + spec(64, false).variantName() + ".ptx";
    std::string ptx = slurp(path);
    ptx[ptx.size() / 2] ^= 1;
    std::ofstream(path, std::ios::binary | std::ios::trunc) << ptx;
  }
  Status s = Bundle::loadDirectory(damaged, b);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("does not match its checksum (damaged bundle)"), std::string::npos)
      << s.message();

  std::string other = copyBundle("version");
  {
    std::string m = slurp(other + "/manifest.json");
    m.replace(m.find(FLASHJIT_VERSION_STRING), strlen(FLASHJIT_VERSION_STRING), "9.9.9");
    std::ofstream(other + "/manifest.json", std::ios::trunc) << m;
  }
  s = Bundle::loadDirectory(other, b);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("was generated by flashjit 9.9.9"), std::string::npos) << s.message();

  std::string edited = copyBundle("edited");
  {
    std::string m = slurp(edited + "/manifest.json");
    size_t at = m.find("\"head_dim_qk\": 64");
    m.replace(at, strlen("\"head_dim_qk\": 64"), "\"head_dim_qk\": 72");
    std::ofstream(edited + "/manifest.json", std::ios::trunc) << m;
  }
  s = Bundle::loadDirectory(edited, b);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("its spec does not match its fields"), std::string::npos)
      << s.message();

  s = Bundle::loadDirectory(bundleDir() + "-does-not-exist", b);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("cannot read"), std::string::npos);
}

TEST(Bundle, EmbeddedSourceHoldsEveryFile) {
  std::string out = bundleDir() + "-src";
  ASSERT_TRUE(writeEmbeddedSource(bundleDir(), out, "test_kernels").isOk());
  std::string header = slurp(out + "/test_kernels.h");
  std::string source = slurp(out + "/test_kernels.c");
  EXPECT_NE(header.find("const struct flashjit_embedded_bundle *test_kernels(void);"),
            std::string::npos);
  Bundle b;
  ASSERT_TRUE(Bundle::loadDirectory(bundleDir(), b).isOk());
  for (const BundleVariant &v : b.variants()) {
    EXPECT_NE(header.find(v.spec.variantName()), std::string::npos);
    EXPECT_NE(source.find("\"" + v.ptxPath + "\""), std::string::npos);
  }
}
