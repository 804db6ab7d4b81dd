#include "server/client_gate.h"

#include <spdlog/spdlog.h>

namespace dbgstub {

bool refuse_unlisted_client(const ClientAllowList& clients, asio::ip::tcp::socket& socket, const char* what) {
  if (!clients.restricts()) return false;
  asio::error_code ec;
  auto remote = socket.remote_endpoint(ec);
  std::string addr = ec ? std::string() : remote.address().to_string();
  if (!ec && clients.allows(addr)) return false;
  auto local = socket.local_endpoint(ec);
  spdlog::warn("refused a {} connection from {} port {} on port {}: not in \"clients\" ({})", what,
               addr.empty() ? "?" : addr, remote.port(), local.port(), clients.describe());
  socket.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket.close(ec);
  return true;
}

}  // namespace dbgstub
