//===- ConvertFlashToGPU.cpp - flash.attention(_bwd) -> gpu.func ----------===//
#include "compiler/AttentionKernelGenerator.h"
#include "compiler/KernelABI.h"
#include "compiler/Passes.h"
#include "dialect/FlashDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/SymbolTable.h"

using namespace mlir;

namespace flashjit {
#define GEN_PASS_DEF_CONVERTFLASHTOGPU
#include "compiler/Passes.h.inc"

namespace {

constexpr StringLiteral kGpuModuleName = "flashjit_kernels";
constexpr StringLiteral kSharedMemorySymbol = "flashjit_smem";

// The score-modifier parameters from `first` on (KernelABI.h's ScoreModifierParam).
void setScoreModifierTypes(MutableArrayRef<Type> types, int first) {
  MLIRContext *ctx = types[0].getContext();
  auto i32 = IntegerType::get(ctx, 32);
  types[first + abi::kWindowLeftParam] = types[first + abi::kWindowRightParam] = i32;
  types[first + abi::kSoftcapInputScaleParam] = Float32Type::get(ctx);
  types[first + abi::kAlibiSlopesParam] = LLVM::LLVMPointerType::get(ctx, 1);
  types[first + abi::kAlibiBatchStrideParam] = IntegerType::get(ctx, 64);
}

// The varlen parameters from `first` on (KernelABI.h's VarlenParam).
void setVarlenTypes(MutableArrayRef<Type> types, int first) {
  MLIRContext *ctx = types[0].getContext();
  types[first + abi::kCuSeqlensQParam] = types[first + abi::kCuSeqlensKParam] =
      LLVM::LLVMPointerType::get(ctx, 1);
  types[first + abi::kTotalQParam] = IntegerType::get(ctx, 32);
}

// The dropout parameters from `first` on (KernelABI.h's DropoutParam).
void setDropoutTypes(MutableArrayRef<Type> types, int first) {
  MLIRContext *ctx = types[0].getContext();
  types[first + abi::kDropoutSeedParam] = IntegerType::get(ctx, 64);
  types[first + abi::kDropoutOffsetParam] = types[first + abi::kDropoutThresholdParam] =
      IntegerType::get(ctx, 32);
  types[first + abi::kDropoutKeepScaleParam] = Float32Type::get(ctx);
}

// The block-mask parameters from `first` on (KernelABI.h's BlockMaskParam).
void setBlockMaskTypes(MutableArrayRef<Type> types, int first) {
  MLIRContext *ctx = types[0].getContext();
  for (int i = abi::kKvCountsParam; i <= abi::kQIndicesParam; ++i)
    types[first + i] = LLVM::LLVMPointerType::get(ctx, 1);
  for (int i = abi::kBlockQParam; i < abi::kNumBlockMaskParams; ++i)
    types[first + i] = IntegerType::get(ctx, 32);
}

// Kernel parameter types, in compiler/KernelABI.h order.
SmallVector<Type> kernelParameterTypes(MLIRContext *ctx, bool warpSpecialized) {
  auto global = LLVM::LLVMPointerType::get(ctx, 1);
  auto i64 = IntegerType::get(ctx, 64), i32 = IntegerType::get(ctx, 32);
  SmallVector<Type> types(abi::kNumParams, i64);
  if (warpSpecialized) { // tensor maps: generic pointers to the by-value parameters
    types.append(abi::kNumTensorMaps, LLVM::LLVMPointerType::get(ctx));
    types.push_back(global); // the tile counter
  }
  for (int i = abi::kQ; i <= abi::kLse; ++i)
    types[i] = global;
  for (int i = abi::kSeqQ; i <= abi::kGroupSize; ++i)
    types[i] = i32;
  types[abi::kBatch] = i32;
  types[abi::kScaleLog2] = Float32Type::get(ctx);
  setScoreModifierTypes(types, abi::kScoreModifiers0);
  setVarlenTypes(types, abi::kVarlen0);
  setDropoutTypes(types, abi::kDropout0);
  setBlockMaskTypes(types, abi::kBlockMask0);
  return types;
}

SmallVector<Type> backwardKernelParameterTypes(MLIRContext *ctx, bool warpSpecialized) {
  auto global = LLVM::LLVMPointerType::get(ctx, 1);
  auto i32 = IntegerType::get(ctx, 32);
  SmallVector<Type> types(abi::bwd::kNumParams, IntegerType::get(ctx, 64));
  if (warpSpecialized) // tensor maps, as the forward's
    types.append(abi::bwd::kNumParamsWarpSpecialized - abi::bwd::kNumParams,
                 LLVM::LLVMPointerType::get(ctx));
  for (int i = abi::bwd::kQ; i <= abi::bwd::kDQAccum; ++i)
    types[i] = global;
  for (int i = abi::bwd::kSeqQ; i <= abi::bwd::kGroupSize; ++i)
    types[i] = i32;
  types[abi::bwd::kScaleLog2] = types[abi::bwd::kScale] = Float32Type::get(ctx);
  types[abi::bwd::kBatch] = i32;
  setScoreModifierTypes(types, abi::bwd::kScoreModifiers0);
  setVarlenTypes(types, abi::bwd::kVarlen0);
  setDropoutTypes(types, abi::bwd::kDropout0);
  setBlockMaskTypes(types, abi::bwd::kBlockMask0);
  return types;
}

gpu::GPUModuleOp getOrCreateKernelModule(ModuleOp module) {
  if (auto existing = module.lookupSymbol<gpu::GPUModuleOp>(kGpuModuleName))
    return existing;
  OpBuilder b(module.getBodyRegion());
  b.setInsertionPointToEnd(module.getBody());
  module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(), b.getUnitAttr());
  auto gpuModule = gpu::GPUModuleOp::create(b, module.getLoc(), kGpuModuleName);
  b.setInsertionPointToStart(gpuModule.getBody());
  // Dynamic shared memory: a zero-sized extern array in the shared address space.
  LLVM::GlobalOp::create(b, module.getLoc(), LLVM::LLVMArrayType::get(b.getI8Type(), 0),
                         /*isConstant=*/false, LLVM::Linkage::External, kSharedMemorySymbol,
                         Attribute(), /*alignment=*/16, /*addrSpace=*/3);
  return gpuModule;
}

struct ConvertFlashToGPUPass : impl::ConvertFlashToGPUBase<ConvertFlashToGPUPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<Operation *> ops;
    module.walk([&](Operation *op) {
      if (isa<flash::AttentionOp, flash::AttentionBwdOp>(op))
        ops.push_back(op);
    });
    for (Operation *op : ops)
      if (failed(convert(module, op)))
        return signalPassFailure();
  }

  LogicalResult convert(ModuleOp module, Operation *op) {
    auto func = op->getParentOfType<func::FuncOp>();
    if (!func)
      return op->emitOpError("must be inside a func.func that names the kernel");
    for (Value operand : op->getOperands())
      if (!isa<BlockArgument>(operand) || cast<BlockArgument>(operand).getOwner() !=
                                              &func.getBody().front())
        return op->emitOpError("operands must be arguments of the enclosing function");

    gpu::GPUModuleOp gpuModule = getOrCreateKernelModule(module);
    OpBuilder b(gpuModule.getBody(), gpuModule.getBody()->end());
    auto forward = dyn_cast<flash::AttentionOp>(op);
    flash::TileAttr tile = forward ? forward.getTile() : cast<flash::AttentionBwdOp>(op).getTile();
    bool warpSpecialized = tile.getWarpSpecialized();
    auto kernelType = b.getFunctionType(
        forward ? kernelParameterTypes(b.getContext(), warpSpecialized)
                : backwardKernelParameterTypes(b.getContext(), warpSpecialized),
        {});
    auto kernel = gpu::GPUFuncOp::create(b, func.getLoc(), func.getName(), kernelType);
    kernel->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
    if (warpSpecialized) {
      const int firstMap = forward ? abi::kTensorMapQ : abi::bwd::kTensorMapQ;
      SmallVector<int32_t> maps;
      for (int i = 0; i < abi::kNumTensorMaps; ++i)
        maps.push_back(firstMap + i);
      kernel->setAttr(kTensorMapArgsAttrName, b.getDenseI32ArrayAttr(maps));
      // setmaxnreg hands registers between the roles of one block; ptxas
      // sizes the block's share at entry from the blocks an SM must hold.
      const int64_t headDim =
          forward ? std::max(forward.getHeadDimQK(), forward.getHeadDimV())
                  : std::max(cast<flash::AttentionBwdOp>(op).getHeadDimQK(),
                             cast<flash::AttentionBwdOp>(op).getHeadDimV());
      kernel->setAttr(NVVM::NVVMDialect::getMinctasmAttrName(),
                      b.getI32IntegerAttr(int32_t(
                          abi::warpSpecializedRegisters(tile.getWarps(), headDim).blocksPerSM)));
    }
    // The producer warpgroup of a warp-specialized tile comes on top of `warps`.
    int32_t threads = static_cast<int32_t>((tile.getWarps() + (warpSpecialized ? 4 : 0)) * 32);
    kernel.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({threads, 1, 1}));
    // gpu.func's builder gives the body a gpu.return-less entry block.
    LogicalResult generated =
        forward ? generateAttentionKernel(forward, kernel, kSharedMemorySymbol)
                : generateAttentionBackwardKernel(cast<flash::AttentionBwdOp>(op), kernel,
                                                  kSharedMemorySymbol);
    if (failed(generated))
      return failure();
    func.erase();
    return success();
  }
};

} // namespace
} // namespace flashjit
