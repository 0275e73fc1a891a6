"""Block masks given at run time (FlexAttention's BlockMask) for flashjit.

The score matrix is cut into blocks of block_size = (block_q, block_k); each
query block visits only the key blocks its list names, so empty blocks are
neither loaded nor computed (elements of visited blocks still get causal,
window and mask_mod). The kernels take int32 lists in both directions (the
backward's key-block kernels walk the transpose):

    mask = flashjit.BlockMask.from_dense(dense)        # bool [B|1, H|1, q blocks, k blocks]
    mask = flashjit.BlockMask.from_flex(flex_mask)     # torch's create_block_mask result
    out = flashjit.attention(q, k, v, block_mask=mask)

Block sizes must be multiples of the kernel tiles (multiples of 128 suit all).
"""


def _lists(dense):
    """(counts, indices) of a bool [B, H, rows, columns] mask: int32, the
    visited columns of each row first, ascending."""
    import torch

    counts = dense.sum(-1, dtype=torch.int32).contiguous()
    order = torch.argsort(dense.to(torch.int8), dim=-1, descending=True, stable=True)
    return counts, order.to(torch.int32).contiguous()


def _dense_of(counts, indices, columns):
    """The bool [B, H, rows, columns] mask that lists (counts, indices) name."""
    import torch

    position = torch.arange(indices.shape[-1], device=indices.device)
    listed = position < counts[..., None].to(position.dtype)
    target = torch.where(listed, indices.long(), torch.full_like(indices, columns, dtype=torch.long))
    dense = torch.zeros(indices.shape[:-1] + (columns + 1,), dtype=torch.bool,
                        device=indices.device)
    dense.scatter_(-1, target, True)
    return dense[..., :columns]


class BlockMask:
    """Which (query block, key block) pairs attention visits; see the module's
    docstring. Lists built here (from_dense, from_flex) are valid by
    construction and not checked again per call; lists given directly are
    checked by the library on every call (one stream synchronization)."""

    def __init__(self, kv_counts, kv_indices, q_counts, q_indices, block_size=(128, 128),
                 _checked=False):
        import torch

        for name, t in (("kv_counts", kv_counts), ("kv_indices", kv_indices),
                        ("q_counts", q_counts), ("q_indices", q_indices)):
            if not isinstance(t, torch.Tensor) or t.dtype != torch.int32 or not t.is_cuda:
                raise TypeError(f"flashjit: BlockMask {name} must be an int32 CUDA tensor")
        if kv_counts.dim() != 3 or kv_indices.dim() != 4 or q_counts.dim() != 3 \
                or q_indices.dim() != 4:
            raise ValueError("flashjit: BlockMask counts are [B, H, rows], indices "
                             "[B, H, rows, columns]")
        b, h, rows, columns = kv_indices.shape
        if tuple(kv_counts.shape) != (b, h, rows) or tuple(q_counts.shape) != (b, h, columns) \
                or tuple(q_indices.shape) != (b, h, columns, rows):
            raise ValueError(f"flashjit: BlockMask shapes disagree: kv_counts "
                             f"{tuple(kv_counts.shape)}, kv_indices {tuple(kv_indices.shape)}, "
                             f"q_counts {tuple(q_counts.shape)}, q_indices "
                             f"{tuple(q_indices.shape)}")
        self.kv_counts, self.kv_indices = kv_counts.contiguous(), kv_indices.contiguous()
        self.q_counts, self.q_indices = q_counts.contiguous(), q_indices.contiguous()
        self.block_size = (int(block_size[0]), int(block_size[1]))
        self.checked = _checked
        # from_flex: some listed blocks are only partly kept by a Python
        # mask_mod that flashjit cannot run (attention() then wants the same
        # mask as causal / window_size / a mask_mod expression).
        self.partial_blocks = False

    @property
    def shape(self):
        """(batches, heads, query blocks, key blocks)."""
        return tuple(self.kv_indices.shape)

    @classmethod
    def from_dense(cls, dense, block_size=(128, 128)):
        """dense: bool (or 0/1) CUDA tensor [B or 1, H or 1, query blocks, key
        blocks], True = visit the block."""
        import torch

        if not isinstance(dense, torch.Tensor) or dense.dim() != 4:
            raise ValueError("flashjit: BlockMask.from_dense takes a [B, H, query blocks, "
                             "key blocks] tensor")
        dense = dense.to(device=dense.device, dtype=torch.bool)
        kv_counts, kv_indices = _lists(dense)
        q_counts, q_indices = _lists(dense.transpose(-1, -2))
        return cls(kv_counts, kv_indices, q_counts, q_indices, block_size, _checked=True)

    @classmethod
    def from_flex(cls, flex_mask):
        """A torch.nn.attention.flex_attention.BlockMask (its partial and full
        blocks both visited; flashjit's own block test decides which need the
        element-wise mask)."""
        columns = flex_mask.kv_indices.shape[-1]
        dense = _dense_of(flex_mask.kv_num_blocks, flex_mask.kv_indices, columns)
        if getattr(flex_mask, "full_kv_num_blocks", None) is not None:
            dense |= _dense_of(flex_mask.full_kv_num_blocks, flex_mask.full_kv_indices, columns)
        block = flex_mask.BLOCK_SIZE
        mask = cls.from_dense(dense, (block[0], block[1]))
        mask_mod = getattr(flex_mask, "mask_mod", None)
        mask.partial_blocks = bool(flex_mask.kv_num_blocks.sum().item() > 0) and \
            getattr(mask_mod, "__name__", "noop_mask") != "noop_mask"
        return mask

    def to_dense(self):
        """The bool [B, H, query blocks, key blocks] mask."""
        return _dense_of(self.kv_counts, self.kv_indices, self.kv_indices.shape[-1])

    def apply(self, p, batch, heads_q, device):
        """Fills the C struct's block-mask fields for a call of this shape."""
        if self.kv_counts.device != device:
            raise ValueError(f"flashjit: block_mask is on {self.kv_counts.device}, the tensors "
                             f"on {device}")
        b, h, rows, columns = self.shape
        bq, bk = self.block_size
        want = (-(-p.seq_q // bq), -(-p.seq_k // bk))
        if (rows, columns) != want:
            raise ValueError(f"flashjit: block_mask has {rows} x {columns} blocks; seq_q "
                             f"{p.seq_q}, seq_k {p.seq_k} in blocks of {bq} x {bk} need "
                             f"{want[0]} x {want[1]}")
        if b not in (1, batch) or h not in (1, heads_q):
            raise ValueError(f"flashjit: block_mask is for batch {b}, heads {h}; the call has "
                             f"batch {batch}, heads_q {heads_q} (1 = shared)")
        p.block_mask_kv_counts, p.block_mask_kv_indices = (self.kv_counts.data_ptr(),
                                                           self.kv_indices.data_ptr())
        p.block_mask_q_counts, p.block_mask_q_indices = (self.q_counts.data_ptr(),
                                                         self.q_indices.data_ptr())
        p.block_mask_block_q, p.block_mask_block_k = bq, bk
        p.block_mask_batches, p.block_mask_heads = b, h
        p.block_mask_trusted = 1 if self.checked else 0
