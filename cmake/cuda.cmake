# The optional CUDA part of _C (csrc/cuda/). Included by CMakeLists.txt after
# the _C target exists.
#
#   FUSEDOPTIM_CUDA=AUTO  compile the CUDA kernels when a CUDA compiler is found (default)
#   FUSEDOPTIM_CUDA=ON    require them: the build fails without nvcc
#   FUSEDOPTIM_CUDA=OFF   CPU kernels only
#   FUSEDOPTIM_CUDA_ARCHITECTURES  CMAKE_CUDA_ARCHITECTURES syntax ("90", "native",
#                         "80-real;90-real;90-virtual"); empty: the default list below
#
# Through pip: CMAKE_ARGS="-DFUSEDOPTIM_CUDA=ON -DFUSEDOPTIM_CUDA_ARCHITECTURES=90" pip wheel .
# nvcc is looked up on PATH, or given by CUDACXX / -DCMAKE_CUDA_COMPILER.

set(FUSEDOPTIM_CUDA AUTO CACHE STRING "Compile the CUDA kernels: AUTO, ON or OFF")
set_property(CACHE FUSEDOPTIM_CUDA PROPERTY STRINGS AUTO ON OFF)
set(FUSEDOPTIM_CUDA_ARCHITECTURES "" CACHE STRING
    "CUDA architectures (CMAKE_CUDA_ARCHITECTURES syntax); empty: every GPU family from sm_75")

string(TOUPPER "${FUSEDOPTIM_CUDA}" fusedoptim_cuda_mode)
set(FUSEDOPTIM_WITH_CUDA OFF)
if(fusedoptim_cuda_mode STREQUAL "AUTO" OR fusedoptim_cuda_mode STREQUAL "ON")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(FUSEDOPTIM_WITH_CUDA ON)
  elseif(fusedoptim_cuda_mode STREQUAL "ON")
    message(FATAL_ERROR "FUSEDOPTIM_CUDA=ON, but no CUDA compiler was found: "
                        "put nvcc on PATH, or set CUDACXX=/path/to/nvcc")
  else()
    message(STATUS "fusedoptim: no CUDA compiler found; building the CPU kernels only")
  endif()
elseif(NOT fusedoptim_cuda_mode STREQUAL "OFF")
  message(FATAL_ERROR "FUSEDOPTIM_CUDA must be AUTO, ON or OFF, got '${FUSEDOPTIM_CUDA}'")
endif()

if(NOT FUSEDOPTIM_WITH_CUDA)
  return()
endif()

if(FUSEDOPTIM_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES "${FUSEDOPTIM_CUDA_ARCHITECTURES}")
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)

# [note: default architectures] One cubin per GPU family from Turing on, for the
# family's first member (sm_75, 80, 90, 100, 110, 120 with CUDA 13), plus PTX of
# the newest family for GPUs newer than the toolkit. A cubin runs on every GPU
# of its major version with an equal or higher minor (sm_80 code runs on
# sm_86/87/89, sm_120 on sm_121), and these memory-bound kernels gain nothing
# from minor-version tuning, so the list covers every GPU nvcc knows at about
# half the compile time of listing every minor version. Built from what the
# installed nvcc supports, so older toolkits (no sm_100/120) and newer ones
# (CUDA 13 dropped everything before sm_75) both work.
function(fusedoptim_default_cuda_architectures out_var)
  execute_process(COMMAND "${CMAKE_CUDA_COMPILER}" --list-gpu-arch
                  OUTPUT_VARIABLE listed RESULT_VARIABLE failed ERROR_QUIET)
  string(REGEX MATCHALL "compute_[0-9]+" computes "${listed}")
  string(REPLACE "compute_" "" listed_archs "${computes}")
  # --list-gpu-arch is not sorted (CUDA 13 lists 110 before 103).
  list(SORT listed_archs COMPARE NATURAL)
  set(families "")
  set(archs "")
  foreach(arch IN LISTS listed_archs)
    math(EXPR family "${arch} / 10")
    if(arch LESS 75 OR family IN_LIST families)
      continue()
    endif()
    list(APPEND families ${family})
    list(APPEND archs ${arch})
  endforeach()
  if(failed OR NOT archs)
    set(${out_var} "75-real;80-real;86-real;90-real;90-virtual" PARENT_SCOPE)
    return()
  endif()
  set(result "")
  foreach(arch IN LISTS archs)
    list(APPEND result "${arch}-real")
  endforeach()
  list(GET archs -1 newest)
  list(APPEND result "${newest}-virtual")
  set(${out_var} "${result}" PARENT_SCOPE)
endfunction()

if(FUSEDOPTIM_CUDA_ARCHITECTURES)
  set(fusedoptim_cuda_archs "${FUSEDOPTIM_CUDA_ARCHITECTURES}")
else()
  fusedoptim_default_cuda_architectures(fusedoptim_cuda_archs)
endif()
message(STATUS "fusedoptim: CUDA ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${fusedoptim_cuda_archs}")

# nvcc's -O sets the host compiler's level only (device code is always
# optimized); the host side of the .cu files (planning, packing, launch stubs)
# gains nothing from -O3, which costs ~40% of a .cu file's host compile time.
string(REPLACE "-O3" "-O2" CMAKE_CUDA_FLAGS_RELEASE "${CMAKE_CUDA_FLAGS_RELEASE}")

add_library(fusedoptim_cuda STATIC
  csrc/cuda/adam_cuda.cu
  csrc/cuda/sgd_cuda.cu
  csrc/cuda/quant_cuda.cu
  csrc/cuda/arch_probe.cu
  csrc/cuda/runtime.cpp
)
target_include_directories(fusedoptim_cuda PRIVATE csrc)
set_target_properties(fusedoptim_cuda PROPERTIES
  CUDA_ARCHITECTURES "${fusedoptim_cuda_archs}"
  CUDA_STANDARD 17
  CUDA_STANDARD_REQUIRED ON
  # cudart linked statically: the wheel needs no CUDA toolkit at run time, and
  # `import fusedoptim` works with no driver at all.
  CUDA_RUNTIME_LIBRARY Static
  CUDA_VISIBILITY_PRESET hidden
  POSITION_INDEPENDENT_CODE ON
)
# [note: CUDA floating point] The same ops/ functions run on both sides, and
# these flags make the GPU round exactly as the CPU build does
# (-ffp-contract=off there): no a*b+c -> fma contraction (--fmad=false),
# IEEE round-to-nearest division and square root, denormals kept. CUDA results
# then equal the CPU path's bit for bit, for every dtype. The cost is a few
# extra instructions per element in kernels bound by memory bandwidth.
target_compile_options(fusedoptim_cuda PRIVATE
  $<$<COMPILE_LANGUAGE:CUDA>:--fmad=false --prec-div=true --prec-sqrt=true --ftz=false
                             -Xcompiler=-ffp-contract=off>
  $<$<COMPILE_LANGUAGE:CXX>:-O2 -ffp-contract=off>
)
# A space-separated string: a ';' would split the definition.
string(REPLACE ";" " " fusedoptim_cuda_archs_string "${fusedoptim_cuda_archs}")
target_compile_definitions(fusedoptim_cuda PRIVATE
  FUSEDOPTIM_CUDA_ARCHS="${fusedoptim_cuda_archs_string}")
target_link_libraries(fusedoptim_cuda PUBLIC CUDA::cudart_static)

target_link_libraries(_C PRIVATE fusedoptim_cuda)
target_compile_definitions(_C PRIVATE FUSEDOPTIM_WITH_CUDA=1)
if(CMAKE_SYSTEM_NAME STREQUAL "Linux")
  # [note: private cudart] torch loads its own libcudart with RTLD_GLOBAL. Without
  # this, the dynamic linker could bind our cuda* calls to torch's (another CUDA
  # version) instead of the static copy linked here; --exclude-libs makes every
  # symbol from static archives local to _C, so each runtime keeps to itself.
  target_link_options(_C PRIVATE "LINKER:--exclude-libs,ALL")
endif()
