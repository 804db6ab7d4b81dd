// Symbol lookup for libthread_db's proc_service (targets/process/thread_db.cpp).
#include <dlfcn.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdint>

#include "targets/process/thread_db.h"

TEST_CASE("symbols of a process's mapped ELF files, as libthread_db asks for them") {
  // Our own process: the answer must be where the dynamic linker put it.
  void* expected = dlsym(RTLD_DEFAULT, "gnu_get_libc_version");
  REQUIRE(expected != nullptr);
  auto in_libc = dbgstub::lookup_process_symbol(getpid(), "libc.so.6", "gnu_get_libc_version");
  REQUIRE(in_libc);
  CHECK(*in_libc == reinterpret_cast<uintptr_t>(expected));
  // Any module when the named one doesn't have it (gdb ignores the name too).
  auto anywhere = dbgstub::lookup_process_symbol(getpid(), "libpthread.so.0", "gnu_get_libc_version");
  REQUIRE(anywhere);
  CHECK(*anywhere == *in_libc);
  CHECK_FALSE(dbgstub::lookup_process_symbol(getpid(), "", "no_such_symbol_in_any_module_xyz"));
}
