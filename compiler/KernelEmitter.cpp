//===- KernelEmitter.cpp --------------------------------------------------===//
#include "compiler/KernelEmitter.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <limits>

using namespace mlir;

namespace flashjit {

Value KernelEmitter::i32(int64_t v) {
  return arith::ConstantIntOp::create(b, loc, b.getI32Type(), v);
}
Value KernelEmitter::i64(int64_t v) {
  return arith::ConstantIntOp::create(b, loc, b.getI64Type(), v);
}
Value KernelEmitter::f32(double v) {
  return arith::ConstantFloatOp::create(b, loc, b.getF32Type(), APFloat(float(v)));
}
Value KernelEmitter::negInf() { return f32(-std::numeric_limits<float>::infinity()); }

Value KernelEmitter::add(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
Value KernelEmitter::sub(Value x, Value y) { return arith::SubIOp::create(b, loc, x, y); }
Value KernelEmitter::mul(Value x, Value y) { return arith::MulIOp::create(b, loc, x, y); }
Value KernelEmitter::divui(Value x, Value y) { return arith::DivUIOp::create(b, loc, x, y); }
Value KernelEmitter::remui(Value x, Value y) { return arith::RemUIOp::create(b, loc, x, y); }
Value KernelEmitter::minsi(Value x, Value y) { return arith::MinSIOp::create(b, loc, x, y); }
Value KernelEmitter::maxsi(Value x, Value y) { return arith::MaxSIOp::create(b, loc, x, y); }
Value KernelEmitter::andi(Value x, Value y) { return arith::AndIOp::create(b, loc, x, y); }
Value KernelEmitter::shrui(Value x, int64_t bits) {
  return arith::ShRUIOp::create(b, loc, x, arith::ConstantIntOp::create(b, loc, x.getType(), bits));
}
Value KernelEmitter::xori(Value x, Value y) { return arith::XOrIOp::create(b, loc, x, y); }
std::array<Value, 2> KernelEmitter::mulWideU32(Value x, Value y) {
  auto widen = [&](Value v) { return arith::ExtUIOp::create(b, loc, b.getI64Type(), v); };
  Value product = arith::MulIOp::create(b, loc, widen(x), widen(y));
  return {truncToI32(product), truncToI32(shrui(product, 32))};
}
Value KernelEmitter::u32(uint32_t v) { return i32(int32_t(v)); }
Value KernelEmitter::truncToI32(Value v) {
  return arith::TruncIOp::create(b, loc, b.getI32Type(), v);
}
Value KernelEmitter::cmpi(arith::CmpIPredicate p, Value x, Value y) {
  return arith::CmpIOp::create(b, loc, p, x, y);
}
Value KernelEmitter::select(Value c, Value x, Value y) {
  return arith::SelectOp::create(b, loc, c, x, y);
}
Value KernelEmitter::logicalNot(Value x) {
  return arith::XOrIOp::create(b, loc, x, arith::ConstantIntOp::create(b, loc, 1, 1));
}
Value KernelEmitter::toI64(Value v) { return arith::ExtSIOp::create(b, loc, b.getI64Type(), v); }
Value KernelEmitter::ceilDiv(Value x, int64_t d) { return ceilDiv(x, i32(d)); }
Value KernelEmitter::ceilDiv(Value x, Value d) {
  return arith::DivSIOp::create(b, loc, add(x, sub(d, i32(1))), d);
}

Value KernelEmitter::fadd(Value x, Value y) { return arith::AddFOp::create(b, loc, x, y); }
Value KernelEmitter::fmul(Value x, Value y) { return arith::MulFOp::create(b, loc, x, y); }
// LLVM intrinsics directly: convert-gpu-to-nvvm would turn the arith/math
// forms into libdevice calls.
Value KernelEmitter::fmax(Value x, Value y) { return LLVM::MaxNumOp::create(b, loc, x, y); }
Value KernelEmitter::fmin(Value x, Value y) { return LLVM::MinNumOp::create(b, loc, x, y); }
Value KernelEmitter::fma(Value x, Value y, Value z) { return LLVM::FMAOp::create(b, loc, x, y, z); }
Value KernelEmitter::cmpf(arith::CmpFPredicate p, Value x, Value y) {
  return arith::CmpFOp::create(b, loc, p, x, y);
}
// NVPTX has no lowering for llvm.log2, and llvm.exp2 gives the non-ftz form:
// call the NVVM approximations directly (what the softmax of FlashAttention uses).
static Value callF32Intrinsic(OpBuilder &b, Location loc, StringRef name, Value x) {
  return LLVM::CallIntrinsicOp::create(b, loc, b.getF32Type(), b.getStringAttr(name),
                                       ValueRange{x})
      .getResult(0);
}
Value KernelEmitter::exp2Approx(Value x) {
  return callF32Intrinsic(b, loc, "llvm.nvvm.ex2.approx.ftz.f", x);
}
Value KernelEmitter::log2Approx(Value x) {
  return callF32Intrinsic(b, loc, "llvm.nvvm.lg2.approx.f", x);
}
Value KernelEmitter::sqrtApprox(Value x) {
  return callF32Intrinsic(b, loc, "llvm.nvvm.sqrt.approx.f", x);
}
Value KernelEmitter::reciprocal(Value x) { return arith::DivFOp::create(b, loc, f32(1.0), x); }
// llvm.tanh with approximate functions allowed: NVPTX selects tanh.approx.f32.
Value KernelEmitter::tanhApprox(Value x) {
  return LLVM::TanhOp::create(b, loc, x.getType(), x,
                              LLVM::FastmathFlagsAttr::get(b.getContext(),
                                                           LLVM::FastmathFlags::afn));
}
// max(x, -x): the GPU lowering wants llvm.fabs as a libdevice call; this is one max.f32
// (ptxas folds the negation into an operand modifier).
Value KernelEmitter::fabs(Value x) { return fmax(x, arith::NegFOp::create(b, loc, x)); }
Value KernelEmitter::toF32(Value x) { return arith::SIToFPOp::create(b, loc, b.getF32Type(), x); }

static gpu::Dimension dimension(int d) {
  return d == 0 ? gpu::Dimension::x : d == 1 ? gpu::Dimension::y : gpu::Dimension::z;
}
static Value indexToI32(OpBuilder &b, Location loc, Value v) {
  return arith::IndexCastUIOp::create(b, loc, b.getI32Type(), v);
}
Value KernelEmitter::threadIdX() {
  return indexToI32(b, loc, gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x));
}
Value KernelEmitter::blockId(int d) {
  return indexToI32(b, loc, gpu::BlockIdOp::create(b, loc, dimension(d)));
}
Value KernelEmitter::gridDim(int d) {
  return indexToI32(b, loc, gpu::GridDimOp::create(b, loc, dimension(d)));
}
Value KernelEmitter::smIdentifiers() { return NVVM::SmDimOp::create(b, loc, b.getI32Type()); }

Value KernelEmitter::shuffleXor(Value v, int64_t laneMask) {
  return gpu::ShuffleOp::create(b, loc, v, laneMask, /*width=*/32, gpu::ShuffleMode::XOR)
      .getShuffleResult();
}
std::array<Value, 4> KernelEmitter::transposeAcrossQuad(std::array<Value, 4> x,
                                                        Value laneInQuad) {
  // Stage `bit` swaps the off-diagonal blocks of the 4 x 4 [lane][word]
  // matrix at that scale with the partner lane (lane ^ bit): a lane with the
  // bit set sends its low block and takes the partner's high one there.
  for (int64_t bit : {2, 1}) {
    Value set = cmpi(arith::CmpIPredicate::ne, andi(laneInQuad, i32(bit)), i32(0));
    for (int64_t lo = 0; lo < 4; ++lo) {
      if (lo & bit)
        continue;
      const int64_t hi = lo | bit;
      Value received = shuffleXor(select(set, x[lo], x[hi]), bit);
      x[lo] = select(set, received, x[lo]);
      x[hi] = select(set, x[hi], received);
    }
  }
  return x;
}

Value KernelEmitter::broadcastLane0(Value v) {
  return gpu::ShuffleOp::create(b, loc, v, i32(0), i32(32), gpu::ShuffleMode::IDX)
      .getShuffleResult();
}
Value KernelEmitter::ballot(Value predicate) {
  return NVVM::VoteSyncOp::create(b, loc, b.getI32Type(), i32(-1), predicate,
                                  NVVM::VoteSyncKind::ballot);
}
Value KernelEmitter::popCount(Value x) { return LLVM::CtPopOp::create(b, loc, x); }
void KernelEmitter::barrier() { gpu::BarrierOp::create(b, loc); }
void KernelEmitter::endBlockAfter(Value x) {
  auto ifOp = scf::IfOp::create(b, loc, cmpf(arith::CmpFPredicate::UNO, x, x),
                                /*withElseRegion=*/false);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
  NVVM::NanosleepOp::create(b, loc, i32(0));
}
void KernelEmitter::namedBarrierSync(Value id, int64_t threads) {
  NVVM::BarrierOp::create(b, loc, TypeRange{}, id, i32(threads), {}, Value{});
}
void KernelEmitter::namedBarrierArrive(Value id, int64_t threads) {
  NVVM::BarrierArriveOp::create(b, loc, id, i32(threads));
}

Value KernelEmitter::sharedPtr(Value base, Value byteOffset) {
  return LLVM::GEPOp::create(b, loc, base.getType(), b.getI8Type(), base, ValueRange{byteOffset});
}
Value KernelEmitter::globalElementPtr(Value base, Value off, Type elementType) {
  return LLVM::GEPOp::create(b, loc, base.getType(), elementType, base, ValueRange{off});
}
void KernelEmitter::cpAsync16(Value dst, Value src, Value valid) {
  // src-size 0 reads nothing and writes 16 zero bytes: out-of-range rows and
  // the padded head-dim columns arrive as zeros.
  Value srcSize = select(valid, i32(16), i32(0));
  NVVM::CpAsyncOp::create(b, loc, dst, src, 16, NVVM::LoadCacheModifierKind::CG, srcSize);
}
void KernelEmitter::cpAsyncCommit() { NVVM::CpAsyncCommitGroupOp::create(b, loc); }
void KernelEmitter::cpAsyncWait(int64_t n) { NVVM::CpAsyncWaitGroupOp::create(b, loc, n); }

std::array<Value, 4> KernelEmitter::ldmatrixX4(Value ptr, bool transpose) {
  Type i32Type = b.getI32Type();
  auto resultType = LLVM::LLVMStructType::getLiteral(b.getContext(),
                                                     {i32Type, i32Type, i32Type, i32Type});
  Value r = NVVM::LdMatrixOp::create(
      b, loc, resultType, ptr, 4, transpose ? NVVM::MMALayout::col : NVVM::MMALayout::row,
      NVVM::LdStMatrixShapeAttr::get(b.getContext(), 8, 8), NVVM::LdStMatrixEltType::B16);
  std::array<Value, 4> out;
  for (int i = 0; i < 4; ++i)
    out[i] = LLVM::ExtractValueOp::create(b, loc, r, i);
  return out;
}

void KernelEmitter::stmatrix(Value ptr, ArrayRef<Value> sources, bool transpose) {
  NVVM::StMatrixOp::create(b, loc, ptr, sources,
                           transpose ? NVVM::MMALayout::col : NVVM::MMALayout::row,
                           NVVM::LdStMatrixShapeAttr::get(b.getContext(), 8, 8),
                           NVVM::LdStMatrixEltType::B16);
}

void KernelEmitter::store(Value value, Value ptr, unsigned alignment) {
  LLVM::StoreOp::create(b, loc, value, ptr, alignment);
}

void KernelEmitter::storeWords(ArrayRef<Value> words, Value ptr, unsigned alignment) {
  auto type = VectorType::get({int64_t(words.size())}, b.getI32Type());
  Value vector = LLVM::PoisonOp::create(b, loc, type);
  for (size_t i = 0; i < words.size(); ++i)
    vector = LLVM::InsertElementOp::create(b, loc, vector, words[i], i32(int64_t(i)));
  store(vector, ptr, alignment);
}

static void inlinePtx(OpBuilder &b, Location loc, const std::string &text,
                      const std::string &constraints, ValueRange operands) {
  LLVM::InlineAsmOp::create(b, loc, Type(), operands, text, constraints,
                            /*has_side_effects=*/true, /*is_align_stack=*/false,
                            LLVM::tailcallkind::TailCallKind::None,
                            LLVM::AsmDialectAttr::get(b.getContext(), LLVM::AsmDialect::AD_ATT),
                            ArrayAttr());
}

void KernelEmitter::bulkReduceAddF32(Value globalPtr, Value sharedPtr, Value bytes) {
  // The TMA unit reads shared memory and adds whole lines in L2: one
  // instruction for a tile many threads' red.add would need.
  Value global = LLVM::PtrToIntOp::create(b, loc, b.getI64Type(), globalPtr);
  inlinePtx(b, loc, "cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [$0], [$1], $2;",
            "l,r,r", {global, sharedAddress32(sharedPtr), bytes});
}
void KernelEmitter::bulkCommit() { inlinePtx(b, loc, "cp.async.bulk.commit_group;", "", {}); }
void KernelEmitter::bulkWait(int64_t pending, bool readOnly) {
  inlinePtx(b, loc,
            std::string("cp.async.bulk.wait_group") + (readOnly ? ".read " : " ") +
                std::to_string(pending) + ";",
            "", {});
}

Value KernelEmitter::loadSharedF32(Value sharedPtr) {
  return LLVM::LoadOp::create(b, loc, b.getF32Type(), sharedPtr, /*alignment=*/4);
}

Value KernelEmitter::loadSharedI32(Value sharedPtr) {
  return LLVM::LoadOp::create(b, loc, b.getI32Type(), sharedPtr, /*alignment=*/4);
}

Value KernelEmitter::atomicAddGlobalI32(Value ptr, Value value) {
  return LLVM::AtomicRMWOp::create(b, loc, LLVM::AtomicBinOp::add, ptr, value,
                                   LLVM::AtomicOrdering::monotonic);
}

Value KernelEmitter::loadGlobalF32(Value ptr) {
  return LLVM::LoadOp::create(b, loc, b.getF32Type(), ptr, /*alignment=*/4);
}

Value KernelEmitter::loadGlobalI32(Value ptr) {
  return LLVM::LoadOp::create(b, loc, b.getI32Type(), ptr, /*alignment=*/4);
}

std::array<Value, 2> KernelEmitter::loadGlobalPair(Type elementType, Value ptr) {
  std::vector<Value> pair = loadGlobalWidened(elementType, ptr, 2, /*alignment=*/4);
  return {pair[0], pair[1]};
}

std::vector<Value> KernelEmitter::loadGlobalWidened(Type elementType, Value ptr, int64_t count,
                                                    unsigned alignment) {
  Value loaded =
      LLVM::LoadOp::create(b, loc, VectorType::get({count}, elementType), ptr, alignment);
  if (!elementType.isF32())
    loaded = arith::ExtFOp::create(b, loc, VectorType::get({count}, b.getF32Type()), loaded);
  std::vector<Value> elements;
  for (int64_t i = 0; i < count; ++i)
    elements.push_back(LLVM::ExtractElementOp::create(b, loc, loaded, i32(i)));
  return elements;
}

std::array<Value, 4> KernelEmitter::mma16816(Type elementType, ArrayRef<Value> a,
                                             ArrayRef<Value> bOperand, ArrayRef<Value> c) {
  // f16 operands are typed vector<2xf16>; bf16 ones stay as i32 (NVVM's convention).
  auto asOperand = [&](Value packed) -> Value {
    if (elementType.isF16())
      return LLVM::BitcastOp::create(b, loc, VectorType::get({2}, b.getF16Type()), packed);
    return packed;
  };
  SmallVector<Value> aOps, bOps;
  for (Value v : a)
    aOps.push_back(asOperand(v));
  for (Value v : bOperand)
    bOps.push_back(asOperand(v));
  Type f32Type = b.getF32Type();
  auto resultType =
      LLVM::LLVMStructType::getLiteral(b.getContext(), {f32Type, f32Type, f32Type, f32Type});
  NVVM::MMATypes ptxType = elementType.isF16() ? NVVM::MMATypes::f16 : NVVM::MMATypes::bf16;
  Value d = NVVM::MmaOp::create(
      b, loc, resultType, aOps, bOps, c, ArrayRef<int64_t>{16, 8, 16}, std::nullopt,
      std::nullopt, std::array<NVVM::MMATypes, 2>{ptxType, ptxType},
      std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row, NVVM::MMALayout::col});
  std::array<Value, 4> out;
  for (int i = 0; i < 4; ++i)
    out[i] = LLVM::ExtractValueOp::create(b, loc, d, i);
  return out;
}

Value KernelEmitter::sharedAddress32(Value ptr) {
  return LLVM::PtrToIntOp::create(b, loc, b.getI32Type(), ptr);
}

Value KernelEmitter::wgmmaDescriptorSwizzled128(Value sharedAddress) {
  // Bits 0-13: address >> 4; 16-29: leading byte offset >> 4 (unused for
  // swizzled K-major, 1 by convention); 32-45: stride byte offset >> 4 (1024 B
  // between 8-row groups); 62-63: swizzle mode 1 = 128 B.
  Value start = arith::AndIOp::create(
      b, loc, toI64(shrui(sharedAddress, 4)), i64(0x3FFF));
  int64_t fixed = (int64_t(1) << 16) | (int64_t(1024 >> 4) << 32) | (int64_t(1) << 62);
  return arith::OrIOp::create(b, loc, start, i64(fixed));
}

Value KernelEmitter::wgmmaDescriptorSwizzled128MN(Value sharedAddress, int64_t blockStride) {
  Value start = arith::AndIOp::create(b, loc, toI64(shrui(sharedAddress, 4)), i64(0x3FFF));
  int64_t fixed = (int64_t((blockStride >> 4) & 0x3FFF) << 16) | (int64_t(1024 >> 4) << 32) |
                  (int64_t(1) << 62);
  return arith::OrIOp::create(b, loc, start, i64(fixed));
}

// Inline wgmma with the accumulators as tied operands; `operands` go after
// them in the operand list with `constraints`, and `form` is the instruction
// text after the accumulator list. No accumulators: D = A B (scale-d false,
// the first operand), so no zeros are moved into registers a wgmma in flight
// might be thought to share (ptxas would serialize).
static std::vector<Value> wgmmaInlineAsm(OpBuilder &b, Location loc, int64_t n,
                                         const std::string &opcode, const std::string &form,
                                         const std::string &constraints,
                                         SmallVector<Value> operands, ArrayRef<Value> acc) {
  const int64_t regs = n / 2;
  std::string text = "{\n.reg .pred p;\nsetp.ne.b32 p, $" + std::to_string(regs) + ", 0;\n" +
                     opcode + " {";
  std::string all;
  for (int64_t i = 0; i < regs; ++i) {
    text += (i ? ", $" : "$") + std::to_string(i);
    all += "=f,";
  }
  text += "}, " + form + ";\n}";
  all += constraints;
  for (int64_t i = 0; i < int64_t(acc.size()); ++i)
    all += "," + std::to_string(i);
  operands.append(acc.begin(), acc.end());
  SmallVector<Type> fields(regs, b.getF32Type());
  auto resultType = LLVM::LLVMStructType::getLiteral(b.getContext(), fields);
  auto asmOp = LLVM::InlineAsmOp::create(
      b, loc, resultType, operands, text, all, /*has_side_effects=*/true,
      /*is_align_stack=*/false, LLVM::tailcallkind::TailCallKind::None,
      LLVM::AsmDialectAttr::get(b.getContext(), LLVM::AsmDialect::AD_ATT), ArrayAttr());
  std::vector<Value> out;
  for (int64_t i = 0; i < regs; ++i)
    out.push_back(LLVM::ExtractValueOp::create(b, loc, asmOp.getResult(0), i));
  return out;
}

std::vector<Value> KernelEmitter::wgmmaRS(Type elementType, int64_t n, ArrayRef<Value> a,
                                          Value descB, ArrayRef<Value> acc) {
  const int64_t r = n / 2; // operands after the accumulators: scale-d, a0..a3, descB
  std::string type = elementType.isF16() ? "f16" : "bf16";
  std::string opcode = "wgmma.mma_async.sync.aligned.m64n" + std::to_string(n) + "k16.f32." +
                       type + "." + type;
  std::string form = "{$" + std::to_string(r + 1) + ", $" + std::to_string(r + 2) + ", $" +
                     std::to_string(r + 3) + ", $" + std::to_string(r + 4) + "}, $" +
                     std::to_string(r + 5) + ", p, 1, 1, 1"; // B N-major (transposed)
  return wgmmaInlineAsm(b, loc, n, opcode, form, "r,r,r,r,r,l",
                        {i32(acc.empty() ? 0 : 1), a[0], a[1], a[2], a[3], descB}, acc);
}

std::vector<Value> KernelEmitter::wgmmaSS(Type elementType, int64_t n, Value descA, Value descB,
                                          ArrayRef<Value> acc, bool transposeA) {
  // No NVVM op takes its accumulators as plain registers in the form we carry
  // them, so this is inline PTX (as Triton does): outputs tied to the inputs.
  const int64_t r = n / 2; // operands after the accumulators: scale-d, descA, descB
  std::string type = elementType.isF16() ? "f16" : "bf16";
  std::string opcode = "wgmma.mma_async.sync.aligned.m64n" + std::to_string(n) + "k16.f32." +
                       type + "." + type;
  std::string form =
      "$" + std::to_string(r + 1) + ", $" + std::to_string(r + 2) + ", p, 1, 1, " +
      (transposeA ? "1" : "0") + ", 0";
  return wgmmaInlineAsm(b, loc, n, opcode, form, "r,l,l", {i32(acc.empty() ? 0 : 1), descA, descB},
                        acc);
}

void KernelEmitter::wgmmaFence() { NVVM::WgmmaFenceAlignedOp::create(b, loc); }
void KernelEmitter::wgmmaCommit() { NVVM::WgmmaGroupSyncAlignedOp::create(b, loc); }
void KernelEmitter::fenceProxyAsyncShared() {
  NVVM::FenceProxyOp::create(
      b, loc, NVVM::ProxyKindAttr::get(b.getContext(), NVVM::ProxyKind::async_shared),
      NVVM::SharedSpaceAttr::get(b.getContext(), NVVM::SharedSpace::shared_cta));
}

std::vector<Value> KernelEmitter::wgmmaWaitFor(int64_t n, ArrayRef<Value> values) {
  // Outputs tied to inputs: "=f" for each value, then "0", "1", ... .
  std::string constraints, tied;
  SmallVector<Type> types;
  for (size_t i = 0; i < values.size(); ++i) {
    bool isFloat = values[i].getType().isF32();
    constraints += std::string(i ? "," : "") + (isFloat ? "=f" : "=r");
    tied += "," + std::to_string(i);
    types.push_back(values[i].getType());
  }
  auto resultType = LLVM::LLVMStructType::getLiteral(b.getContext(), types);
  auto asmOp = LLVM::InlineAsmOp::create(
      b, loc, resultType, values, "wgmma.wait_group.sync.aligned " + std::to_string(n) + ";",
      constraints + tied, /*has_side_effects=*/true, /*is_align_stack=*/false,
      LLVM::tailcallkind::TailCallKind::None,
      LLVM::AsmDialectAttr::get(b.getContext(), LLVM::AsmDialect::AD_ATT), ArrayAttr());
  std::vector<Value> out;
  for (size_t i = 0; i < values.size(); ++i)
    out.push_back(LLVM::ExtractValueOp::create(b, loc, asmOp.getResult(0), int64_t(i)));
  return out;
}

void KernelEmitter::mbarrierInit(Value barrier, int64_t arrivals) {
  NVVM::MBarrierInitOp::create(b, loc, barrier, i32(arrivals), Value());
}
void KernelEmitter::fenceMbarrierInit() { NVVM::FenceMbarrierInitOp::create(b, loc); }
void KernelEmitter::mbarrierArrive(Value barrier) {
  NVVM::MBarrierArriveOp::create(b, loc, Type(), barrier, Value());
}
void KernelEmitter::mbarrierArriveExpectTx(Value barrier, int64_t bytes) {
  mbarrierArriveExpectTx(barrier, i32(bytes));
}
void KernelEmitter::mbarrierArriveExpectTx(Value barrier, Value bytes) {
  NVVM::MBarrierArriveExpectTxOp::create(b, loc, Type(), barrier, bytes, NVVM::MemScopeKind::CTA,
                                         false, Value());
}
void KernelEmitter::mbarrierWait(Value barrier, Value parity) {
  // Suspend-time hint as CUTLASS uses it; the op loops until the phase completes.
  NVVM::MBarrierTryWaitParityOp::create(b, loc, barrier, parity, i32(0x989680));
}
void KernelEmitter::tmaLoad(Value sharedDst, Value tensorMap, ArrayRef<Value> coordinates,
                            Value barrier) {
  // The shared::cluster form (a lone CTA is a cluster of one) wants the
  // destination in the cluster shared window.
  Value clusterDst = LLVM::AddrSpaceCastOp::create(
      b, loc, LLVM::LLVMPointerType::get(b.getContext(), 7), sharedDst);
  NVVM::CpAsyncBulkTensorGlobalToSharedClusterOp::create(
      b, loc, clusterDst, tensorMap, coordinates, barrier, ValueRange{}, Value(), Value(),
      NVVM::TMALoadMode::TILE, false, NVVM::CTAGroupKindAttr(), Value());
}
void KernelEmitter::tmaStore(Value sharedSrc, Value tensorMap, ArrayRef<Value> coordinates) {
  NVVM::CpAsyncBulkTensorSharedCTAToGlobalOp::create(b, loc, tensorMap, sharedSrc, coordinates,
                                                     Value(), NVVM::TMAStoreMode::TILE, Value());
}
void KernelEmitter::setMaxRegisters(int64_t count, bool increase) {
  NVVM::SetMaxRegisterOp::create(b, loc, count,
                                 increase ? NVVM::SetMaxRegisterAction::increase
                                          : NVVM::SetMaxRegisterAction::decrease);
}

Value KernelEmitter::packPair(Type elementType, Value lo, Value hi) {
  auto f32x2 = VectorType::get({2}, b.getF32Type());
  Value v = LLVM::PoisonOp::create(b, loc, f32x2);
  v = LLVM::InsertElementOp::create(b, loc, v, lo, i32(0));
  v = LLVM::InsertElementOp::create(b, loc, v, hi, i32(1));
  Value narrow = arith::TruncFOp::create(b, loc, VectorType::get({2}, elementType), v);
  return LLVM::BitcastOp::create(b, loc, b.getI32Type(), narrow);
}

} // namespace flashjit
