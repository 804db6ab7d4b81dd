#include "server/lab/control_protocol.h"

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

namespace dbgstub::control {
namespace {

using json = nlohmann::json;

// Strings from the guest (process names) or a client may be any bytes:
// invalid UTF-8 is replaced, not thrown about (dump's default).
std::string one_line(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

Error bad(const std::string& why) { return make_error(22, why); }

std::string hex_address(uint64_t a) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(a));
  return buf;
}

json port_json(const std::optional<uint16_t>& p) { return p ? json(*p) : json(nullptr); }

// The inverse of format_status's VM, tolerant of fields a newer server adds.
Result<VmStatus> vm_from_json(const json& v) {
  if (!v.is_object() || !v.contains("name") || !v["name"].is_string()) return bad("a VM without a name");
  VmStatus s;
  s.name = v["name"].get<std::string>();
  if (v.contains("source") && v["source"].is_string()) s.source = v["source"].get<std::string>();
  for (auto [key, port] : {std::pair{"gdb_port", &s.gdb_port}, std::pair{"kd_port", &s.kd_port}})
    if (v.contains(key) && v[key].is_number_unsigned() && v[key].get<uint64_t>() <= 65535)
      *port = static_cast<uint16_t>(v[key].get<uint64_t>());
  std::string state = v.contains("state") && v["state"].is_string() ? v["state"].get<std::string>() : "";
  s.state = VmState::Busy;
  for (VmState st : {VmState::Running, VmState::Halted, VmState::Unreachable, VmState::Starting, VmState::Busy})
    if (state == state_name(st)) s.state = st;
  if (v.contains("debugger") && v["debugger"].is_string()) s.debugger = v["debugger"].get<std::string>();
  if (v.contains("pending_terminations") && v["pending_terminations"].is_array())
    for (const auto& p : v["pending_terminations"]) {
      if (!p.is_object()) continue;
      PendingKill k;
      if (p.contains("pid") && p["pid"].is_number_integer()) k.pid = p["pid"].get<int>();
      if (p.contains("name") && p["name"].is_string()) k.name = p["name"].get<std::string>();
      if (p.contains("address") && p["address"].is_string())
        k.address = std::strtoull(p["address"].get<std::string>().c_str(), nullptr, 16);
      s.pending.push_back(std::move(k));
    }
  return s;
}

std::vector<std::string> strings_of(const json& j, const char* key) {
  std::vector<std::string> out;
  if (j.contains(key) && j[key].is_array())
    for (const auto& s : j[key])
      if (s.is_string()) out.push_back(s.get<std::string>());
  return out;
}

}  // namespace

const char* state_name(VmState s) {
  switch (s) {
    case VmState::Running: return "running";
    case VmState::Halted: return "halted";
    case VmState::Unreachable: return "unreachable";
    case VmState::Starting: return "starting";
    case VmState::Busy: return "busy";
  }
  return "busy";
}

Result<Request> parse_request(std::string_view line) {
  if (line.size() > kMaxLine) return bad("request too long (at most " + std::to_string(kMaxLine) + " bytes)");
  json doc = json::parse(line, nullptr, false);
  if (doc.is_discarded()) return bad("the request is not valid JSON");
  if (!doc.is_object()) return bad("the request must be a JSON object with \"op\"");
  if (!doc.contains("op") || !doc["op"].is_string())
    return bad("\"op\" missing or not a string (known: kill, reload, status)");
  std::string op = doc["op"].get<std::string>();
  Request r;
  if (op == "status") r.op = Op::Status;
  else if (op == "reload") r.op = Op::Reload;
  else if (op == "kill") r.op = Op::Kill;
  else return bad("unknown op '" + op + "' (known: kill, reload, status)");
  if (r.op != Op::Kill) return r;
  if (!doc.contains("vm") || !doc["vm"].is_string() || doc["vm"].get<std::string>().empty())
    return bad("kill: \"vm\" missing or not a non-empty string");
  r.vm = doc["vm"].get<std::string>();
  // A pid as a number; a string of digits too (what a shell script has).
  const json& p = doc.contains("pid") ? doc["pid"] : json();
  long long pid = 0;
  if (p.is_number_integer()) {
    pid = p.get<long long>();
  } else if (p.is_string() && !p.get<std::string>().empty() && p.get<std::string>().size() < 11 &&
             p.get<std::string>().find_first_not_of("0123456789") == std::string::npos) {
    pid = std::stoll(p.get<std::string>());
  } else {
    return bad("kill: \"pid\" missing or not a positive integer");
  }
  if (pid <= 0 || pid > INT_MAX) return bad("kill: \"pid\" must be a positive integer");
  r.pid = static_cast<int>(pid);
  return r;
}

std::string format_request(const Request& r) {
  json j;
  switch (r.op) {
    case Op::Status: j["op"] = "status"; break;
    case Op::Reload: j["op"] = "reload"; break;
    case Op::Kill:
      j["op"] = "kill";
      j["vm"] = r.vm;
      j["pid"] = r.pid;
      break;
  }
  return one_line(j);
}

std::string format_error(std::string_view message) {
  return one_line(json{{"ok", false}, {"error", std::string(message)}});
}

std::string format_status(const std::vector<VmStatus>& vms) {
  json list = json::array();
  for (const auto& v : vms) {
    json pending = json::array();
    for (const auto& p : v.pending)
      pending.push_back({{"pid", p.pid}, {"name", p.name}, {"address", hex_address(p.address)}});
    list.push_back({{"name", v.name},
                    {"source", v.source},
                    {"gdb_port", port_json(v.gdb_port)},
                    {"kd_port", port_json(v.kd_port)},
                    {"state", state_name(v.state)},
                    {"debugger", v.debugger ? json(*v.debugger) : json(nullptr)},
                    {"pending_terminations", pending}});
  }
  return one_line(json{{"ok", true}, {"vms", list}});
}

std::string format_kill(KillOutcome outcome, std::string_view message) {
  return one_line(json{{"ok", true},
                       {"result", outcome == KillOutcome::Terminated ? "terminated" : "scheduled"},
                       {"message", std::string(message)}});
}

std::string format_reload(const ReloadResult& r) {
  return one_line(json{{"ok", true}, {"kept", r.kept}, {"started", r.started}, {"stopped", r.stopped}});
}

Result<Reply> parse_reply(std::string_view line) {
  json doc = json::parse(line, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("ok") || !doc["ok"].is_boolean())
    return bad("the reply is not a control reply: " + std::string(line.substr(0, 200)));
  Reply r;
  r.ok = doc["ok"].get<bool>();
  if (!r.ok) {
    r.error = doc.contains("error") && doc["error"].is_string() ? doc["error"].get<std::string>() : "(no reason given)";
    return r;
  }
  if (doc.contains("result") && doc["result"].is_string()) r.result = doc["result"].get<std::string>();
  if (doc.contains("message") && doc["message"].is_string()) r.message = doc["message"].get<std::string>();
  if (doc.contains("vms") && doc["vms"].is_array())
    for (const auto& v : doc["vms"]) {
      auto s = vm_from_json(v);
      if (!s) return s.error();
      r.vms.push_back(std::move(*s));
    }
  r.reload.kept = strings_of(doc, "kept");
  r.reload.started = strings_of(doc, "started");
  r.reload.stopped = strings_of(doc, "stopped");
  return r;
}

std::string status_table(const std::vector<VmStatus>& vms) {
  auto port = [](const std::optional<uint16_t>& p) { return p ? std::to_string(*p) : std::string("-"); };
  std::vector<std::vector<std::string>> rows{{"VM", "SOURCE", "GDB", "KD", "STATE", "DEBUGGER", "PENDING"}};
  for (const auto& v : vms) {
    std::string pending;
    for (const auto& p : v.pending)
      pending += (pending.empty() ? "" : ", ") + p.name + " (pid " + std::to_string(p.pid) + ", " +
                 hex_address(p.address) + ")";
    rows.push_back({v.name, v.source, port(v.gdb_port), port(v.kd_port), state_name(v.state),
                    v.debugger.value_or("-"), pending.empty() ? "-" : pending});
  }
  std::vector<std::size_t> width(rows[0].size(), 0);
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i)
      line += i + 1 < r.size() ? r[i] + std::string(width[i] - r[i].size() + 2, ' ') : r[i];
    out += line + "\n";
  }
  return out;
}

}  // namespace dbgstub::control
