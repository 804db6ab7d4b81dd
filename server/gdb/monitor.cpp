#include "server/gdb/monitor.h"

#include <algorithm>

namespace dbgstub {

Monitor::Monitor() {
  add("help", "List the monitor commands", [this](const std::string&) { return MonitorResult{help_text(), true}; });
}

// gdbserver's header (GDB's testsuite looks for it), one line a command.
std::string Monitor::help_text() const {
  std::string out = "The following monitor commands are supported:\n";
  std::size_t width = 0;
  for (auto& [name, c] : commands_) width = std::max(width, name.size() + (c.usage.empty() ? 0 : c.usage.size() + 1));
  for (auto& [name, c] : commands_) {
    std::string left = name + (c.usage.empty() ? "" : " " + c.usage);
    out += "  " + left + std::string(width - left.size() + 2, ' ') + c.help + "\n";
  }
  return out;
}

void Monitor::add(const std::string& name, const std::string& help, Handler h) {
  add(name, "", help, std::move(h));
}

void Monitor::add(const std::string& name, const std::string& usage, const std::string& help, Handler h) {
  commands_[name] = Command{usage, help, std::move(h)};
}

MonitorResult Monitor::run(const std::string& line) {
  std::size_t b = line.find_first_not_of(" \t");
  if (b == std::string::npos) return {"Unknown monitor command.\n\n" + help_text(), false};
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
      std::size_t rest = args.find_first_not_of(" \t", second.size());
      return two->second.handler(rest == std::string::npos ? "" : args.substr(rest));
    }
  }
  auto it = commands_.find(name);
  if (it == commands_.end()) return {"Unknown monitor command.\n\n" + help_text(), false};
  return it->second.handler(args);
}

}  // namespace dbgstub
