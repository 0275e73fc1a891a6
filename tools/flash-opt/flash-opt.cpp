//===- flash-opt.cpp - mlir-opt with the flash dialect and pipeline -------===//
#include "compiler/Pipeline.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char **argv) {
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  flashjit::registerFlashPipelinesAndPasses();
  mlir::DialectRegistry registry;
  flashjit::registerFlashjitDialects(registry);
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "flashjit optimizer driver\n", registry));
}
