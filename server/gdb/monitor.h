// "monitor" commands (qRcmd). Each returns the text to show the user.
#pragma once
#include <functional>
#include <map>
#include <string>

#include "targets/target.h"

namespace dbgstub {

struct MonitorResult {
  std::string output;
  bool ok = true;      // false: reply an error after the output
};

class Monitor {
 public:
  using Handler = std::function<MonitorResult(const std::string& args)>;
  Monitor();
  void add(const std::string& name, const std::string& help, Handler h);
  void add(const std::string& name, const std::string& usage, const std::string& help, Handler h);
  MonitorResult run(const std::string& line);
  std::string help_text() const;

 private:
  struct Command {
    std::string usage;
    std::string help;
    Handler handler;
  };
  std::map<std::string, Command> commands_;
};

}  // namespace dbgstub
