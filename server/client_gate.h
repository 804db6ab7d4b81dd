// The accept path's check against "clients" (server/client_allow_list.h):
// one call, so that the listening code stays as it is around it.
#pragma once
#include <asio/ip/tcp.hpp>

#include "server/client_allow_list.h"

namespace dbgstub {

// True when `socket`'s peer is not on `clients`: the refusal is logged with
// the peer's address and port and the socket closed, before it is read.
// `what` names the port in the log ("GDB", "KD").
bool refuse_unlisted_client(const ClientAllowList& clients, asio::ip::tcp::socket& socket, const char* what);

}  // namespace dbgstub
