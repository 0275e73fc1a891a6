"""ctypes binding of flashjit's C API (runtime/flashjit_c.h)."""
import ctypes
import os
import threading

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
        ("tile_qk_wgmma", ctypes.c_int32), ("tile_pv_wgmma", ctypes.c_int32),
        ("tile_warp_specialized", ctypes.c_int32), ("tile_persistent", ctypes.c_int32),
        ("use_window", ctypes.c_int32), ("window_left", ctypes.c_int32),
        ("window_right", ctypes.c_int32), ("softcap", ctypes.c_float),
        ("alibi_slopes", ctypes.c_void_p), ("alibi_batch_stride", ctypes.c_int64),
        ("cu_seqlens_q", ctypes.c_void_p), ("cu_seqlens_k", ctypes.c_void_p),
        ("total_q", ctypes.c_int64), ("total_k", ctypes.c_int64),
        ("seqlens_trusted", ctypes.c_int32),
        ("score_mod", ctypes.c_char_p), ("mask_mod", ctypes.c_char_p),
        ("dropout_p", ctypes.c_float), ("dropout_seed", ctypes.c_uint64),
        ("dropout_offset", ctypes.c_uint32),
        ("block_mask_kv_counts", ctypes.c_void_p),
        ("block_mask_kv_indices", ctypes.c_void_p),
        ("block_mask_q_counts", ctypes.c_void_p),
        ("block_mask_q_indices", ctypes.c_void_p),
        ("block_mask_block_q", ctypes.c_int64),
        ("block_mask_block_k", ctypes.c_int64),
        ("block_mask_batches", ctypes.c_int64),
        ("block_mask_heads", ctypes.c_int64),
        ("block_mask_trusted", ctypes.c_int32),
        ("pack_gqa", ctypes.c_int32),
        ("mask_mod_block_lists", ctypes.c_int32),
        ("tile_tma_store", ctypes.c_int32),
    ]


class AttentionBackwardParams(ctypes.Structure):
    _fields_ = [
        ("forward", AttentionParams),
        ("d_o", ctypes.c_void_p), ("d_q", ctypes.c_void_p), ("d_k", ctypes.c_void_p),
        ("d_v", ctypes.c_void_p),
        ("d_o_stride", ctypes.c_int64 * 3), ("d_q_stride", ctypes.c_int64 * 3),
        ("d_k_stride", ctypes.c_int64 * 3), ("d_v_stride", ctypes.c_int64 * 3),
        ("delta", ctypes.c_void_p),
        ("tile_dq", ctypes.c_int32 * 7), ("tile_dkv", ctypes.c_int32 * 7),
        ("atomic_dq", ctypes.c_int32),
        ("deterministic", ctypes.c_int32),
    ]


class FlashJitError(RuntimeError):
    """An error reported by the flashjit library (its message says why)."""


def library_path():
    """$FLASHJIT_LIBRARY, else the copy packaged at install time."""
    env = os.environ.get("FLASHJIT_LIBRARY")
    if env:
        return env
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib", "libflashjit.so")


class Library:
    """The loaded C library and one runtime per CUDA device."""

    def __init__(self, path=None):
        path = path or library_path()
        if not os.path.isfile(path):
            raise FlashJitError(
                f"flashjit: the library {path} is missing; reinstall the package after building "
                "flashjit, or set FLASHJIT_LIBRARY")
        self.lib = ctypes.CDLL(os.path.abspath(path))
        self.lib.flashjit_last_error.restype = ctypes.c_char_p
        self.lib.flashjit_runtime_create.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        self.lib.flashjit_attention.argtypes = [ctypes.c_void_p, ctypes.POINTER(AttentionParams),
                                                ctypes.c_void_p]
        self.lib.flashjit_attention_backward.argtypes = [
            ctypes.c_void_p, ctypes.POINTER(AttentionBackwardParams), ctypes.c_void_p]
        self.lib.flashjit_variant_name.argtypes = [ctypes.c_void_p, ctypes.POINTER(AttentionParams),
                                                   ctypes.c_char_p, ctypes.c_int64]
        self.runtimes = {}  # device index -> handle (read without the lock)
        self._lock = threading.Lock()

    def error(self):
        return self.lib.flashjit_last_error().decode()

    def runtime(self, device_key):
        """The runtime for a device; create it while that device's context is current."""
        with self._lock:
            rt = self.runtimes.get(device_key)
            if rt is None:
                handle = ctypes.c_void_p()
                if self.lib.flashjit_runtime_create(ctypes.byref(handle)) != 0:
                    raise FlashJitError(self.error())
                rt = self.runtimes[device_key] = handle
            return rt

    def attention(self, runtime, params, stream):
        if self.lib.flashjit_attention(runtime, ctypes.byref(params), stream) != 0:
            raise FlashJitError(self.error())

    def attention_backward(self, runtime, params, stream):
        if self.lib.flashjit_attention_backward(runtime, ctypes.byref(params), stream) != 0:
            raise FlashJitError(self.error())

    def variant(self, runtime, params):
        buf = ctypes.create_string_buffer(256)
        if self.lib.flashjit_variant_name(runtime, ctypes.byref(params), buf, 256) != 0:
            raise FlashJitError(self.error())
        return buf.value.decode()


_library = None
_library_lock = threading.Lock()


def library():
    global _library
    with _library_lock:
        if _library is None:
            _library = Library()
        return _library
