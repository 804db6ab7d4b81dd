// The lab's control socket ("control": PATH in the lab file): a Unix stream
// socket that `dbgstub ctl` and scripts talk to, one JSON request per line
// (server/lab/control_protocol.h). It lives on the front door's event loop,
// which never blocks: requests go to a handler that answers whenever it
// can (a VM's thread may take seconds), so one slow answer holds neither
// the debuggers' relays nor the other control clients.
//
// Who may connect is the file's mode: 0600 (dbgstub's user), or 0660 with
// its group set to "control_group". The file is removed when dbgstub ends.
#pragma once
#include <asio/io_context.hpp>
#include <asio/local/stream_protocol.hpp>
#include <functional>
#include <memory>
#include <string>

#include "common/result.h"
#include "server/lab/control_protocol.h"

namespace dbgstub {

class ControlSocket {
 public:
  // Gets the reply line (without its newline); may be called from any
  // thread, once.
  using Respond = std::function<void(std::string)>;
  using Handler = std::function<void(const control::Request&, Respond)>;

  ControlSocket(asio::io_context& io, Handler handler);
  ~ControlSocket();  // close()
  ControlSocket(const ControlSocket&) = delete;
  ControlSocket& operator=(const ControlSocket&) = delete;

  // Creates the socket at `path` (a stale one, nobody listening, is
  // replaced; a live one is an error) and accepts from then on. `group`:
  // empty, or the group that may connect too.
  Status open(const std::string& path, const std::string& group);
  // On the io's thread: stops accepting, and removes the file.
  void close();
  const std::string& path() const { return path_; }

 private:
  struct Connection;
  void accept();

  asio::io_context& io_;
  Handler handler_;
  asio::local::stream_protocol::acceptor acceptor_;
  std::string path_;
  // Shared with the connections: a reply that comes after close() is dropped.
  std::shared_ptr<bool> open_ = std::make_shared<bool>(false);
};

}  // namespace dbgstub
