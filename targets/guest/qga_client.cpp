#include "targets/guest/qga_client.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <asio/read_until.hpp>
#include <asio/write.hpp>
#include <nlohmann/json.hpp>

namespace dbgstub::guest {

using json = nlohmann::json;

Result<std::string> base64_decode(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  bool padding = false;
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      padding = true;
      continue;
    }
    int v = value(c);
    if (v < 0 || padding) return make_error(22, "bad base64");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

struct QgaClient::Op {
  std::vector<std::string> argv;
  std::chrono::milliseconds timeout{};
  ExecDone done;
  Notice notice;
  uint64_t sync_id = 0;
  int64_t guest_pid = 0;
};

QgaClient::QgaClient(asio::io_context& io, std::string socket_path)
    : io_(io), path_(std::move(socket_path)), socket_(io), deadline_(io), poll_timer_(io), busy_timer_(io) {}

QgaClient::~QgaClient() { *alive_ = false; }

void QgaClient::exec(std::vector<std::string> argv, std::chrono::milliseconds timeout, ExecDone done,
                     Notice notice) {
  auto op = std::make_shared<Op>();
  op->argv = std::move(argv);
  op->timeout = timeout;
  op->done = std::move(done);
  op->notice = std::move(notice);
  queue_.push_back(op);
  if (!op_) start_next();
}

Result<ExecResult> QgaClient::exec_now(std::vector<std::string> argv, std::chrono::milliseconds timeout) {
  std::optional<Result<ExecResult>> answer;
  exec(std::move(argv), timeout, [&](Result<ExecResult> r) { answer = std::move(r); });
  while (!answer && io_.run_one()) {
  }
  if (!answer) return make_error(5, "event loop stopped before the guest agent answered");
  return std::move(*answer);
}

void QgaClient::start_next() {
  if (queue_.empty()) return;
  op_ = queue_.front();
  queue_.pop_front();
  deadline_.expires_after(op_->timeout);
  auto alive = alive_;
  deadline_.async_wait([this, alive, op = op_](const asio::error_code& ec) {
    if (ec || !*alive || op_ != op) return;
    finish(make_error(110, "the guest agent at " + path_ + " did not answer within " +
                               std::to_string(op->timeout.count() / 1000) +
                               " s (busy with another client, or the VM halted or without qemu-ga?)"));
  });
  if (!socket_.is_open()) {
    asio::error_code ec;
    socket_.connect(asio::local::stream_protocol::endpoint(path_), ec);
    if (ec) {
      socket_.close();
      finish(make_error(ec.value(), "cannot connect to the guest agent at " + path_ + ": " + ec.message()));
      return;
    }
  }
  sync();
}

void QgaClient::finish(Result<ExecResult> r) {
  if (!op_) return;
  auto op = op_;
  op_.reset();
  deadline_.cancel();
  poll_timer_.cancel();
  busy_timer_.cancel();
  // Closed after every operation that fails (its late replies must not be
  // read as the next one's) and whenever no other is queued (the agent is
  // shared: never held while idle).
  if (!r || queue_.empty()) {
    asio::error_code ec;
    socket_.close(ec);
    in_.consume(in_.size());
  }
  if (op->done) op->done(std::move(r));
  if (!op_) start_next();
}

void QgaClient::send(const std::string& text, std::function<void()> then) {
  auto buf = std::make_shared<std::string>(text);
  auto alive = alive_;
  asio::async_write(socket_, asio::buffer(*buf), [this, alive, buf, then, op = op_](const asio::error_code& ec, std::size_t) {
    if (!*alive || op_ != op) return;
    if (ec) return finish(make_error(ec.value(), "writing to the guest agent: " + ec.message()));
    then();
  });
}

// One line of JSON (the agent ends each reply with a newline; a sync reply
// starts with 0xff, which is dropped here).
void QgaClient::read_reply(std::function<void(Result<std::string>)> on_line) {
  auto alive = alive_;
  asio::async_read_until(socket_, in_, '\n', [this, alive, on_line, op = op_](const asio::error_code& ec, std::size_t n) {
    if (!*alive || op_ != op) return;
    if (ec) return finish(make_error(ec.value(), "reading from the guest agent: " + ec.message()));
    std::string line(asio::buffers_begin(in_.data()), asio::buffers_begin(in_.data()) + static_cast<std::ptrdiff_t>(n));
    in_.consume(n);
    std::erase(line, '\xff');
    on_line(std::move(line));
  });
}

void QgaClient::sync() {
  op_->sync_id = next_sync_id_++ + (static_cast<uint64_t>(::getpid()) << 20);
  json req = {{"execute", "guest-sync-delimited"}, {"arguments", {{"id", op_->sync_id}}}};
  // 0xff first: the agent discards any partial command it was reading.
  send("\xff" + req.dump() + "\n", [this] { await_sync(); });
}

void QgaClient::await_sync() {
  busy_timer_.expires_after(kBusyAfter);
  auto alive = alive_;
  busy_timer_.async_wait([this, alive, op = op_](const asio::error_code& ec) {
    if (ec || !*alive || op_ != op) return;
    std::string text = "the guest agent at " + path_ + " is busy with another client (or its guest is halted): waiting "
                       "up to " + std::to_string(op->timeout.count() / 1000) + " s for it";
    spdlog::warn("{}", text);
    if (op->notice) op->notice(text + "\n");
  });
  read_reply([this](Result<std::string> line) {
    auto j = json::parse(*line, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("return") && j["return"] == op_->sync_id) {
      busy_timer_.cancel();
      launch();
      return;
    }
    await_sync();  // a stale reply (of an operation that timed out): skip it
  });
}

void QgaClient::launch() {
  json args = {{"path", op_->argv.empty() ? std::string() : op_->argv[0]}, {"capture-output", true}};
  if (op_->argv.size() > 1) args["arg"] = std::vector<std::string>(op_->argv.begin() + 1, op_->argv.end());
  json req = {{"execute", "guest-exec"}, {"arguments", args}};
  send(req.dump() + "\n", [this] {
    read_reply([this](Result<std::string> line) {
      auto j = json::parse(*line, nullptr, false);
      if (j.is_discarded() || !j.is_object()) return finish(make_error(71, "bad reply from the guest agent"));
      if (j.contains("error")) {
        std::string desc = j["error"].is_object() && j["error"].contains("desc") && j["error"]["desc"].is_string()
                             ? j["error"]["desc"].get<std::string>()
                             : std::string("unknown error");
        return finish(make_error(1, "the guest agent could not run " + op_->argv[0] + ": " + desc));
      }
      if (!j.contains("return") || !j["return"].is_object() || !j["return"].contains("pid") ||
          !j["return"]["pid"].is_number_integer())
        return finish(make_error(71, "bad guest-exec reply from the guest agent"));
      op_->guest_pid = j["return"]["pid"].get<int64_t>();
      poll();
    });
  });
}

void QgaClient::poll() {
  json req = {{"execute", "guest-exec-status"}, {"arguments", {{"pid", op_->guest_pid}}}};
  send(req.dump() + "\n", [this] {
    read_reply([this](Result<std::string> line) {
      auto j = json::parse(*line, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("return") || !j["return"].is_object())
        return finish(make_error(71, "bad guest-exec-status reply from the guest agent"));
      const json& r = j["return"];
      bool exited = r.contains("exited") && r["exited"].is_boolean() && r["exited"].get<bool>();
      if (!exited) {
        poll_timer_.expires_after(std::chrono::milliseconds(20));
        auto alive = alive_;
        poll_timer_.async_wait([this, alive, op = op_](const asio::error_code& ec) {
          if (!ec && *alive && op_ == op) poll();
        });
        return;
      }
      ExecResult out;
      out.exit_code = r.contains("exitcode") && r["exitcode"].is_number_integer() ? r["exitcode"].get<int>() : -1;
      if (r.contains("out-data") && r["out-data"].is_string()) {
        auto d = base64_decode(r["out-data"].get<std::string>());
        if (d) out.out = *d;
      }
      if (r.contains("err-data") && r["err-data"].is_string()) {
        auto d = base64_decode(r["err-data"].get<std::string>());
        if (d) out.err = *d;
      }
      finish(std::move(out));
    });
  });
}

}  // namespace dbgstub::guest
