#include "server/lab/libvirt_source.h"

#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <spdlog/spdlog.h>

#include <cctype>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace dbgstub {
namespace {

// libvirt's message for the last failure on this thread (or a fallback).
std::string last_error(const std::string& what) {
  const char* m = virGetLastErrorMessage();
  return what + ": " + (m && *m ? m : "unknown libvirt error");
}

Error lv_error(const std::string& what) { return make_error(5, last_error(what)); }

// Our messages carry libvirt's errors; its default handler would print them
// to stderr a second time.
void quiet_errors(void*, virErrorPtr) {}

// libvirt's default event loop, once per process, on its own thread: the
// events and the connection's keepalive need it to run. It runs until the
// process ends (libvirt has no way to stop virEventRunDefaultImpl from
// outside but a callback on that loop, and nothing waits on it at exit).
Status start_event_loop() {
  static std::once_flag once;
  static int rc = 0;
  std::call_once(once, [] {
    virSetErrorFunc(nullptr, quiet_errors);
    rc = virEventRegisterDefaultImpl();
    if (rc == 0)
      std::thread([] {
        for (;;)
          if (virEventRunDefaultImpl() < 0) spdlog::warn("{}", last_error("libvirt's event loop"));
      }).detach();
  });
  if (rc != 0) return lv_error("cannot start libvirt's event loop");
  return ok_status();
}

// A virDomainPtr freed when it goes out of scope.
struct DomainRef {
  virDomainPtr p = nullptr;
  explicit DomainRef(virDomainPtr d) : p(d) {}
  ~DomainRef() {
    if (p) virDomainFree(p);
  }
  DomainRef(const DomainRef&) = delete;
  DomainRef& operator=(const DomainRef&) = delete;
};

bool xml_has_agent(virDomainPtr d) {
  char* xml = virDomainGetXMLDesc(d, 0);
  if (!xml) return false;
  bool has = std::string(xml).find("org.qemu.guest_agent.0") != std::string::npos;
  std::free(xml);
  return has;
}

LibvirtDomain describe(virDomainPtr d) {
  LibvirtDomain out;
  if (const char* n = virDomainGetName(d)) out.name = n;
  char uuid[VIR_UUID_STRING_BUFLEN] = {};
  if (virDomainGetUUIDString(d, uuid) == 0) out.uuid = uuid;
  out.has_agent = xml_has_agent(d);
  return out;
}

}  // namespace

bool valid_snapshot_name(const std::string& name) {
  if (name.empty() || name.size() > 200 || name[0] == '.' || name[0] == '-') return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) return false;
  return true;
}

// What the event thread calls into: owned by libvirt's registration (freed
// by its free callback) and by the source, so that an event being delivered
// while the source goes away finds the handler cleared, not freed.
struct EventSink {
  std::mutex mu;
  LibvirtSource::EventHandler handler;
  void deliver(const LibvirtLifecycle& ev) {
    std::lock_guard<std::mutex> lock(mu);
    if (handler) handler(ev);
  }
};

struct LibvirtSource::Impl {
  virConnectPtr conn = nullptr;
  int callback_id = -1;
  std::shared_ptr<EventSink> sink = std::make_shared<EventSink>();

  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(sink->mu);
      sink->handler = nullptr;
    }
    if (callback_id >= 0) virConnectDomainEventDeregisterAny(conn, callback_id);
    if (conn) virConnectClose(conn);
  }

  static void free_sink(void* opaque) { delete static_cast<std::shared_ptr<EventSink>*>(opaque); }

  static int on_lifecycle(virConnectPtr, virDomainPtr dom, int event, int detail, void* opaque) {
    auto& sink = *static_cast<std::shared_ptr<EventSink>*>(opaque);
    LibvirtLifecycle ev;
    if (const char* n = virDomainGetName(dom)) ev.domain = n;
    if (event == VIR_DOMAIN_EVENT_STARTED) {
      ev.kind = LibvirtLifecycle::Kind::Started;
      ev.from_snapshot = detail == VIR_DOMAIN_EVENT_STARTED_FROM_SNAPSHOT;
    } else if (event == VIR_DOMAIN_EVENT_STOPPED) {
      ev.kind = LibvirtLifecycle::Kind::Stopped;
      ev.from_snapshot = detail == VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT;
    } else {
      return 0;  // suspended, resumed, defined...: the domain is still there
    }
    sink->deliver(ev);
    return 0;
  }

  Result<virDomainPtr> lookup(const std::string& name) {
    virDomainPtr d = virDomainLookupByName(conn, name.c_str());
    if (!d) return lv_error("domain '" + name + "'");
    return d;
  }
};

LibvirtSource::LibvirtSource(std::unique_ptr<Impl> impl, std::string uri) : impl_(std::move(impl)), uri_(std::move(uri)) {}
LibvirtSource::~LibvirtSource() = default;

Result<std::unique_ptr<LibvirtSource>> LibvirtSource::connect(const std::string& uri, EventHandler on_event) {
  if (auto st = start_event_loop(); !st) return st.error();
  auto impl = std::make_unique<Impl>();
  impl->conn = virConnectOpen(uri.c_str());
  if (!impl->conn) return lv_error("cannot connect to libvirt at " + uri);
  // A libvirtd that goes away is noticed within 15 s (not on the next call).
  if (virConnectSetKeepAlive(impl->conn, 5, 3) < 0) spdlog::debug("{}", last_error("libvirt keepalive"));
  if (on_event) {
    impl->sink->handler = std::move(on_event);
    auto* opaque = new std::shared_ptr<EventSink>(impl->sink);
    impl->callback_id = virConnectDomainEventRegisterAny(impl->conn, nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                         VIR_DOMAIN_EVENT_CALLBACK(Impl::on_lifecycle), opaque,
                                                         Impl::free_sink);
    if (impl->callback_id < 0) {
      delete opaque;
      return lv_error("cannot watch " + uri + "'s domains");
    }
  }
  return std::unique_ptr<LibvirtSource>(new LibvirtSource(std::move(impl), uri));
}

Result<std::vector<LibvirtDomain>> LibvirtSource::running_domains() {
  virDomainPtr* doms = nullptr;
  int n = virConnectListAllDomains(impl_->conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
  if (n < 0) return lv_error("cannot list " + uri_ + "'s domains");
  std::vector<LibvirtDomain> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(describe(doms[i]));
    virDomainFree(doms[i]);
  }
  std::free(doms);
  return out;
}

Result<LibvirtDomain> LibvirtSource::domain(const std::string& name) {
  auto d = impl_->lookup(name);
  if (!d) return d.error();
  DomainRef ref(*d);
  return describe(ref.p);
}

Result<std::string> LibvirtSource::hmp(const std::string& domain, const std::string& command) {
  auto d = impl_->lookup(domain);
  if (!d) return d.error();
  DomainRef ref(*d);
  char* result = nullptr;
  if (virDomainQemuMonitorCommand(ref.p, command.c_str(), &result, VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP) < 0)
    return lv_error(domain + ": monitor command '" + command + "'");
  std::string out = result ? result : "";
  std::free(result);
  return out;
}

Status LibvirtSource::open_gdbstub(const std::string& domain, uint16_t port) {
  std::string dev = "tcp:127.0.0.1:" + std::to_string(port);
  auto out = hmp(domain, "gdbserver " + dev);
  if (!out) return out.error();
  // HMP reports failure as text, not as a monitor error.
  if (out->find("Waiting for gdb connection") == std::string::npos) {
    std::string msg = *out;
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r')) msg.pop_back();
    return make_error(98, domain + ": QEMU could not open its gdbstub on " + dev + ": " + msg);
  }
  return ok_status();
}

Status LibvirtSource::close_gdbstub(const std::string& domain) {
  auto out = hmp(domain, "gdbserver none");
  if (!out) return out.error();
  return ok_status();
}

Result<std::string> LibvirtSource::agent_command(const std::string& domain, const std::string& json,
                                                 int timeout_seconds) {
  auto d = impl_->lookup(domain);
  if (!d) return d.error();
  DomainRef ref(*d);
  if (!xml_has_agent(ref.p))
    return make_error(95, domain + ": has no guest agent channel (org.qemu.guest_agent.0) in its XML");
  char* reply = virDomainQemuAgentCommand(ref.p, json.c_str(), timeout_seconds, 0);
  if (!reply) return lv_error(domain + ": guest agent");
  std::string out = reply;
  std::free(reply);
  return out;
}

Status LibvirtSource::create_snapshot(const std::string& domain, const std::string& name) {
  if (!valid_snapshot_name(name))
    return make_error(22, "snapshot name '" + name + "': use letters, digits, '.', '_' and '-'");
  auto d = impl_->lookup(domain);
  if (!d) return d.error();
  DomainRef ref(*d);
  // Internal: memory and disks in the qcow2 images themselves.
  std::string xml = "<domainsnapshot><name>" + name + "</name><memory snapshot='internal'/></domainsnapshot>";
  virDomainSnapshotPtr snap = virDomainSnapshotCreateXML(ref.p, xml.c_str(), 0);
  if (!snap) return lv_error(domain + ": snapshot '" + name + "'");
  virDomainSnapshotFree(snap);
  return ok_status();
}

Status LibvirtSource::revert_snapshot(const std::string& domain, const std::string& name) {
  auto d = impl_->lookup(domain);
  if (!d) return d.error();
  DomainRef ref(*d);
  virDomainSnapshotPtr snap = virDomainSnapshotLookupByName(ref.p, name.c_str(), 0);
  if (!snap) return lv_error(domain + ": snapshot '" + name + "'");
  int rc = virDomainRevertToSnapshot(snap, 0);
  virDomainSnapshotFree(snap);
  if (rc < 0) return lv_error(domain + ": revert to snapshot '" + name + "'");
  return ok_status();
}

Status LibvirtSource::delete_snapshot(const std::string& domain, const std::string& name) {
  auto d = impl_->lookup(domain);
  if (!d) return d.error();
  DomainRef ref(*d);
  virDomainSnapshotPtr snap = virDomainSnapshotLookupByName(ref.p, name.c_str(), 0);
  if (!snap) return lv_error(domain + ": snapshot '" + name + "'");
  int rc = virDomainSnapshotDelete(snap, 0);
  virDomainSnapshotFree(snap);
  if (rc < 0) return lv_error(domain + ": delete snapshot '" + name + "'");
  return ok_status();
}

}  // namespace dbgstub
