// Processes of this machine from /proc: gdb's "info os processes" document
// (as gdbserver's nat/linux-osdata.c builds it) and WinDbg's !process.
#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>

#include "targets/local_kernel/local_kernel_internal.h"

namespace dbgstub::lk {

namespace {

bool all_digits(const char* s) {
  if (!*s) return false;
  for (; *s; ++s)
    if (!std::isdigit(static_cast<unsigned char>(*s))) return false;
  return true;
}

// Numeric entries of a directory, in directory order (as gdbserver's readdir loop).
std::vector<std::string> numeric_entries(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d))
    if (all_digits(e->d_name) && std::char_traits<char>::length(e->d_name) <= 19) out.emplace_back(e->d_name);
  ::closedir(d);
  return out;
}

// The whole file; nullopt if it cannot be opened. Plain open/read: the
// process document reads a few small /proc files for every thread of the
// machine, and a stream per file cost more than the reading.
std::optional<std::string> read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

bool is_stream_space(char c) {  // what operator>> skips (the "C" locale's isspace)
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// Field `n` of /proc/PID/stat after "(comm)" (stat_fields_after_comm(stat)[n]),
// without splitting the others out.
std::optional<std::string> stat_field_after_comm(const std::string& stat, std::size_t n) {
  auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::size_t i = close + 1;
  for (std::size_t field = 0;; ++field) {
    while (i < stat.size() && is_stream_space(stat[i])) ++i;
    if (i == stat.size()) return std::nullopt;
    std::size_t start = i;
    while (i < stat.size() && !is_stream_space(stat[i])) ++i;
    if (field == n) return stat.substr(start, i - start);
  }
}

// Fields of /proc/PID/stat after "(comm)": [0] is the state.
std::vector<std::string> stat_fields_after_comm(const std::string& stat) {
  std::vector<std::string> out;
  auto close = stat.rfind(')');
  if (close == std::string::npos) return out;
  std::istringstream in(stat.substr(close + 1));
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// gdbserver's command_from_pid: "%lld %17s" from /proc/PID/stat, without
// the first and last character of the token. (So a name with a space, or
// longer than 15 characters, comes out cut short, as in gdbserver.) `stat`:
// that file's contents, nullopt if it could not be read.
std::string command_from_stat(const std::optional<std::string>& stat, const std::string& pid) {
  if (!stat) return pid;
  std::istringstream in(*stat);
  std::string stat_pid, token;
  if (!(in >> stat_pid >> token) || stat_pid != pid) return "";
  if (token.size() > 17) token.resize(17);
  if (token.size() < 2) return "";
  token.pop_back();
  return token.substr(1);
}

std::string commandline_from_pid(const std::string& proc_root, const std::string& pid,
                                 const std::optional<std::string>& stat) {
  auto cmdline = read_file(proc_root + "/" + pid + "/cmdline");
  if (!cmdline) return "";
  if (cmdline->empty()) {
    std::string c = "[" + command_from_stat(stat, pid);
    if (c.size() > 30) c.resize(30);
    if (c.size() < 31) c += "]";
    return c;
  }
  std::replace(cmdline->begin(), cmdline->end(), '\0', ' ');
  return *cmdline;
}

std::string user_name(uid_t uid) {
  passwd pwd;
  passwd* found = nullptr;
  char buf[1024];
  if (::getpwuid_r(uid, &pwd, buf, sizeof buf, &found) != 0 || !found) return "";
  std::string name = found->pw_name;
  if (name.size() > 31) name.resize(31);  // UT_NAMESIZE - 1
  return name;
}

// `names` remembers the user name of each uid for one document: looking it
// up reads the password database anew each time.
std::string user_of(const std::string& proc_root, const std::string& pid, std::map<uid_t, std::string>& names) {
  struct stat st;
  if (::stat((proc_root + "/" + pid).c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return "?";
  if (auto it = names.find(st.st_uid); it != names.end()) return it->second;
  return names[st.st_uid] = user_name(st.st_uid);
}

// The online core `processor` (a stat field) names, if it does.
std::optional<long> online_core(const std::optional<std::string>& processor, long num_cores) {
  if (!processor) return std::nullopt;
  char* end = nullptr;
  long core = std::strtol(processor->c_str(), &end, 10);
  if (end == processor->c_str() || core < 0 || core >= num_cores) return std::nullopt;
  return core;
}

// The cores of one thread-group: the processor field (39) of each of its
// tasks' stat. num_cores: sysconf(_SC_NPROCESSORS_ONLN), asked once per
// document (it reads /sys/devices/system/cpu/online each time).
//
// `stat` is /proc/PID/stat (nullopt if unreadable). When it says the group
// has one thread (num_threads, field 20) and its leader is not a zombie,
// that one thread is the leader, whose own task stat has the same
// processor field: it is taken from there, without listing task/ and
// reading task/PID/stat (most processes of a machine have one thread, and
// that saved about half of the document's system calls). Otherwise, or if
// either field is missing, every task's stat is read as gdbserver does.
std::string cores_of(const std::string& proc_root, const std::string& pid, const std::optional<std::string>& stat,
                     long num_cores) {
  if (stat) {
    auto state = stat_field_after_comm(*stat, 0);
    auto threads = stat_field_after_comm(*stat, 17);
    auto processor = stat_field_after_comm(*stat, 36);
    if (state && *state != "Z" && *state != "X" && threads && *threads == "1" && processor) {
      char* end = nullptr;
      long core = std::strtol(processor->c_str(), &end, 10);
      if (end != processor->c_str()) return core >= 0 && core < num_cores ? std::to_string(core) : std::string();
    }
  }
  std::map<long, int> cores;
  std::string task_dir = proc_root + "/" + pid + "/task";
  for (const auto& tid : numeric_entries(task_dir)) {
    auto task_stat = read_file(task_dir + "/" + tid + "/stat");
    if (!task_stat) continue;
    if (auto core = online_core(stat_field_after_comm(*task_stat, 36), num_cores)) ++cores[*core];
  }
  std::string out;
  for (auto& [core, n] : cores) {
    (void)n;
    if (!out.empty()) out += ",";
    out += std::to_string(core);
  }
  return out;
}

}  // namespace

std::string xml_escape_text(std::string_view s) {
  // Runs without a special character are copied whole (a process
  // document escapes every command line of the machine).
  static constexpr std::string_view kSpecial = "'\"&<>";
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t j = s.find_first_of(kSpecial, i);
    if (j == std::string_view::npos) j = s.size();
    out.append(s, i, j - i);
    if (j == s.size()) break;
    switch (s[j]) {
      case '\'': out += "&apos;"; break;
      case '"': out += "&quot;"; break;
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      default: out += "&gt;"; break;  // '>'
    }
    i = j + 1;
  }
  return out;
}

std::vector<ProcEntry> list_processes(const std::string& proc_root) {
  std::vector<ProcEntry> out;
  for (const auto& pid : numeric_entries(proc_root)) {
    auto stat = read_file(proc_root + "/" + pid + "/stat");
    if (!stat) continue;  // gone meanwhile
    ProcEntry e;
    e.pid = std::atoi(pid.c_str());
    auto open = stat->find('(');
    auto close = stat->rfind(')');
    if (open != std::string::npos && close != std::string::npos && close > open)
      e.comm = stat->substr(open + 1, close - open - 1);
    auto f = stat_fields_after_comm(*stat);
    if (f.size() > 1) e.ppid = std::atoi(f[1].c_str());
    out.push_back(std::move(e));
  }
  return out;
}

std::string osdata_processes(const std::string& proc_root) {
  std::string x = "<osdata type=\"processes\">\n";
  long num_cores = ::sysconf(_SC_NPROCESSORS_ONLN);
  std::map<uid_t, std::string> users;
  for (const auto& pid : numeric_entries(proc_root)) {
    x += "<item>";
    x += "<column name=\"pid\">" + pid + "</column>";
    x += "<column name=\"user\">" + xml_escape_text(user_of(proc_root, pid, users)) + "</column>";
    // Read once for both columns (a kernel thread's command, the cores).
    auto stat = read_file(proc_root + "/" + pid + "/stat");
    x += "<column name=\"command\">" + xml_escape_text(commandline_from_pid(proc_root, pid, stat)) + "</column>";
    x += "<column name=\"cores\">" + xml_escape_text(cores_of(proc_root, pid, stat, num_cores)) + "</column>";
    x += "</item>";
  }
  x += "</osdata>\n";
  return x;
}

std::string osdata_types() {
  return "<osdata type=\"types\">\n"
         "<item><column name=\"Type\">processes</column>"
         "<column name=\"Description\">Listing of all processes</column>"
         "<column name=\"Title\">Processes</column></item>"
         "</osdata>\n";
}

std::optional<BangProcessArgs> parse_bang_process_args(const std::string& args) {
  std::istringstream in(args);
  std::vector<std::string> w;
  for (std::string s; in >> s;) w.push_back(s);
  if (w.size() > 3) return std::nullopt;
  BangProcessArgs a;
  if (!w.empty() && w[0] != "-1") {
    auto v = parse_address(w[0]);
    if (!v) return std::nullopt;
    a.which = *v;
  }
  if (w.size() > 1 && !parse_address(w[1])) return std::nullopt;
  if (w.size() > 2) a.image = w[2];
  return a;
}

CommandOutput bang_process(const std::string& proc_root, const std::string& args) {
  const std::string usage =
      "Usage: !process [CID [FLAGS [IMAGE]]]   (CID in hex, 0 for all processes; FLAGS are accepted and ignored; "
      "IMAGE may use * and ?; e.g. !process 0 0)\n";
  auto parsed = parse_bang_process_args(args);
  if (!parsed) return {false, usage};
  uint64_t cid = parsed->which;
  const std::string& image = parsed->image;

  auto procs = list_processes(proc_root);
  std::string out;
  if (cid == 0) out += "**** ACTIVE PROCESS DUMP (from " + proc_root + ") ****\n";
  out += "(task_struct addresses are not available from /proc: PROCESS shows 0)\n";
  int shown = 0;
  for (const auto& p : procs) {
    if (cid != 0 && static_cast<uint64_t>(p.pid) != cid) continue;
    if (!image.empty() && !wildcard_match(image, p.comm)) continue;
    char line[128];
    std::snprintf(line, sizeof line, "PROCESS 0  SessionId: none  Cid: %04x  Peb: 0  ParentCid: %04x\n", p.pid, p.ppid);
    out += line;
    out += "    Image: " + p.comm + "\n\n";
    ++shown;
  }
  if (shown == 0) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(cid));
    if (cid != 0) return {false, out + "No process with Cid " + buf + "\n"};
    if (!image.empty()) out += "No process with image '" + image + "'\n";
  }
  return {true, out};
}

}  // namespace dbgstub::lk
