#pragma once

// The gateway: a request under a --route prefix is checked against the rules (with the
// caller's identity) and forwarded to its upstream; the response streams back. Streams and
// upgrades pass through with backpressure and each direction's end on its own.
//
// gateway_rules.cpp holds the pure parts (normalisation, patterns, rules, reading the caller);
// gateway.cpp the exchange with the upstream.

#include <udshttp/service/gateway.hpp>

#include "io.hpp"
#include "rejection.hpp"

#include <boost/asio/generic/stream_protocol.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace udshttp::service::detail {

class connection;

// The caller on connected socket `fd`: the credentials, supplementary groups, and with
// `process` its executable and cgroup (see caller_identity).
caller_identity read_caller(int fd, const proto::peer_info& peer, bool process);

// An upstream as the workers use it: its addresses resolved once, at start.
struct upstream_state {
    std::string name;
    std::string label; // "api (unix:/run/api.sock)", for errors
    std::vector<asio::generic::stream_protocol::endpoint> addresses;
};

// Counters per upstream, and per verdict (stats.hpp holds them per worker).
enum class upstream_counter : std::size_t { requests, connect_errors, timeouts, bad_answers, n_ };
enum class verdict_counter : std::size_t { allow, deny, learn, n_ };

// What start() builds from gateway_options: read-only while serving.
class gateway_state {
public:
    // Resolves every upstream; throws startup_error naming one that does not resolve, a route
    // naming no upstream, or an upstream named twice.
    explicit gateway_state(const gateway_options& o);

    // The upstream whose route prefix covers `path` (longest prefix), if any.
    std::optional<std::size_t> route(std::string_view path) const noexcept;

    const gateway_options& options;
    std::vector<upstream_state> upstreams;
    bool needs_process = false;

private:
    std::vector<std::pair<std::string, std::size_t>> routes_; // longest prefix first
};

enum class gateway_end { next, close, gone };

// Serves one request under a gateway route: rules, then the exchange with the upstream.
awaitable<gateway_end> serve_gateway(connection& c, request_parser& parser,
                                     const normalized_target& target, std::size_t upstream,
                                     bool keep_alive, clock::time_point start);

} // namespace udshttp::service::detail
