//===- KernelEmitter.h - typed helpers for building GPU kernel IR ---*- C++ -*-===//
//
// A thin layer over OpBuilder that names the handful of operations the
// attention generator needs (integer index math, warp shuffles, cp.async,
// ldmatrix, mma.sync; on Hopper wgmma, TMA loads, mbarriers, setmaxnreg). One helper per instruction, so the generator reads as
// the algorithm and the instruction details live in one place.
//
#ifndef FLASHJIT_COMPILER_KERNELEMITTER_H
#define FLASHJIT_COMPILER_KERNELEMITTER_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"

#include <array>
#include <vector>

namespace flashjit {

class KernelEmitter {
public:
  KernelEmitter(mlir::OpBuilder &builder, mlir::Location loc) : b(builder), loc(loc) {}

  mlir::OpBuilder &builder() { return b; }
  mlir::Location location() const { return loc; }

  // Constants.
  mlir::Value i32(int64_t v);
  mlir::Value i64(int64_t v);
  mlir::Value f32(double v);
  mlir::Value negInf();

  // Integer arithmetic (i32 or i64 operands of the same type).
  mlir::Value add(mlir::Value a, mlir::Value b);
  mlir::Value sub(mlir::Value a, mlir::Value b);
  mlir::Value mul(mlir::Value a, mlir::Value b);
  mlir::Value divui(mlir::Value a, mlir::Value b);
  mlir::Value remui(mlir::Value a, mlir::Value b);
  mlir::Value minsi(mlir::Value a, mlir::Value b);
  mlir::Value maxsi(mlir::Value a, mlir::Value b);
  mlir::Value andi(mlir::Value a, mlir::Value b);
  mlir::Value shrui(mlir::Value a, int64_t bits);
  mlir::Value xori(mlir::Value a, mlir::Value b);
  /// The full 64-bit unsigned product of two i32 as its {low, high} halves
  /// (one mul.wide.u32: IMAD.WIDE.U32, where mul.lo + mul.hi are two).
  std::array<mlir::Value, 2> mulWideU32(mlir::Value a, mlir::Value b);
  mlir::Value u32(uint32_t v);                      // an i32 constant with these bits
  mlir::Value truncToI32(mlir::Value i64Value);
  mlir::Value cmpi(mlir::arith::CmpIPredicate p, mlir::Value a, mlir::Value b);
  mlir::Value select(mlir::Value cond, mlir::Value a, mlir::Value b);
  mlir::Value logicalNot(mlir::Value i1Value);
  mlir::Value toI64(mlir::Value i32Value);
  mlir::Value ceilDiv(mlir::Value a, int64_t b);
  mlir::Value ceilDiv(mlir::Value a, mlir::Value b); // b > 0

  // Float arithmetic (f32).
  mlir::Value fadd(mlir::Value a, mlir::Value b);
  mlir::Value fmul(mlir::Value a, mlir::Value b);
  mlir::Value fmax(mlir::Value a, mlir::Value b);
  mlir::Value fmin(mlir::Value a, mlir::Value b);
  mlir::Value fma(mlir::Value a, mlir::Value b, mlir::Value c);
  mlir::Value cmpf(mlir::arith::CmpFPredicate p, mlir::Value a, mlir::Value b);
  mlir::Value exp2Approx(mlir::Value x); // ex2.approx.ftz.f32
  mlir::Value log2Approx(mlir::Value x); // lg2.approx.f32
  mlir::Value sqrtApprox(mlir::Value x); // sqrt.approx.f32
  mlir::Value reciprocal(mlir::Value x);
  mlir::Value tanhApprox(mlir::Value x); // tanh.approx.f32
  mlir::Value fabs(mlir::Value x);
  mlir::Value toF32(mlir::Value i32Value); // signed

  // Thread geometry (i32).
  mlir::Value threadIdX();
  mlir::Value blockId(int dim);
  mlir::Value gridDim(int dim);
  mlir::Value smIdentifiers(); // %nsmid: the SMs (at least; ids may have gaps)

  // Warp and block synchronisation.
  mlir::Value shuffleXor(mlir::Value f32Value, int64_t laneMask); // (or i32)
  /// Across the four lanes of a quad (`laneInQuad` = lane & 3): lane q's
  /// word k becomes lane k's word q (two butterfly stages, four shuffles).
  std::array<mlir::Value, 4> transposeAcrossQuad(std::array<mlir::Value, 4> words,
                                                 mlir::Value laneInQuad);
  mlir::Value broadcastLane0(mlir::Value i32Value); // shfl.sync.idx from lane 0
  /// vote.sync.ballot over the full warp: bit l set where lane l's i1 holds.
  mlir::Value ballot(mlir::Value predicate);
  mlir::Value popCount(mlir::Value i32Value);
  void barrier();
  /// Ends the basic block after the code computing `x` (f32) with a branch
  /// on it that is taken only for NaN (to a nanosleep 0): ptxas moves
  /// instructions such as wgmma.wait_group up to the top of their block, and
  /// no further.
  void endBlockAfter(mlir::Value x);
  /// Named barrier `id` (1..15) among `threads` threads: wait for all / only arrive.
  void namedBarrierSync(mlir::Value id, int64_t threads);
  void namedBarrierArrive(mlir::Value id, int64_t threads);

  // Memory.
  mlir::Value sharedPtr(mlir::Value base, mlir::Value byteOffset);
  mlir::Value globalElementPtr(mlir::Value base, mlir::Value elementOffset64,
                               mlir::Type elementType);
  /// 16-byte cp.async (L2 only); `valid` false zero-fills the destination.
  void cpAsync16(mlir::Value sharedDst, mlir::Value globalSrc, mlir::Value valid);
  void cpAsyncCommit();
  void cpAsyncWait(int64_t pendingGroups);
  /// ldmatrix.x4 of 16-bit elements (transposed when `transpose`).
  std::array<mlir::Value, 4> ldmatrixX4(mlir::Value sharedPtr, bool transpose);
  /// stmatrix of 16-bit elements: `sources` (1, 2 or 4 packed registers, the
  /// mma.sync accumulator fragment of one 8 x 8 matrix each) stored by rows
  /// at the addresses lanes 8 i .. 8 i + 7 give for matrix i, or (`transpose`)
  /// by columns.
  void stmatrix(mlir::Value sharedPtr, llvm::ArrayRef<mlir::Value> sources, bool transpose);
  /// A plain store (any address space: global, or the staged dQ rows in shared memory).
  void store(mlir::Value value, mlir::Value ptr, unsigned alignment);
  /// Adjacent i32 words stored as one vector (16-byte aligned: one st.v4;
  /// less: the backend splits it into stores of that alignment).
  void storeWords(llvm::ArrayRef<mlir::Value> words, mlir::Value ptr, unsigned alignment);
  /// An f32 from shared memory (4-byte aligned).
  mlir::Value loadSharedF32(mlir::Value sharedPtr);
  /// Bulk asynchronous reduction (sm_90): global[i] += shared[i] over `bytes`
  /// (i32, a multiple of 16; both addresses 16-byte aligned) of f32, in the
  /// current bulk group; commit, and wait until at most `pending` groups
  /// are in flight (`readOnly`: until their shared-memory reads are done).
  void bulkReduceAddF32(mlir::Value globalPtr, mlir::Value sharedPtr, mlir::Value bytes);
  void bulkCommit();
  void bulkWait(int64_t pending, bool readOnly);
  mlir::Value loadGlobalF32(mlir::Value ptr);
  mlir::Value loadGlobalI32(mlir::Value ptr);
  mlir::Value loadSharedI32(mlir::Value sharedPtr);
  /// atom.global.add.u32 (relaxed, GPU scope): the old value.
  mlir::Value atomicAddGlobalI32(mlir::Value ptr, mlir::Value value);
  /// Two adjacent 16-bit elements (4-byte aligned) widened to f32.
  std::array<mlir::Value, 2> loadGlobalPair(mlir::Type elementType, mlir::Value ptr);
  /// `count` adjacent elements (f32, or 16-bit ones widened to f32) at an
  /// address aligned to `alignment` bytes: one vector load where that covers
  /// them (16 bytes: ld.global.v4), else the backend splits it into loads of
  /// that alignment.
  std::vector<mlir::Value> loadGlobalWidened(mlir::Type elementType, mlir::Value ptr,
                                             int64_t count, unsigned alignment);

  // Tensor cores: mma.sync m16n8k16, f16/bf16 operands packed in i32, f32 accumulators.
  std::array<mlir::Value, 4> mma16816(mlir::Type elementType, llvm::ArrayRef<mlir::Value> a,
                                      llvm::ArrayRef<mlir::Value> b,
                                      llvm::ArrayRef<mlir::Value> c);
  // Hopper (sm_90a) warpgroup MMA.
  /// 64-bit wgmma shared-memory descriptor of a K-major operand in the
  /// 128-byte-swizzled layout, starting at shared address `sharedAddress`.
  mlir::Value wgmmaDescriptorSwizzled128(mlir::Value sharedAddress);
  /// The same for an N-major (transposed) B operand in 128-byte-swizzled
  /// blocks of 64 N elements, `blockStride` bytes apart (the leading byte
  /// offset); 8-row groups along K are 1024 bytes apart (the stride offset).
  mlir::Value wgmmaDescriptorSwizzled128MN(mlir::Value sharedAddress, int64_t blockStride);
  /// D(64 x n, f32) += A(64 x 16, registers: the mma.sync A fragment of each
  /// warp's 16 rows) * B(16 x n, shared memory, N-major); D = A B when `acc`
  /// is empty (both forms).
  std::vector<mlir::Value> wgmmaRS(mlir::Type elementType, int64_t n,
                                   llvm::ArrayRef<mlir::Value> a, mlir::Value descB,
                                   llvm::ArrayRef<mlir::Value> acc);
  /// D(64 x n, f32) += A(64 x 16) * B(16 x n), A and B from shared memory
  /// (descriptors), B K-major, A K-major or (`transposeA`) M-major;
  /// `acc` holds this thread's n/2 accumulators.
  std::vector<mlir::Value> wgmmaSS(mlir::Type elementType, int64_t n, mlir::Value descA,
                                   mlir::Value descB, llvm::ArrayRef<mlir::Value> acc,
                                   bool transposeA = false);
  void wgmmaFence();
  void wgmmaCommit();
  /// Orders this thread's generic-proxy shared-memory writes (cp.async
  /// included) before later async-proxy reads (wgmma, TMA).
  void fenceProxyAsyncShared();
  mlir::Value sharedAddress32(mlir::Value sharedPtr);
  /// wgmma.wait_group that also passes `values` (accumulators in flight)
  /// through, so no use of them can be scheduled before the wait.
  std::vector<mlir::Value> wgmmaWaitFor(int64_t pendingGroups, llvm::ArrayRef<mlir::Value> values);

  // Hopper asynchronous copies and their barriers (sm_90a).
  void mbarrierInit(mlir::Value barrier, int64_t arrivals);
  void fenceMbarrierInit();
  void mbarrierArrive(mlir::Value barrier);
  /// Arrive and add `bytes` to the transaction count the phase waits for.
  void mbarrierArriveExpectTx(mlir::Value barrier, int64_t bytes);
  void mbarrierArriveExpectTx(mlir::Value barrier, mlir::Value bytes); // i32
  /// Blocks until the phase of parity `parity` (i32 0/1) has completed.
  void mbarrierWait(mlir::Value barrier, mlir::Value parity);
  /// TMA tile load of the box at `coordinates` (innermost first) of the tensor
  /// map behind `tensorMap` into `sharedDst`, completing on `barrier`.
  void tmaLoad(mlir::Value sharedDst, mlir::Value tensorMap, llvm::ArrayRef<mlir::Value> coordinates,
               mlir::Value barrier);
  /// TMA store (tiled): the box at `coordinates` of `tensorMap` from shared
  /// memory at `sharedSrc`, in the current bulk group (bulkCommit / bulkWait).
  void tmaStore(mlir::Value sharedSrc, mlir::Value tensorMap,
                llvm::ArrayRef<mlir::Value> coordinates);
  /// setmaxnreg: a warpgroup gives up (or takes) registers.
  void setMaxRegisters(int64_t count, bool increase);

  /// Two f32 values rounded to the 16-bit element type, packed in one i32.
  mlir::Value packPair(mlir::Type elementType, mlir::Value lo, mlir::Value hi);

private:
  mlir::OpBuilder &b;
  mlir::Location loc;
};

} // namespace flashjit

#endif
