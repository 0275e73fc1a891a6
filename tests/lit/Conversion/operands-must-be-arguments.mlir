// RUN: %flash-opt %s -convert-flash-to-gpu -verify-diagnostics

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>
func.func @fwd(%q: !t, %o: !t) {
  %s = arith.constant 0.125 : f32
  // expected-error @+1 {{operands must be arguments of the enclosing function}}
  flash.attention %q, %q, %q -> %o scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>} : !t, !t, !t -> !t
  return
}
