"""Argument checks with messages that name the argument. They read only shape,
stride(), dtype, device and is_cuda, so they work (and are tested) without a GPU."""


def _dtype_name(t):
    return str(t.dtype).replace("torch.", "")


def check_qkv(q, k, v):
    """Returns (dtype_name, batch, seq_q, seq_k, heads_q, heads_k, d_qk, d_v)."""
    dtypes = []
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not hasattr(t, "shape") or not hasattr(t, "stride"):
            raise TypeError(f"flashjit: {name} must be a torch.Tensor, got {type(t).__name__}")
        if not getattr(t, "is_cuda", False):
            raise ValueError(f"flashjit: {name} is on {t.device}; flashjit runs on CUDA tensors "
                             f"(move it with {name}.cuda())")
        if len(t.shape) != 4:
            raise ValueError(f"flashjit: {name} must be 4-D [batch, seq, heads, head_dim], "
                             f"got shape {tuple(t.shape)}")
        dtypes.append(_dtype_name(t))
        if dtypes[-1] not in ("float16", "bfloat16"):
            raise ValueError(f"flashjit: {name} has dtype {dtypes[-1]}; flashjit supports "
                             "float16 and bfloat16")
        if t.shape[3] > 1 and t.stride(3) != 1:
            raise ValueError(f"flashjit: the last dimension of {name} must be contiguous "
                             f"(stride 1), got stride {t.stride(3)}; call {name}.contiguous()")
    if not dtypes[0] == dtypes[1] == dtypes[2]:
        raise ValueError(f"flashjit: q, k and v must have the same dtype, got {dtypes[0]}, "
                         f"{dtypes[1]}, {dtypes[2]}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"flashjit: q, k and v must be on one device, got {q.device}, "
                         f"{k.device}, {v.device}")
    b, sq, hq, dqk = q.shape
    bk, sk, hk, dk = k.shape
    bv, sv, hv, dv = v.shape
    if bk != b or bv != b:
        raise ValueError(f"flashjit: batch sizes differ: q {b}, k {bk}, v {bv}")
    if sv != sk:
        raise ValueError(f"flashjit: k and v must have the same sequence length, got {sk} and {sv}")
    if hv != hk:
        raise ValueError(f"flashjit: k and v must have the same number of heads, got {hk} and {hv}")
    if hq % hk != 0:
        raise ValueError(f"flashjit: q's heads ({hq}) must be a multiple of k's heads ({hk}) "
                         "(grouped-query attention)")
    if dk != dqk:
        raise ValueError(f"flashjit: q and k must have the same head_dim, got {dqk} and {dk}")
    for name, d in (("q/k", dqk), ("v", dv)):
        if d % 8 != 0 or not 8 <= d <= 256:
            raise ValueError(f"flashjit: head_dim {d} of {name} is not supported: it must be a "
                             "multiple of 8 in [8, 256]")
    return dtypes[0], b, sq, sk, hq, hk, dqk, dv


def not_implemented(argument, what):
    raise NotImplementedError(f"flashjit: {argument} is not supported yet ({what})")


def check_expression(text, name):
    """A user modifier as the C struct's bytes (None: none); its grammar is
    checked by the library, which names the position of an error."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise TypeError(f"flashjit: {name} must be a string expression (see "
                        f"flashjit.modifiers), got {type(text).__name__}")
    try:
        return text.encode("ascii") if text.strip() else None
    except UnicodeEncodeError:
        raise ValueError(f"flashjit: {name} must be ASCII, got {text!r}") from None


def check_score_modifiers(window_size, softcap, alibi_slopes, batch, heads_q, device):
    """(window_left, window_right, softcap, alibi_batch_stride) of FlashAttention-2's
    window_size / softcap / alibi_slopes arguments; negative window sides are unbounded."""
    try:
        left, right = (int(x) for x in window_size)
    except (TypeError, ValueError):
        raise ValueError(f"flashjit: window_size must be a pair (left, right) of ints, got "
                         f"{window_size!r}") from None
    softcap = float(softcap)
    if not softcap >= 0.0 or softcap == float("inf"):
        raise ValueError(f"flashjit: softcap must be 0 (off) or a positive finite number, got "
                         f"{softcap}")
    stride = 0
    if alibi_slopes is not None:
        if not hasattr(alibi_slopes, "shape") or not hasattr(alibi_slopes, "stride"):
            raise TypeError("flashjit: alibi_slopes must be a float32 CUDA tensor of shape "
                            f"(heads_q,) or (batch, heads_q), got {type(alibi_slopes).__name__}")
        if _dtype_name(alibi_slopes) != "float32":
            raise ValueError(f"flashjit: alibi_slopes must be float32, got "
                             f"{_dtype_name(alibi_slopes)}")
        if getattr(alibi_slopes, "device", None) != device:
            raise ValueError(f"flashjit: alibi_slopes is on {alibi_slopes.device}, q on {device}")
        shape = tuple(alibi_slopes.shape)
        if shape not in ((heads_q,), (batch, heads_q)):
            raise ValueError(f"flashjit: alibi_slopes must have shape ({heads_q},) or ({batch}, "
                             f"{heads_q}), got {shape}")
        if alibi_slopes.stride()[-1] != 1:
            raise ValueError("flashjit: alibi_slopes must be contiguous along heads")
        stride = alibi_slopes.stride()[0] if len(shape) == 2 else 0
    return left, right, softcap, stride


def check_packed(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k):
    """Checks flash_attn_varlen_func's arguments; returns the number of sequences.
    q [total_q, heads_q, d], k/v [total_k, heads_k, d]; cu_seqlens int32 [batch + 1]."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if hasattr(t, "shape") and len(t.shape) != 3:
            raise ValueError(f"flashjit: varlen {name} must be 3-D [total, heads, head_dim], "
                             f"got shape {tuple(t.shape)}")
    for name, cu in (("cu_seqlens_q", cu_seqlens_q), ("cu_seqlens_k", cu_seqlens_k)):
        if not hasattr(cu, "shape") or not hasattr(cu, "stride"):
            raise TypeError(f"flashjit: {name} must be an int32 CUDA tensor, got "
                            f"{type(cu).__name__}")
        if _dtype_name(cu) != "int32":
            raise ValueError(f"flashjit: {name} must be int32, got {_dtype_name(cu)}")
        if len(cu.shape) != 1 or cu.shape[0] < 1:
            raise ValueError(f"flashjit: {name} must be 1-D [batch + 1], got shape "
                             f"{tuple(cu.shape)}")
        if cu.shape[0] > 1 and cu.stride(0) != 1:
            raise ValueError(f"flashjit: {name} must be contiguous")
        if getattr(cu, "device", None) != getattr(q, "device", None):
            raise ValueError(f"flashjit: {name} is on {cu.device}, q on {q.device}")
    if cu_seqlens_q.shape[0] != cu_seqlens_k.shape[0]:
        raise ValueError(f"flashjit: cu_seqlens_q and cu_seqlens_k must have the same length "
                         f"(batch + 1), got {cu_seqlens_q.shape[0]} and {cu_seqlens_k.shape[0]}")
    for name, x in (("max_seqlen_q", max_seqlen_q), ("max_seqlen_k", max_seqlen_k)):
        if int(x) != x or x < 0:
            raise ValueError(f"flashjit: {name} must be a non-negative int, got {x!r}")
    return cu_seqlens_q.shape[0] - 1


def check_dropout(p, seed, offset):
    """(p, seed, offset) of a dropout request: p in [0, 1], the seed an unsigned
    64-bit and the offset an unsigned 32-bit integer."""
    try:
        p = float(p)
    except (TypeError, ValueError):
        raise TypeError(f"flashjit: dropout_p must be a number, got {type(p).__name__}") from None
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"flashjit: dropout_p must be in [0, 1], got {p}")
    for name, value, bits in (("dropout_seed", seed, 64), ("dropout_offset", offset, 32)):
        if value is not None and (not isinstance(value, int) or not 0 <= value < 2 ** bits):
            raise ValueError(f"flashjit: {name} must be an integer in [0, 2^{bits}), got {value!r}")
    return p, seed, offset
