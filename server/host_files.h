// GDB's host I/O (vFile): lets the debugger read the program image and
// /proc files from the machine dbgstub runs on, as it does with gdbserver
// ("Reading symbols from target:..."). Read-only unless dbgstub was
// started with --allow-file-write: by default a remote client may read
// what it could debug anyway, but never create, write or delete files.
#pragma once
#include <map>
#include <string>

#include "protocol/rsp/request.h"

namespace dbgstub {

class HostFiles {
 public:
  explicit HostFiles(bool allow_write = false) : allow_write_(allow_write) {}
  ~HostFiles();
  HostFiles(const HostFiles&) = delete;
  HostFiles& operator=(const HostFiles&) = delete;
  // Returns the full "F..." reply payload.
  std::string handle(const rsp::HostFile& req, std::size_t max_reply);

 private:
  std::string open(const rsp::HostFile& req);
  std::string fstat(int fd);
  bool allow_write_;
  std::map<int, int> fds_;  // the client's numbers are our real fds; kept to close them
  static constexpr std::size_t kMaxOpen = 64;
};

}  // namespace dbgstub
