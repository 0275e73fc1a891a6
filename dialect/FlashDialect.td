//===- FlashDialect.td - the flash dialect -----------------*- tablegen -*-===//
#ifndef FLASH_DIALECT_TD
#define FLASH_DIALECT_TD

include "mlir/IR/OpBase.td"

def Flash_Dialect : Dialect {
  let name = "flash";
  let cppNamespace = "::flashjit::flash";
  let summary = "Tiled exact fused attention kernels";
  let description = [{
    One `flash.attention` op describes one forward attention kernel variant.
    The variants (mask, tile configuration, target) are attributes, not new ops.
  }];
  let useDefaultAttributePrinterParser = 1;
  // The score_mod / mask_mod regions hold arith and math ops.
  let dependentDialects = ["::mlir::arith::ArithDialect", "::mlir::math::MathDialect"];
}

class Flash_Op<string mnemonic, list<Trait> traits = []>
    : Op<Flash_Dialect, mnemonic, traits>;

#endif // FLASH_DIALECT_TD
