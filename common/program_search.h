// Finding a program by name as execvp does, but before a fork (PATH is read
// in dbgstub, not in the child). Shared by the command line's PROG
// (server/app/options.cpp) and --wrapper (targets/process).
#pragma once
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace dbgstub {

// `file` in `dir`, a leading "./" of `file` dropped.
inline std::string path_in(const std::string& dir, std::string_view file) {
  if (file.substr(0, 2) == "./") file.remove_prefix(2);
  return (dir.empty() || dir.back() == '/' ? dir : dir + "/") + std::string(file);
}

// A regular file that may be executed (not a directory of that name).
inline bool is_program(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// PATH, or the usual default when it is not set.
inline std::string search_path_list() {
  const char* path = std::getenv("PATH");
  return path ? path : "/usr/local/bin:/usr/bin:/bin";
}

// The first program named `name` along the colon-separated `path_list`; an
// empty or relative entry is taken from `cwd`.
inline std::optional<std::string> find_on_path(std::string_view name, const std::string& path_list,
                                               const std::string& cwd) {
  for (std::size_t b = 0; b <= path_list.size();) {
    std::size_t e = path_list.find(':', b);
    if (e == std::string::npos) e = path_list.size();
    std::string dir = path_list.substr(b, e - b);
    std::string cand = path_in(dir.empty() ? cwd : dir[0] == '/' ? dir : path_in(cwd, dir), name);
    if (is_program(cand)) return cand;
    b = e + 1;
  }
  return std::nullopt;
}

}  // namespace dbgstub
