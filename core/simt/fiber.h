// core/simt/fiber.h — minimal stackful fibers for the SIMT emulator (x86-64 System V only).
//
// A switch saves the callee-saved registers on the current stack, stores the stack pointer and
// loads another: ~3 ns, no system call (glibc's swapcontext makes one per switch: ~350 ns). MXCSR and
// the x87 control word are not switched: kernels do not change rounding modes.
// Each stack is its own mapping (MAP_NORESERVE: untouched pages cost nothing) with a PROT_NONE guard
// page below it, so a stack overflow faults instead of corrupting a neighbour.
// Under AddressSanitizer every switch is announced with __sanitizer_start/finish_switch_fiber, so
// ASan knows which stack is live (false reports and missed ones otherwise).
#pragma once

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#define KILN_SIMT_ASAN 1
#endif

#if !defined(__x86_64__)
#error "the SIMT emulator's context switch is written for x86-64"
#endif

namespace kiln::simt::detail {

// Saves the current context's stack pointer into *save_sp and continues the context whose stack
// pointer is new_sp.
extern "C" void kiln_simt_switch(void** save_sp, void* new_sp);

class FiberStack {
 public:
  explicit FiberStack(std::size_t usable_bytes);
  ~FiberStack();
  FiberStack(const FiberStack&) = delete;
  FiberStack& operator=(const FiberStack&) = delete;

  char* lo() const { return lo_; }  // lowest usable byte (just above the guard page)
  std::size_t size() const { return size_; }
  // A stack pointer that, when switched to, calls entry(arg) on this stack; entry never returns.
  // The stack starts `offset` bytes below the top of the mapping (see FiberStack's caller).
  void* prepare(void (*entry)(void*), void* arg, std::size_t offset = 0);

 private:
  char* map_ = nullptr;
  std::size_t map_bytes_ = 0;
  char* lo_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace kiln::simt::detail
