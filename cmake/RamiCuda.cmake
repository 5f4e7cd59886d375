# Auto-detects CUDA. nvcc is looked for at /usr/local/cuda even when it is not on PATH
# (docs/contributing.md, toolchain note 2); without it everything but kernels/cuda still builds. Sets
# RAMI_HAVE_CUDA and RAMI_HAVE_NCCL.
set(RAMI_HAVE_CUDA OFF)
set(RAMI_HAVE_NCCL OFF)
if(RAMI_ENABLE_CUDA)
  if(NOT CMAKE_CUDA_COMPILER)
    find_program(RAMI_NVCC nvcc HINTS /usr/local/cuda/bin)
    if(RAMI_NVCC)
      set(CMAKE_CUDA_COMPILER ${RAMI_NVCC})
    endif()
  endif()
  if(CMAKE_CUDA_COMPILER)
    # Default Hopper (H100/H200); `native` would fail on GPU-less machines (toolchain note 3).
    if(NOT CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90a)
    endif()
    # One shared cudart for the whole process (toolchain note 5).
    set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
    enable_language(CUDA)
    # CMake 3.25 has no C++20 flag for nvcc (toolchain note 1).
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION -std=c++20)
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION -std=c++20)
    set(CMAKE_CUDA_STANDARD 20)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    find_package(CUDAToolkit REQUIRED)
    set(RAMI_HAVE_CUDA ON)
    message(STATUS "rami: CUDA ${CUDAToolkit_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}")
    # NCCL (worker/collectives/nccl_collectives.cc): optional; set NCCL_ROOT when it is outside the CUDA
    # tree (tests/gpu/run.sh points it at PyTorch's nvidia-nccl wheel).
    find_package(NCCL)
    if(NCCL_FOUND)
      set(RAMI_HAVE_NCCL ON)
      message(STATUS "rami: NCCL ${NCCL_VERSION} (${NCCL_LIBRARY})")
    else()
      message(STATUS "rami: NCCL not found: the GPU collectives are not built")
    endif()
  else()
    message(STATUS "rami: nvcc not found, building the CPU backend only")
  endif()
endif()
