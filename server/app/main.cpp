// dbgstub: a debugging stub server. See README.md.
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <climits>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>

#include "common/program_search.h"
#include "dbgstub_version.h"
#include "server/plumbing/event_loop.h"
#include "server/lab/lab.h"
#include "server/lab/lab_config.h"
#include "server/app/ctl.h"
#include "server/app/options.h"
#include "server/app/self_test.h"
#include "server/plumbing/server.h"
#include "targets/local_kernel/local_kernel_target.h"
#include "targets/process/child_events.h"
#include "targets/process/process_target.h"

using namespace dbgstub;

namespace {

// Runs the loop until the target reports its first stop (launch or attach).
// `bound`: the listening socket main bound first (none with --stdio).
int serve(asio::io_context& io, const Options& opts, Target& target, std::optional<asio::ip::tcp::acceptor> bound);

bool wait_first_stop(asio::io_context& io, Target& target) {
  bool stopped = false;
  StopEvent first;
  target.set_stop_handler([&](const StopEvent& ev) {
    stopped = true;
    first = ev;
  });
  while (!stopped && io.run_one()) {
  }
  target.set_stop_handler(nullptr);
  return stopped && first.kind == StopEvent::Kind::Signal;
}

}  // namespace

// main, inside a handler (below) so that a fatal error unwinds it: each
// VmTarget's destructor then lets its VM go.
static int run_dbgstub(int argc, char** argv) {
  // Before any thread exists: ptrace stops arrive through a signalfd.
  block_sigchld();
  std::signal(SIGPIPE, SIG_IGN);

  std::vector<std::string> args(argv + 1, argv + argc);
  // `dbgstub ctl ...`: a client of a running lab, nothing else (server/app/ctl.h).
  if (!args.empty() && args[0] == "ctl") return run_ctl(std::vector<std::string>(args.begin() + 1, args.end()));
  auto opts = parse_options(args);
  if (!opts) {
    std::cerr << "dbgstub: " << opts.error().message << "\n\n" << usage();
    return 2;
  }
  if (opts->help) {
    std::cout << usage();
    return 0;
  }
  if (opts->version) {
    std::cout << "dbgstub " DBGSTUB_VERSION "\n";
    return 0;
  }
  std::shared_ptr<spdlog::logger> logger;
  if (opts->log_file.empty()) {
    logger = spdlog::stderr_color_mt("dbgstub");
  } else {
    // Opened here first: spdlog would create missing directories.
    if (!std::ofstream(opts->log_file, std::ios::app)) {
      std::cerr << "dbgstub: cannot write the log to " << opts->log_file << ": " << std::strerror(errno) << "\n";
      return 2;
    }
    try {
      logger = spdlog::basic_logger_mt("dbgstub", opts->log_file);
    } catch (const spdlog::spdlog_ex& e) {
      std::cerr << "dbgstub: cannot write the log to " << opts->log_file << ": " << e.what() << "\n";
      return 2;
    }
    // Whoever reads the file (a test, tail -f) sees each line as it happens.
    logger->flush_on(spdlog::level::trace);
  }
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  spdlog::set_level(spdlog::level::from_str(opts->log_level));
  if (opts->log_packets && spdlog::get_level() > spdlog::level::info) spdlog::set_level(spdlog::level::info);
  if (opts->selftest) {
    spdlog::set_level(spdlog::level::warn);  // the checks' own lines only
    return run_self_tests(std::cout);
  }

  if (!opts->program.empty()) {
    char cwd[PATH_MAX];
    if (!::getcwd(cwd, sizeof cwd) && opts->program[0][0] != '/') {
      std::cerr << "dbgstub: cannot find the working directory for " << opts->program[0] << ": "
                << std::strerror(errno) << "\n";
      return 2;
    }
    opts->program[0] = absolute_program(opts->program[0], cwd, search_path_list());
  }
  // Kernel mode on VMs: each VM on a thread of its own (server/lab).
  if (opts->lab) return serve_lab(*opts);
  if (opts->vm) return serve_vm(*opts);
  asio::io_context io;
  if (!opts->config.empty()) {
    // A user-mode session's policy: allow-lists and the vFile root.
    auto cfg = load_policy_config(opts->config);
    if (!cfg) {
      std::cerr << "dbgstub: " << cfg.error().message << "\n";
      return 2;
    }
    opts->policy = cfg->policy;
    spdlog::info("policy from {}: run {}, attach {}, files {}", opts->config,
                 opts->policy.run ? "allow-listed" : opts->allow_run ? "allowed" : "refused",
                 opts->policy.attach ? "allow-listed" : opts->allow_attach ? "allowed" : "refused",
                 opts->policy.files_root.empty() ? std::string("anywhere") : "beneath " + opts->policy.files_root);
  }
  // Bound before a program is started or attached
  // (gdbserver's order): a bad address or a port in use ends dbgstub first.
  std::optional<asio::ip::tcp::acceptor> bound;
  if (!opts->stdio) {
    auto b = bind_listener(io, opts->host, opts->port);
    if (!b) {
      std::cerr << "dbgstub: " << b.error().message << "\n";
      return 1;
    }
    bound = std::move(*b);
  }
  if (opts->local_kernel) {
    LocalKernelTarget kernel;
    return serve(io, *opts, kernel, std::move(bound));
  }
  ChildEvents child_events(io);
  ProcessTarget target(io, child_events);
  if (opts->debug_children) {
    ChildPolicy follow;
    follow.follow = true;
    target.set_child_policy(follow);
  }

  if (!opts->program.empty() && !opts->multi) {
    LaunchSpec spec;
    spec.argv = opts->program;
    for (char** e = environ; e && *e; ++e) spec.env.push_back(*e);
    spec.disable_aslr = opts->disable_randomization;
    spec.wrapper = opts->wrapper;
    if (opts->stdio) {
      // The protocol owns our stdout: the program must not write into it.
      spec.redirect_stdio = true;
      std::cerr << "stdin/stdout redirected" << std::endl;
    }
    auto st = target.launch(spec);
    if (!st || !wait_first_stop(io, target)) {
      std::cerr << "dbgstub: cannot start " << opts->program[0] << ": "
                << (st ? "the program exited before it started" : st.error().message) << "\n";
      return 1;
    }
    auto procs = target.processes();
    std::cerr << "Process " << opts->program[0] << " created; pid = " << (procs.empty() ? 0 : procs[0].pid)
              << std::endl;
  } else if (opts->attach_pid) {
    auto st = target.attach(*opts->attach_pid);
    if (!st || !wait_first_stop(io, target)) {
      std::cerr << "dbgstub: cannot attach to process " << *opts->attach_pid << ": "
                << (st ? "it went away" : st.error().message) << "\n";
      return 1;
    }
    std::cerr << "Attached; pid = " << *opts->attach_pid << std::endl;
  }

  return serve(io, *opts, target, std::move(bound));
}

namespace {

int serve(asio::io_context& io, const Options& opts, Target& target, std::optional<asio::ip::tcp::acceptor> bound) {
  Server server(io, opts, target);
  // Before "Listening on port": from then on a SIGTERM must be a clean stop.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const asio::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: shutting down", sig);
    server.shutdown();
  });
  if (auto st = bound ? server.listen(std::move(*bound)) : server.serve_stdio(); !st) {
    std::cerr << "dbgstub: " << st.error().message << "\n";
    target.release_all();
    return 1;
  }
  run_event_loop(io, std::chrono::microseconds(opts.spin_us));
  server.finish();
  std::cerr << "dbgstub: exiting" << std::endl;
  return 0;
}

}  // namespace

// A fatal error that escapes (an exception out of the event loop) must not
// leave a VM halted behind a dead dbgstub: caught here, it unwinds
// run_dbgstub, whose targets release their VMs on the way (issue #25).
int main(int argc, char** argv) {
  try {
    return run_dbgstub(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "dbgstub: fatal error: " << e.what() << std::endl;
    return 1;
  }
}
