# LLVM and MLIR 22 (Debian: llvm-22-dev, libmlir-22-dev, mlir-22-tools).
if(NOT LLVM_DIR AND EXISTS /usr/lib/llvm-22/lib/cmake/llvm)
  set(LLVM_DIR /usr/lib/llvm-22/lib/cmake/llvm)
endif()
if(NOT MLIR_DIR AND EXISTS /usr/lib/llvm-22/lib/cmake/mlir)
  set(MLIR_DIR /usr/lib/llvm-22/lib/cmake/mlir)
endif()
find_package(MLIR REQUIRED CONFIG)
message(STATUS "flashjit: LLVM ${LLVM_PACKAGE_VERSION} from ${LLVM_DIR}")
if(NOT LLVM_PACKAGE_VERSION VERSION_GREATER_EQUAL 22 OR LLVM_PACKAGE_VERSION VERSION_GREATER_EQUAL 23)
  message(FATAL_ERROR "flashjit needs LLVM/MLIR 22, found ${LLVM_PACKAGE_VERSION}")
endif()

list(APPEND CMAKE_MODULE_PATH "${MLIR_CMAKE_DIR}" "${LLVM_CMAKE_DIR}")
include(TableGen)
include(AddLLVM)
include(AddMLIR)

include_directories(SYSTEM ${LLVM_INCLUDE_DIRS} ${MLIR_INCLUDE_DIRS})
add_definitions(${LLVM_DEFINITIONS})
if(NOT LLVM_ENABLE_RTTI)
  add_compile_options(-fno-rtti)
endif()

set(FLASHJIT_LLVM_COMPONENTS
  core support passes target analysis transformutils scalaropts ipo instcombine
  vectorize codegen asmprinter mc irreader bitreader bitwriter
  nvptxcodegen nvptxdesc nvptxinfo)

# The MLIR libraries flashjit links. Registering only these keeps binaries small.
set(FLASHJIT_MLIR_LIBS
  MLIRIR MLIRParser MLIRPass MLIRSupport MLIRTransforms MLIRTransformUtils
  MLIRFuncDialect MLIRArithDialect MLIRMathDialect MLIRMemRefDialect MLIRSCFDialect
  MLIRGPUDialect MLIRLLVMDialect MLIRNVVMDialect MLIRVectorDialect MLIRControlFlowDialect
  MLIRSCFToControlFlow MLIRGPUToNVVMTransforms MLIRArithToLLVM MLIRControlFlowToLLVM
  MLIRFuncToLLVM MLIRMathToLLVM MLIRMemRefToLLVM MLIRReconcileUnrealizedCasts
  MLIRLLVMCommonConversion MLIRNVVMToLLVM MLIRFuncInlinerExtension
  MLIRToLLVMIRTranslationRegistration MLIRTargetLLVMIRExport
  MLIRBuiltinToLLVMIRTranslation MLIRLLVMToLLVMIRTranslation MLIRNVVMToLLVMIRTranslation
  MLIRGPUToLLVMIRTranslation)

if(FLASHJIT_STATIC_LLVM)
  # Debian links MLIR's imported targets to the libLLVM dylib ("LLVM" in their link
  # interface). Replace it everywhere with the static component archives.
  llvm_map_components_to_libnames(FLASHJIT_LLVM_STATIC_LIBS ${FLASHJIT_LLVM_COMPONENTS})
  set(_flashjit_seen "")
  set(_flashjit_todo ${FLASHJIT_MLIR_LIBS} ${FLASHJIT_LLVM_STATIC_LIBS})
  while(_flashjit_todo)
    list(POP_FRONT _flashjit_todo _t)
    if(NOT TARGET ${_t} OR _t IN_LIST _flashjit_seen)
      continue()
    endif()
    list(APPEND _flashjit_seen ${_t})
    get_target_property(_deps ${_t} INTERFACE_LINK_LIBRARIES)
    if(NOT _deps)
      continue()
    endif()
    if("LLVM" IN_LIST _deps)
      list(REMOVE_ITEM _deps LLVM)
      list(APPEND _deps ${FLASHJIT_LLVM_STATIC_LIBS})
      set_target_properties(${_t} PROPERTIES INTERFACE_LINK_LIBRARIES "${_deps}")
    endif()
    list(APPEND _flashjit_todo ${_deps})
  endwhile()
  set(FLASHJIT_LLVM_LIBS ${FLASHJIT_LLVM_STATIC_LIBS})
  # Hide LLVM/MLIR inside our binaries so a process that holds another LLVM
  # (Triton inside PyTorch) is not disturbed; link libstdc++ statically.
  set(FLASHJIT_STATIC_LINK_OPTIONS -static-libstdc++ -static-libgcc -Wl,--exclude-libs,ALL -Wl,--gc-sections)
else()
  set(FLASHJIT_LLVM_LIBS LLVM)
  set(FLASHJIT_STATIC_LINK_OPTIONS)
endif()
