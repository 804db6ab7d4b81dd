#include "server/lab/vm_state.h"
#include "protocol/rsp/hex.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace dbgstub {
namespace {

using json = nlohmann::json;

// A state file is a few hundred bytes; anything this large is not one.
constexpr std::size_t kMaxStateFile = 1 << 20;
constexpr std::size_t kMaxEntries = 4096;

Result<uint64_t> parse_hex_field(const json& obj, const char* key) {
  if (!obj.contains(key) || !obj[key].is_string()) return make_error(EINVAL, std::string(key) + " is not a hex string");
  const std::string s = obj[key].get<std::string>();
  if (s.size() < 3 || s.size() > 18 || s[0] != '0' || s[1] != 'x')
    return make_error(EINVAL, std::string(key) + " is not a hex string");
  uint64_t v = 0;
  for (std::size_t i = 2; i < s.size(); ++i) {
    char c = s[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return make_error(EINVAL, std::string(key) + " is not a hex string");
    v = v << 4 | static_cast<uint64_t>(d);
  }
  return v;
}

Result<int64_t> int_field(const json& obj, const char* key, int64_t lo, int64_t hi) {
  if (!obj.contains(key) || !obj[key].is_number_integer()) return make_error(EINVAL, std::string(key) + " is not a number");
  int64_t v = obj[key].get<int64_t>();
  if (v < lo || v > hi) return make_error(EINVAL, std::string(key) + " is out of range");
  return v;
}

Status sys_error(const std::string& what) { return make_error(errno, what + ": " + std::strerror(errno)); }

std::string timestamp() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

Status make_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST) return ok_status();
  if (errno == ENOENT) {
    // The parent first (a state folder under a folder not made yet).
    auto slash = dir.find_last_of('/');
    if (slash != std::string::npos && slash > 0) {
      if (auto st = make_dir(dir.substr(0, slash)); !st) return st;
      if (::mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST) return ok_status();
    }
  }
  return sys_error("cannot create the state folder " + dir);
}

}  // namespace

std::string serialize_vm_state(const VmState& state, const VmIdentity& id) {
  json bps = json::array();
  for (const auto& b : state.breakpoints) bps.push_back({{"type", b.type}, {"address", rsp::hex_0x(b.address)}, {"kind", b.kind}});
  json terms = json::array();
  for (const auto& t : state.terminations) {
    json j = {{"address", rsp::hex_0x(t.address)}, {"pid", t.pid}, {"name", t.name}};
    if (t.start_time) j["start_time"] = *t.start_time;
    terms.push_back(std::move(j));
  }
  json doc = {{"version", kVmStateVersion}, {"name", id.name},     {"gdbstub", id.gdbstub},
              {"held", state.held},         {"breakpoints", bps}, {"terminations", terms}};
  return doc.dump(2) + "\n";
}

Result<VmState> parse_vm_state(std::string_view text, const VmIdentity& expected) {
  if (text.size() > kMaxStateFile) return make_error(EINVAL, "damaged: too large for a state file");
  json doc = json::parse(text.begin(), text.end(), nullptr, false);
  if (doc.is_discarded()) return make_error(EINVAL, "damaged: not JSON");
  if (!doc.is_object()) return make_error(EINVAL, "damaged: not a JSON object");
  if (!doc.contains("version") || !doc["version"].is_number_integer() || doc["version"].get<int64_t>() != kVmStateVersion)
    return make_error(EINVAL, "damaged: not version " + std::to_string(kVmStateVersion));
  if (!doc.contains("name") || !doc["name"].is_string()) return make_error(EINVAL, "damaged: no name");
  if (!doc.contains("gdbstub") || !doc["gdbstub"].is_string()) return make_error(EINVAL, "damaged: no gdbstub");
  if (doc["name"].get<std::string>() != expected.name)
    return make_error(EINVAL, "foreign: it is the state of VM '" + doc["name"].get<std::string>() + "'");
  if (doc["gdbstub"].get<std::string>() != expected.gdbstub)
    return make_error(EINVAL, "foreign: it is the state of the VM whose gdbstub is at " +
                                  doc["gdbstub"].get<std::string>());
  VmState st;
  if (!doc.contains("held") || !doc["held"].is_boolean()) return make_error(EINVAL, "damaged: held is not true/false");
  st.held = doc["held"].get<bool>();
  for (const char* key : {"breakpoints", "terminations"})
    if (!doc.contains(key) || !doc[key].is_array() || doc[key].size() > kMaxEntries)
      return make_error(EINVAL, std::string("damaged: ") + key + " is not a list");
  for (const auto& b : doc["breakpoints"]) {
    if (!b.is_object()) return make_error(EINVAL, "damaged: a breakpoint is not an object");
    auto type = int_field(b, "type", 0, 4);
    auto addr = parse_hex_field(b, "address");
    auto kind = int_field(b, "kind", 0, 1 << 20);
    if (!type || !addr || !kind)
      return make_error(EINVAL, "damaged: breakpoint: " + (!type ? type.error() : !addr ? addr.error() : kind.error()).message);
    st.breakpoints.push_back({static_cast<int>(*type), *addr, static_cast<uint64_t>(*kind)});
  }
  for (const auto& t : doc["terminations"]) {
    if (!t.is_object()) return make_error(EINVAL, "damaged: a termination is not an object");
    auto addr = parse_hex_field(t, "address");
    auto pid = int_field(t, "pid", 1, INT32_MAX);
    if (!addr || !pid)
      return make_error(EINVAL, "damaged: termination: " + (!addr ? addr.error() : pid.error()).message);
    if (!t.contains("name") || !t["name"].is_string() || t["name"].get<std::string>().size() > 256)
      return make_error(EINVAL, "damaged: termination: name is not a string");
    PendingTermination p{*addr, static_cast<int>(*pid), t["name"].get<std::string>(), std::nullopt};
    if (t.contains("start_time")) {
      if (!t["start_time"].is_number_unsigned()) return make_error(EINVAL, "damaged: termination: bad start_time");
      p.start_time = t["start_time"].get<uint64_t>();
    }
    st.terminations.push_back(std::move(p));
  }
  return st;
}

std::string vm_state_file_name(const std::string& vm_name) {
  std::string out;
  for (char c : vm_name)
    out += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-') ? c : '_';
  if (out.empty() || out[0] == '.') out.insert(out.begin(), '_');
  if (out.size() > 200) out.resize(200);
  return out + ".json";
}

Status write_file_atomically(const std::string& path, const std::string& text) {
  auto slash = path.find_last_of('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  if (auto st = make_dir(dir); !st) return st;
  std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return sys_error("cannot create " + tmp);
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      auto st = sys_error("cannot write " + tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return st;
    }
    done += static_cast<std::size_t>(n);
  }
  // The data on disk before the name points at it: a crash never leaves
  // an empty file under the real name.
  if (::fsync(fd) != 0) {
    auto st = sys_error("cannot sync " + tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return st;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    auto st = sys_error("cannot rename " + tmp + " to " + path);
    ::unlink(tmp.c_str());
    return st;
  }
  // And the rename itself.
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return sys_error("cannot open the folder " + dir);
  int rc = ::fsync(dfd);
  ::close(dfd);
  if (rc != 0) return sys_error("cannot sync the folder " + dir);
  return ok_status();
}

std::string default_state_dir() {
  if (const char* d = std::getenv("STATE_DIRECTORY"); d && *d) {
    std::string s = d;
    return s.substr(0, s.find(':'));
  }
  return kDefaultStateDir;
}

VmStateFile::VmStateFile(std::string dir, VmIdentity id) : dir_(std::move(dir)), id_(std::move(id)) {
  if (dir_.empty()) dir_ = default_state_dir();
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
  path_ = dir_ + "/" + vm_state_file_name(id_.name);
}

VmStateFile::~VmStateFile() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

Status VmStateFile::lock() {
  if (lock_fd_ >= 0) return ok_status();
  if (auto st = make_dir(dir_); !st) {
    spdlog::warn("{}: {}; served without a state file", id_.name, st.error().message);
    return ok_status();
  }
  std::string lock_path = dir_ + "/" + vm_state_file_name(id_.name) + ".lock";
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    spdlog::warn("{}: cannot open {}: {}; served without a state file", id_.name, lock_path, std::strerror(errno));
    return ok_status();
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    ::close(fd);
    if (e == EWOULDBLOCK)
      return make_error(EBUSY, "another dbgstub serves VM " + id_.name + " with the state folder " + dir_ + " (it holds " +
                                   lock_path + "); give each dbgstub its own --state-dir, or each VM its own name");
    spdlog::warn("{}: cannot lock {}: {}; served without a state file", id_.name, lock_path, std::strerror(e));
    return ok_status();
  }
  lock_fd_ = fd;
  return ok_status();
}

VmState VmStateFile::load() {
  state_ = VmState{};
  std::ifstream in(path_, std::ios::binary);
  if (!in) {
    if (errno != ENOENT) spdlog::warn("{}: cannot read the state file {}: {}", id_.name, path_, std::strerror(errno));
    return state_;
  }
  std::string text;
  char buf[4096];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxStateFile) break;
  }
  auto parsed = parse_vm_state(text, id_);
  if (parsed) {
    state_ = std::move(*parsed);
    return state_;
  }
  // Never over an earlier one set aside in the same second.
  std::string aside = path_ + ".damaged-" + timestamp();
  struct stat sb {};
  for (int i = 1; ::stat(aside.c_str(), &sb) == 0 && i < 1000; ++i)
    aside = path_ + ".damaged-" + timestamp() + "-" + std::to_string(i);
  if (::rename(path_.c_str(), aside.c_str()) == 0)
    spdlog::error("{}: the state file {} is not trusted ({}); set aside as {}", id_.name, path_,
                  parsed.error().message, aside);
  else
    spdlog::error("{}: the state file {} is not trusted ({}); it could not be set aside: {}", id_.name, path_,
                  parsed.error().message, std::strerror(errno));
  return state_;
}

void VmStateFile::set_hold(bool held, std::vector<PlantedBreakpoint> breakpoints) {
  if (state_.held == held && state_.breakpoints == breakpoints) return;
  state_.held = held;
  state_.breakpoints = std::move(breakpoints);
  (void)save();
}

void VmStateFile::set_terminations(std::vector<PendingTermination> terminations) {
  if (state_.terminations == terminations) return;
  state_.terminations = std::move(terminations);
  (void)save();
}

Status remove_file_durably(const std::string& path) {
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return ok_status();
    return sys_error("cannot remove " + path);
  }
  auto slash = path.find_last_of('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return sys_error("cannot open the folder " + dir);
  int rc = ::fsync(dfd);
  ::close(dfd);
  if (rc != 0) return sys_error("cannot sync the folder " + dir);
  return ok_status();
}

Status VmStateFile::save() {
  // Nothing to undo: no file (a folder of VMs seen once stays empty).
  auto st = state_.needs_recovery() ? write_file_atomically(path_, serialize_vm_state(state_, id_))
                                    : remove_file_durably(path_);
  if (!st) {
    if (st.error().message != last_error_)
      spdlog::warn("{}: cannot record the VM's state (a restart after a crash could not recover it): {}", id_.name,
                   st.error().message);
    last_error_ = st.error().message;
    return st;
  }
  last_error_.clear();
  return ok_status();
}

}  // namespace dbgstub
