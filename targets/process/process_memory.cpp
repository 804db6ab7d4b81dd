// Process memory through /proc/PID/mem, breakpoints hidden from reads.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "targets/process/process_target.h"

namespace dbgstub {

// ---------------------------------------------------------------------------
// /proc/PID/mem

void ProcessTarget::open_mem(Process& p) {
  close_mem(p);
  std::string path = "/proc/" + std::to_string(p.pid) + "/mem";
  p.mem_fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (p.mem_fd < 0) spdlog::warn("open {}: {}", path, std::strerror(errno));
}

void ProcessTarget::close_mem(Process& p) {
  if (p.mem_fd >= 0) ::close(p.mem_fd);
  p.mem_fd = -1;
}

// ---------------------------------------------------------------------------
// Memory

Result<std::string> ProcessTarget::read_memory(int pid, uint64_t addr, std::size_t len) {
  Process* p = find_process(pid);
  if (!p) return make_error(3, "no such process");
  if (p->mem_fd < 0) return make_error(5, "process memory is not readable");
  std::string buf(len, '\0');
  std::size_t got = 0;
  while (got < len) {
    ssize_t n = ::pread(p->mem_fd, buf.data() + got, len - got, static_cast<off_t>(addr + got));
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got == 0 && len > 0) return make_error(14, "cannot read memory at 0x" + std::to_string(addr));
  buf.resize(got);
  // Breakpoints are invisible: show the original bytes.
  for (auto it = p->breakpoints.lower_bound(addr); it != p->breakpoints.end() && it->first < addr + got; ++it)
    buf[it->first - addr] = static_cast<char>(it->second);
  return buf;
}

Status ProcessTarget::write_memory(int pid, uint64_t addr, const std::string& data) {
  Process* p = find_process(pid);
  if (!p) return make_error(3, "no such process");
  if (p->mem_fd < 0) return make_error(5, "process memory is not writable");
  std::string out = data;
  // Writes over an inserted breakpoint change what it will restore.
  for (auto it = p->breakpoints.lower_bound(addr); it != p->breakpoints.end() && it->first < addr + data.size(); ++it) {
    it->second = static_cast<uint8_t>(data[it->first - addr]);
    out[it->first - addr] = static_cast<char>(0xCC);
  }
  ssize_t n = ::pwrite(p->mem_fd, out.data(), out.size(), static_cast<off_t>(addr));
  if (n != static_cast<ssize_t>(out.size())) return make_error(14, "cannot write memory");
  return ok_status();
}

}  // namespace dbgstub
