#pragma once

// systemd's readiness protocol without libsystemd: one datagram to $NOTIFY_SOCKET
// (sd_notify(3)). A unit with Type=notify waits for READY=1 before it counts the service as
// started, so units ordered after udshttpd find every listener bound.

#include <string>
#include <string_view>

namespace udshttp::service::detail {

// Sends `state` ("READY=1", "STOPPING=1", ...) to $NOTIFY_SOCKET: a path, or "@name" for an
// abstract socket. Returns "" when it was sent or NOTIFY_SOCKET is unset, else why not.
std::string notify_systemd(std::string_view state);

} // namespace udshttp::service::detail
