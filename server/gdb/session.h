// One debugger connection: bytes in, framing and acknowledgements, the
// dispatcher in the middle, framed replies out.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/rsp/framing.h"
#include "server/gdb/dispatcher.h"
#include "server/plumbing/stream_session.h"

namespace dbgstub {

class Session : public StreamSession<Session, rsp::FrameEvent> {
 public:
  Session(std::unique_ptr<Transport> transport, Target& target, DispatcherConfig config, bool log_packets,
          SessionEvents events);
  void start() override;
  void on_stop(const StopEvent& ev) override;
  bool extended() const override { return dispatcher_.extended(); }
  bool non_stop() const override { return dispatcher_.non_stop(); }
  const Dispatcher& dispatcher() const { return dispatcher_; }

 private:
  friend class StreamSession<Session, rsp::FrameEvent>;
  void feed(std::string_view bytes, std::vector<rsp::FrameEvent>& events) { framer_.feed(bytes, events); }
  void handle_event(rsp::FrameEvent& e);
  void on_close() {}
  void send(std::string payload);
  void notify(std::string payload);

  rsp::Framer framer_;
  Dispatcher dispatcher_;
  bool log_packets_;
  bool ack_mode_ = true;
  std::string last_packet_;
};

}  // namespace dbgstub
