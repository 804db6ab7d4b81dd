#include "server/lab/lab_config.h"

#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace dbgstub {
namespace {

using json = nlohmann::json;

Error field_error(const std::string& field, const std::string& why) { return Error{22, field + ": " + why}; }

Result<std::string> string_field(const json& obj, const std::string& where, const char* key, bool required) {
  std::string field = where + "." + key;
  if (!obj.contains(key)) {
    if (required) return field_error(field, "missing");
    return std::string();
  }
  if (!obj[key].is_string()) return field_error(field, "must be a string");
  std::string v = obj[key].get<std::string>();
  if (v.empty()) return field_error(field, "is empty");
  return v;
}

Status known_fields(const json& obj, const std::string& where, const std::set<std::string>& known) {
  for (auto& [key, value] : obj.items()) {
    (void)value;
    if (known.count(key)) continue;
    std::string list;
    for (auto& k : known) list += (list.empty() ? "" : ", ") + k;
    return field_error(where.empty() ? key : where + "." + key, "unknown field (known: " + list + ")");
  }
  return ok_status();
}

// "clients": a non-empty array of addresses and CIDR ranges.
Result<ClientAllowList> parse_clients(const json& v, const std::string& field) {
  if (!v.is_array() || v.empty())
    return field_error(field, "must be a non-empty array of addresses or CIDR ranges (\"10.1.0.0/16\", \"::1\")");
  std::vector<std::string> entries;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string()) return field_error(field + "[" + std::to_string(i) + "]", "must be a string");
    entries.push_back(v[i].get<std::string>());
  }
  auto list = ClientAllowList::parse(entries);
  if (!list) return make_error(22, field + list.error().message);
  return list;
}

Status parse_vms(const json& doc, LabConfig& cfg) {
  if (!doc["vms"].is_array() || doc["vms"].empty()) return field_error("vms", "must be a non-empty array");
  std::set<std::string> names;
  std::set<std::pair<std::string, uint16_t>> listens;
  for (std::size_t i = 0; i < doc["vms"].size(); ++i) {
    const json& v = doc["vms"][i];
    std::string where = "vms[" + std::to_string(i) + "]";
    if (!v.is_object()) return field_error(where, "must be an object");
    if (auto st = known_fields(v, where, {"name", "listen", "kd", "gdbstub", "qga", "qmp", "clients"}); !st) return st;
    LabVm vm;
    auto name = string_field(v, where, "name", true);
    if (!name) return name.error();
    vm.name = *name;
    if (!names.insert(vm.name).second) return field_error(where + ".name", "'" + vm.name + "' is used twice");
    // GDB's port ("listen"), WinDbg's ("kd"), or both: at least one.
    if (!v.contains("listen") && !v.contains("kd"))
      return field_error(where + ".listen", "missing (give \"listen\" for GDB, \"kd\" for WinDbg, or both)");
    for (const char* key : {"listen", "kd"}) {
      auto value = string_field(v, where, key, false);
      if (!value) return value.error();
      if (value->empty()) continue;
      bool gdb = std::string(key) == "listen";
      std::string& host = gdb ? vm.host : vm.kd_host;
      uint16_t& port = gdb ? vm.port : vm.kd_port;
      (gdb ? vm.gdb : vm.kd) = true;
      if (auto st = parse_host_port(*value, host, port); !st) return field_error(where + "." + key, st.error().message);
      if (port != 0 && !listens.insert({host, port}).second)
        return field_error(where + "." + key, "'" + *value + "' is used by another VM or front end");
    }
    auto gdbstub = string_field(v, where, "gdbstub", true);
    if (!gdbstub) return gdbstub.error();
    if (auto st = parse_host_port(*gdbstub, vm.vm.gdbstub_host, vm.vm.gdbstub_port); !st)
      return field_error(where + ".gdbstub", st.error().message);
    if (vm.vm.gdbstub_port == 0) return field_error(where + ".gdbstub", "bad port '0'");
    auto qga = string_field(v, where, "qga", false);
    if (!qga) return qga.error();
    vm.vm.qga = *qga;
    auto qmp = string_field(v, where, "qmp", false);
    if (!qmp) return qmp.error();
    vm.vm.qmp = *qmp;
    vm.clients = cfg.clients;
    if (v.contains("clients")) {
      auto clients = parse_clients(v["clients"], where + ".clients");
      if (!clients) return clients.error();
      vm.clients = std::move(*clients);
    }
    cfg.vms.push_back(std::move(vm));
  }
  return ok_status();
}

// "FIRST-LAST": a range of ports, FIRST <= LAST, none 0.
Status parse_port_range(const json& v, const std::string& field, uint16_t& first, uint16_t& last) {
  if (!v.is_string()) return field_error(field, "must be a string \"FIRST-LAST\" (\"2400-2499\")");
  std::string text = v.get<std::string>();
  auto dash = text.find('-');
  auto number = [](const std::string& t) -> long {
    if (t.empty() || t.size() > 5 || t.find_first_not_of("0123456789") != std::string::npos) return -1;
    return std::stol(t);
  };
  long a = dash == std::string::npos ? number(text) : number(text.substr(0, dash));
  long b = dash == std::string::npos ? a : number(text.substr(dash + 1));
  if (a <= 0 || b <= 0 || a > 65535 || b > 65535 || a > b)
    return field_error(field, "'" + text + "' is not a range of ports FIRST-LAST (1-65535, FIRST <= LAST)");
  first = static_cast<uint16_t>(a);
  last = static_cast<uint16_t>(b);
  return ok_status();
}

Status parse_libvirt(const json& v, LabConfig& cfg) {
  if (!v.is_object()) return field_error("libvirt", "must be an object with \"ports\" (and \"uri\", \"kd_ports\")");
  if (auto st = known_fields(v, "libvirt", {"uri", "ports", "kd_ports", "host"}); !st) return st;
  LabLibvirt lv;
  auto uri = string_field(v, "libvirt", "uri", false);
  if (!uri) return uri.error();
  if (!uri->empty()) lv.uri = *uri;
  auto host = string_field(v, "libvirt", "host", false);
  if (!host) return host.error();
  if (!host->empty()) lv.host = *host == "localhost" ? "127.0.0.1" : *host;
  if (!v.contains("ports")) return field_error("libvirt.ports", "missing (\"FIRST-LAST\": the domains' GDB ports)");
  if (auto st = parse_port_range(v["ports"], "libvirt.ports", lv.first, lv.last); !st) return st;
  if (v.contains("kd_ports")) {
    lv.kd = true;
    if (auto st = parse_port_range(v["kd_ports"], "libvirt.kd_ports", lv.kd_first, lv.kd_last); !st) return st;
    if (lv.kd_first <= lv.last && lv.first <= lv.kd_last)
      return field_error("libvirt.kd_ports", "overlaps libvirt.ports");
  }
  for (std::size_t i = 0; i < cfg.vms.size(); ++i) {
    const LabVm& vm = cfg.vms[i];
    for (uint16_t p : {vm.gdb ? vm.port : uint16_t(0), vm.kd ? vm.kd_port : uint16_t(0)})
      if (p != 0 && ((p >= lv.first && p <= lv.last) || (lv.kd && p >= lv.kd_first && p <= lv.kd_last)))
        return field_error("libvirt", "its port ranges hold port " + std::to_string(p) + " of vms[" +
                                          std::to_string(i) + "] (" + vm.name + ")");
  }
  cfg.libvirt = lv;
  return ok_status();
}

// An absolute path, resolved (symlinks, "..") now: what is checked later is
// the resolved form.
Result<std::string> existing_path(const json& v, const std::string& field) {
  if (!v.is_string()) return field_error(field, "must be a string");
  std::string p = v.get<std::string>();
  if (p.empty()) return field_error(field, "is empty");
  if (p[0] != '/') return field_error(field, "'" + p + "' must be an absolute path");
  char buf[PATH_MAX];
  if (!::realpath(p.c_str(), buf)) return field_error(field, "'" + p + "': " + std::strerror(errno));
  return std::string(buf);
}

bool is_dir(const std::string& p) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

Status parse_run(const json& v, SecurityPolicy& policy) {
  if (!v.is_array() || v.empty()) return field_error("allow.run", "must be a non-empty array of absolute paths");
  RunAllowList run;
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::string field = "allow.run[" + std::to_string(i) + "]";
    auto p = existing_path(v[i], field);
    if (!p) return p.error();
    (is_dir(*p) ? run.dirs : run.files).push_back(*p);
  }
  policy.run = std::move(run);
  return ok_status();
}

Result<uid_t> parse_user(const json& v, const std::string& field) {
  if (v.is_number_integer()) {
    if (v.get<long long>() < 0 || v.get<long long>() > 0xfffffffeLL) return field_error(field, "bad uid");
    return static_cast<uid_t>(v.get<long long>());
  }
  if (!v.is_string() || v.get<std::string>().empty()) return field_error(field, "must be a user name or a uid");
  std::string name = v.get<std::string>();
  if (name.find_first_not_of("0123456789") == std::string::npos && name.size() < 10)
    return static_cast<uid_t>(std::stoul(name));
  struct passwd pw{};
  struct passwd* found = nullptr;
  char buf[4096];
  if (::getpwnam_r(name.c_str(), &pw, buf, sizeof buf, &found) != 0 || !found)
    return field_error(field, "no such user '" + name + "'");
  return found->pw_uid;
}

Status parse_attach(const json& v, SecurityPolicy& policy) {
  if (!v.is_object()) return field_error("allow.attach", "must be an object with \"users\" and/or \"pids\"");
  if (auto st = known_fields(v, "allow.attach", {"users", "pids"}); !st) return st;
  if (!v.contains("users") && !v.contains("pids")) return field_error("allow.attach", "needs \"users\" or \"pids\"");
  AttachAllowList attach;
  if (v.contains("users")) {
    const json& u = v["users"];
    if (!u.is_array() || u.empty()) return field_error("allow.attach.users", "must be a non-empty array");
    for (std::size_t i = 0; i < u.size(); ++i) {
      auto uid = parse_user(u[i], "allow.attach.users[" + std::to_string(i) + "]");
      if (!uid) return uid.error();
      attach.uids.insert(*uid);
    }
  }
  if (v.contains("pids")) {
    const json& p = v["pids"];
    if (!p.is_array() || p.empty()) return field_error("allow.attach.pids", "must be a non-empty array");
    for (std::size_t i = 0; i < p.size(); ++i) {
      std::string field = "allow.attach.pids[" + std::to_string(i) + "]";
      if (!p[i].is_number_integer() || p[i].get<long long>() <= 0 || p[i].get<long long>() > INT_MAX)
        return field_error(field, "must be a positive integer");
      attach.pids.insert(static_cast<int>(p[i].get<long long>()));
    }
  }
  policy.attach = std::move(attach);
  return ok_status();
}

Status parse_policy(const json& doc, SecurityPolicy& policy) {
  if (doc.contains("allow")) {
    const json& a = doc["allow"];
    if (!a.is_object()) return field_error("allow", "must be an object with \"run\" and/or \"attach\"");
    if (auto st = known_fields(a, "allow", {"run", "attach"}); !st) return st;
    if (a.contains("run"))
      if (auto st = parse_run(a["run"], policy); !st) return st;
    if (a.contains("attach"))
      if (auto st = parse_attach(a["attach"], policy); !st) return st;
  }
  if (doc.contains("files")) {
    const json& f = doc["files"];
    if (!f.is_object()) return field_error("files", "must be an object with \"root\" and/or \"write\"");
    if (auto st = known_fields(f, "files", {"root", "write"}); !st) return st;
    if (f.contains("root")) {
      auto root = existing_path(f["root"], "files.root");
      if (!root) return root.error();
      if (!is_dir(*root)) return field_error("files.root", "'" + *root + "' is not a directory");
      policy.files_root = *root;
    }
    if (f.contains("write")) {
      if (!f["write"].is_boolean()) return field_error("files.write", "must be true or false");
      policy.files_write = f["write"].get<bool>();
    }
  }
  return ok_status();
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) return make_error(2, "cannot read the configuration " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Result<LabConfig> with_path(const std::string& path, Result<LabConfig> cfg) {
  if (!cfg) return make_error(cfg.error().code, path + ": " + cfg.error().message);
  return cfg;
}

}  // namespace

Result<LabConfig> parse_config(std::string_view text) {
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded()) return make_error(22, "the configuration is not valid JSON");
  if (!doc.is_object())
    return make_error(22, "the configuration must be a JSON object with \"vms\" (a lab) or \"allow\"/\"files\"");
  if (auto st = known_fields(doc, "",
                             {"vms", "libvirt", "allow", "files", "state_dir", "clients", "control", "control_group"});
      !st)
    return st.error();
  LabConfig cfg;
  if (doc.contains("clients")) {
    if (!doc.contains("vms") && !doc.contains("libvirt"))
      return field_error("clients", "applies to a lab of VMs (\"vms\")");
    auto clients = parse_clients(doc["clients"], "clients");
    if (!clients) return clients.error();
    cfg.clients = std::move(*clients);
  }
  if (doc.contains("vms") || doc.contains("libvirt")) {
    for (const char* k : {"allow", "files"})
      if (doc.contains(k))
        return field_error(k, "applies to a user-mode session, not to a lab of VMs (\"vms\")");
    if (doc.contains("vms"))
      if (auto st = parse_vms(doc, cfg); !st) return st.error();
    if (doc.contains("libvirt"))
      if (auto st = parse_libvirt(doc["libvirt"], cfg); !st) return st.error();
    // Where the VMs' state files go (server/lab/vm_state.h).
    if (doc.contains("state_dir")) {
      const json& d = doc["state_dir"];
      if (!d.is_string() || d.get<std::string>().empty() || d.get<std::string>()[0] != '/')
        return field_error("state_dir", "must be an absolute path (a string)");
      cfg.state_dir = d.get<std::string>();
    }
    if (doc.contains("control")) {
      const json& c = doc["control"];
      if (!c.is_string() || c.get<std::string>().empty() || c.get<std::string>()[0] != '/')
        return field_error("control", "must be an absolute path (a string): where the control socket goes");
      cfg.control = c.get<std::string>();
    }
    if (doc.contains("control_group")) {
      if (cfg.control.empty()) return field_error("control_group", "applies to a \"control\" socket: give one");
      auto g = string_field(doc, "", "control_group", true);
      if (!g) return field_error("control_group", "must be a group name (a non-empty string)");
      cfg.control_group = *g;
    }
    // What every VM gets from the lab is part of each one's fingerprint.
    std::string shared = (doc.contains("clients") ? doc["clients"].dump() : "") + "|" + cfg.state_dir;
    for (std::size_t i = 0; i < cfg.vms.size(); ++i) cfg.vms[i].fingerprint = doc["vms"][i].dump() + "|" + shared;
    return cfg;
  }
  for (const char* k : {"state_dir", "control", "control_group"})
    if (doc.contains(k)) return field_error(k, "applies to a lab of VMs (\"vms\")");
  if (auto st = parse_policy(doc, cfg.policy); !st) return st.error();
  return cfg;
}

Result<LabConfig> parse_lab_config(std::string_view text) {
  auto cfg = parse_config(text);
  if (cfg && cfg->vms.empty() && !cfg->libvirt) {
    if (!cfg->policy.empty())
      return make_error(22, "vms: missing (\"allow\" and \"files\" are for a user-mode session: give [HOST]:PORT and "
                            "a program or --multi)");
    return field_error("vms", "missing (or \"libvirt\": a libvirt's running domains)");
  }
  return cfg;
}

Result<LabConfig> load_config(const std::string& path) {
  auto text = read_file(path);
  if (!text) return text.error();
  return with_path(path, parse_config(*text));
}

Result<LabConfig> load_lab_config(const std::string& path) {
  auto text = read_file(path);
  if (!text) return text.error();
  return with_path(path, parse_lab_config(*text));
}

Result<LabConfig> load_policy_config(const std::string& path) {
  auto text = read_file(path);
  if (!text) return text.error();
  auto cfg = parse_config(*text);
  if (cfg && (!cfg->vms.empty() || cfg->libvirt))
    return make_error(22, path + ": vms: a lab of VMs is served alone: give --config without [HOST]:PORT");
  return with_path(path, std::move(cfg));
}

}  // namespace dbgstub
