// Thread-local storage addresses (gdb's qGetTLSAddr) through glibc's own
// libthread_db, as gdbserver finds them.
//
// Why libthread_db rather than computing the address here from the
// thread's fs_base and the module's DTV slot: the slot number (link_map's
// l_tls_modid), the static TLS offset (l_tls_offset), the DTV's layout and
// generation counter, and whether a module's block is allocated yet are
// glibc internals that move between releases. libthread_db is installed
// with the very glibc the program runs on and describes them itself (the
// _thread_db_* descriptors in libc and ld.so), so it stays right across
// glibc versions, for static and dynamic TLS, PIE or not. What it needs
// from us is the proc_service interface: memory, registers, fs_base, and
// symbol addresses; those we look up ourselves in the .dynsym/.symtab of
// the ELF files the process has mapped (gdbserver asks gdb with qSymbol
// instead; reading the files keeps the lookup within the stub and works
// at any stop, not only during gdb's symbol exchange). libthread_db is
// searched for along gdbserver's libthread-db-search-path ("monitor set
// libthread-db-search-path"): an unresolvable path means no TLS, as there.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/result.h"

namespace dbgstub {

// gdbserver's default: "$pdir" (the threads library's directory: ignored,
// as gdbserver does) and "$sdir" (the system's search for libthread_db.so.1).
inline constexpr const char* kDefaultThreadDbSearchPath = "$pdir:$sdir";

// The run-time address of symbol `name` in process `pid`, from the ELF
// files it has mapped (/proc/PID/maps): the module whose file name is
// `object` (e.g. "libc.so.6") first, then any other, in address order.
std::optional<uint64_t> lookup_process_symbol(pid_t pid, const std::string& object, const std::string& name);

class ThreadDb {
 public:
  using ReadMemory = std::function<bool(uint64_t addr, void* buf, std::size_t len)>;
  using WriteMemory = std::function<bool(uint64_t addr, const void* buf, std::size_t len)>;

  // Loads libthread_db for process `pid` along `search_path` (entries
  // separated by ':'). Fails when no entry has one that accepts the
  // process, e.g. before its libc is loaded.
  static Result<std::unique_ptr<ThreadDb>> open(pid_t pid, const std::string& search_path, ReadMemory read,
                                                WriteMemory write);
  ~ThreadDb();
  ThreadDb(const ThreadDb&) = delete;
  ThreadDb& operator=(const ThreadDb&) = delete;

  // The address of the thread-local variable at `offset` in the TLS block
  // of the module whose link_map is at `lm` (0: the executable of a static
  // program), for thread `tid`, which must be stopped.
  Result<uint64_t> tls_address(pid_t tid, uint64_t offset, uint64_t lm);

 private:
  struct Impl;
  explicit ThreadDb(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dbgstub
