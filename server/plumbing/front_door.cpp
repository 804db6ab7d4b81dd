#include "server/plumbing/front_door.h"

#include <spdlog/spdlog.h>

#include <array>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <cstring>
#include <deque>
#include <future>
#include <optional>
#include <string>
#include <vector>

#include "protocol/rsp/framing.h"

namespace dbgstub {

FrontDoor::FrontDoor() : work_(asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}

FrontDoor::~FrontDoor() { stop(); }

void FrontDoor::post(std::function<void()> f) { asio::post(io_, std::move(f)); }

void FrontDoor::run(const std::function<void()>& f) {
  if (!running_ || std::this_thread::get_id() == thread_.get_id()) return f();
  std::promise<void> done;
  asio::post(io_, [&] {
    f();
    done.set_value();
  });
  done.get_future().wait();
}

void FrontDoor::stop() {
  if (!thread_.joinable()) return;
  running_ = false;
  work_.reset();
  io_.stop();
  thread_.join();
}

namespace {

// Bytes read from the client but not yet taken by the session: past this
// the front door stops reading, so a client that pipelines faster than its
// VM answers is slowed down (as the session's backlog does) instead of
// buffered without bound.
constexpr std::size_t kHighWater = 1 << 20;

// A request still unanswered after this long gets a NUL byte now and then.
// gdb (and lldb) skip bytes outside packets while waiting for a reply and
// start their timeout again with each: without it gdb gives a reply up
// after 3 x 2 s ("Ignoring packet error") and takes the late one for the
// answer to its next request. Not for resumes: gdb waits for a stop
// without a timeout and reads a stray byte as a failed wait.
constexpr std::chrono::milliseconds kKeepAlive{1000};
// gdb waits `remotetimeout` (2 s) for an ack or a reply before it resends;
// a copy sooner than this is not a resend (see is_retransmission).
constexpr std::chrono::milliseconds kRetransmitAfter{1000};

bool is_resume(std::string_view p) {
  if (p.empty()) return false;
  if (p[0] == 'c' || p[0] == 's' || p[0] == 'C' || p[0] == 'S') return true;
  // 'k' and 'R' may get no reply at all.
  if (p[0] == 'k' || p[0] == 'R') return true;
  return p.starts_with("vCont;");
}

// One relayed connection. Two halves, each touched by one thread only:
// the front half (the socket, framing, acks) on the front door's thread;
// the session half (bytes waiting to be read, the session's pending read
// and write handlers) on the session's thread. They talk by posting to
// each other; no closure the session owns is ever held by the front half,
// so the front door can stop at any time without keeping a session alive.
class RelayCore : public std::enable_shared_from_this<RelayCore> {
 public:
  RelayCore(asio::ip::tcp::socket socket, asio::io_context& session_io, Relayed what, std::size_t max_packet)
      : socket_(std::move(socket)), session_io_(session_io), what_(what), framer_(max_packet),
        keep_alive_(socket_.get_executor()) {
    asio::error_code ec;
    socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  }

  // --- front half (front door's thread) ---------------------------------

  void front_start() { front_read(); }

  void front_write(std::string bytes) {
    if (what_ == Relayed::Rsp) note_reply(bytes);
    front_queue(std::move(bytes), true);
  }

  void front_set_ack_mode(bool on) { ack_mode_ = on; }

  void front_close() {
    if (front_closed_) return;
    front_closed_ = true;
    keep_alive_.cancel();
    asio::error_code ec;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  void front_resume_reading() {
    if (!paused_ || front_closed_) return;
    paused_ = false;
    front_read();
  }

  // --- session half (session's thread) ----------------------------------

  void session_read(asio::mutable_buffer buf, Transport::Handler h) {
    read_buf_ = buf;
    read_handler_ = std::move(h);
    asio::post(session_io_, [self = shared_from_this()] { self->session_complete_read(); });
  }

  void session_write(asio::const_buffer buf, Transport::Handler h) {
    write_handlers_.push_back(std::move(h));
    std::string bytes(static_cast<const char*>(buf.data()), buf.size());
    front([self = shared_from_this(), bytes = std::move(bytes)]() mutable { self->front_write(std::move(bytes)); });
  }

  void session_close() {
    if (session_closed_) return;
    session_closed_ = true;
    read_error_ = asio::error::operation_aborted;
    front([self = shared_from_this()] { self->front_close(); });
    // What waits is ended now, as closing a socket aborts its operations:
    // the session's handlers own the session.
    asio::post(session_io_, [self = shared_from_this()] {
      self->session_complete_read();
      self->session_fail_writes(asio::error::operation_aborted);
    });
  }

  void set_front_door(FrontDoor* door) { door_ = door; }
  void set_ack_mode(bool on) {
    front([self = shared_from_this(), on] { self->front_set_ack_mode(on); });
  }

 private:
  void front(std::function<void()> f) { door_->post(std::move(f)); }
  void to_session(std::function<void()> f) { asio::post(session_io_, std::move(f)); }

  void front_read() {
    if (front_closed_) return;
    socket_.async_read_some(asio::buffer(rbuf_), [self = shared_from_this()](const asio::error_code& ec, std::size_t n) {
      self->front_on_read(ec, n);
    });
  }

  void front_on_read(const asio::error_code& ec, std::size_t n) {
    if (front_closed_) return;
    if (ec) {
      to_session([self = shared_from_this(), ec] { self->session_fail_read(ec); });
      return;
    }
    std::string_view bytes(rbuf_.data(), n);
    std::string forward = what_ == Relayed::Rsp ? front_frame(bytes) : std::string(bytes);
    if (!forward.empty()) {
      unconsumed_ += forward.size();
      to_session([self = shared_from_this(), forward = std::move(forward)]() mutable {
        self->session_deliver(std::move(forward));
      });
    }
    if (unconsumed_ > kHighWater) {
      paused_ = true;  // the session half resumes reading once it has caught up
      return;
    }
    front_read();
  }

  // GDB's bytes: acknowledged here, and passed on re-framed, so the session
  // sees only whole, checked packets and interrupts.
  std::string front_frame(std::string_view bytes) {
    using K = rsp::FrameEvent::Kind;
    std::vector<rsp::FrameEvent> events;
    framer_.feed(bytes, events);
    std::string forward;
    for (auto& e : events) {
      switch (e.kind) {
        case K::Packet:
          if (ack_mode_) front_queue("+", false);
          if (is_retransmission(e.payload)) {
            spdlog::info("debugger sent '{}' again before its reply: a retransmission, not answered twice",
                         rsp::printable(e.payload, 64));
            break;
          }
          outstanding_ = e.payload;
          outstanding_since_ = std::chrono::steady_clock::now();
          forward += rsp::frame_packet(e.payload);
          if (!is_resume(e.payload)) arm_keep_alive();
          break;
        case K::Interrupt:
          forward += '\x03';
          break;
        case K::Ack:
          break;
        case K::Nack:
          // '-' while the reply is still being made: the client timed out
          // waiting for it; sending the previous reply would put the two
          // sides out of step. The reply goes out when it is ready.
          if (outstanding_) {
            spdlog::debug("debugger asked for a retransmission before the reply was ready: ignored");
          } else if (ack_mode_ && !last_frame_.empty()) {
            spdlog::debug("debugger asked for a retransmission");
            front_queue(last_frame_, false);
          }
          break;
        case K::BadChecksum:
          spdlog::warn("packet with a bad checksum{}", ack_mode_ ? ", retransmission requested" : " dropped");
          if (ack_mode_) front_queue("-", false);
          break;
        case K::Oversize:
          spdlog::warn("packet longer than {} bytes dropped", framer_.max_packet());
          if (ack_mode_) front_queue("-", false);
          break;
        case K::Malformed:
          spdlog::warn("malformed input: {}", e.payload);
          break;
      }
    }
    return forward;
  }

  // A client resends a request only when it waited its timeout for the
  // ack or the reply (gdb: `set remotetimeout`, 2 s), in ack mode, with
  // nothing sent in between. The same request again sooner is a client
  // that pipelines (asks again without waiting): each copy is answered.
  bool is_retransmission(const std::string& payload) const {
    return ack_mode_ && outstanding_ && *outstanding_ == payload &&
           std::chrono::steady_clock::now() - outstanding_since_ >= kRetransmitAfter;
  }

  void arm_keep_alive() {
    uint64_t gen = ++keep_alive_gen_;
    keep_alive_.expires_after(kKeepAlive);
    keep_alive_.async_wait([self = shared_from_this(), gen](const asio::error_code& ec) {
      if (ec || gen != self->keep_alive_gen_ || !self->outstanding_ || self->front_closed_) return;
      self->front_queue(std::string(1, '\0'), false);
      self->arm_keep_alive();
    });
  }

  // A packet ('$') on its way out answers the outstanding request; the
  // last one is kept for a '-'. Every '$' in the output starts a packet:
  // frame_packet escapes it inside payloads.
  void note_reply(const std::string& bytes) {
    auto start = bytes.rfind('$');
    if (start == std::string::npos) return;
    outstanding_.reset();
    ++keep_alive_gen_;
    auto hash = bytes.find('#', start);
    last_frame_ = bytes.substr(start, hash == std::string::npos ? std::string::npos : hash + 3 - start);
  }

  // `from_session`: the session waits for this write's completion.
  void front_queue(std::string bytes, bool from_session) {
    if (front_closed_) {
      if (from_session)
        to_session([self = shared_from_this()] { self->session_write_done(asio::error::operation_aborted, 0); });
      return;
    }
    wqueue_.push_back({std::move(bytes), from_session});
    if (!writing_) front_write_next();
  }

  void front_write_next() {
    if (wqueue_.empty()) {
      writing_ = false;
      return;
    }
    writing_ = true;
    asio::async_write(socket_, asio::buffer(wqueue_.front().bytes),
                      [self = shared_from_this()](const asio::error_code& ec, std::size_t n) {
                        bool from_session = self->wqueue_.front().from_session;
                        self->wqueue_.pop_front();
                        if (from_session)
                          self->to_session([self, ec, n] { self->session_write_done(ec, n); });
                        if (ec) {
                          // The rest fails too, in order.
                          for (auto& w : self->wqueue_)
                            if (w.from_session)
                              self->to_session([self, ec] { self->session_write_done(ec, 0); });
                          self->wqueue_.clear();
                          self->writing_ = false;
                          return;
                        }
                        self->front_write_next();
                      });
  }

  void session_deliver(std::string bytes) {
    if (session_closed_) return;
    inbox_ += bytes;
    session_complete_read();
  }

  void session_fail_read(const asio::error_code& ec) {
    if (!read_error_) read_error_ = ec;
    session_complete_read();
  }

  // Hands waiting bytes (or the error, once they are taken) to the
  // session's pending read.
  void session_complete_read() {
    if (!read_handler_) return;
    if (!session_closed_ && !inbox_.empty()) {
      std::size_t n = std::min(inbox_.size(), read_buf_.size());
      std::memcpy(read_buf_.data(), inbox_.data(), n);
      inbox_.erase(0, n);
      auto h = std::move(read_handler_);
      read_handler_ = nullptr;
      if (unconsumed_.fetch_sub(n) - n <= kHighWater / 2)
        front([self = shared_from_this()] { self->front_resume_reading(); });
      h(asio::error_code(), n);
      return;
    }
    if (read_error_) {
      auto h = std::move(read_handler_);
      read_handler_ = nullptr;
      h(read_error_, 0);
    }
  }

  void session_write_done(const asio::error_code& ec, std::size_t n) {
    if (write_handlers_.empty()) return;
    auto h = std::move(write_handlers_.front());
    write_handlers_.pop_front();
    h(ec, n);
  }

  void session_fail_writes(const asio::error_code& ec) {
    while (!write_handlers_.empty()) session_write_done(ec, 0);
  }

  struct Pending {
    std::string bytes;
    bool from_session;
  };

  FrontDoor* door_ = nullptr;
  // Front half.
  asio::ip::tcp::socket socket_;
  asio::io_context& session_io_;
  Relayed what_;
  rsp::Framer framer_;
  std::array<char, 16384> rbuf_{};
  bool ack_mode_ = true;
  std::optional<std::string> outstanding_;  // forwarded, not yet answered
  std::chrono::steady_clock::time_point outstanding_since_;
  std::string last_frame_;
  std::deque<Pending> wqueue_;
  bool writing_ = false;
  bool paused_ = false;
  bool front_closed_ = false;
  asio::steady_timer keep_alive_;
  uint64_t keep_alive_gen_ = 0;
  // Both halves: bytes handed to the session half and not yet read.
  std::atomic<std::size_t> unconsumed_{0};
  // Session half.
  std::string inbox_;
  asio::mutable_buffer read_buf_;
  Transport::Handler read_handler_;
  asio::error_code read_error_;
  std::deque<Transport::Handler> write_handlers_;
  bool session_closed_ = false;
};

class RelayTransport : public Transport {
 public:
  RelayTransport(std::shared_ptr<RelayCore> core, asio::io_context& session_io, bool acks)
      : core_(std::move(core)), session_io_(session_io), acks_(acks) {}
  ~RelayTransport() override { core_->session_close(); }

  void read_some(asio::mutable_buffer buf, Handler h) override { core_->session_read(buf, std::move(h)); }
  void write_all(asio::const_buffer buf, Handler h) override { core_->session_write(buf, std::move(h)); }
  void close() override { core_->session_close(); }
  void defer(std::function<void()> f) override { asio::post(session_io_, std::move(f)); }
  bool acknowledges() const override { return acks_; }
  void set_ack_mode(bool on) override { core_->set_ack_mode(on); }

 private:
  std::shared_ptr<RelayCore> core_;
  asio::io_context& session_io_;
  bool acks_;
};

}  // namespace

std::unique_ptr<Transport> make_relay(FrontDoor& door, asio::ip::tcp::socket socket, asio::io_context& session_io,
                                      Relayed what, std::size_t max_packet) {
  auto core = std::make_shared<RelayCore>(std::move(socket), session_io, what, max_packet);
  core->set_front_door(&door);
  door.post([core] { core->front_start(); });
  return std::make_unique<RelayTransport>(core, session_io, what == Relayed::Rsp);
}

}  // namespace dbgstub
