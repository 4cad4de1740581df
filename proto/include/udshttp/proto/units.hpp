#pragma once

/// @file
/// The value grammar of command-line flags on both ends: durations ("500ms", "10s", "2m",
/// a bare number is seconds) and sizes ("64KiB", "1MiB", "16k", a bare number is bytes).

#include <udshttp/proto/error.hpp>

#include <chrono>
#include <cstdint>
#include <string_view>

namespace udshttp::proto {

/// Parses a duration: a non-negative decimal number with an optional unit ms, s, m or h.
result<std::chrono::milliseconds> parse_duration(std::string_view text);

/// Parses a size: a whole number with an optional unit B, K/KiB/KB, M/MiB/MB, G/GiB/GB
/// (all binary: 1K = 1024).
result<std::uint64_t> parse_size(std::string_view text);

} // namespace udshttp::proto
