"""The Python API's argument checks and error messages, without a GPU (and
without PyTorch: stand-in tensors carry shape, strides, dtype and device)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import flashjit  # noqa: E402
from flashjit._validate import (check_dropout, check_packed, check_qkv,  # noqa: E402
                                check_score_modifiers)


class FakeTensor:
    def __init__(self, shape, dtype="torch.bfloat16", cuda=True, strides=None):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.is_cuda = cuda
        self.device = "cuda:0" if cuda else "cpu"
        if strides is None:
            strides, acc = [], 1
            for n in reversed(self.shape):
                strides.insert(0, acc)
                acc *= n
        self._strides = tuple(strides)

    def stride(self, dim=None):
        return self._strides if dim is None else self._strides[dim]


def qkv(**kw):
    shape = kw.pop("shape", (2, 128, 8, 64))
    return FakeTensor(shape, **kw), FakeTensor(shape, **kw), FakeTensor(shape, **kw)


def test_valid_request_is_described():
    assert check_qkv(*qkv()) == ("bfloat16", 2, 128, 128, 8, 8, 64, 64)
    q = FakeTensor((2, 100, 8, 64), "torch.float16")
    k = FakeTensor((2, 300, 2, 64), "torch.float16")
    v = FakeTensor((2, 300, 2, 32), "torch.float16")
    assert check_qkv(q, k, v) == ("float16", 2, 100, 300, 8, 2, 64, 32)


@pytest.mark.parametrize("make, message", [
    (lambda: qkv(cuda=False), "q is on cpu; flashjit runs on CUDA tensors"),
    (lambda: qkv(dtype="torch.float32"), "q has dtype float32; flashjit supports float16 and bfloat16"),
    (lambda: qkv(shape=(2, 128, 512)), "q must be 4-D [batch, seq, heads, head_dim]"),
    (lambda: qkv(shape=(2, 128, 8, 72 + 4)), "head_dim 76 of q/k is not supported"),
    (lambda: qkv(shape=(2, 128, 8, 264)), "head_dim 264 of q/k is not supported"),
    (lambda: (FakeTensor((2, 128, 8, 64)), FakeTensor((2, 128, 3, 64)), FakeTensor((2, 128, 3, 64))),
     "q's heads (8) must be a multiple of k's heads (3)"),
    (lambda: (FakeTensor((2, 128, 8, 64)), FakeTensor((3, 128, 8, 64)), FakeTensor((3, 128, 8, 64))),
     "batch sizes differ: q 2, k 3, v 3"),
    (lambda: (FakeTensor((2, 128, 8, 64)), FakeTensor((2, 128, 8, 64)), FakeTensor((2, 64, 8, 64))),
     "k and v must have the same sequence length"),
    (lambda: (FakeTensor((2, 128, 8, 64)), FakeTensor((2, 128, 8, 64), strides=(65536, 512, 1, 8)),
              FakeTensor((2, 128, 8, 64))),
     "the last dimension of k must be contiguous"),
    (lambda: (FakeTensor((2, 128, 8, 64)), FakeTensor((2, 128, 8, 64), "torch.float16"),
              FakeTensor((2, 128, 8, 64))),
     "q, k and v must have the same dtype"),
    (lambda: ([1, 2], FakeTensor((2, 128, 8, 64)), FakeTensor((2, 128, 8, 64))),
     "q must be a torch.Tensor, got list"),
])
def test_bad_requests_name_the_argument(make, message):
    with pytest.raises((ValueError, TypeError)) as err:
        check_qkv(*make())
    assert message in str(err.value)


@pytest.mark.parametrize("kwargs, argument", [
    ({"return_attn_probs": True}, "return_attn_probs"),
])
def test_features_not_built_yet_raise_not_implemented(kwargs, argument):
    with pytest.raises(NotImplementedError) as err:
        flashjit.flash_attn_func(*qkv(), **kwargs)
    assert argument in str(err.value)


def test_score_modifiers_are_read_like_flash_attn():
    slopes = FakeTensor((8,), "torch.float32")
    assert check_score_modifiers((-1, -1), 0.0, None, 2, 8, "cuda:0") == (-1, -1, 0.0, 0)
    assert check_score_modifiers([4096, 0], 30, slopes, 2, 8, "cuda:0") == (4096, 0, 30.0, 0)
    per_batch = FakeTensor((2, 8), "torch.float32")
    assert check_score_modifiers((-1, -1), 0.0, per_batch, 2, 8, "cuda:0")[3] == 8


@pytest.mark.parametrize("args, message", [
    (((128,), 0.0, None), "window_size must be a pair"),
    (((-1, -1), -1.0, None), "softcap must be 0 (off) or a positive finite number"),
    (((-1, -1), float("nan"), None), "softcap must be 0"),
    (((-1, -1), 0.0, FakeTensor((8,), "torch.float16")), "alibi_slopes must be float32"),
    (((-1, -1), 0.0, FakeTensor((4,), "torch.float32")), "alibi_slopes must have shape (8,)"),
    (((-1, -1), 0.0, FakeTensor((8,), "torch.float32", cuda=False)), "alibi_slopes is on cpu"),
    (((-1, -1), 0.0, [0.5] * 8), "alibi_slopes must be a float32 CUDA tensor"),
])
def test_bad_score_modifiers_name_the_argument(args, message):
    with pytest.raises((ValueError, TypeError)) as err:
        check_score_modifiers(*args, 2, 8, "cuda:0")
    assert message in str(err.value)


def test_varlen_arguments_are_checked_like_flash_attn():
    q = FakeTensor((100, 8, 64))
    cu = FakeTensor((4,), "torch.int32")
    assert check_packed(q, q, q, cu, cu, 60, 60) == 3


@pytest.mark.parametrize("args, message", [
    ((FakeTensor((1, 100, 8, 64)), FakeTensor((4,), "torch.int32"), 60),
     "varlen q must be 3-D [total, heads, head_dim]"),
    ((FakeTensor((100, 8, 64)), FakeTensor((4,), "torch.int64"), 60),
     "cu_seqlens_q must be int32"),
    ((FakeTensor((100, 8, 64)), FakeTensor((4,), "torch.int32", cuda=False), 60),
     "cu_seqlens_q is on cpu"),
    ((FakeTensor((100, 8, 64)), FakeTensor((4, 1), "torch.int32"), 60),
     "cu_seqlens_q must be 1-D [batch + 1]"),
    ((FakeTensor((100, 8, 64)), FakeTensor((4,), "torch.int32"), -1),
     "max_seqlen_q must be a non-negative int"),
])
def test_bad_varlen_arguments_name_the_argument(args, message):
    q, cu, max_len = args
    with pytest.raises((ValueError, TypeError)) as err:
        check_packed(q, q, q, cu, cu, max_len, 60)
    assert message in str(err.value)


def test_varlen_lengths_must_pair_up():
    q = FakeTensor((100, 8, 64))
    with pytest.raises(ValueError, match="must have the same length"):
        check_packed(q, q, q, FakeTensor((4,), "torch.int32"), FakeTensor((5,), "torch.int32"),
                     60, 60)


def test_packed_qkv_shape_is_checked():
    with pytest.raises(ValueError, match=r"qkv must be \[batch, seq, 3, heads, head_dim\]"):
        flashjit.flash_attn_qkvpacked_func(FakeTensor((2, 128, 8, 64)))


def test_missing_library_is_a_clear_error(monkeypatch, tmp_path):
    from flashjit import _library
    monkeypatch.setenv("FLASHJIT_LIBRARY", str(tmp_path / "nowhere.so"))
    with pytest.raises(_library.FlashJitError, match="is missing"):
        _library.Library()


def test_library_loads_when_built():
    """The C library itself loads without a GPU (the CUDA driver is opened lazily)."""
    from flashjit import _library
    candidates = [os.environ.get("FLASHJIT_LIBRARY", "")] + [
        os.path.join(os.path.dirname(__file__), "..", "..", d, "runtime", "libflashjit.so")
        for d in ("build", "build-static")]
    path = next((c for c in candidates if c and os.path.isfile(c)), None)
    if path is None:
        pytest.skip("libflashjit.so is not built")
    lib = _library.Library(path)
    handle = _library.ctypes.c_void_p()
    rc = lib.lib.flashjit_runtime_create(_library.ctypes.byref(handle))
    if rc != 0:  # no GPU here: the error must say so, not crash
        assert "CUDA" in lib.error() or "GPU" in lib.error() or "device" in lib.error()


def test_named_modifiers_are_expressions():
    from flashjit import modifiers as mods
    assert mods.relative_position_bias(0.5) == "score - 0.5 * abs(q_idx - kv_idx)"
    assert mods.softcap(30) == "30.0 * tanh(score / 30.0)"
    assert mods.chunked(1024) == "q_idx / 1024 == kv_idx / 1024"
    assert mods.prefix_lm(0) == "kv_idx < 0 || q_idx >= kv_idx"
    assert mods.attention_sink(4, 1024) == \
        "q_idx >= kv_idx && (kv_idx < 4 || q_idx - kv_idx < 1024)"
    assert mods.all_of(mods.causal(), mods.dilated(2)) == \
        "(q_idx >= kv_idx) && ((q_idx - kv_idx) % 2 == 0)"
    assert mods.temperature_per_head([1, 2]) == "(h == 0 ? score / 1.0 : score / 2.0)"
    with pytest.raises(ValueError, match="chunk must be an integer >= 1"):
        mods.chunked(0)
    with pytest.raises(ValueError, match="slope must be finite"):
        mods.relative_position_bias(float("nan"))


def test_user_modifiers_must_be_ascii_strings():
    from flashjit.functional import ScoreModifiers
    assert ScoreModifiers(score_mod=" ").score_mod is None  # blank: none
    assert ScoreModifiers(mask_mod="q_idx >= kv_idx").mask_mod == b"q_idx >= kv_idx"
    with pytest.raises(TypeError, match="score_mod must be a string expression"):
        ScoreModifiers(score_mod=lambda score, b, h, q, k: score)
    with pytest.raises(ValueError, match="mask_mod must be ASCII"):
        ScoreModifiers(mask_mod="q_idx \u2265 kv_idx")


@pytest.mark.parametrize("args, message", [
    ((-0.1, None, 0), "dropout_p must be in [0, 1], got -0.1"),
    ((1.5, None, 0), "dropout_p must be in [0, 1], got 1.5"),
    ((float("nan"), None, 0), "dropout_p must be in [0, 1]"),
    (("x", None, 0), "dropout_p must be a number"),
    ((0.1, -1, 0), "dropout_seed must be an integer in [0, 2^64)"),
    ((0.1, 2 ** 64, 0), "dropout_seed must be an integer in [0, 2^64)"),
    ((0.1, 1, 2 ** 32), "dropout_offset must be an integer in [0, 2^32)"),
    ((0.1, 1.5, 0), "dropout_seed must be an integer"),
])
def test_bad_dropout_names_the_argument(args, message):
    with pytest.raises((ValueError, TypeError)) as err:
        check_dropout(*args)
    assert message in str(err.value)


# Random123's known answers for Philox-4x32-10: key, counter -> output.
PHILOX_ANSWERS = [
    ((0, 0), (0, 0, 0, 0), (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
    ((0xffffffff, 0xffffffff), (0xffffffff,) * 4, (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
    ((0xa4093822, 0x299f31d0), (0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344),
     (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1)),
]


@pytest.mark.parametrize("key, counter, output", PHILOX_ANSWERS)
def test_dropout_mask_uses_philox_4x32_10(key, counter, output):
    pytest.importorskip("numpy")
    from flashjit._philox import philox4x32_10
    assert tuple(int(w) for w in philox4x32_10(counter, *key)) == output


def test_dropout_mask_drops_about_p_and_follows_seed_and_offset():
    pytest.importorskip("numpy")
    keep = flashjit.dropout_mask(2, 3, 200, 300, 0.3, 12345, 7)
    assert keep.shape == (2, 3, 200, 300) and keep.dtype == bool
    # 360000 Bernoulli(0.7) draws: the kept fraction within 5 standard deviations.
    assert abs(keep.mean() - (1 - 19661 / 65536)) < 5 * (0.21 / keep.size) ** 0.5
    assert (flashjit.dropout_mask(2, 3, 200, 300, 0.3, 12345, 7) == keep).all()
    assert (flashjit.dropout_mask(2, 3, 200, 300, 0.3, 12345, 8) != keep).mean() > 0.3
    assert (flashjit.dropout_mask(2, 3, 200, 300, 0.3, 12346, 7) != keep).mean() > 0.3
    assert flashjit.dropout_mask(1, 1, 5, 5, 0.0, 1).all()
    assert not flashjit.dropout_mask(1, 1, 5, 5, 1.0, 1).any()
