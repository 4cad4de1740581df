#pragma once

// The numbers /metrics and /healthz report.

#include "server_state.hpp"

#include <string>

namespace udshttp::service::detail {

// Seconds since the server started.
double uptime_seconds(const server_state& s);

// Every counter of every worker, summed, in the Prometheus text format (version 0.0.4).
std::string metrics_text(const server_state& s);

} // namespace udshttp::service::detail
