#include "server/lab_config.h"

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

}  // namespace

Result<LabConfig> parse_lab_config(std::string_view text) {
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded()) return make_error(22, "the configuration is not valid JSON");
  if (!doc.is_object()) return make_error(22, "the configuration must be a JSON object with \"vms\"");
  for (auto& [key, value] : doc.items()) {
    (void)value;
    if (key != "vms") return field_error(key, "unknown field (known: vms)");
  }
  if (!doc.contains("vms")) return field_error("vms", "missing");
  if (!doc["vms"].is_array() || doc["vms"].empty()) return field_error("vms", "must be a non-empty array");
  LabConfig cfg;
  std::set<std::string> names;
  std::set<std::pair<std::string, uint16_t>> listens;
  static const std::set<std::string> known = {"name", "listen", "gdbstub", "qga", "qmp"};
  for (std::size_t i = 0; i < doc["vms"].size(); ++i) {
    const json& v = doc["vms"][i];
    std::string where = "vms[" + std::to_string(i) + "]";
    if (!v.is_object()) return field_error(where, "must be an object");
    for (auto& [key, value] : v.items()) {
      (void)value;
      if (!known.count(key)) return field_error(where + "." + key, "unknown field (known: name, listen, gdbstub, qga, qmp)");
    }
    LabVm vm;
    auto name = string_field(v, where, "name", true);
    if (!name) return name.error();
    vm.name = *name;
    if (!names.insert(vm.name).second) return field_error(where + ".name", "'" + vm.name + "' is used twice");
    auto listen = string_field(v, where, "listen", true);
    if (!listen) return listen.error();
    if (auto st = parse_host_port(*listen, vm.host, vm.port); !st) return field_error(where + ".listen", st.error().message);
    if (!listens.insert({vm.host, vm.port}).second)
      return field_error(where + ".listen", "'" + *listen + "' is used by another VM");
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
    cfg.vms.push_back(std::move(vm));
  }
  return cfg;
}

Result<LabConfig> load_lab_config(const std::string& path) {
  std::ifstream f(path);
  if (!f) return make_error(2, "cannot read the configuration " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  auto cfg = parse_lab_config(ss.str());
  if (!cfg) return make_error(cfg.error().code, path + ": " + cfg.error().message);
  return cfg;
}

}  // namespace dbgstub
