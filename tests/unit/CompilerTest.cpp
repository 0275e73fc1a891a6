//===- CompilerTest.cpp - AttentionSpec -> PTX in process (no GPU) --------===//
#include "compiler/Compiler.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

using namespace flashjit;

namespace {

AttentionSpec spec(const char *arch, int64_t d, bool causal) {
  AttentionSpec s;
  s.arch = arch;
  s.headDimQK = s.headDimV = d;
  s.mask = causal ? Mask::Causal : Mask::None;
  s.maxSharedMemory = documentedMaxSharedMemory(arch);
  s.tile = defaultTile(d, d, s.maxSharedMemory);
  return s;
}

size_t count(const std::string &text, const std::string &what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
    ++n;
  return n;
}

} // namespace

TEST(Compiler, EmitsTensorCorePTXForTheKernelSymbol) {
  AttentionSpec s = spec("sm_80", 128, true);
  auto k = compileAttention(s, CompileOptions{});
  ASSERT_TRUE(bool(k)) << llvm::toString(k.takeError());
  EXPECT_NE(k->ptx.find(".entry " + s.variantName()), std::string::npos);
  EXPECT_NE(k->ptx.find(".target sm_80"), std::string::npos);
  // m=128 over 4 warps: 2 m-tiles; per key block 8 k-steps x 8 n-tiles x 2 for Q K^T
  // and 4 k-steps x 16 n-tiles x 2 for P V.
  EXPECT_EQ(count(k->ptx, "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"), 256u);
  EXPECT_GT(count(k->ptx, "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16"), 0u);
  EXPECT_GT(count(k->ptx, "cp.async.cg.shared.global"), 0u);
  EXPECT_EQ(count(k->ptx, "call."), 0u) << "no calls into libdevice or elsewhere";
  EXPECT_EQ(k->threads, 128);
  EXPECT_EQ(k->sharedMemoryBytes, s.sharedMemoryBytes());
}

TEST(Compiler, F16AndOddHeadDimsCompile) {
  for (int64_t d : {8, 40, 80, 160, 256}) {
    AttentionSpec s = spec("sm_90a", d, false);
    s.dtype = DType::F16;
    auto k = compileAttention(s, CompileOptions{});
    ASSERT_TRUE(bool(k)) << llvm::toString(k.takeError());
    EXPECT_NE(k->ptx.find("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32"), std::string::npos);
  }
}

TEST(Compiler, InvalidVariantReportsTheVerifierMessage) {
  AttentionSpec s = spec("sm_80", 256, false);
  s.tile = {256, 256, 16, 4};
  auto k = compileAttention(s, CompileOptions{});
  ASSERT_FALSE(bool(k));
  std::string message = llvm::toString(k.takeError());
  EXPECT_NE(message.find("bytes of shared memory, more than the 166912"), std::string::npos)
      << message;
  EXPECT_NE(message.find(s.variantName()), std::string::npos) << message;
}

TEST(Compiler, RejectsPreAmpereTargets) {
  AttentionSpec s = spec("sm_80", 64, false);
  s.arch = "sm_75";
  s.maxSharedMemory = 64 * 1024;
  auto k = compileAttention(s, CompileOptions{});
  ASSERT_FALSE(bool(k));
  EXPECT_NE(llvm::toString(k.takeError()).find("needs sm_80 or newer"), std::string::npos);
}

TEST(Compiler, ConcurrentCompilesGiveIdenticalPTX) {
  // Per-call contexts and TargetMachines: no shared mutable state.
  AttentionSpec s = spec("sm_80", 64, true);
  auto reference = compileAttention(s, CompileOptions{});
  ASSERT_TRUE(bool(reference));
  std::vector<std::string> results(2);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i)
    threads.emplace_back([&, i] {
      auto k = compileAttention(s, CompileOptions{});
      results[i] = k ? k->ptx : llvm::toString(k.takeError());
    });
  for (auto &t : threads)
    t.join();
  for (const std::string &r : results)
    EXPECT_EQ(r, reference->ptx);
}

TEST(Compiler, DumpDirReceivesEveryStage) {
  std::string dir = ::testing::TempDir() + "/flashjit-dump";
  CompileOptions o;
  o.dumpDir = dir;
  AttentionSpec s = spec("sm_80", 64, false);
  ASSERT_TRUE(bool(compileAttention(s, o)));
  for (Stage st : {Stage::FlashIR, Stage::KernelIR, Stage::LLVMIR, Stage::PTX}) {
    std::string path = dir + "/" + s.variantName() + "/" + stageFileName(st);
    FILE *f = fopen(path.c_str(), "r");
    ASSERT_NE(f, nullptr) << path;
    fseek(f, 0, SEEK_END);
    EXPECT_GT(ftell(f), 100) << path;
    fclose(f);
  }
}

// The disk cache's key carries a digest of the generator's sources, so a
// kernel cached by a build with another generator is not taken for this one's.
TEST(Compiler, IdentityNamesTheGeneratorDigest) {
  const std::string id = compilerIdentity(CompileOptions{});
  const size_t at = id.find("; generator ");
  ASSERT_NE(at, std::string::npos) << id;
  const std::string digest = id.substr(at + 12, 16);
  EXPECT_EQ(digest.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
  EXPECT_EQ(id[at + 12 + 16], ';') << id;
}
