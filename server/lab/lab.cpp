#include "server/lab/lab.h"

#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>
#include <optional>
#include <set>
#include <vector>

#include "server/lab/control_socket.h"
#include "server/lab/lab_config.h"
#include "server/lab/libvirt_source.h"
#include "server/lab/vm_host.h"

namespace dbgstub {
namespace {

// A TCP socket bound to host:port (0: the system picks), or -1; the port
// bound goes to *bound.
int bind_tcp(const std::string& host, uint16_t port, uint16_t* bound) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
  if (host.find(':') != std::string::npos) {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    if (::inet_pton(AF_INET6, host.c_str(), &a6->sin6_addr) != 1) return -1;
    family = AF_INET6;
    len = sizeof *a6;
  } else {
    auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    if (::inet_pton(AF_INET, host.c_str(), &a4->sin_addr) != 1) return -1;
    len = sizeof *a4;
  }
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    ::close(fd);
    return -1;
  }
  if (bound) {
    sockaddr_storage got{};
    socklen_t got_len = sizeof got;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&got), &got_len);
    *bound = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&got)->sin_port
                                     : reinterpret_cast<sockaddr_in6*>(&got)->sin6_port);
  }
  return fd;
}

bool port_free(const std::string& host, uint16_t port) {
  int fd = bind_tcp(host, port, nullptr);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

// A free loopback port, for a libvirt domain's gdbstub (QEMU binds it a
// moment later; a port taken meanwhile makes the open fail, and says so).
uint16_t free_loopback_port() {
  uint16_t port = 0;
  int fd = bind_tcp("127.0.0.1", 0, &port);
  if (fd < 0) return 0;
  ::close(fd);
  return port;
}

// Binds every host's ports, starts them, and waits until each has ended
// (SIGINT/SIGTERM end them all, resuming what they halted). The front door
// is declared first, so it outlives the hosts whose connections it holds.
int run_hosts(FrontDoor& door, std::vector<std::unique_ptr<VmHost>>& hosts) {
  for (auto& h : hosts) {
    if (auto st = h->listen(); !st) {
      std::cerr << "dbgstub: " << (hosts.size() > 1 ? h->name() + ": " : "") << st.error().message << "\n";
      return 1;
    }
  }
  asio::signal_set signals(door.io(), SIGINT, SIGTERM);
  signals.async_wait([&](const asio::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: shutting down", sig);
    for (auto& h : hosts) h->shutdown();
  });
  for (auto& h : hosts) h->start();
  bool all_started = true;
  for (auto& h : hosts) {
    h->join();
    all_started = all_started && h->started();
  }
  door.run([&] { signals.cancel(); });
  std::cerr << "dbgstub: exiting" << std::endl;
  return all_started ? 0 : 1;
}

// How long `ctl status` waits for each VM's thread (all are asked at once),
// and `ctl kill` for its VM (the guest agent's own limit is 30 s).
constexpr auto kStatusWait = std::chrono::milliseconds(1500);
constexpr auto kKillWait = std::chrono::seconds(45);

// A lab file served: its VMs, its control socket, SIGHUP. The list of VMs
// changes on reload, so it belongs to one thread, the front door's (which
// also runs the control socket); the main thread only starts and ends it.
class Lab {
 public:
  Lab(const Options& opts, LabConfig cfg) : opts_(opts), cfg_(std::move(cfg)) {
    // A reload reads the same file even if something changes the working
    // directory meanwhile.
    char buf[PATH_MAX];
    path_ = ::realpath(opts.config.c_str(), buf) ? std::string(buf) : opts.config;
  }
  int run();

 private:
  struct Entry {
    uint64_t id;
    LabVm vm;
    std::unique_ptr<VmHost> host;
    bool libvirt = false;  // a domain of the "libvirt" source
  };

  std::unique_ptr<VmHost> make_host(const LabVm& v, uint64_t id);
  // On the front door's thread from here on.
  void handle(const control::Request& req, ControlSocket::Respond respond);
  void status(ControlSocket::Respond respond);
  void kill(const control::Request& req, ControlSocket::Respond respond);
  std::string reload();  // the reply line
  void start_replacement(const LabVm& v);
  void host_ended(uint64_t id);
  void end();
  void wait_for_signal();
  // The "libvirt" source, on the front door's thread.
  void libvirt_event(const LibvirtLifecycle& ev);
  void add_domain(const std::string& name);
  void release_domain(const std::string& name);

  const Options& opts_;
  LabConfig cfg_;
  std::string path_;  // the lab file
  FrontDoor door_;
  std::vector<Entry> entries_;
  uint64_t next_id_ = 1;
  std::unique_ptr<ControlSocket> control_;
  std::shared_ptr<LibvirtSource> libvirt_;
  std::set<std::string> releasing_;            // domains whose VmHost is ending
  std::set<std::string> start_after_release_;  // ... and that started again meanwhile
  std::unique_ptr<asio::signal_set> signals_;
  // VMs a reload removed, ending on threads of their own (their ending
  // waits on the front door's thread, which must not wait for them).
  std::vector<std::thread> retiring_;
  bool ending_ = false;  // the front door's copy of ended_: no reload then
  std::mutex m_;
  std::condition_variable ended_cv_;
  bool ended_ = false;
};

std::unique_ptr<VmHost> Lab::make_host(const LabVm& v, uint64_t id) {
  VmHostConfig c;
  c.name = v.name;
  c.options = opts_;
  c.options.host = v.host;
  c.options.port = v.port;
  c.options.kd = false;
  c.options.clients = v.clients;
  c.gdb = v.gdb;
  c.kd = v.kd;
  c.kd_host = v.kd_host;
  c.kd_port = v.kd_port;
  c.vm = v.vm;
  c.lab = true;
  c.state_dir = !opts_.state_dir.empty() ? opts_.state_dir : cfg_.state_dir;
  if (!v.vm.libvirt_domain.empty()) {
    c.libvirt = libvirt_;
    c.source = "libvirt";
  }
  // One VM ending (monitor exit, a fatal error) ends the lab, as before
  // there were reloads; one a reload removed does not.
  c.on_ended = [this, id] { door_.post([this, id] { host_ended(id); }); };
  return std::make_unique<VmHost>(door_, std::move(c));
}

int Lab::run() {
  for (auto& v : cfg_.vms) {
    uint64_t id = next_id_++;
    entries_.push_back({id, v, make_host(v, id)});
  }
  for (auto& e : entries_)
    if (auto st = e.host->listen(); !st) {
      std::cerr << "dbgstub: " << (entries_.size() > 1 ? e.vm.name + ": " : "") << st.error().message << "\n";
      return 1;
    }
  if (cfg_.libvirt) {
    // Events go to the front door's thread, which owns the list of VMs.
    auto src = LibvirtSource::connect(cfg_.libvirt->uri, [this](const LibvirtLifecycle& ev) {
      door_.post([this, ev] { libvirt_event(ev); });
    });
    if (!src) {
      std::cerr << "dbgstub: libvirt: " << src.error().message << "\n";
      return 1;
    }
    libvirt_ = std::move(*src);
  }
  Status control_st = ok_status();
  door_.run([&] {
    if (!cfg_.control.empty()) {
      control_ = std::make_unique<ControlSocket>(
          door_.io(), [this](const control::Request& r, ControlSocket::Respond respond) { handle(r, respond); });
      control_st = control_->open(cfg_.control, cfg_.control_group);
    }
    signals_ = std::make_unique<asio::signal_set>(door_.io(), SIGINT, SIGTERM, SIGHUP);
    wait_for_signal();
  });
  if (!control_st) {
    std::cerr << "dbgstub: " << control_st.error().message << "\n";
    door_.run([&] {
      signals_.reset();
      control_.reset();
    });
    return 1;
  }
  Status libvirt_st = ok_status();
  door_.run([&] {
    for (auto& e : entries_) e.host->start();
    if (!libvirt_) return;
    auto doms = libvirt_->running_domains();
    if (!doms) {
      spdlog::error("libvirt: {} (domains that start from now on are served)", doms.error().message);
      return;
    }
    for (auto& d : *doms) add_domain(d.name);
  });
  {
    std::unique_lock lock(m_);
    ended_cv_.wait(lock, [&] { return ended_; });
  }
  // Ending: the hosts are taken off the front door's thread and joined
  // here; their last steps (closing listeners) run on the door meanwhile.
  std::vector<Entry> entries;
  std::vector<std::thread> retiring;
  door_.run([&] {
    if (control_) control_->close();
    signals_->cancel();
    entries.swap(entries_);
    retiring.swap(retiring_);
  });
  bool all_started = true;
  for (auto& e : entries) {
    e.host->join();
    all_started = all_started && e.host->started();
  }
  for (auto& t : retiring) t.join();
  entries.clear();
  // After the last VmHost (each closes its domain's gdbstub through it);
  // its events stop here.
  libvirt_.reset();
  door_.run([&] {
    control_.reset();
    signals_.reset();
  });
  std::cerr << "dbgstub: exiting" << std::endl;
  return all_started ? 0 : 1;
}

void Lab::wait_for_signal() {
  signals_->async_wait([this](const asio::error_code& ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      spdlog::info("SIGHUP: reloading {}: {}", path_, reload());
      return wait_for_signal();
    }
    spdlog::info("signal {}: shutting down", sig);
    end();
  });
}

void Lab::end() {
  ending_ = true;
  for (auto& e : entries_) e.host->shutdown();
  std::lock_guard lock(m_);
  ended_ = true;
  ended_cv_.notify_all();
}

void Lab::host_ended(uint64_t id) {
  for (auto& e : entries_)
    if (e.id == id) {
      // A libvirt domain that can't be served (or is gone) is its own
      // trouble: released, the lab goes on.
      if (e.libvirt) {
        if (!ending_) release_domain(e.vm.name);
        return;
      }
      return end();
    }
}

void Lab::libvirt_event(const LibvirtLifecycle& ev) {
  if (ending_) return;
  if (ev.kind == LibvirtLifecycle::Kind::Started) {
    spdlog::info("libvirt: domain {} started{}", ev.domain, ev.from_snapshot ? " (from a snapshot)" : "");
    add_domain(ev.domain);
  } else {
    spdlog::info("libvirt: domain {} stopped", ev.domain);
    start_after_release_.erase(ev.domain);
    release_domain(ev.domain);
  }
}

// A running domain, served on the next free port(s) of the source's ranges.
void Lab::add_domain(const std::string& name) {
  if (ending_ || !libvirt_) return;
  for (auto& e : entries_)
    if (e.vm.name == name) {
      if (!e.libvirt) spdlog::warn("libvirt: domain {} has the name of a VM of \"vms\": not served", name);
      return;
    }
  if (releasing_.count(name)) {
    // Its old VmHost still holds the state file: started once it has ended.
    start_after_release_.insert(name);
    return;
  }
  const LabLibvirt& lv = *cfg_.libvirt;
  std::set<uint16_t> used;
  for (auto& e : entries_) {
    if (e.vm.gdb) used.insert(e.host->gdb_port().value_or(e.vm.port));
    if (e.vm.kd) used.insert(e.host->kd_port().value_or(e.vm.kd_port));
  }
  auto pick = [&](uint16_t first, uint16_t last) -> uint16_t {
    for (uint32_t p = first; p <= last; ++p)
      if (!used.count(static_cast<uint16_t>(p)) && port_free(lv.host, static_cast<uint16_t>(p)))
        return static_cast<uint16_t>(p);
    return 0;
  };
  LabVm v;
  v.name = name;
  v.gdb = true;
  v.host = lv.host;
  v.port = pick(lv.first, lv.last);
  if (v.port == 0) {
    spdlog::error("libvirt: domain {}: no free port in {}-{}: not served", name, lv.first, lv.last);
    return;
  }
  if (lv.kd) {
    v.kd = true;
    v.kd_host = lv.host;
    v.kd_port = pick(lv.kd_first, lv.kd_last);
    if (v.kd_port == 0) {
      spdlog::error("libvirt: domain {}: no free KD port in {}-{}: not served", name, lv.kd_first, lv.kd_last);
      return;
    }
  }
  v.vm.gdbstub_host = "127.0.0.1";
  v.vm.gdbstub_port = free_loopback_port();
  v.vm.libvirt_domain = name;
  v.vm.libvirt_uri = lv.uri;
  // The guest agent is not used: symbols come from guest memory, .kill
  // through the guest kernel.
  v.clients = cfg_.clients;
  v.fingerprint = "libvirt:" + lv.uri + "/" + name;
  uint64_t id = next_id_++;
  auto host = make_host(v, id);
  if (auto st = host->listen(); !st) {
    spdlog::error("libvirt: domain {}: {}", name, st.error().message);
    return;
  }
  spdlog::info("libvirt: serving domain {} on {}:{}{}", name, v.host, v.port,
               v.kd ? " (KD " + std::to_string(v.kd_port) + ")" : std::string());
  host->start();
  entries_.push_back({id, v, std::move(host), true});
}

// Its VmHost ends (closing the domain's gdbstub, if the domain still runs)
// on a thread of its own; its ports are free at once.
void Lab::release_domain(const std::string& name) {
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (!it->libvirt || it->vm.name != name) continue;
    spdlog::info("libvirt: releasing domain {}", name);
    it->host->stop_listening();
    releasing_.insert(name);
    retiring_.emplace_back([this, h = std::move(it->host), name]() mutable {
      h->shutdown();
      h->join();
      h.reset();
      door_.post([this, name] {
        releasing_.erase(name);
        if (start_after_release_.erase(name)) add_domain(name);
      });
    });
    entries_.erase(it);
    return;
  }
}

void Lab::handle(const control::Request& req, ControlSocket::Respond respond) {
  switch (req.op) {
    case control::Op::Status: return status(std::move(respond));
    case control::Op::Kill: return kill(req, std::move(respond));
    case control::Op::Reload: return respond(reload());
  }
}

// Every VM is asked at once, on its own thread; the reply goes when all
// have answered or the wait is over, a VM that has not answered by then
// (its thread stuck on a frozen gdbstub) being "busy".
void Lab::status(ControlSocket::Respond respond) {
  struct Gather {
    std::vector<control::VmStatus> vms;
    std::size_t left = 0;
    bool sent = false;
    ControlSocket::Respond respond;
    void send() {
      if (sent) return;
      sent = true;
      respond(control::format_status(vms));
    }
  };
  auto g = std::make_shared<Gather>();
  g->respond = std::move(respond);
  g->left = entries_.size();
  for (auto& e : entries_) {
    control::VmStatus s;
    s.name = e.vm.name;
    s.source = e.libvirt ? "libvirt" : "file";
    s.gdb_port = e.host->gdb_port();
    s.kd_port = e.host->kd_port();
    s.state = control::VmState::Busy;
    g->vms.push_back(s);
  }
  if (entries_.empty()) return g->send();
  asio::io_context& door = door_.io();
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    VmHost* h = entries_[i].host.get();
    h->post([g, i, h, &door] {
      auto s = h->status();
      asio::post(door, [g, i, s = std::move(s)]() mutable {
        if (g->sent) return;
        g->vms[i] = std::move(s);
        if (--g->left == 0) g->send();
      });
    });
  }
  auto timer = std::make_shared<asio::steady_timer>(door, kStatusWait);
  timer->async_wait([g, timer](const asio::error_code&) {
    if (!g->sent && g->left) spdlog::warn("control: status: {} VM(s) did not answer in time", g->left);
    g->send();
  });
}

void Lab::kill(const control::Request& req, ControlSocket::Respond respond) {
  VmHost* h = nullptr;
  std::string known;
  for (auto& e : entries_) {
    if (e.vm.name == req.vm) h = e.host.get();
    known += (known.empty() ? "" : ", ") + e.vm.name;
  }
  if (!h) return respond(control::format_error("no VM '" + req.vm + "' (known: " + known + ")"));
  spdlog::info("control: kill {} pid {}", req.vm, req.pid);
  // Answered once: by the VM, or by the timer if the VM takes too long.
  auto once = std::make_shared<std::atomic<bool>>(false);
  auto reply = [once, respond](std::string line) {
    if (!once->exchange(true)) respond(std::move(line));
  };
  auto timer = std::make_shared<asio::steady_timer>(door_.io(), kKillWait);
  std::string vm = req.vm;
  timer->async_wait([timer, reply, vm](const asio::error_code&) {
    reply(control::format_error("VM " + vm + " did not answer within " +
                                std::to_string(std::chrono::seconds(kKillWait).count()) + " s (busy)"));
  });
  int pid = req.pid;
  h->post([h, pid, reply] {
    h->kill(pid, [reply](Result<std::pair<control::KillOutcome, std::string>> r) {
      if (!r) {
        spdlog::info("control: kill: {}", r.error().message);
        return reply(control::format_error(r.error().message));
      }
      reply(control::format_kill(r->first, r->second));
    });
  });
}

// Entries whose fingerprint is unchanged keep their VmHost (and so their
// debugger's session); the others stop, and the new or changed ones start.
void Lab::start_replacement(const LabVm& v) {
  if (ending_) return;
  uint64_t id = next_id_++;
  auto host = make_host(v, id);
  if (auto st = host->listen(); !st) {
    spdlog::error("reload: {}: {}", v.name, st.error().message);
    return;
  }
  spdlog::info("reload: starting {} again", v.name);
  host->start();
  entries_.push_back({id, v, std::move(host)});
}

std::string Lab::reload() {
  if (ending_) return control::format_error("reload: dbgstub is ending");
  auto cfg = load_lab_config(path_);
  if (!cfg) {
    spdlog::warn("reload: {} (nothing changed)", cfg.error().message);
    return control::format_error("reload: " + cfg.error().message + " (nothing changed)");
  }
  if (cfg->control != cfg_.control || cfg->control_group != cfg_.control_group)
    spdlog::warn("reload: a change of \"control\" or \"control_group\" takes a restart of dbgstub");
  control::ReloadResult result;
  std::vector<Entry> kept;
  std::set<std::string> replacing;
  if (cfg->libvirt.has_value() != cfg_.libvirt.has_value() ||
      (cfg->libvirt && (cfg->libvirt->uri != cfg_.libvirt->uri || cfg->libvirt->first != cfg_.libvirt->first ||
                        cfg->libvirt->last != cfg_.libvirt->last || cfg->libvirt->kd != cfg_.libvirt->kd ||
                        cfg->libvirt->kd_first != cfg_.libvirt->kd_first ||
                        cfg->libvirt->kd_last != cfg_.libvirt->kd_last)))
    spdlog::warn("reload: a change of \"libvirt\" takes a restart of dbgstub");
  for (auto& e : entries_) {
    if (e.libvirt) {  // the libvirt source's, not the file's
      kept.push_back(std::move(e));
      continue;
    }
    bool same = false;
    for (auto& v : cfg->vms) same = same || (v.name == e.vm.name && v.fingerprint == e.vm.fingerprint);
    if (same) {
      result.kept.push_back(e.vm.name);
      kept.push_back(std::move(e));
      continue;
    }
    result.stopped.push_back(e.vm.name);
    spdlog::info("reload: stopping {}", e.vm.name);
    // Its ports are free at once, for its new version to bind.
    e.host->stop_listening();
    // A VM whose entry changed starts again only once its old version has
    // let it go: both would be the gdbstub's client, and the VM's state
    // file (and its lock) is one.
    std::optional<LabVm> next;
    for (auto& v : cfg->vms)
      if (v.name == e.vm.name) next = v;
    if (next) replacing.insert(next->name);
    retiring_.emplace_back([this, h = std::move(e.host), next]() mutable {
      h->shutdown();
      h->join();
      h.reset();
      if (next) door_.post([this, v = *next] { start_replacement(v); });
    });
  }
  entries_ = std::move(kept);
  std::string failures;
  for (auto& v : cfg->vms) {
    bool have = false;
    for (auto& e : entries_) have = have || e.vm.name == v.name;
    if (have) continue;
    if (replacing.count(v.name)) {
      result.started.push_back(v.name);  // once its old version has ended
      continue;
    }
    uint64_t id = next_id_++;
    auto host = make_host(v, id);
    if (auto st = host->listen(); !st) {
      spdlog::error("reload: {}: {}", v.name, st.error().message);
      failures += (failures.empty() ? "" : "; ") + v.name + ": " + st.error().message;
      continue;
    }
    spdlog::info("reload: starting {}", v.name);
    host->start();
    result.started.push_back(v.name);
    entries_.push_back({id, v, std::move(host)});
  }
  std::string line = control::format_reload(result);
  if (!failures.empty()) return control::format_error("reload: " + failures + " (the other changes were made)");
  return line;
}

}  // namespace

int serve_vm(const Options& opts) {
  FrontDoor door;
  VmHostConfig c;
  c.name = "vm";
  c.options = opts;
  c.gdb = true;
  c.vm = *opts.vm;
  c.state_dir = opts.state_dir;
  c.state_name = "gdbstub-" + opts.vm->gdbstub_host + "-" + std::to_string(opts.vm->gdbstub_port);
  if (!opts.vm->libvirt_domain.empty()) {
    // --vm libvirt=DOMAIN: its gdbstub on a free loopback port, opened by
    // the VM's thread and closed when it ends.
    const std::string& dom = opts.vm->libvirt_domain;
    auto src = LibvirtSource::connect(opts.vm->libvirt_uri);
    if (!src) {
      std::cerr << "dbgstub: " << src.error().message << "\n";
      return 1;
    }
    if (auto d = (*src)->domain(dom); !d) {
      std::cerr << "dbgstub: " << d.error().message << "\n";
      return 1;
    }
    c.vm.gdbstub_port = free_loopback_port();
    if (c.vm.gdbstub_port == 0) {
      std::cerr << "dbgstub: no free loopback port for the gdbstub of " << dom << "\n";
      return 1;
    }
    c.libvirt = std::move(*src);
    c.state_name = "libvirt-" + dom;
  }
  std::vector<std::unique_ptr<VmHost>> hosts;
  hosts.push_back(std::make_unique<VmHost>(door, std::move(c)));
  return run_hosts(door, hosts);
}

int serve_lab(const Options& opts) {
  auto cfg = load_lab_config(opts.config);
  if (!cfg) {
    std::cerr << "dbgstub: " << cfg.error().message << "\n";
    return 2;
  }
  Lab lab(opts, std::move(*cfg));
  return lab.run();
}

}  // namespace dbgstub
