"""flashjit: JIT-compiled exact fused attention for PyTorch.

    import flashjit
    out = flashjit.attention(q, k, v, causal=True)   # [batch, seq, heads, head_dim]
"""
from ._library import FlashJitError, library_path
from . import modifiers
from .block_mask import BlockMask
from .functional import (attention, dropout_mask, flash_attn_func, flash_attn_qkvpacked_func,
                         flash_attn_varlen_func, variant)

__version__ = "0.1.0"


def __getattr__(name):
    # flashjit.nn imports torch; load it on first use. (importlib, not
    # "from . import nn", which would ask this very __getattr__ again.)
    if name == "nn":
        import importlib
        return importlib.import_module(__name__ + ".nn")
    raise AttributeError(name)


__all__ = ["attention", "flash_attn_func", "flash_attn_qkvpacked_func", "flash_attn_varlen_func",
           "variant", "modifiers", "dropout_mask", "BlockMask",
           "FlashJitError", "library_path", "nn"]
