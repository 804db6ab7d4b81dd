#include "server/monitor.h"

namespace dbgstub {

Monitor::Monitor() {
  add("help", "list monitor commands", [this](const std::string&) {
    std::string out = "dbgstub monitor commands:\n";
    for (auto& [name, c] : commands_) out += "  " + name + std::string(name.size() < 14 ? 14 - name.size() : 1, ' ') + c.help + "\n";
    return MonitorResult{out, true};
  });
}

void Monitor::add(const std::string& name, const std::string& help, Handler h) {
  commands_[name] = Command{help, std::move(h)};
}

MonitorResult Monitor::run(const std::string& line) {
  std::size_t b = line.find_first_not_of(" \t");
  if (b == std::string::npos) return {"", true};
  // WinDbg's "|*", "|1s": the command is the bar, the rest its argument.
  if (line[b] == '|' && commands_.count("|")) return commands_["|"].handler(line.substr(b + 1));
  std::size_t e = line.find_first_of(" \t", b);
  std::string name = line.substr(b, e == std::string::npos ? std::string::npos : e - b);
  std::string args;
  if (e != std::string::npos) {
    std::size_t a = line.find_first_not_of(" \t", e);
    if (a != std::string::npos) args = line.substr(a);
  }
  // Two-word commands ("set debug") are registered with their space.
  if (!args.empty()) {
    std::string second = args.substr(0, args.find_first_of(" \t"));
    auto two = commands_.find(name + " " + second);
    if (two != commands_.end()) {
      std::string rest = args.size() > second.size() ? args.substr(second.size() + 1) : "";
      return two->second.handler(rest);
    }
  }
  auto it = commands_.find(name);
  if (it == commands_.end()) return {"Unknown monitor command '" + name + "'. Try \"monitor help\".\n", false};
  return it->second.handler(args);
}

}  // namespace dbgstub
