#pragma once

// Routes whose handler is a coroutine (async.hpp): one that answers when it returns
// (async_handler) and one that writes a response stream (stream_writer). The handler runs as a
// coroutine of its own on the connection's worker, beside a watch on the peer that cancels it
// when the peer goes away. The session's coroutine waits for it and, for a stream, is the
// stream's writer: the handler's writes only queue bytes (bounded), so no cancellation can
// ever cut a write in the middle of the chunked framing.

#include "connection.hpp"

#include <udshttp/service/async.hpp>

namespace udshttp::service::detail {

// Serves `msg` (its body read whole) with `match`, an async or stream_writer route. Returns
// whether the connection may carry another request.
awaitable<bool> serve_coroutine_route(connection& c, const request_head& msg,
                                      const route_match& match, bool keep_alive,
                                      clock::time_point start);

} // namespace udshttp::service::detail
