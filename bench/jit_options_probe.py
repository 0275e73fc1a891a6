"""Which driver-JIT options give the same SASS as the ptxas CLI for one PTX?

usage: jit_options_probe.py KERNEL.ptx OUTDIR
Assembles the PTX with cuLinkCreate/cuLinkAddData/cuLinkComplete under a few
option sets and writes one cubin per set (compare them with cuobjdump -sass).
"""
import ctypes
import sys

import torch

torch.cuda.init()
torch.zeros(1, device="cuda")  # makes the primary context current
cuda = ctypes.CDLL("libcuda.so.1")
ptx = open(sys.argv[1], "rb").read() + b"\0"
out = sys.argv[2]

CU_JIT_OPTIMIZATION_LEVEL, CU_JIT_TARGET, CU_JIT_ERROR_LOG_BUFFER = 7, 9, 5
CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6
CU_TARGET_COMPUTE_90A = 65536 + 90
sets = {
    "default": [],
    "target90a": [(CU_JIT_TARGET, CU_TARGET_COMPUTE_90A)],
    "no-pic": [(30, 0)],
    "no-pic-90a": [(30, 0), (CU_JIT_TARGET, CU_TARGET_COMPUTE_90A)],
    "launch-bounds": [(31, 1), (32, 384), (33, 1)],
}
for name, opts in sets.items():
    log = ctypes.create_string_buffer(8192)
    keys = [CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES] + [k for k, _ in opts]
    vals = [ctypes.cast(log, ctypes.c_void_p).value, 8191] + [v for _, v in opts]
    n = len(keys)
    karr = (ctypes.c_int * n)(*keys)
    varr = (ctypes.c_void_p * n)(*vals)
    state = ctypes.c_void_p()
    r = cuda.cuLinkCreate_v2(n, karr, varr, ctypes.byref(state))
    r = r or cuda.cuLinkAddData_v2(state, 1, ptx, len(ptx), b"k", 0, None, None)
    img, size = ctypes.c_void_p(), ctypes.c_size_t()
    r = r or cuda.cuLinkComplete(state, ctypes.byref(img), ctypes.byref(size))
    if r:
        print(name, "failed", r, log.value.decode()[:300])
    else:
        open(f"{out}/{name}.cubin", "wb").write(ctypes.string_at(img, size.value))
        print(name, "ok", size.value)
    cuda.cuLinkDestroy(state)
