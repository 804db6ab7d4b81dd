// GDB's host I/O (vFile): lets the debugger read the program image and
// /proc files from the machine dbgstub runs on, as it does with gdbserver
// ("Reading symbols from target:..."). Read-only unless dbgstub was
// started with --allow-file-write: by default a remote client may read
// what it could debug anyway, but never create, write or delete files.
// With a root (the configuration's "files": {"root": DIR}), every path is
// confined to DIR: an absolute path must name something beneath DIR (a
// relative one is taken from DIR), and it is opened with openat2's
// RESOLVE_BENEATH from DIR, so no "..", symlink or magic link leads out of
// it; anything else is refused (EACCES) and logged.
#pragma once
#include <map>
#include <set>
#include <string>

#include "protocol/rsp/request.h"

namespace dbgstub {

class HostFiles {
 public:
  explicit HostFiles(bool allow_write = false, std::string root = {});
  ~HostFiles();
  HostFiles(const HostFiles&) = delete;
  HostFiles& operator=(const HostFiles&) = delete;
  // Returns the full "F..." reply payload.
  std::string handle(const rsp::HostFile& req, std::size_t max_reply);

 private:
  std::string open(const rsp::HostFile& req);
  std::string fstat(int fd);
  std::string set_fs(int64_t pid);
  // Opens `path` confined to the root (flags as open(2)); -1 and errno.
  int open_confined(const std::string& path, int flags, mode_t mode);
  bool allow_write_;
  std::string root_;    // resolved; empty: not confined
  int root_fd_ = -1;
  std::map<int, int> fds_;  // the client's numbers are our real fds; kept to close them
  std::set<int64_t> fs_noted_;  // processes whose mount namespace was looked at
  static constexpr std::size_t kMaxOpen = 64;
};

}  // namespace dbgstub
