"""flashjit's dropout mask on the CPU with numpy, from its definition
(compiler/Dropout.cpp): element (b, h, i, j) takes 16 bits of
Philox-4x32-10 (Random123) keyed by the 64-bit seed, with the counter
((j >> 4) * 4 + ((j & 7) >> 1), (i >> 4) * 8 + (i & 7), b * heads_q + h, offset),
word 2 ((i >> 3) & 1) + ((j >> 3) & 1), bits 16 (j & 1) up; kept when they are
at least round(p * 65536)."""
import numpy as np

_U32 = np.uint64(0xFFFFFFFF)


def philox4x32_10(counter, key0, key1):
    """Philox-4x32-10 of four uint64 arrays of 32-bit words (the counter) under
    key (key0, key1); returns the four output words as uint64 arrays."""
    c = [np.asarray(x, dtype=np.uint64) & _U32 for x in counter]
    k0, k1 = np.uint64(key0) & _U32, np.uint64(key1) & _U32
    for _ in range(10):
        p0, p1 = np.uint64(0xD2511F53) * c[0], np.uint64(0xCD9E8D57) * c[2]
        c = [((p1 >> np.uint64(32)) ^ c[1] ^ k0) & _U32, p1 & _U32,
             ((p0 >> np.uint64(32)) ^ c[3] ^ k1) & _U32, p0 & _U32]
        k0, k1 = (k0 + np.uint64(0x9E3779B9)) & _U32, (k1 + np.uint64(0xBB67AE85)) & _U32
    return c


def dropout_keep(batch, heads_q, seq_q, seq_k, p, seed, offset):
    """Bool keep mask [batch, heads_q, seq_q, seq_k]."""
    u = np.uint64
    b, h, i, j = np.meshgrid(np.arange(batch, dtype=u), np.arange(heads_q, dtype=u),
                             np.arange(seq_q, dtype=u), np.arange(seq_k, dtype=u), indexing="ij")
    counter = [(j >> u(4)) * u(4) + ((j & u(7)) >> u(1)), (i >> u(4)) * u(8) + (i & u(7)),
               b * u(heads_q) + h, np.full(b.shape, offset, dtype=u)]
    words = philox4x32_10(counter, seed & 0xFFFFFFFF, seed >> 32)
    which = (u(2) * ((i >> u(3)) & u(1)) + ((j >> u(3)) & u(1))).astype(np.int64)
    bits = (np.choose(which, words) >> (u(16) * (j & u(1)))) & u(0xFFFF)
    threshold = min(65536, int(np.floor(float(np.float32(p)) * 65536.0 + 0.5)))  # p as the C API holds it
    return bits >= u(threshold)
