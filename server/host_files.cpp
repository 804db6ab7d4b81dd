#include "server/host_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "protocol/rsp/reply.h"

namespace dbgstub {
namespace {

constexpr uint64_t kFileioWriteMask = 0x1 | 0x2 | 0x8 | 0x200 | 0x400 | 0x800;  // WRONLY RDWR APPEND CREAT TRUNC EXCL

std::string fail(int host_errno) { return rsp::build_file_reply(-1, rsp::fileio_errno(host_errno)); }

void put_be(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

}  // namespace

HostFiles::~HostFiles() {
  for (auto& [fd, unused] : fds_) ::close(fd);
}

std::string HostFiles::handle(const rsp::HostFile& req, std::size_t max_reply) {
  using Op = rsp::HostFile::Op;
  switch (req.op) {
    case Op::SetFs:
      // Same mount namespace as every process we debug: nothing to switch.
      return rsp::build_file_reply(0);
    case Op::Open:
      return open(req);
    case Op::Close: {
      auto it = fds_.find(static_cast<int>(req.fd));
      if (it == fds_.end()) return fail(EBADF);
      ::close(it->first);
      fds_.erase(it);
      return rsp::build_file_reply(0);
    }
    case Op::Pread: {
      auto it = fds_.find(static_cast<int>(req.fd));
      if (it == fds_.end()) return fail(EBADF);
      // The reply carries the data escaped: keep well under the packet size.
      std::size_t n = std::min<std::size_t>(req.count, max_reply / 2);
      std::string buf(n, '\0');
      ssize_t got = ::pread(it->first, buf.data(), n, static_cast<off_t>(req.offset));
      if (got < 0) return fail(errno);
      buf.resize(static_cast<std::size_t>(got));
      return rsp::build_file_reply(got, 0, buf, true);
    }
    case Op::Fstat:
      return fstat(static_cast<int>(req.fd));
    case Op::Readlink: {
      char buf[4096];
      ssize_t n = ::readlink(req.path.c_str(), buf, sizeof buf);
      if (n < 0) return fail(errno);
      return rsp::build_file_reply(n, 0, std::string_view(buf, static_cast<std::size_t>(n)), true);
    }
    case Op::Pwrite: {
      if (!allow_write_) return fail(EROFS);
      auto it = fds_.find(static_cast<int>(req.fd));
      if (it == fds_.end()) return fail(EBADF);
      ssize_t n = ::pwrite(it->first, req.data.data(), req.data.size(), static_cast<off_t>(req.offset));
      if (n < 0) return fail(errno);
      return rsp::build_file_reply(n);
    }
    case Op::Unlink:
      if (!allow_write_) return fail(EROFS);
      if (::unlink(req.path.c_str()) != 0) return fail(errno);
      return rsp::build_file_reply(0);
  }
  return fail(EINVAL);
}

std::string HostFiles::open(const rsp::HostFile& req) {
  if ((req.flags & kFileioWriteMask) && !allow_write_) return fail(EROFS);
  if (fds_.size() >= kMaxOpen) return fail(EMFILE);
  // GDB's fileio flag values are not the host's.
  int flags = O_CLOEXEC;
  switch (req.flags & 3) {
    case 1: flags |= O_WRONLY; break;
    case 2: flags |= O_RDWR; break;
    default: flags |= O_RDONLY; break;
  }
  if (req.flags & 0x8) flags |= O_APPEND;
  if (req.flags & 0x200) flags |= O_CREAT;
  if (req.flags & 0x400) flags |= O_TRUNC;
  if (req.flags & 0x800) flags |= O_EXCL;
  int fd = ::open(req.path.c_str(), flags, static_cast<mode_t>(req.mode & 07777));
  if (fd < 0) return fail(errno);
  fds_[fd] = fd;
  return rsp::build_file_reply(fd);
}

std::string HostFiles::fstat(int fd) {
  if (!fds_.count(fd)) return fail(EBADF);
  struct stat st{};
  if (::fstat(fd, &st) != 0) return fail(errno);
  // GDB's struct stat: fixed-size big-endian fields (File-I/O "struct stat").
  std::string out;
  put_be(out, st.st_dev, 4);
  put_be(out, st.st_ino, 4);
  put_be(out, st.st_mode, 4);
  put_be(out, st.st_nlink, 4);
  put_be(out, st.st_uid, 4);
  put_be(out, st.st_gid, 4);
  put_be(out, st.st_rdev, 4);
  put_be(out, static_cast<uint64_t>(st.st_size), 8);
  put_be(out, static_cast<uint64_t>(st.st_blksize), 8);
  put_be(out, static_cast<uint64_t>(st.st_blocks), 8);
  put_be(out, static_cast<uint64_t>(st.st_atime), 4);
  put_be(out, static_cast<uint64_t>(st.st_mtime), 4);
  put_be(out, static_cast<uint64_t>(st.st_ctime), 4);
  return rsp::build_file_reply(static_cast<int64_t>(out.size()), 0, out, true);
}

}  // namespace dbgstub
