"""Named score and mask modifiers: expressions for score_mod= and mask_mod=.

flashjit compiles a modifier into its kernels (forward and backward; the
backward differentiates score_mod itself), so any expression runs at full
speed. An expression is C over these names (FlexAttention's arguments):

    score           the logit, softmax_scale * q.k (after softcap and ALiBi)
    b, h            batch (sequence, when packed) and query head
    q_idx, kv_idx   query and key positions in their sequence
    inf

with C's operators (?: || && == != < <= > >= + - * / % ! -) and the functions
tanh exp exp2 log log2 sqrt abs min max float. int op int stays int (C's
truncating / and %); a score_mod is a number, a mask_mod a condition.

    import flashjit
    from flashjit import modifiers as mods
    out = flashjit.flash_attn_func(q, k, v, causal=True,
                                   score_mod=mods.relative_position_bias(0.02),
                                   mask_mod=mods.chunked(1024))

Masks written here are top-left aligned (q_idx and kv_idx count from the
start of both sequences); causal=True is bottom-right aligned, as in
FlashAttention-2. Key blocks a mask hides are skipped: the compiler evaluates
the mask over whole blocks (position intervals); a mask it cannot decide that
way (e.g. `(q_idx + kv_idx) % 3 != 0`) is evaluated on every visited block.
"""
import math


def _number(x, name):
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"flashjit.modifiers: {name} must be finite, got {x}")
    return repr(x)


def _count(x, name, minimum=1):
    if int(x) != x or x < minimum:
        raise ValueError(f"flashjit.modifiers: {name} must be an integer >= {minimum}, got {x}")
    return str(int(x))


# Score modifiers -------------------------------------------------------------

def softcap(cap):
    """Gemma 2's logit softcapping: cap * tanh(score / cap)."""
    c = _number(cap, "cap")
    return f"{c} * tanh(score / {c})"


def relative_position_bias(slope):
    """A linear penalty on the distance between query and key: score - slope * |q - k|."""
    return f"score - {_number(slope, 'slope')} * abs(q_idx - kv_idx)"


def alibi(num_heads):
    """ALiBi with the usual geometric per-head slopes 2^(-8 (h + 1) / num_heads),
    aligned to the top left (built-in alibi_slopes= takes any slopes, bottom-right)."""
    n = _count(num_heads, "num_heads")
    return f"score - exp2(-8.0 * (h + 1) / {n}) * abs(q_idx - kv_idx)"


def temperature_per_head(temperatures):
    """Divides head h's logits by temperatures[h] (a short list of numbers)."""
    temps = [_number(t, "temperature") for t in temperatures]
    if not temps:
        raise ValueError("flashjit.modifiers: temperatures must not be empty")
    expr = f"score / {temps[-1]}"
    for h in range(len(temps) - 2, -1, -1):
        expr = f"(h == {h} ? score / {temps[h]} : {expr})"
    return expr


# Mask modifiers --------------------------------------------------------------

def causal():
    """Top-left aligned causal mask (FlexAttention's): q_idx >= kv_idx."""
    return "q_idx >= kv_idx"


def sliding_window(size):
    """Causal sliding window of `size` keys, the query's own included."""
    return f"q_idx >= kv_idx && q_idx - kv_idx < {_count(size, 'size')}"


def attention_sink(sink, window):
    """Causal sliding window of `window` keys plus the first `sink` keys, which
    every query keeps (StreamingLLM's attention sinks)."""
    return (f"q_idx >= kv_idx && (kv_idx < {_count(sink, 'sink', 0)} || "
            f"q_idx - kv_idx < {_count(window, 'window')})")


def prefix_lm(prefix_length):
    """Bidirectional over the first prefix_length keys, causal after them."""
    return f"kv_idx < {_count(prefix_length, 'prefix_length', 0)} || q_idx >= kv_idx"


def chunked(chunk):
    """Attention within chunks of `chunk` positions (Llama 4's chunked attention)."""
    c = _count(chunk, "chunk")
    return f"q_idx / {c} == kv_idx / {c}"


def dilated(dilation):
    """Keys at a multiple of `dilation` positions from the query."""
    return f"(q_idx - kv_idx) % {_count(dilation, 'dilation')} == 0"


def all_of(*masks):
    """A key is kept when every mask keeps it."""
    return " && ".join(f"({m})" for m in masks)


def any_of(*masks):
    """A key is kept when some mask keeps it."""
    return " || ".join(f"({m})" for m in masks)
