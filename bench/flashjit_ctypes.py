"""Minimal ctypes binding of flashjit's C API (runtime/flashjit_c.h) for the
benchmarks. The Python package proper (issue 6) will replace it."""
import ctypes
import os

DTYPE_BF16, DTYPE_F16 = 0, 1


class AttentionParams(ctypes.Structure):
    _fields_ = [
        ("dtype", ctypes.c_int32),
        ("q", ctypes.c_void_p), ("k", ctypes.c_void_p), ("v", ctypes.c_void_p),
        ("o", ctypes.c_void_p), ("lse", ctypes.c_void_p),
        ("batch", ctypes.c_int64), ("seq_q", ctypes.c_int64), ("seq_k", ctypes.c_int64),
        ("heads_q", ctypes.c_int64), ("heads_k", ctypes.c_int64),
        ("head_dim_qk", ctypes.c_int64), ("head_dim_v", ctypes.c_int64),
        ("q_stride", ctypes.c_int64 * 3), ("k_stride", ctypes.c_int64 * 3),
        ("v_stride", ctypes.c_int64 * 3), ("o_stride", ctypes.c_int64 * 3),
        ("causal", ctypes.c_int32), ("softmax_scale", ctypes.c_float),
        ("tile_m", ctypes.c_int32), ("tile_n", ctypes.c_int32),
        ("tile_warps", ctypes.c_int32), ("tile_stages", ctypes.c_int32),
    ]


class FlashJit:
    def __init__(self, path):
        self.lib = ctypes.CDLL(os.path.abspath(path))
        self.lib.flashjit_last_error.restype = ctypes.c_char_p
        self.lib.flashjit_attention.argtypes = [ctypes.c_void_p, ctypes.POINTER(AttentionParams),
                                                ctypes.c_void_p]
        self.lib.flashjit_variant_name.argtypes = [ctypes.c_void_p, ctypes.POINTER(AttentionParams),
                                                   ctypes.c_char_p, ctypes.c_int64]
        rt = ctypes.c_void_p()
        if self.lib.flashjit_runtime_create(ctypes.byref(rt)) != 0:
            raise RuntimeError(self.lib.flashjit_last_error().decode())
        self.rt = rt

    def params(self, q, k, v, o, lse=None, causal=False, tile=None):
        """q, k, v, o: torch tensors in [batch, seq, heads, dim] (any strides, last dim contiguous)."""
        import torch
        p = AttentionParams()
        p.dtype = DTYPE_F16 if q.dtype == torch.float16 else DTYPE_BF16
        p.q, p.k, p.v, p.o = q.data_ptr(), k.data_ptr(), v.data_ptr(), o.data_ptr()
        p.lse = lse.data_ptr() if lse is not None else None
        p.batch, p.seq_q, p.heads_q, p.head_dim_qk = q.shape
        p.seq_k, p.heads_k = k.shape[1], k.shape[2]
        p.head_dim_v = v.shape[3]
        for name, t in (("q_stride", q), ("k_stride", k), ("v_stride", v), ("o_stride", o)):
            getattr(p, name)[:] = t.stride()[:3]
        p.causal = int(causal)
        if tile:
            p.tile_m, p.tile_n, p.tile_warps, p.tile_stages = tile
        return p

    def attention(self, p, stream=None):
        if self.lib.flashjit_attention(self.rt, ctypes.byref(p), stream) != 0:
            raise RuntimeError(self.lib.flashjit_last_error().decode())

    def variant(self, p):
        buf = ctypes.create_string_buffer(256)
        if self.lib.flashjit_variant_name(self.rt, ctypes.byref(p), buf, 256) != 0:
            raise RuntimeError(self.lib.flashjit_last_error().decode())
        return buf.value.decode()
