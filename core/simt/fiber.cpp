// core/simt/fiber.cpp — the context switch and fiber stacks (see fiber.h).
#include "fiber.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <new>

#if defined(KILN_SIMT_ASAN)
#include <sanitizer/asan_interface.h>
#endif

#include "core/error.h"

// kiln_simt_switch(save_sp = rdi, new_sp = rsi): push callee-saved registers, swap stacks, pop.
// kiln_simt_fiber_start: first code run on a fresh stack; entry in r12, its argument in r13.
// `.cfi_undefined rip` ends debugger and unwinder backtraces there.
asm(R"(
  .text
  .globl kiln_simt_switch
  .type kiln_simt_switch, @function
  .p2align 4
kiln_simt_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size kiln_simt_switch, .-kiln_simt_switch

  .type kiln_simt_fiber_start, @function
  .p2align 4
kiln_simt_fiber_start:
  .cfi_startproc
  .cfi_undefined rip
  movq %r13, %rdi
  xorl %ebp, %ebp
  callq *%r12
  ud2
  .cfi_endproc
  .size kiln_simt_fiber_start, .-kiln_simt_fiber_start
)");

extern "C" void kiln_simt_fiber_start();

namespace kiln::simt::detail {

FiberStack::FiberStack(std::size_t usable_bytes) {
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  size_ = (usable_bytes + page - 1) / page * page;
  map_bytes_ = size_ + page;
  void* m = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  KILN_CHECK(m != MAP_FAILED, "SIMT emulator: cannot map a fiber stack of ", map_bytes_, " bytes");
  map_ = static_cast<char*>(m);
  KILN_CHECK(mprotect(map_, page, PROT_NONE) == 0, "SIMT emulator: cannot protect a guard page");
  lo_ = map_ + page;
}

FiberStack::~FiberStack() {
#if defined(KILN_SIMT_ASAN)
  // A suspended fiber leaves its frames' redzones poisoned; clear them before the pages can be
  // mapped again for something else.
  ASAN_UNPOISON_MEMORY_REGION(lo_, size_);
#endif
  if (map_ != nullptr) munmap(map_, map_bytes_);
}

void* FiberStack::prepare(void (*entry)(void*), void* arg, std::size_t offset) {
  // Leave a little room at the top; after `ret` into kiln_simt_fiber_start the stack pointer is
  // 16-byte aligned, so its `call` enters entry with the alignment the ABI requires.
  auto top = (reinterpret_cast<std::uintptr_t>(lo_ + size_) - 64 - offset) & ~std::uintptr_t{15};
  auto* sp = reinterpret_cast<void**>(top);
  *--sp = reinterpret_cast<void*>(&kiln_simt_fiber_start);  // popped by ret
  *--sp = nullptr;                                          // rbp
  *--sp = nullptr;                                          // rbx
  *--sp = reinterpret_cast<void*>(entry);                   // r12
  *--sp = arg;                                              // r13
  *--sp = nullptr;                                          // r14
  *--sp = nullptr;                                          // r15
  return sp;
}

}  // namespace kiln::simt::detail
