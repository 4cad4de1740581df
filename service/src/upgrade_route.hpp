#pragma once

// Requests that leave HTTP: a 101 Switching Protocols hands the connection to a WebSocket
// handler (Beast's websocket stream) or, for any other Upgrade (Docker's "tcp"), to a raw
// duplex handler with each direction's end passed through on its own.

#include "connection.hpp"

namespace udshttp::service::detail {

enum class upgrade_kind { none, websocket, raw };

// Which upgrade `msg` asks for that `match` answers: none when the request asks for none
// (RFC 9110 7.8: Connection: upgrade and an Upgrade field, on HTTP/1.1, with no body), or
// when the route has no handler for it (then the request is served as a plain one).
upgrade_kind upgrade_for(const request_parser& parser, const route_match& match);

// Answers 101 and runs the handler until it ends; the connection closes then.
awaitable<> serve_upgrade(connection& c, request_head& msg, const route_match& match,
                          upgrade_kind kind, clock::time_point start);

} // namespace udshttp::service::detail
