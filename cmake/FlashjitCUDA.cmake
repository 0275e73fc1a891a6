# The CUDA driver is loaded with dlopen at run time (the library must load on
# machines without a GPU); only cuda.h is needed to build. NVRTC is optional and
# only used for the auxiliary kernels in templates/ (the GPU reference).
find_package(CUDAToolkit QUIET)
if(CUDAToolkit_FOUND)
  message(STATUS "flashjit: CUDA headers from ${CUDAToolkit_INCLUDE_DIRS}")
  set(FLASHJIT_CUDA_INCLUDE ${CUDAToolkit_INCLUDE_DIRS})
else()
  find_path(FLASHJIT_CUDA_INCLUDE cuda.h PATHS /usr/local/cuda/include /usr/include)
endif()
if(NOT FLASHJIT_CUDA_INCLUDE)
  message(FATAL_ERROR "flashjit: cuda.h not found (install the CUDA toolkit headers)")
endif()
find_program(FLASHJIT_PTXAS ptxas PATHS /usr/local/cuda/bin)
