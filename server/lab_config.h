// A lab of VMs served by one dbgstub (--config lab.json): each VM with its
// own listening port, all on the one event loop. Bad or missing
// configuration is an error that names the field ("vms[1].gdbstub: ...").
//
//   {"vms": [{"name": "vm1", "listen": "127.0.0.1:2345",
//             "gdbstub": "127.0.0.1:1234", "qga": "/run/lab/vm1-qga.sock"}]}
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "server/options.h"

namespace dbgstub {

struct LabVm {
  std::string name;
  std::string host;     // where dbgstub listens for this VM's debugger
  uint16_t port = 0;
  VmOptions vm;
};

struct LabConfig {
  std::vector<LabVm> vms;
};

Result<LabConfig> parse_lab_config(std::string_view json_text);
Result<LabConfig> load_lab_config(const std::string& path);

}  // namespace dbgstub
