#pragma once

// Diagnostics (one line each on stderr, filtered by --log-level) and the access log (one JSON
// line per request, to a file or stderr). Every line goes out in a single write(2), so lines
// from several workers never interleave, and a failed log write never fails a request.

#include <udshttp/proto/api.hpp>
#include <udshttp/service/server.hpp>

#include <chrono>
#include <cstdint>
#include <string_view>

namespace udshttp::service::detail {

// What the access log says about one request.
struct access_record {
    const proto::peer_info& peer;
    std::string_view method;
    std::string_view target;
    unsigned status = 0;
    std::uint64_t bytes_in = 0;  // request body
    std::uint64_t bytes_out = 0; // response, head and body, as written
    std::chrono::steady_clock::duration duration{};
};

class logger {
public:
    logger() = default;
    ~logger();
    logger(const logger&) = delete;
    logger& operator=(const logger&) = delete;

    // Takes the level and opens the access log; throws startup_error naming the file.
    void open(const server_options& options);

    bool enabled(log_level level) const noexcept {
        return level >= level_ && level != log_level::off;
    }
    // "PROGRAM: LEVEL: message" on stderr, if the level is enabled.
    void log(log_level level, std::string_view message) const;

    bool access_enabled() const noexcept { return access_fd_ >= 0; }
    void access(const access_record& r) const;

private:
    log_level level_ = log_level::info;
    int access_fd_ = -1;
    bool own_access_fd_ = false;
};

} // namespace udshttp::service::detail
