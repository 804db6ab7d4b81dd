// Non-stop mode (QNonStop:1) over an all-stop target.
//
// In non-stop mode gdb resumes and stops threads one by one, is answered
// "OK" at once, and learns of stops through "%Stop" notifications that it
// drains with vStopped. The process target stops every thread when one of
// them reports something; this view keeps what gdb has been told instead:
// which threads run (and how), which it asked to stop, and the stop replies
// it has not yet taken. After each target stop the dispatcher reports what
// gdb must hear and resumes, at once, every thread gdb believes is running,
// so that a thread at a breakpoint stays stopped while its siblings go on.
#pragma once
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "targets/target.h"

namespace dbgstub {

struct NonStopView {
  using Key = std::pair<int, int>;  // pid, tid
  static Key key(ThreadRef t) { return {t.pid, t.tid}; }
  static ThreadRef ref(Key k) { return {k.first, k.second}; }

  struct Running {
    ResumeAction action;  // what to do each time the target goes on
    // Running for gdb but held stopped by us: a freshly attached process,
    // which gdb will stop itself (vCont;t) and must hear a stop for.
    bool frozen = false;
  };

  bool enabled = false;
  std::map<Key, Running> running;     // gdb was told these run
  std::set<Key> stop_requested;       // vCont;t for a running thread
  std::set<Key> known;                // threads gdb's view has placed
  std::set<Key> resumed;              // what the target was last resumed with
  std::deque<std::string> queue;      // stop replies gdb has not taken yet
  std::optional<Key> ctrl_c;          // vCtrlC: this one is reported with SIGINT
  std::set<int> killed;               // pids ended by vKill: their exits are not news
  bool interrupting = false;          // we stopped the target to change what runs
  bool attach_pending = false;        // vAttach answered OK once the process is stopped
  bool thread_events = false;         // QThreadEvents:1: report exits of threads gdb thinks run
  std::set<int> exits_owed;           // processes gone while gdb thinks they run: their exits to fetch
  std::deque<std::string> held;       // packets that need the whole target stopped

  // t runs for gdb, continuing (frozen: held stopped until gdb asks).
  void set_running(ThreadRef t, bool frozen = false) {
    ResumeAction a;
    a.thread = t;
    running[key(t)] = {a, frozen};
  }

  void reset() { *this = NonStopView{}; }
};

}  // namespace dbgstub
