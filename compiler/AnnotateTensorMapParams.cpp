//===- AnnotateTensorMapParams.cpp - tensor maps as __grid_constant__ -----===//
//
// convert-gpu-to-nvvm drops argument attributes, so the byval/grid_constant
// marking of the TMA tensor-map parameters happens on the lowered llvm.func.
//
//===----------------------------------------------------------------------===//
#include "compiler/Passes.h"

using namespace mlir;

namespace flashjit {
#define GEN_PASS_DEF_ANNOTATETENSORMAPPARAMS
#include "compiler/Passes.h.inc"

namespace {

struct AnnotateTensorMapParamsPass
    : impl::AnnotateTensorMapParamsBase<AnnotateTensorMapParamsPass> {
  void runOnOperation() override {
    getOperation().walk([&](LLVM::LLVMFuncOp func) {
      auto args = func->getAttrOfType<DenseI32ArrayAttr>(kTensorMapArgsAttrName);
      if (!args)
        return;
      MLIRContext *ctx = func.getContext();
      Builder b(ctx);
      auto tensorMapType = LLVM::LLVMArrayType::get(b.getI8Type(), 128);
      for (int32_t index : args.asArrayRef()) {
        if (index < 0 || unsigned(index) >= func.getNumArguments() ||
            !isa<LLVM::LLVMPointerType>(func.getArgument(index).getType())) {
          func.emitError() << "tensor-map parameter " << index << " is not a pointer parameter";
          return signalPassFailure();
        }
        func.setArgAttr(index, LLVM::LLVMDialect::getByValAttrName(), TypeAttr::get(tensorMapType));
        func.setArgAttr(index, LLVM::LLVMDialect::getAlignAttrName(), b.getI64IntegerAttr(64));
        func.setArgAttr(index, NVVM::NVVMDialect::getGridConstantAttrName(), b.getUnitAttr());
      }
      func->removeAttr(kTensorMapArgsAttrName);
    });
  }
};

} // namespace
} // namespace flashjit
