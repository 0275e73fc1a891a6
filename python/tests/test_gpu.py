"""flashjit's PyTorch API on a GPU, against torch's SDPA computed in float32."""
import math
import os
import sys

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed")
if not torch.cuda.is_available():
    pytest.skip("no CUDA GPU", allow_module_level=True)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import flashjit  # noqa: E402
import torch.nn.functional as F  # noqa: E402

SEED = torch.seed()  # fresh inputs every run; printed to reproduce a failure
print(f"flashjit python GPU tests: torch seed {SEED}")


def reference(q, k, v, causal, scale=None):
    """float32 SDPA with flashjit's (bottom-right) causal alignment and GQA."""
    qf, kf, vf = (t.float().transpose(1, 2) for t in (q, k, v))
    group = qf.shape[1] // kf.shape[1]
    kf, vf = kf.repeat_interleave(group, 1), vf.repeat_interleave(group, 1)
    mask = None
    if causal:
        sq, sk = qf.shape[2], kf.shape[2]
        i = torch.arange(sq, device=q.device)[:, None]
        j = torch.arange(sk, device=q.device)[None, :]
        mask = j <= i + (sk - sq)
    s = (qf @ kf.transpose(-1, -2)) * (scale or 1 / math.sqrt(qf.shape[-1]))
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    p = torch.softmax(s, -1).nan_to_num(0.0)  # rows that see no key: 0
    return (p @ vf).transpose(1, 2)


GRID = [  # (batch, seq_q, seq_k, heads_q, heads_k)
    (1, 1, 1, 1, 1), (3, 17, 17, 12, 12), (1, 1000, 1000, 12, 4), (3, 4097, 4097, 1, 1),
    (1, 17, 1000, 12, 12), (3, 1000, 17, 12, 3)]


@pytest.mark.parametrize("d", [8, 40, 64, 80, 96, 128, 160, 256])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", GRID)
def test_matches_sdpa_in_float32(d, causal, shape):
    b, sq, sk, hq, hk = shape
    dtype = torch.bfloat16 if (d + sq) % 3 else torch.float16
    q = torch.randn(b, sq, hq, d, device="cuda", dtype=dtype)
    k = torch.randn(b, sk, hk, d, device="cuda", dtype=dtype)
    v = torch.randn(b, sk, hk, d, device="cuda", dtype=dtype)
    out, lse = flashjit.attention(q, k, v, causal=causal, return_lse=True)
    ref = reference(q, k, v, causal)
    assert out.shape == (b, sq, hq, d) and out.dtype == dtype
    assert torch.isfinite(out).all()
    rel = ((out.float() - ref).norm() / ref.norm().clamp_min(1e-6)).item()
    assert rel < 1e-2, f"relative L2 error {rel}"  # bf16/fp16 output vs float32
    assert lse.shape == (b, hq, sq) and lse.dtype == torch.float32


def test_strided_inputs_and_scale():
    x = torch.randn(2, 8, 300, 64, device="cuda", dtype=torch.bfloat16)  # [b, h, s, d] storage
    q = k = v = x.transpose(1, 2)  # a view in [b, s, h, d]
    out = flashjit.attention(q, k, v, softmax_scale=0.3)
    rel = ((out.float() - reference(q, k, v, False, 0.3)).norm() / reference(q, k, v, False, 0.3).norm())
    assert rel.item() < 1e-2


def test_flash_attn_func_and_packed_match():
    qkv = torch.randn(2, 513, 3, 4, 128, device="cuda", dtype=torch.float16)
    a = flashjit.flash_attn_func(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], causal=True)
    b = flashjit.flash_attn_qkvpacked_func(qkv, causal=True)
    assert torch.equal(a, b)
    module = flashjit.nn.SelfAttention(causal=True)
    assert torch.equal(module(qkv), a)


def test_runs_on_the_current_stream():
    q = torch.randn(4, 2048, 16, 128, device="cuda", dtype=torch.bfloat16)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        out = flashjit.attention(q, q, q)
    stream.synchronize()
    ref = flashjit.attention(q, q, q)
    assert torch.equal(out, ref)


def test_errors_for_cpu_tensors():
    cpu = torch.randn(1, 16, 2, 64, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="q is on cpu"):
        flashjit.attention(cpu, cpu, cpu)


def _gradients(fn, q, k, v, grad_out):
    leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v)]
    out = fn(*leaves)
    out.backward(grad_out)
    return out, [t.grad for t in leaves]


@pytest.mark.parametrize("d", [64, 128, 256])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", [(2, 1000, 1000, 8, 2), (1, 17, 300, 4, 4), (3, 333, 77, 6, 1)])
def test_gradients_match_float32_autograd(d, causal, shape):
    b, sq, sk, hq, hk = shape
    dtype = torch.bfloat16 if (d + sq) % 3 else torch.float16
    q = torch.randn(b, sq, hq, d, device="cuda", dtype=dtype)
    k = torch.randn(b, sk, hk, d, device="cuda", dtype=dtype)
    v = torch.randn(b, sk, hk, d, device="cuda", dtype=dtype)
    grad_out = torch.randn(b, sq, hq, d, device="cuda", dtype=dtype)
    out, grads = _gradients(lambda q, k, v: flashjit.attention(q, k, v, causal=causal),
                            q, k, v, grad_out)
    _, want = _gradients(lambda q, k, v: reference(q.float(), k.float(), v.float(), causal),
                         q, k, v, grad_out.float())
    for name, got, ref in zip(("dq", "dk", "dv"), grads, want):
        assert got.shape == ref.shape and got.dtype == dtype, name
        rel = ((got.float() - ref.float()).norm() / ref.float().norm().clamp_min(1e-6)).item()
        assert rel < 1e-2, f"{name}: relative L2 error {rel}"


@pytest.mark.parametrize("tiles", [((64, 32, 4, 2), (32, 64, 4, 2)),          # mma.sync
                                   ((64, 64, 4, 1, 1), (64, 64, 4, 2, 1)),    # wgmma
                                   ((128, 64, 8, 2, 1), (16, 128, 8, 3, 1)),
                                   # wgmma with a TMA producer warpgroup
                                   ((64, 128, 4, 2, 1, 1), (32, 128, 8, 2, 1, 1)),
                                   # and persistent key-block blocks
                                   ((64, 128, 4, 2, 1, 1), (64, 64, 4, 2, 1, 1, 1))])
def test_backward_tiles_by_hand(tiles):
    if any(len(t) >= 5 and t[4] for t in tiles) and \
            torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("wgmma backward tiles need sm_90a")
    q, k, v = (torch.randn(2, 333, 4, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    grad_out = torch.randn_like(q)
    _, grads = _gradients(lambda q, k, v: flashjit.attention(q, k, v, causal=True,
                                                             backward_tiles=tiles),
                          q, k, v, grad_out)
    _, want = _gradients(lambda q, k, v: reference(q.float(), k.float(), v.float(), True),
                         q, k, v, grad_out.float())
    for name, got, ref in zip(("dq", "dk", "dv"), grads, want):
        rel = ((got.float() - ref).norm() / ref.norm()).item()
        assert rel < 1e-2, f"{name} with tiles {tiles}: relative L2 error {rel}"
    with pytest.raises((ValueError, RuntimeError), match="a backward tile is"):
        flashjit.attention(q.requires_grad_(True), k, v, backward_tiles=((64, 64), (32, 64)))\
            .backward(grad_out)


def test_gradients_are_deterministic_and_lse_is_not_differentiable():
    q, k, v = (torch.randn(2, 777, 8, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    grad_out = torch.randn_like(q)
    runs = [_gradients(lambda q, k, v: flashjit.attention(q, k, v, causal=True,
                                                          deterministic=True), q, k, v,
                       grad_out)[1] for _ in range(2)]
    for a, b in zip(*runs):
        assert torch.equal(a, b)
    leaf = q.detach().clone().requires_grad_(True)
    out, lse = flashjit.attention(leaf, k, v, return_lse=True)
    assert out.requires_grad and not lse.requires_grad


def test_backward_reads_tensors_that_saved_tensor_hooks_moved():
    # The backward reuses the forward's C struct; its addresses must be those
    # of the tensors autograd hands back (here copies: the originals are
    # poisoned after the forward, so stale addresses would give NaN).
    q, k, v = (torch.randn(2, 300, 4, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    grad_out = torch.randn_like(q)
    _, want = _gradients(lambda q, k, v: flashjit.attention(q, k, v, causal=True,
                                                            deterministic=True), q, k, v, grad_out)
    leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v)]
    with torch.autograd.graph.saved_tensors_hooks(lambda t: t.clone(), lambda t: t):
        out = flashjit.attention(*leaves, causal=True, deterministic=True)
    for t in leaves:
        t.data.fill_(float("nan"))
    out.backward(grad_out)
    for name, leaf, ref in zip(("dq", "dk", "dv"), leaves, want):
        assert torch.equal(leaf.grad, ref), name


def test_multihead_attention_is_a_drop_in():
    torch.manual_seed(0)
    ref = torch.nn.MultiheadAttention(512, 8, batch_first=True, device="cuda", dtype=torch.bfloat16)
    ours = flashjit.nn.MultiheadAttention(512, 8, batch_first=True, device="cuda",
                                          dtype=torch.bfloat16)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(4, 1024, 512, device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        for causal in (False, True):
            mask = (torch.nn.Transformer.generate_square_subsequent_mask(1024, device="cuda")
                    if causal else None)
            want, _ = ref(x, x, x, need_weights=False, attn_mask=mask, is_causal=causal)
            got, weights = ours(x, x, x, need_weights=False, is_causal=causal)
            assert weights is None
            rel = ((got.float() - want.float()).norm() / want.float().norm()).item()
            assert rel < 2e-2, rel
    with pytest.raises(NotImplementedError, match="need_weights"):
        ours(x, x, x)


def modified_reference(q, k, v, causal, window, softcap, slopes):
    """float32 attention with FlashAttention-2's window_size, softcap and ALiBi, from
    their definitions (bottom-right aligned; slopes [heads_q] or [batch, heads_q])."""
    qf, kf, vf = (t.float().transpose(1, 2) for t in (q, k, v))
    group = qf.shape[1] // kf.shape[1]
    kf, vf = kf.repeat_interleave(group, 1), vf.repeat_interleave(group, 1)
    sq, sk = qf.shape[2], kf.shape[2]
    s = (qf @ kf.transpose(-1, -2)) / math.sqrt(qf.shape[-1])
    if softcap > 0:
        s = softcap * torch.tanh(s / softcap)
    i = torch.arange(sq, device=q.device)[:, None]
    j = torch.arange(sk, device=q.device)[None, :]
    distance = (i + sk - sq - j).float()
    if slopes is not None:
        per_head = slopes if slopes.dim() == 2 else slopes[None].expand(qf.shape[0], -1)
        s = s - per_head[:, :, None, None] * distance.abs()
    left, right = window
    if causal:
        right = 0
    keep = torch.ones(sq, sk, dtype=torch.bool, device=q.device)
    if left >= 0:
        keep &= distance <= left
    if right >= 0:
        keep &= distance >= -right
    s = s.masked_fill(~keep, float("-inf"))
    return (torch.softmax(s, -1).nan_to_num(0.0) @ vf).transpose(1, 2)


@pytest.mark.parametrize("causal, window, softcap, alibi", [
    (True, (256, -1), 0.0, None), (False, (100, 37), 0.0, None), (False, (0, 0), 0.0, None),
    (False, (-1, -1), 0.5, None), (False, (-1, -1), 0.0, "head"), (True, (-1, -1), 0.0, "batch"),
    (True, (64, -1), 2.0, "head")])
@pytest.mark.parametrize("d", [64, 128])
def test_score_modifiers_forward_and_gradients(causal, window, softcap, alibi, d):
    b, sq, sk, hq, hk = 2, 1000, 777, 8, 2
    dtype = torch.bfloat16
    q = torch.randn(b, sq, hq, d, device="cuda", dtype=dtype)
    k = torch.randn(b, sk, hk, d, device="cuda", dtype=dtype)
    v = torch.randn(b, sk, hk, d, device="cuda", dtype=dtype)
    slopes = None
    if alibi:
        slopes = torch.rand(hq if alibi == "head" else (b, hq), device="cuda") * 0.1
    kwargs = dict(causal=causal, window_size=window, softcap=softcap, alibi_slopes=slopes)
    grad_out = torch.randn(b, sq, hq, d, device="cuda", dtype=dtype)
    out, grads = _gradients(lambda q, k, v: flashjit.flash_attn_func(q, k, v, **kwargs),
                            q, k, v, grad_out)
    ref, want = _gradients(
        lambda q, k, v: modified_reference(q.float(), k.float(), v.float(), causal, window,
                                           softcap, slopes), q, k, v, grad_out.float())
    rel = ((out.float() - ref).norm() / ref.norm()).item()
    assert rel < 1e-2, f"out: relative L2 error {rel}"
    for name, got, exp in zip(("dq", "dk", "dv"), grads, want):
        # A window of (0, 0) makes dq and dk exactly 0 (one key a row: P = 1, dP = delta);
        # there the error is taken absolutely (norm 1), as the C++ checker does for 0.
        rel = ((got.float() - exp.float()).norm() / exp.float().norm().clamp_min(1.0)).item()
        assert rel < 1e-2, f"{name}: relative L2 error {rel}"


@pytest.mark.parametrize("causal, window, alibi", [
    (False, (-1, -1), False), (True, (-1, -1), False), (True, (300, -1), True)])
def test_varlen_matches_each_sequence_alone(causal, window, alibi):
    """flash_attn_varlen_func on sequences of lengths 1, 7, 1000, 4097 packed in one
    batch (keys of other lengths): each sequence's rows and gradients equal the
    float32 reference run on that sequence alone."""
    lengths_q, lengths_k = [1, 7, 1000, 4097], [3, 7, 1000, 4100]
    hq, hk, d, dtype = 8, 2, 128, torch.bfloat16
    cu_q = torch.tensor([0] + lengths_q, device="cuda").cumsum(0).to(torch.int32)
    cu_k = torch.tensor([0] + lengths_k, device="cuda").cumsum(0).to(torch.int32)
    q = torch.randn(sum(lengths_q), hq, d, device="cuda", dtype=dtype)
    k = torch.randn(sum(lengths_k), hk, d, device="cuda", dtype=dtype)
    v = torch.randn(sum(lengths_k), hk, d, device="cuda", dtype=dtype)
    slopes = torch.rand(len(lengths_q), hq, device="cuda") * 0.1 if alibi else None
    grad_out = torch.randn(sum(lengths_q), hq, d, device="cuda", dtype=dtype)
    out, grads = _gradients(
        lambda q, k, v: flashjit.flash_attn_varlen_func(
            q, k, v, cu_q, cu_k, max(lengths_q), max(lengths_k), causal=causal,
            window_size=window, alibi_slopes=slopes), q, k, v, grad_out)
    assert out.shape == (sum(lengths_q), hq, d)
    for b in range(len(lengths_q)):
        rq = slice(int(cu_q[b]), int(cu_q[b + 1]))
        rk = slice(int(cu_k[b]), int(cu_k[b + 1]))
        one = (t[r][None] for t, r in ((q, rq), (k, rk), (v, rk)))
        ref, want = _gradients(
            lambda q, k, v: modified_reference(q.float(), k.float(), v.float(), causal, window,
                                               0.0, None if slopes is None else slopes[b]),
            *one, grad_out[rq][None].float())
        rel = ((out[rq].float() - ref[0]).norm() / ref.norm()).item()
        assert rel < 1e-2, f"sequence {b}: out relative L2 error {rel}"
        for name, got, exp, r in zip(("dq", "dk", "dv"), grads, want, (rq, rk, rk)):
            err = (got[r].float() - exp[0].float()).norm() / exp.float().norm().clamp_min(1.0)
            assert err.item() < 1e-2, f"sequence {b}: {name} relative L2 error {err.item()}"


def test_varlen_lse_layout_and_bad_prefix_sums():
    q = torch.randn(10, 2, 64, device="cuda", dtype=torch.float16)
    cu = torch.tensor([0, 3, 10], device="cuda", dtype=torch.int32)
    out, lse = flashjit.flash_attn_varlen_func(q, q, q, cu, cu, 7, 7, return_lse=True)
    assert lse.shape == (2, 10)  # [heads_q, total_q], as FlashAttention-2's varlen LSE
    ref = modified_reference(q[3:][None], q[3:][None], q[3:][None], False, (-1, -1), 0.0, None)
    assert ((out[3:].float() - ref[0]).norm() / ref.norm()).item() < 1e-2
    bad = torch.tensor([0, 8, 10], device="cuda", dtype=torch.int32)  # length 8 > max 7
    with pytest.raises(flashjit.FlashJitError, match="longer than the longest given"):
        flashjit.flash_attn_varlen_func(q, q, q, bad, bad, 7, 7)


def user_modified_reference(q, k, v, causal, score_fn, mask_fn):
    """float32 attention with a score / mask function of (score, b, h, i, j) written
    in torch (the same formula as the flashjit expression it is compared with)."""
    qf, kf, vf = (t.float().transpose(1, 2) for t in (q, k, v))
    group = qf.shape[1] // kf.shape[1]
    kf, vf = kf.repeat_interleave(group, 1), vf.repeat_interleave(group, 1)
    b, h, sq, sk = qf.shape[0], qf.shape[1], qf.shape[2], kf.shape[2]
    s = (qf @ kf.transpose(-1, -2)) / math.sqrt(qf.shape[-1])
    bi = torch.arange(b, device=q.device)[:, None, None, None]
    hi = torch.arange(h, device=q.device)[None, :, None, None]
    i = torch.arange(sq, device=q.device)[None, None, :, None]
    j = torch.arange(sk, device=q.device)[None, None, None, :]
    if score_fn is not None:
        s = score_fn(s, bi, hi, i, j)
    keep = torch.ones_like(s, dtype=torch.bool)
    if mask_fn is not None:
        keep &= mask_fn(bi, hi, i, j)
    if causal:
        keep &= j <= i + (sk - sq)
    s = s.masked_fill(~keep, float("-inf"))
    return (torch.softmax(s, -1).nan_to_num(0.0) @ vf).transpose(1, 2)


from flashjit import modifiers as mods  # noqa: E402

USER_MODIFIERS = [  # (score_mod, its torch form, mask_mod, its torch form, causal)
    (mods.relative_position_bias(0.05), lambda s, b, h, i, j: s - 0.05 * (i - j).abs(),
     None, None, False),
    (mods.softcap(20), lambda s, b, h, i, j: 20 * torch.tanh(s / 20), None, None, True),
    (mods.alibi(8), lambda s, b, h, i, j: s - torch.exp2(-8.0 * (h + 1) / 8) * (i - j).abs(),
     None, None, False),
    (None, None, mods.chunked(64), lambda b, h, i, j: i // 64 == j // 64, True),
    (None, None, mods.prefix_lm(100), lambda b, h, i, j: (j < 100) | (i >= j), False),
    (mods.temperature_per_head([1, 2, 0.5, 4, 1, 1, 3, 0.25]),
     lambda s, b, h, i, j: s / torch.tensor([1, 2, 0.5, 4, 1, 1, 3, 0.25],
                                            device=s.device)[h],
     mods.any_of(mods.sliding_window(128), "b == 1"),
     lambda b, h, i, j: ((i >= j) & (i - j < 128)) | (b == 1), False),
    (None, None, mods.attention_sink(16, 128),
     lambda b, h, i, j: (i >= j) & ((j < 16) | (i - j < 128)), False),
]


@pytest.mark.parametrize("score_mod, score_fn, mask_mod, mask_fn, causal", USER_MODIFIERS)
def test_user_modifiers_forward_and_gradients(score_mod, score_fn, mask_mod, mask_fn, causal):
    b, sq, sk, hq, hk, d = 2, 700, 900, 8, 2, 64
    dtype = torch.bfloat16
    q = torch.randn(b, sq, hq, d, device="cuda", dtype=dtype)
    k = torch.randn(b, sk, hk, d, device="cuda", dtype=dtype)
    v = torch.randn(b, sk, hk, d, device="cuda", dtype=dtype)
    grad_out = torch.randn(b, sq, hq, d, device="cuda", dtype=dtype)
    out, grads = _gradients(
        lambda q, k, v: flashjit.flash_attn_func(q, k, v, causal=causal, score_mod=score_mod,
                                                 mask_mod=mask_mod), q, k, v, grad_out)
    ref, want = _gradients(
        lambda q, k, v: user_modified_reference(q.float(), k.float(), v.float(), causal,
                                                score_fn, mask_fn), q, k, v, grad_out.float())
    rel = ((out.float() - ref).norm() / ref.norm()).item()
    assert rel < 1e-2, f"out: relative L2 error {rel}"
    for name, got, exp in zip(("dq", "dk", "dv"), grads, want):
        rel = ((got.float() - exp.float()).norm() / exp.float().norm().clamp_min(1.0)).item()
        assert rel < 1e-2, f"{name}: relative L2 error {rel}"


def test_mask_mod_without_block_lists_matches_reference():
    """mask_mod_block_lists=False: the forward walks its trimmed range instead of
    the derived lists (same output; the lists only skip empty blocks)."""
    b, sq, sk, hq, hk, d = 2, 1000, 1300, 4, 2, 128
    q = torch.randn(b, sq, hq, d, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(b, sk, hk, d, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(b, sk, hk, d, device="cuda", dtype=torch.bfloat16)
    mask_fn = lambda b, h, i, j: (j % 512 < 128) | ((i - j).abs() < 64)
    ref = user_modified_reference(q.float(), k.float(), v.float(), False, None, mask_fn)
    for lists in (True, False):
        out = flashjit.attention(q, k, v, mask_mod="kv_idx % 512 < 128 || abs(q_idx - kv_idx) < 64",
                                 mask_mod_block_lists=lists)
        rel = ((out.float() - ref).norm() / ref.norm()).item()
        assert rel < 1e-2, f"lists {lists}: relative L2 error {rel}"


def test_bad_user_modifier_is_a_clear_error():
    q = torch.randn(1, 64, 2, 64, device="cuda", dtype=torch.bfloat16)
    with pytest.raises(flashjit.FlashJitError, match=r"unknown name 'bias' .* at column 9"):
        flashjit.flash_attn_func(q, q, q, score_mod="score + bias")
    assert "_smod" in flashjit.variant(q, q, q, score_mod="score * 0.5")


def dropout_reference(q, k, v, causal, keep, p):
    """float32 attention whose probabilities are multiplied by keep (bool [batch,
    heads_q, seq_q, seq_k]) / (1 - p quantized to 1/65536), after the softmax."""
    qf, kf, vf = (t.float().transpose(1, 2) for t in (q, k, v))
    group = qf.shape[1] // kf.shape[1]
    kf, vf = kf.repeat_interleave(group, 1), vf.repeat_interleave(group, 1)
    sq, sk = qf.shape[2], kf.shape[2]
    s = (qf @ kf.transpose(-1, -2)) / math.sqrt(qf.shape[-1])
    if causal:
        i = torch.arange(sq, device=q.device)[:, None]
        j = torch.arange(sk, device=q.device)[None, :]
        s = s.masked_fill(j > i + (sk - sq), float("-inf"))
    threshold = math.floor(float(torch.tensor(p, dtype=torch.float32)) * 65536 + 0.5)
    probs = torch.softmax(s, -1).nan_to_num(0.0)
    probs = probs * torch.as_tensor(keep, device=q.device) * (65536 / (65536 - threshold))
    return (probs @ vf).transpose(1, 2)


@pytest.mark.parametrize("tile", [None, (128, 64, 4, 2)])
def test_dropout_mask_is_the_kernels(tile):
    # q = 0: every probability is 1 / seq_k; v = identity: out[b, i, h, j] is
    # element (i, j)'s keep / (1 - p) / seq_k.
    b, sq, sk, hq, hk, d, p = 2, 77, 128, 4, 2, 128, 0.2
    seed, offset = int(torch.randint(0, 2 ** 62, ()).item()), 5
    q = torch.zeros(b, sq, hq, d, device="cuda", dtype=torch.bfloat16)
    v = torch.eye(sk, d, device="cuda", dtype=torch.bfloat16)[None, :, None, :].expand(
        b, sk, hk, d).contiguous()
    k = torch.randn(b, sk, hk, d, device="cuda", dtype=torch.bfloat16)
    out = flashjit.attention(q, k, v, dropout_p=p, dropout_seed=seed, dropout_offset=offset,
                             tile=tile)
    kept = (out > 0).permute(0, 2, 1, 3).cpu().numpy()  # [b, hq, sq, sk]
    want = flashjit.dropout_mask(b, hq, sq, sk, p, seed, offset)
    assert (kept == want).all(), f"{(kept != want).sum()} of {kept.size} differ"
    nonzero = out[out > 0].float()
    assert torch.allclose(nonzero, torch.full_like(nonzero, 65536 / (65536 - 13107) / sk),
                          rtol=1e-2)
    assert abs(1 - kept.mean() - p) < 5 * math.sqrt(p * (1 - p) / kept.size)


@pytest.mark.parametrize("d", [64, 128])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("p", [0.1, 0.6])
def test_dropout_forward_and_gradients_match_reference(d, causal, p):
    b, sq, sk, hq, hk = 2, 333, 517, 6, 2
    dtype = torch.bfloat16 if d == 128 else torch.float16
    q = torch.randn(b, sq, hq, d, device="cuda", dtype=dtype)
    k = torch.randn(b, sk, hk, d, device="cuda", dtype=dtype)
    v = torch.randn(b, sk, hk, d, device="cuda", dtype=dtype)
    grad_out = torch.randn(b, sq, hq, d, device="cuda", dtype=dtype)
    seed = int(torch.randint(0, 2 ** 62, ()).item())
    keep = flashjit.dropout_mask(b, hq, sq, sk, p, seed, 3)
    out, grads = _gradients(
        lambda q, k, v: flashjit.flash_attn_func(q, k, v, p, causal=causal, dropout_seed=seed,
                                                 dropout_offset=3), q, k, v, grad_out)
    ref, want = _gradients(
        lambda q, k, v: dropout_reference(q.float(), k.float(), v.float(), causal, keep, p),
        q, k, v, grad_out.float())
    rel = ((out.float() - ref).norm() / ref.norm()).item()
    assert rel < 1e-2, f"out: relative L2 error {rel}"
    for name, got, exp in zip(("dq", "dk", "dv"), grads, want):
        rel = ((got.float() - exp.float()).norm() / exp.float().norm()).item()
        assert rel < 1e-2, f"{name}: relative L2 error {rel}"


def test_dropout_follows_torch_seed_and_trains_in_multihead_attention():
    q, k, v = (torch.randn(2, 300, 4, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    torch.manual_seed(11)
    first = flashjit.attention(q, k, v, dropout_p=0.3)
    torch.manual_seed(11)
    assert torch.equal(flashjit.attention(q, k, v, dropout_p=0.3), first)
    assert not torch.equal(flashjit.attention(q, k, v, dropout_p=0.3), first)  # a new seed
    assert "_dropout" in flashjit.variant(q, k, v, dropout_p=0.3)
    assert "_dropout" not in flashjit.variant(q, k, v, dropout_p=0.0)
    mha = flashjit.nn.MultiheadAttention(256, 4, dropout=0.2, batch_first=True, device="cuda",
                                         dtype=torch.bfloat16)
    x = torch.randn(2, 100, 256, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    out, _ = mha(x, x, x, need_weights=False)
    out.float().square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    mha.eval()
    with torch.no_grad():  # eval: no dropout, the same output twice
        assert torch.equal(mha(x, x, x, need_weights=False)[0], mha(x, x, x, need_weights=False)[0])


@pytest.mark.parametrize("mode", ["atomic_dq", "default", "deterministic"])
def test_dq_forms_match_float32_autograd(mode):
    """atomic_dq=True (sm_90a): the key-block kernel sums dQ by bulk reductions;
    the default picks it here (plain causal attention, d = 128, from 1024 queries
    and keys); deterministic=True takes the dQ kernel."""
    if mode == "atomic_dq" and torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("atomic dQ needs sm_90a")
    options = {"atomic_dq": {"atomic_dq": True}, "default": {},
               "deterministic": {"deterministic": True}}[mode]
    b, sq, sk, hq, hk, d = 2, 1100, 1030, 8, 2, 128
    q, k, v, grad_out = (torch.randn(b, s, h, d, device="cuda", dtype=torch.bfloat16)
                         for s, h in ((sq, hq), (sk, hk), (sk, hk), (sq, hq)))
    _, grads = _gradients(lambda q, k, v: flashjit.attention(q, k, v, causal=True, **options),
                          q, k, v, grad_out)
    _, want = _gradients(lambda q, k, v: reference(q.float(), k.float(), v.float(), True),
                         q, k, v, grad_out.float())
    for name, got, ref in zip(("dq", "dk", "dv"), grads, want):
        rel = ((got.float() - ref).norm() / ref.norm()).item()
        assert rel < 1e-2, f"{name}: relative L2 error {rel}"


def test_atomic_dq_and_deterministic_contradict():
    q, k, v = (torch.randn(1, 64, 2, 64, device="cuda", dtype=torch.bfloat16,
                           requires_grad=True) for _ in range(3))
    with pytest.raises((ValueError, RuntimeError), match="contradicts deterministic"):
        flashjit.attention(q, k, v, atomic_dq=True, deterministic=True).sum().backward()


@pytest.mark.parametrize("per_head", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_block_mask_forward_and_gradients(per_head, causal):
    """A random dense block mask (blocks 128 x 256), as lists to the kernels and
    expanded to a float32 element mask for the reference."""
    b, sq, sk, hq, hk, d = 2, 1000, 1500, 4, 2, 64
    bq, bk = 128, 256
    dense = torch.rand(b, hq if per_head else 1, -(-sq // bq), -(-sk // bk),
                       device="cuda") < 0.5
    mask = flashjit.BlockMask.from_dense(dense, (bq, bk))
    assert torch.equal(mask.to_dense(), dense)
    q, k, v, grad_out = (torch.randn(b, s, h, d, device="cuda", dtype=torch.bfloat16)
                         for s, h in ((sq, hq), (sk, hk), (sk, hk), (sq, hq)))
    elements = dense.repeat_interleave(bq, 2)[:, :, :sq].repeat_interleave(bk, 3)[..., :sk]
    out, grads = _gradients(lambda q, k, v: flashjit.attention(q, k, v, causal=causal,
                                                               block_mask=mask),
                            q, k, v, grad_out)
    ref, want = _gradients(
        lambda q, k, v: user_modified_reference(q.float(), k.float(), v.float(), causal, None,
                                                lambda bi, hi, i, j: elements),
        q, k, v, grad_out.float())
    rel = ((out.float() - ref).norm() / ref.norm()).item()
    assert rel < 1e-2, f"out: relative L2 error {rel}"
    for name, got, exp in zip(("dq", "dk", "dv"), grads, want):
        rel = ((got.float() - exp.float()).norm() / exp.float().norm().clamp_min(1.0)).item()
        assert rel < 1e-2, f"{name}: relative L2 error {rel}"


def test_block_mask_from_flex_and_shape_errors():
    flex = pytest.importorskip("torch.nn.attention.flex_attention")
    sq = sk = 1024
    flex_mask = flex.create_block_mask(lambda b, h, i, j: (i // 256 == j // 256) | (j < 128),
                                       None, None, sq, sk, device="cuda")
    mask = flashjit.BlockMask.from_flex(flex_mask)
    i = torch.arange(8, device="cuda")
    assert torch.equal(mask.to_dense()[0, 0], (i[:, None] // 2 == i[None, :] // 2) | (i[None, :] == 0))
    q = torch.randn(1, sq, 2, 64, device="cuda", dtype=torch.bfloat16)
    out = flashjit.attention(q, q, q, block_mask=flex_mask,
                             mask_mod="q_idx / 256 == kv_idx / 256 || kv_idx < 128")
    ref = user_modified_reference(q.float(), q.float(), q.float(), False, None,
                                  lambda b, h, i, j: (i // 256 == j // 256) | (j < 128))
    assert ((out.float() - ref).norm() / ref.norm()).item() < 1e-2
    with pytest.raises(ValueError, match="blocks of 128 x 128 need 4 x 8"):
        flashjit.attention(q[:, :512], q, q, block_mask=mask)
    # A causal Flex mask keeps its diagonal blocks only in part (its Python
    # mask_mod): flashjit wants the same mask given its own way.
    causal_mask = flex.create_block_mask(lambda b, h, i, j: i >= j, None, None, sq, sk,
                                         device="cuda")
    with pytest.raises(ValueError, match="keeps some blocks only in part"):
        flashjit.attention(q, q, q, block_mask=causal_mask)
    out = flashjit.attention(q, q, q, block_mask=causal_mask, causal=True)
    ref = reference(q, q, q, True)
    assert ((out.float() - ref).norm() / ref.norm()).item() < 1e-2


@pytest.mark.parametrize("shape", [(4, 1, 2000, 32, 8), (2, 7, 333, 14, 2), (1, 40, 900, 8, 1)])
@pytest.mark.parametrize("causal", [False, True])
def test_pack_gqa_matches_reference(shape, causal):
    """GQA head packing (decoding shapes): forced, and chosen by default."""
    b, sq, sk, hq, hk = shape
    q = torch.randn(b, sq, hq, 128, device="cuda", dtype=torch.bfloat16)
    k, v = (torch.randn(b, sk, hk, 128, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    assert "_packgqa" in flashjit.variant(q, k, v, causal=causal)
    assert "_packgqa" not in flashjit.variant(q, k, v, causal=causal, pack_gqa=False)
    ref = reference(q, k, v, causal)
    for pack in (True, None):
        out, lse = flashjit.attention(q, k, v, causal=causal, pack_gqa=pack, return_lse=True)
        rel = ((out.float() - ref).norm() / ref.norm()).item()
        assert rel < 1e-2, f"pack_gqa={pack}: relative L2 error {rel}"
        _, want = flashjit.attention(q, k, v, causal=causal, pack_gqa=False, return_lse=True)
        assert (lse - want).abs().max().item() < 1e-3
