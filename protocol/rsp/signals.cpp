#include "protocol/rsp/signals.h"

#include <signal.h>

namespace dbgstub::rsp {
namespace {

struct Pair {
  int host;
  int gdb;
};

// Host (Linux x86-64) to GDB numbering, from gdb/signals.def.
constexpr Pair kTable[] = {
    {SIGHUP, 1},     {SIGINT, 2},     {SIGQUIT, 3},   {SIGILL, 4},   {SIGTRAP, 5},   {SIGABRT, 6},
    {SIGFPE, 8},     {SIGKILL, 9},    {SIGBUS, 10},   {SIGSEGV, 11}, {SIGSYS, 12},   {SIGPIPE, 13},
    {SIGALRM, 14},   {SIGTERM, 15},   {SIGURG, 16},   {SIGSTOP, 17}, {SIGTSTP, 18},  {SIGCONT, 19},
    {SIGCHLD, 20},   {SIGTTIN, 21},   {SIGTTOU, 22},  {SIGIO, 23},   {SIGXCPU, 24},  {SIGXFSZ, 25},
    {SIGVTALRM, 26}, {SIGPROF, 27},   {SIGWINCH, 28}, {SIGUSR1, 30}, {SIGUSR2, 31},  {SIGPWR, 32},
    {SIGSTKFLT, 0},
};

constexpr int kGdbUnknown = 143;
constexpr int kGdbRealtime32 = 77;   // GDB_SIGNAL_REALTIME_32
constexpr int kGdbRealtime33 = 45;   // ..._33 to _63 are 45..75
constexpr int kGdbRealtime64 = 78;   // ..._64 to _127 are 78..141

}  // namespace

int gdb_signal_from_host(int host) {
  if (host == 0) return 0;
  for (const Pair& p : kTable)
    if (p.host == host) return p.gdb ? p.gdb : kGdbUnknown;
  if (host == 32) return kGdbRealtime32;
  if (host >= 33 && host <= 63) return kGdbRealtime33 + (host - 33);
  if (host >= 64 && host <= 127) return kGdbRealtime64 + (host - 64);
  return kGdbUnknown;
}

int host_signal_from_gdb(int gdb) {
  if (gdb == 0) return 0;
  for (const Pair& p : kTable)
    if (p.gdb == gdb && p.gdb != 0) return p.host;
  if (gdb == kGdbRealtime32) return 32;
  if (gdb >= kGdbRealtime33 && gdb <= kGdbRealtime33 + 30) return 33 + (gdb - kGdbRealtime33);
  if (gdb >= kGdbRealtime64 && gdb <= kGdbRealtime64 + 63) {
    int host = 64 + (gdb - kGdbRealtime64);
    return host <= SIGRTMAX ? host : 0;
  }
  return 0;
}

}  // namespace dbgstub::rsp
