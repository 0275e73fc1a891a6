//===- CApi.cpp - the C API over flashjit::Runtime ------------------------===//
#include "runtime/flashjit_c.h"

#include "runtime/flashjit.h"

#include <algorithm>
#include <cstring>
#include <new>

struct flashjit_runtime {
  std::unique_ptr<flashjit::Runtime> runtime;
};

static thread_local std::string lastError;

static int fail(const std::string &message) {
  lastError = message;
  return 1;
}

static flashjit::AttentionParams toParams(const flashjit_attention_params &c) {
  flashjit::AttentionParams p;
  p.dtype = c.dtype == FLASHJIT_DTYPE_F16 ? flashjit::DType::F16 : flashjit::DType::BF16;
  p.q = c.q;
  p.k = c.k;
  p.v = c.v;
  p.o = c.o;
  p.lse = c.lse;
  p.batch = c.batch;
  p.seqQ = c.seq_q;
  p.seqK = c.seq_k;
  p.headsQ = c.heads_q;
  p.headsK = c.heads_k;
  p.headDimQK = c.head_dim_qk;
  p.headDimV = c.head_dim_v;
  for (int i = 0; i < 3; ++i) {
    p.qStride[i] = c.q_stride[i];
    p.kStride[i] = c.k_stride[i];
    p.vStride[i] = c.v_stride[i];
    p.oStride[i] = c.o_stride[i];
  }
  p.causal = c.causal != 0;
  p.softmaxScale = c.softmax_scale;
  if (c.use_window) {
    p.windowLeft = c.window_left;
    p.windowRight = c.window_right;
  }
  p.softcap = c.softcap;
  p.alibiSlopes = c.alibi_slopes;
  p.alibiBatchStride = c.alibi_batch_stride;
  p.cuSeqlensQ = c.cu_seqlens_q;
  p.cuSeqlensK = c.cu_seqlens_k;
  p.totalQ = c.total_q;
  p.totalK = c.total_k;
  p.seqlensTrusted = c.seqlens_trusted != 0;
  p.scoreMod = c.score_mod;
  p.maskMod = c.mask_mod;
  p.dropoutP = c.dropout_p;
  p.dropoutSeed = c.dropout_seed;
  p.dropoutOffset = c.dropout_offset;
  flashjit::BlockMask &m = p.blockMask;
  m.kvCounts = c.block_mask_kv_counts;
  m.kvIndices = c.block_mask_kv_indices;
  m.qCounts = c.block_mask_q_counts;
  m.qIndices = c.block_mask_q_indices;
  m.blockQ = c.block_mask_block_q ? c.block_mask_block_q : 128;
  m.blockK = c.block_mask_block_k ? c.block_mask_block_k : 128;
  m.batches = c.block_mask_batches ? c.block_mask_batches : 1;
  m.heads = c.block_mask_heads ? c.block_mask_heads : 1;
  m.trusted = c.block_mask_trusted != 0;
  using PackGQA = flashjit::AttentionParams::PackGQA;
  p.packGQA = c.pack_gqa > 0 ? PackGQA::Always : c.pack_gqa < 0 ? PackGQA::Never : PackGQA::Auto;
  p.maskModBlockLists = c.mask_mod_block_lists >= 0;
  if (c.tile_m || c.tile_n || c.tile_warps || c.tile_stages)
    p.tile = flashjit::TileConfig{c.tile_m, c.tile_n, c.tile_warps, c.tile_stages,
                                  c.tile_qk_wgmma != 0, c.tile_pv_wgmma != 0,
                                  c.tile_warp_specialized != 0, c.tile_persistent != 0,
                                  c.tile_tma_store != 0};
  return p;
}

static bool checkDType(const flashjit_attention_params *p) {
  return p->dtype == FLASHJIT_DTYPE_BF16 || p->dtype == FLASHJIT_DTYPE_F16;
}

extern "C" {

static int createWith(const flashjit::RuntimeOptions &options, flashjit_runtime **out) {
  if (!out)
    return fail("flashjit_runtime_create: out is NULL");
  *out = nullptr;
  auto *rt = new (std::nothrow) flashjit_runtime;
  if (!rt)
    return fail("out of memory");
  if (flashjit::Status s = flashjit::Runtime::create(rt->runtime, options); !s) {
    delete rt;
    return fail(s.message());
  }
  *out = rt;
  lastError.clear();
  return 0;
}

int flashjit_runtime_create(flashjit_runtime **out) {
  return createWith(flashjit::RuntimeOptions::fromEnvironment(), out);
}

int flashjit_runtime_create_from_bundle(const char *dir, flashjit_runtime **out) {
  if (!dir)
    return fail("flashjit_runtime_create_from_bundle: bundle_dir is NULL");
  flashjit::RuntimeOptions options = flashjit::RuntimeOptions::fromEnvironment();
  options.bundlePath = dir;
  return createWith(options, out);
}

int flashjit_runtime_create_from_embedded(const flashjit_embedded_bundle *bundle,
                                          flashjit_runtime **out) {
  if (!bundle)
    return fail("flashjit_runtime_create_from_embedded: bundle is NULL");
  flashjit::RuntimeOptions options = flashjit::RuntimeOptions::fromEnvironment();
  options.embeddedBundle = bundle;
  return createWith(options, out);
}

void flashjit_runtime_destroy(flashjit_runtime *rt) { delete rt; }

int flashjit_attention(flashjit_runtime *rt, const flashjit_attention_params *p, void *stream) {
  if (!rt || !p)
    return fail("flashjit_attention: runtime and params must not be NULL");
  if (!checkDType(p))
    return fail("flashjit_attention: unknown dtype " + std::to_string(p->dtype));
  flashjit::Status s = rt->runtime->attention(toParams(*p), static_cast<CUstream>(stream));
  if (!s)
    return fail(s.message());
  lastError.clear();
  return 0;
}

int flashjit_attention_backward(flashjit_runtime *rt, const flashjit_attention_backward_params *p,
                                void *stream) {
  if (!rt || !p)
    return fail("flashjit_attention_backward: runtime and params must not be NULL");
  if (!checkDType(&p->forward))
    return fail("flashjit_attention_backward: unknown dtype " + std::to_string(p->forward.dtype));
  flashjit::AttentionBackwardParams b;
  b.forward = toParams(p->forward);
  b.forward.tile.reset();
  b.dO = p->d_o;
  b.dQ = p->d_q;
  b.dK = p->d_k;
  b.dV = p->d_v;
  for (int i = 0; i < 3; ++i) {
    b.dOStride[i] = p->d_o_stride[i];
    b.dQStride[i] = p->d_q_stride[i];
    b.dKStride[i] = p->d_k_stride[i];
    b.dVStride[i] = p->d_v_stride[i];
  }
  b.delta = p->delta;
  auto tileOf = [](const int32_t t[7]) -> std::optional<flashjit::TileConfig> {
    if (std::all_of(t, t + 7, [](int32_t x) { return x == 0; }))
      return std::nullopt;
    return flashjit::TileConfig{t[0],      t[1],      t[2],      t[3],
                                t[4] != 0, t[4] != 0, t[5] != 0, t[6] != 0};
  };
  b.tileDQ = tileOf(p->tile_dq);
  b.tileDKV = tileOf(p->tile_dkv);
  b.atomicQueryGradient = p->atomic_dq != 0;
  b.deterministic = p->deterministic != 0;
  flashjit::Status s = rt->runtime->attentionBackward(b, static_cast<CUstream>(stream));
  if (!s)
    return fail(s.message());
  lastError.clear();
  return 0;
}

int flashjit_variant_name(flashjit_runtime *rt, const flashjit_attention_params *p, char *buf,
                          int64_t size) {
  if (!rt || !p || !buf || size <= 0)
    return fail("flashjit_variant_name: invalid arguments");
  if (!checkDType(p))
    return fail("flashjit_variant_name: unknown dtype " + std::to_string(p->dtype));
  flashjit::AttentionSpec spec;
  if (flashjit::Status s = rt->runtime->selectVariant(toParams(*p), spec); !s)
    return fail(s.message());
  std::string name = spec.variantName();
  if (int64_t(name.size()) >= size)
    return fail("flashjit_variant_name: buffer too small");
  std::memcpy(buf, name.c_str(), name.size() + 1);
  return 0;
}

const char *flashjit_last_error(void) { return lastError.c_str(); }

} // extern "C"
