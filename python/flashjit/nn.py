"""Drop-in modules: flashjit.nn.MultiheadAttention and SelfAttention."""
import torch
import torch.nn.functional as F

from .functional import attention, flash_attn_qkvpacked_func
from ._validate import not_implemented


class MultiheadAttention(torch.nn.Module):
    """torch.nn.MultiheadAttention for its common arguments, on flashjit kernels.

    Parameters have torch's names and shapes (in_proj_weight, in_proj_bias,
    out_proj), so a torch.nn.MultiheadAttention state_dict loads as is.
    forward(query, key, value, need_weights=False, is_causal=...) returns
    (output, None). Attention weights, attn_mask tensors and key_padding_mask
    are not supported and raise NotImplementedError; dropout applies in
    training mode (flashjit.attention's dropout_p).
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False,
                 add_zero_attn=False, kdim=None, vdim=None, batch_first=False, device=None,
                 dtype=None):
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(f"flashjit: embed_dim {embed_dim} must be divisible by num_heads "
                             f"{num_heads}")
        if add_bias_kv or add_zero_attn:
            not_implemented("add_bias_kv/add_zero_attn", "extra key/value rows")
        if (kdim not in (None, embed_dim)) or (vdim not in (None, embed_dim)):
            not_implemented("kdim/vdim", "key/value widths other than embed_dim")
        factory = {"device": device, "dtype": dtype}
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.head_dim = embed_dim // num_heads
        self.batch_first = batch_first
        self.in_proj_weight = torch.nn.Parameter(torch.empty(3 * embed_dim, embed_dim, **factory))
        self.in_proj_bias = (torch.nn.Parameter(torch.empty(3 * embed_dim, **factory))
                             if bias else None)
        self.out_proj = torch.nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self._reset_parameters()

    def _reset_parameters(self):
        torch.nn.init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            torch.nn.init.zeros_(self.in_proj_bias)
            torch.nn.init.zeros_(self.out_proj.bias)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        if need_weights:
            not_implemented("need_weights=True",
                            "flashjit never materializes the attention weights; pass "
                            "need_weights=False")
        if key_padding_mask is not None:
            not_implemented("key_padding_mask", "use variable-length batches when they land")
        if attn_mask is not None:
            not_implemented("attn_mask", "only is_causal=True is supported as a mask")
        if not self.batch_first:  # (L, N, E) -> (N, L, E)
            query, key, value = (x.transpose(0, 1) for x in (query, key, value))
        n, lq, _ = query.shape
        lk = key.shape[1]
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = (self.in_proj_bias.chunk(3) if self.in_proj_bias is not None
                         else (None, None, None))
        h, d = self.num_heads, self.head_dim
        q = F.linear(query, w_q, b_q).view(n, lq, h, d)
        k = F.linear(key, w_k, b_k).view(n, lk, h, d)
        v = F.linear(value, w_v, b_v).view(n, lk, h, d)
        out = attention(q, k, v, causal=is_causal,
                        dropout_p=self.dropout if self.training else 0.0).reshape(
                            n, lq, self.embed_dim)
        out = self.out_proj(out)
        if not self.batch_first:
            out = out.transpose(0, 1)
        return out, None


class SelfAttention(torch.nn.Module):
    """Like flash_attn.modules.mha.FlashSelfAttention: forward(qkv) with qkv
    [batch, seq, 3, heads, head_dim] -> [batch, seq, heads, head_dim]."""

    def __init__(self, causal=False, softmax_scale=None, attention_dropout=0.0):
        super().__init__()
        self.causal, self.softmax_scale, self.dropout_p = causal, softmax_scale, attention_dropout

    def forward(self, qkv, causal=None):
        return flash_attn_qkvpacked_func(
            qkv, self.dropout_p if self.training else 0.0, self.softmax_scale,
            self.causal if causal is None else causal)
