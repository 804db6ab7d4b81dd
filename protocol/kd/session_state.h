// The kdcom packet-id / acknowledge / resend state machine of the target
// side (the stub plays the Windows kernel; WinDbg is the host), as pure
// logic: feed it framer events and what we want to send, and it says what
// to write back and what to deliver. No sockets, no timers, no policy about
// what the packets mean.
//
// Rules (kdcom): outgoing ids start at INITIAL_PACKET_ID | SYNC_PACKET_ID
// (0x80800800); the host acknowledges with the id sans sync bit; each
// acknowledged packet toggles bit 0 and clears the sync bit. Incoming data
// packets carry 0x80800000 or 0x80800001; the expected one is acknowledged
// and delivered, the other is a duplicate: acknowledged and dropped. Damaged
// packets are answered with RESEND. RESEND from the host makes us send the
// pending packet again; RESET resets both counters to 0x80800000, is
// answered with RESET and also resends what is pending. A data packet that
// arrives while our packet awaits its ACK implies the ACK was lost: if it
// is the expected one, we count our packet as acknowledged and ask for it
// again with RESEND (so it is delivered on the retransmission), otherwise
// we acknowledge and drop it.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "protocol/kd/framing.h"

namespace dbgstub::kd {

struct SessionAction {
  std::vector<Bytes> send;             // framed bytes to write, in order
  std::optional<DataPacket> deliver;   // a new host packet (already ACKed)
  bool acked = false;                  // our pending packet is acknowledged
  bool resend_requested = false;       // host sent RESEND or RESET
  bool reset = false;                  // host sent RESET: ids are back to initial
  bool break_in = false;               // host asked to break in
  bool duplicate = false;              // a duplicate data packet was ACKed and dropped
  std::string note;                    // what happened, for logs
};

class SessionState {
 public:
  struct Pending {
    uint16_t type = 0;
    Bytes payload;
  };

  // Id the next new packet will carry (or the pending one carries).
  uint32_t next_send_id() const { return send_id_; }
  // Id of the next new data packet expected from the host.
  uint32_t expected_receive_id() const { return expect_id_; }
  bool awaiting_ack() const { return pending_.has_value(); }
  const std::optional<Pending>& pending() const { return pending_; }

  // Frames a new data packet with next_send_id() and keeps it pending until
  // acknowledged. Fails while another packet is pending or if the payload
  // is too large.
  Result<Bytes> send(uint16_t type, ByteView payload);
  // The pending packet framed again with the current id (for a timeout).
  std::optional<Bytes> resend_pending() const;
  // Gives up on the pending packet without toggling the id (kdcom does this
  // for debug prints when the host does not answer).
  void abandon_pending() { pending_.reset(); }
  // Back to the initial ids (a new connection).
  void reset();

  SessionAction on_event(const KdEvent& ev);

 private:
  void on_control(const ControlPacket& c, SessionAction& a);
  void on_data(const DataPacket& d, SessionAction& a);
  void acknowledge_pending(SessionAction& a);
  void append_resend(SessionAction& a) const;

  uint32_t send_id_ = kInitialPacketId | kSyncPacketId;
  uint32_t expect_id_ = kInitialPacketId;
  std::optional<Pending> pending_;
};

}  // namespace dbgstub::kd
