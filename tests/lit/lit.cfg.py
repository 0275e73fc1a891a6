# lit configuration for flashjit: FileCheck tests of the dialect, the passes,
# the pipeline and the generated PTX.
import os
import lit.formats

config.name = "flashjit"
config.test_format = lit.formats.ShTest(not lit_config.isWindows)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.flashjit_obj_root, "tests", "lit")
config.excludes = ["CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py.in"]

tools = config.flashjit_tools_dir
config.substitutions.append(("%flash-opt", os.path.join(tools, "flash-opt", "flash-opt")))
config.substitutions.append(("%flash-gen", os.path.join(tools, "flash-gen", "flash-gen")))
config.substitutions.append(("FileCheck", config.filecheck))
# LLVM's `not` (inverts the exit status), next to FileCheck in llvm-22-tools.
config.substitutions.append(("%not", os.path.join(os.path.dirname(config.filecheck), "not")))

# ptxas assembles generated PTX where the CUDA toolkit is installed.
if config.ptxas and os.path.exists(config.ptxas):
    config.available_features.add("ptxas")
    config.substitutions.append(("%ptxas", config.ptxas))
