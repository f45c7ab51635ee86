// Included by each source compiled once per ISA (FUSEDOPTIM_ISA_SOURCES in
// CMakeLists.txt): FUSEDOPTIM_ISA names the build, and these macros turn it
// into that build's entry-point names, e.g. optim_kernels_avx2().
#pragma once

#ifndef FUSEDOPTIM_ISA
#error "FUSEDOPTIM_ISA must name the instruction set this file is built for"
#endif

#define FUSEDOPTIM_CONCAT_(a, b) a##b
#define FUSEDOPTIM_CONCAT(a, b) FUSEDOPTIM_CONCAT_(a, b)
#define FUSEDOPTIM_STRINGIFY_(a) #a
#define FUSEDOPTIM_STRINGIFY(a) FUSEDOPTIM_STRINGIFY_(a)

// This build's entry point for a kernel table: FUSEDOPTIM_ISA_ENTRY(optim_kernels_)
// is optim_kernels_avx512 in the AVX-512 build; FUSEDOPTIM_ISA_NAME is "avx512".
#define FUSEDOPTIM_ISA_ENTRY(prefix) FUSEDOPTIM_CONCAT(prefix, FUSEDOPTIM_ISA)
#define FUSEDOPTIM_ISA_NAME FUSEDOPTIM_STRINGIFY(FUSEDOPTIM_ISA)

// [note: one definition per ISA] A function defined in a header that every
// ISA build includes (fp16_blocks.h, code_blocks.h) is compiled once per
// instruction set; with external linkage the linker would keep one of those
// copies, perhaps the baseline's, for every build that does not inline it.
// Such headers put their definitions in this inline namespace, named after
// the build (fusedoptim::cpu::isa_avx512::...), so each build calls its own.
#define FUSEDOPTIM_ISA_NAMESPACE FUSEDOPTIM_CONCAT(isa_, FUSEDOPTIM_ISA)
