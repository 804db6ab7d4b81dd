// Kernel memory from /proc/kcore: an ELF64 core file whose PT_LOAD
// segments map kernel virtual addresses to file offsets.
#include <elf.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "targets/local_kernel/local_kernel_internal.h"

namespace dbgstub::lk {

namespace {

bool pread_all(int fd, void* buf, std::size_t len, uint64_t off) {
  auto* p = static_cast<char*>(buf);
  while (len > 0) {
    ssize_t n = ::pread(fd, p, len, static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n, len -= static_cast<std::size_t>(n), off += static_cast<uint64_t>(n);
  }
  return true;
}

}  // namespace

Result<std::vector<KcoreSegment>> parse_kcore_headers(int fd) {
  Elf64_Ehdr eh;
  if (!pread_all(fd, &eh, sizeof eh, 0)) return make_error(EIO, "cannot read the ELF header");
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return make_error(ENOEXEC, "not an ELF file");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
    return make_error(ENOEXEC, "not a 64-bit little-endian ELF file");
  if (eh.e_type != ET_CORE) return make_error(ENOEXEC, "not an ELF core file");
  if (eh.e_phnum == 0 || eh.e_phentsize < sizeof(Elf64_Phdr) || eh.e_phnum > 65000)
    return make_error(ENOEXEC, "bad ELF program header table");
  std::vector<KcoreSegment> segs;
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    if (!pread_all(fd, &ph, sizeof ph, eh.e_phoff + static_cast<uint64_t>(i) * eh.e_phentsize))
      return make_error(EIO, "cannot read ELF program header " + std::to_string(i));
    if (ph.p_type != PT_LOAD || ph.p_filesz == 0) continue;
    if (ph.p_vaddr + ph.p_filesz < ph.p_vaddr) continue;  // wraps: ignore
    segs.push_back({ph.p_vaddr, ph.p_offset, ph.p_filesz});
  }
  std::sort(segs.begin(), segs.end(), [](const KcoreSegment& a, const KcoreSegment& b) { return a.vaddr < b.vaddr; });
  return segs;
}

KcoreReader::~KcoreReader() {
  if (fd_ >= 0) ::close(fd_);
}

Status KcoreReader::open(const std::string& path) {
  if (fd_ >= 0) return ok_status();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    std::string why = e == ENOENT ? path + " does not exist" : path + ": " + std::strerror(e);
    return make_error(e, "kernel memory is not readable: " + why);
  }
  auto segs = parse_kcore_headers(fd);
  if (!segs) {
    ::close(fd);
    return make_error(segs.error().code, "kernel memory is not readable: " + path + ": " + segs.error().message);
  }
  fd_ = fd;
  segs_ = std::move(*segs);
  return ok_status();
}

Result<std::string> KcoreReader::read(uint64_t addr, std::size_t len) const {
  if (fd_ < 0) return make_error(EBADF, "kernel memory is not readable: /proc/kcore is not open");
  std::string out;
  uint64_t cur = addr;
  while (out.size() < len) {
    const KcoreSegment* seg = nullptr;
    for (const auto& s : segs_)
      if (cur >= s.vaddr && cur - s.vaddr < s.size) {
        seg = &s;
        break;
      }
    if (!seg) break;
    uint64_t in_seg = seg->size - (cur - seg->vaddr);
    std::size_t want = static_cast<std::size_t>(std::min<uint64_t>(in_seg, len - out.size()));
    std::string chunk(want, '\0');
    ssize_t n;
    do {
      n = ::pread(fd_, chunk.data(), want, static_cast<off_t>(seg->offset + (cur - seg->vaddr)));
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
      if (out.empty()) {
        int e = n < 0 ? errno : EIO;
        char buf[32];
        std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(cur));
        return make_error(e, std::string("cannot read kernel memory at ") + buf + ": " + std::strerror(e));
      }
      break;
    }
    out.append(chunk.data(), static_cast<std::size_t>(n));
    cur += static_cast<uint64_t>(n);
    if (static_cast<std::size_t>(n) < want) break;
  }
  if (out.empty()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(addr));
    return make_error(EIO, std::string("kernel address ") + buf + " is not mapped in /proc/kcore");
  }
  return out;
}

}  // namespace dbgstub::lk
