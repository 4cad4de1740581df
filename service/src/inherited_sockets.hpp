#pragma once

// Sockets systemd passes to a socket-activated udshttpd (sd_listen_fds(3)'s protocol).

#include <udshttp/proto/endpoint.hpp>

#include <vector>

namespace udshttp::service::detail {

// Resolves `systemd` / `systemd:NAME` to the fd:N endpoints systemd passed (LISTEN_PID,
// LISTEN_FDS, LISTEN_FDNAMES); other endpoints are returned as they are.
std::vector<proto::endpoint> expand_inherited(const proto::endpoint& where);

} // namespace udshttp::service::detail
