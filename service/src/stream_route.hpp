#pragma once

// A stream route's request: the body goes to the handler piece by piece and its output to the
// peer as it comes, in memory bounded by the pump's queue whatever the body's size. A small
// body with a Content-Length is read whole and answered in one write instead.

#include "connection.hpp"

#include <optional>
#include <string_view>

namespace udshttp::service::detail {

class stream_route {
public:
    // `keep_alive`: what the request asked for.
    stream_route(connection& c, bool keep_alive) : c_(c), keep_alive_(keep_alive) {}

    // Serves the request whose head `parser` holds. Returns whether the connection may carry
    // another request.
    awaitable<bool> serve(request_parser& parser, const route_match& match,
                          clock::time_point start);

private:
    struct pump;
    awaitable<> pump_reader(pump& p, stream_parser& parser);
    awaitable<> pump_writer(pump& p, http::response<http::buffer_body>& out);
    // Gives the handler a body piece (or, with nullopt, the end) and queues its output; false
    // (and the pump failed) if the handler threw.
    bool feed(pump& p, std::optional<std::string_view> in);
    // A body with a Content-Length up to pump::queue_cap: read whole, one handler call, head
    // and output in one write. Returns whether the connection may go on.
    awaitable<bool> stream_whole(stream_handler& handler, std::optional<std::uint64_t> declared,
                                 response& res, const request_head& head, std::uint64_t length,
                                 std::optional<std::size_t> route, clock::time_point start);

    connection& c_;
    bool keep_alive_;
};

} // namespace udshttp::service::detail
