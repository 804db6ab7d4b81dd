#include "targets/target.h"

namespace dbgstub {

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::User: return "user";
    case Mode::Kernel: return "kernel";
    case Mode::LocalKernel: return "local-kernel";
  }
  return "?";
}

}  // namespace dbgstub
