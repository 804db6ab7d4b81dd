#include "server/gdb/host_files.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "protocol/rsp/reply.h"

namespace dbgstub {
namespace {

constexpr uint64_t kFileioWriteMask = 0x1 | 0x2 | 0x8 | 0x200 | 0x400 | 0x800;  // WRONLY RDWR APPEND CREAT TRUNC EXCL

std::string fail(int host_errno) { return rsp::build_file_reply(-1, rsp::fileio_errno(host_errno)); }

void put_be(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

int openat2_beneath(int dirfd, const std::string& rel, int flags, mode_t mode) {
  struct open_how how{};
  how.flags = static_cast<uint64_t>(flags);
  how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(::syscall(SYS_openat2, dirfd, rel.c_str(), &how, sizeof how));
}

// `path` relative to `root` ("." for the root itself), or nothing when it
// is not lexically beneath it.
std::optional<std::string> relative_below(const std::string& root, const std::string& path) {
  if (path.empty()) return std::nullopt;
  if (path[0] != '/') return path;  // relative: from the root
  std::string prefix = root == "/" ? "/" : root + "/";
  if (path == root) return std::string(".");
  if (path.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  std::string rel = path.substr(prefix.size());
  return rel.empty() ? std::string(".") : rel;
}

}  // namespace

HostFiles::HostFiles(bool allow_write, std::string root) : allow_write_(allow_write), root_(std::move(root)) {
  if (root_.empty()) return;
  root_fd_ = ::open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd_ < 0) spdlog::warn("vFile: cannot open the files root {}: {}; host I/O is refused", root_, strerror(errno));
}

HostFiles::~HostFiles() {
  for (auto& [fd, unused] : fds_) ::close(fd);
  if (root_fd_ >= 0) ::close(root_fd_);
}

int HostFiles::open_confined(const std::string& path, int flags, mode_t mode) {
  if (root_.empty()) return ::open(path.c_str(), flags, mode);
  auto refuse = [&](const char* why) {
    spdlog::warn("vFile: refused {}: {} the files root {}", path, why, root_);
    errno = EACCES;
    return -1;
  };
  if (root_fd_ < 0) return refuse("cannot open");
  auto rel = relative_below(root_, path);
  if (!rel) return refuse("outside");
  int fd = openat2_beneath(root_fd_, *rel, flags, mode);
  if (fd < 0 && errno == EXDEV) {
    // An absolute symlink on the way, or a ".." or symlink leading out.
    // Resolve it now and try again from what it names: still opened
    // beneath the root, so a link changed meanwhile can't lead out either.
    char real[PATH_MAX];
    std::string full = (*rel)[0] == '/' ? *rel : (root_ == "/" ? "/" : root_ + "/") + *rel;
    bool creating = flags & O_CREAT;
    std::string dir = full, name;
    if (creating) {  // the file may not exist yet: resolve its directory
      auto slash = full.rfind('/');
      dir = full.substr(0, slash == 0 ? 1 : slash);
      name = full.substr(slash + 1);
    }
    if (!::realpath(dir.c_str(), real)) return refuse("escapes");
    std::string resolved = real;
    if (creating) resolved += (resolved == "/" ? "" : "/") + name;
    auto rel2 = relative_below(root_, resolved);
    if (!rel2 || (*rel2)[0] == '/') return refuse("leads out of");
    fd = openat2_beneath(root_fd_, *rel2, flags, mode);
    if (fd < 0 && errno == EXDEV) return refuse("leads out of");
  }
  if (fd < 0 && errno == ENOSYS) return refuse("(no openat2 in this kernel) cannot confine to");
  if (fd < 0 && errno == ELOOP) return refuse("a /proc magic link (or a symlink loop) is not followed beneath");
  return fd;
}

std::string HostFiles::handle(const rsp::HostFile& req, std::size_t max_reply) {
  using Op = rsp::HostFile::Op;
  switch (req.op) {
    case Op::SetFs:
      return set_fs(req.fd);
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
      ssize_t n;
      if (root_.empty()) {
        n = ::readlink(req.path.c_str(), buf, sizeof buf);
      } else {
        // The link itself, in a directory opened beneath the root.
        auto slash = req.path.rfind('/');
        std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : req.path.substr(0, slash);
        std::string name = slash == std::string::npos ? req.path : req.path.substr(slash + 1);
        int dfd = open_confined(dir, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
        if (dfd < 0) return fail(errno);
        n = ::readlinkat(dfd, name.c_str(), buf, sizeof buf);
        int e = errno;
        ::close(dfd);
        errno = e;
      }
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
      if (root_.empty()) {
        if (::unlink(req.path.c_str()) != 0) return fail(errno);
      } else {
        auto slash = req.path.rfind('/');
        std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : req.path.substr(0, slash);
        std::string name = slash == std::string::npos ? req.path : req.path.substr(slash + 1);
        if (name.empty() || name == "." || name == "..") return fail(EACCES);
        int dfd = open_confined(dir, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
        if (dfd < 0) return fail(errno);
        int r = ::unlinkat(dfd, name.c_str(), 0);
        int e = errno;
        ::close(dfd);
        if (r != 0) return fail(e);
      }
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
  // Non-blocking: opening a FIFO with no writer (or a device that waits
  // for a carrier) would hold the one event loop every session shares.
  // No controlling terminal from a tty either.
  flags |= O_NONBLOCK | O_NOCTTY;
  // Permission bits only: GDB's File-I/O mode has no setuid, setgid or
  // sticky bit, and a client must not make set-id programs on this host.
  int fd = open_confined(req.path, flags, static_cast<mode_t>(req.mode & 0777));
  if (fd < 0) return fail(errno);
  struct stat st{};
  if (::fstat(fd, &st) != 0 || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) {
    // Read at an offset, which a pipe or socket has not; and reading one
    // would take bytes meant for someone else.
    spdlog::warn("vFile: refused {}: a pipe or socket", req.path);
    ::close(fd);
    return fail(ESPIPE);
  }
  fds_[fd] = fd;
  return rsp::build_file_reply(fd);
}

std::string HostFiles::set_fs(int64_t pid) {
  // gdb names the process whose view of the files it wants. They are served
  // from dbgstub's own mount namespace: usually the same files (a systemd
  // service with a private /tmp still has the system's programs and
  // libraries), and refusing would leave gdb with no symbols at all. When
  // the process's namespace is another, the log says so, once per process.
  if (pid > 0 && !fs_noted_.count(pid)) {
    fs_noted_.insert(pid);
    struct stat mine{}, theirs{};
    std::string ns = "/proc/" + std::to_string(pid) + "/ns/mnt";
    if (::stat("/proc/self/ns/mnt", &mine) == 0 && ::stat(ns.c_str(), &theirs) == 0 &&
        (mine.st_dev != theirs.st_dev || mine.st_ino != theirs.st_ino))
      spdlog::info("vFile:setfs: process {} has another mount namespace; files come from dbgstub's", pid);
  }
  return rsp::build_file_reply(0);
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
