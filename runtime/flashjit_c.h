/*===- flashjit_c.h - C API ------------------------------------------------===*/
/* Errors are return codes plus a message; nothing is thrown or aborted.       */
#ifndef FLASHJIT_RUNTIME_FLASHJIT_C_H
#define FLASHJIT_RUNTIME_FLASHJIT_C_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define FLASHJIT_C_API __attribute__((visibility("default")))
#else
#define FLASHJIT_C_API
#endif

typedef struct flashjit_runtime flashjit_runtime;

/* Kernels embedded in a program by `flash-gen --emit-source`: the bundle's
   manifest and files as bytes. */
struct flashjit_embedded_file {
  const char *path;
  const unsigned char *data;
  unsigned long long size;
};
struct flashjit_embedded_bundle {
  const char *manifest;
  const struct flashjit_embedded_file *files;
  unsigned long long fileCount;
};

enum { FLASHJIT_DTYPE_BF16 = 0, FLASHJIT_DTYPE_F16 = 1 };

typedef struct flashjit_attention_params {
  int32_t dtype; /* FLASHJIT_DTYPE_* */
  const void *q, *k, *v;
  void *o;
  float *lse; /* optional */
  int64_t batch, seq_q, seq_k, heads_q, heads_k, head_dim_qk, head_dim_v;
  int64_t q_stride[3], k_stride[3], v_stride[3], o_stride[3]; /* elements; 0 = contiguous */
  int32_t causal;
  float softmax_scale; /* 0 = 1/sqrt(head_dim_qk) */
  int32_t tile_m, tile_n, tile_warps, tile_stages; /* all 0 = default */
  int32_t tile_qk_wgmma; /* with an explicit tile: S = Q K^T on wgmma (sm_90a) */
  int32_t tile_pv_wgmma; /* with an explicit tile: O += P V on wgmma (sm_90a) */
  int32_t tile_warp_specialized; /* with both wgmma switches: TMA producer warpgroup (sm_90a) */
  int32_t tile_persistent;       /* with warp_specialized: one block per SM walks the tiles */
  /* Sliding window (FlashAttention-2's window_size), with use_window != 0:
     query i sees keys i + seq_k - seq_q - window_left ... + window_right; a
     negative bound is unbounded on that side. */
  int32_t use_window, window_left, window_right;
  float softcap; /* > 0: scores become softcap * tanh(scores / softcap) */
  /* ALiBi: fp32 slopes [heads_q], or [batch, heads_q] with alibi_batch_stride
     floats between batches (0: one set for all); NULL = off. */
  const float *alibi_slopes;
  int64_t alibi_batch_stride;
  /* Packed variable-length sequences (flash_attn_varlen_func), when
     cu_seqlens_q and cu_seqlens_k (device int32 [batch + 1] prefix sums) are
     set: q/o are [total_q, heads_q, dim], k/v [total_k, heads_k, dim] (batch
     strides unused), seq_q/seq_k the longest lengths, lse [heads_q, total_q].
     The sums are checked on the host (one stream sync) unless
     seqlens_trusted != 0. */
  const int32_t *cu_seqlens_q, *cu_seqlens_k;
  int64_t total_q, total_k;
  int32_t seqlens_trusted;
  /* User modifiers, C expressions compiled into the kernel (NULL or "" =
     none): score_mod maps score, b, h, q_idx, kv_idx to a new logit, mask_mod
     keeps a key where true. See flashjit.h's AttentionParams. */
  const char *score_mod, *mask_mod;
  /* Dropout on the probabilities (FlashAttention-2's dropout_p): 0 = off.
     Which are dropped depends only on (dropout_seed, dropout_offset) and the
     element's batch, head, query and key; the backward of the same params
     drops the same ones. See flashjit.h's AttentionParams. */
  float dropout_p;
  uint64_t dropout_seed;
  uint32_t dropout_offset;
  /* A block mask (FlexAttention's BlockMask; flashjit.h's BlockMask) when
     block_mask_kv_counts is set: query block r of batch b, head h visits only
     the kv_counts[b][h][r] key blocks listed (ascending) in
     kv_indices[b][h][r][..] (device int32, contiguous); the backward also
     takes the transpose (q_counts [.., key blocks], q_indices [.., key
     blocks, query blocks]). Block sizes 0 = 128; batches / heads 1 (shared)
     or batch / heads_q, 0 = 1. The lists are checked on the host (one stream
     sync) unless block_mask_trusted != 0. */
  const int32_t *block_mask_kv_counts, *block_mask_kv_indices;
  const int32_t *block_mask_q_counts, *block_mask_q_indices;
  int64_t block_mask_block_q, block_mask_block_k, block_mask_batches, block_mask_heads;
  int32_t block_mask_trusted;
  /* GQA head packing (flashjit.h's AttentionParams::packGQA): 0 = auto (pack
     where it needs fewer tiles, e.g. decoding), 1 = always (an error where it
     cannot), -1 = never. */
  int32_t pack_gqa;
  /* With a mask_mod (flashjit.h's AttentionParams::maskModBlockLists): 0 =
     list the key blocks it may keep first, so the forward skips every empty
     block (default); -1 = do not (empty blocks only trimmed at a row's ends). */
  int32_t mask_mod_block_lists;
  int32_t tile_tma_store; /* with warp_specialized: O leaves through shared memory and TMA */
} flashjit_attention_params;

/* The backward pass of a forward call `forward` (its o is the forward's
   output, its lse the forward's LSE: both required; the tile fields are
   ignored). Gradients are written in the tensors' dtype; d_k and d_v have the
   key/value heads' shapes (GQA groups summed). dQ is summed atomically where
   that is faster unless `deterministic` (AttentionBackwardParams in flashjit.h). */
typedef struct flashjit_attention_backward_params {
  flashjit_attention_params forward;
  const void *d_o; /* [batch, seq_q, heads_q, head_dim_v] */
  void *d_q, *d_k, *d_v;
  int64_t d_o_stride[3], d_q_stride[3], d_k_stride[3], d_v_stride[3]; /* 0 = contiguous */
  float *delta; /* optional fp32 workspace [batch, heads_q, seq_q] ([heads_q, total_q] when
                   varlen); NULL = allocated on the stream */
  int32_t tile_dq[7];  /* m, n, warps, stages, wgmma (1: every product on wgmma, sm_90a;
                          the warps own m = 16 * warps rows), warp_specialized (1: a TMA
                          producer warpgroup beside 4 or 8 warps, with wgmma), persistent
                          (0 here) of the dQ kernel; all 0 = default */
  int32_t tile_dkv[7]; /* the same for the dK/dV kernel(s) (the warps own n rows);
                          persistent 1 (with warp_specialized): as many blocks as the SMs
                          hold, each walking many key blocks */
  int32_t atomic_dq; /* 1: dQ summed by bulk reductions in the key-block kernel (sm_90a,
                        wgmma tile; not bit-identical run to run; tile_dq must be 0) */
  int32_t deterministic; /* 1: bit-identical gradients run to run (no atomic dQ);
                            0: the runtime picks the faster form */
} flashjit_attention_backward_params;

/* Returns 0 on success; on failure *out is NULL and flashjit_last_error() says why. */
FLASHJIT_C_API int flashjit_runtime_create(flashjit_runtime **out);
/* A runtime that takes its kernels from a bundle directory written by
   `flash-gen --bundle DIR` (then, in the full library, from the JIT if allowed). */
FLASHJIT_C_API int flashjit_runtime_create_from_bundle(const char *bundle_dir,
                                                       flashjit_runtime **out);
/* The same from kernels embedded with `flash-gen --emit-source`. */
FLASHJIT_C_API int flashjit_runtime_create_from_embedded(
    const struct flashjit_embedded_bundle *bundle, flashjit_runtime **out);
FLASHJIT_C_API void flashjit_runtime_destroy(flashjit_runtime *rt);
/* stream: a CUstream (NULL for the default stream). Returns 0 on success. */
FLASHJIT_C_API int flashjit_attention(flashjit_runtime *rt, const flashjit_attention_params *p,
                                      void *stream);
FLASHJIT_C_API int flashjit_attention_backward(flashjit_runtime *rt,
                                               const flashjit_attention_backward_params *p,
                                               void *stream);
/* Writes the variant name that would run into buf (NUL-terminated). */
FLASHJIT_C_API int flashjit_variant_name(flashjit_runtime *rt, const flashjit_attention_params *p,
                                         char *buf, int64_t size);
/* The last error of the calling thread ("" when none). */
FLASHJIT_C_API const char *flashjit_last_error(void);

#ifdef __cplusplus
}
#endif

#endif
