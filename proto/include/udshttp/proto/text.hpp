#pragma once

/// @file
/// Bytes from the wire, made safe to show in a log line or an error message.

#include <cstddef>
#include <string>
#include <string_view>

namespace udshttp::proto {

/// The most a message quotes from a peer's bytes by default.
inline constexpr std::size_t default_quote_bytes = 256;

/// `text` as a message may quote it: control bytes, '"' and '\' escaped as \xNN, at most `max`
/// bytes of it, followed by the size of what was left out.
std::string quote(std::string_view text, std::size_t max = default_quote_bytes);

} // namespace udshttp::proto
