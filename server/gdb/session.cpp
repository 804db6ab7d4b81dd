#include "server/gdb/session.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace dbgstub {

Session::Session(std::unique_ptr<Transport> transport, Target& target, DispatcherConfig config, bool log_packets,
                 SessionEvents events)
    : StreamSession(std::move(transport), "debugger", std::move(events)),
      framer_(config.packet_size),
      dispatcher_(target, config,
                  SessionHooks{
                      [this](std::string p) { send(std::move(p)); },
                      [this] {
                        ack_mode_ = false;
                        this->transport().set_ack_mode(false);
                      },
                      [this] { if (this->events().exit_server) this->events().exit_server(); },  // the parameter `events` hides it
                      [](const std::string& level) { spdlog::set_level(spdlog::level::from_str(level)); },
                      [this](bool on) { log_packets_ = on; },
                      [this](std::string p) { notify(std::move(p)); },
                  }),
      log_packets_(log_packets) {}

void Session::start() { read(); }

void Session::handle_event(rsp::FrameEvent& e) {
  using K = rsp::FrameEvent::Kind;
  switch (e.kind) {
    case K::Packet:
      heard();
      if (log_packets_) spdlog::info("<- ${}", rsp::printable(e.payload, 512));
      if (ack_mode_ && !transport().acknowledges()) write_raw("+");
      dispatcher_.handle_packet(e.payload);
      maybe_finish();
      break;
    case K::Ack:
      break;
    case K::Nack:
      if (ack_mode_ && !last_packet_.empty() && !transport().acknowledges()) {
        spdlog::debug("debugger asked for a retransmission");
        write_raw(last_packet_);
      }
      break;
    case K::Interrupt:
      if (log_packets_) spdlog::info("<- ^C");
      dispatcher_.handle_interrupt();
      break;
    case K::BadChecksum:
      spdlog::warn("packet with a bad checksum{}", ack_mode_ ? ", retransmission requested" : " dropped");
      if (ack_mode_ && !transport().acknowledges()) write_raw("-");
      break;
    case K::Oversize:
      spdlog::warn("packet longer than {} bytes dropped", framer_.max_packet());
      if (ack_mode_ && !transport().acknowledges()) write_raw("-");
      break;
    case K::Malformed:
      spdlog::warn("malformed input: {}", e.payload);  // the framer's own words, log-safe already
      break;
  }
}

void Session::on_stop(const StopEvent& ev) {
  if (closed()) return;
  dispatcher_.handle_stop(ev);
  maybe_finish();
}

void Session::send(std::string payload) {
  if (closed()) return;
  if (log_packets_) spdlog::info("-> ${}", rsp::printable(payload, 512));
  std::string framed = rsp::frame_packet(payload);
  last_packet_ = framed;
  write_raw(std::move(framed));
}

// Notifications are neither acknowledged nor retransmitted.
void Session::notify(std::string payload) {
  if (closed()) return;
  if (log_packets_) spdlog::info("-> %{}", rsp::printable(payload, 512));
  write_raw(rsp::frame_notification(payload));
}

}  // namespace dbgstub
