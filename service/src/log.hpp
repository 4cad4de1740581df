#pragma once

// Diagnostics (one line each on stderr, filtered by --log-level) and the access log (one JSON
// line per request, to a file or stderr).
//
// Workers never write to a descriptor themselves: they queue whole lines, and one writer thread
// per server writes them out, batched, so lines from several workers never interleave (a pipe makes
// only writes of up to PIPE_BUF bytes atomic) and a log pipe that nobody reads never stalls a
// request. The queue is bounded (log_queue_bytes); lines that do not fit are dropped and
// counted, and the count is reported once the writer catches up. Diagnostics a peer can cause
// (refusals, malformed input) share a budget of peer_lines_per_second, with the suppressed
// count in the next line that goes out; what a line quotes from a request is capped at
// quote_bytes.

#include <udshttp/proto/api.hpp>
#include <udshttp/proto/text.hpp>
#include <udshttp/service/server.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

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

// The most a log line quotes from a request (a target, a method), in bytes.
constexpr std::size_t quote_bytes = proto::default_quote_bytes;
using proto::quote;
// One diagnostic line (without its newline): "PROGRAM: LEVEL: message", or as JSON
// {"time","level","program","message"}. udshttpd's own lines (start-up, drain) use it too, so
// that with --log-format json every line on stderr parses.
std::string diagnostic(log_format format, log_level level, std::string_view message);

// RFC 3339 UTC with milliseconds, as every log line carries it: 2026-11-22T18:20:01.123Z
std::string log_timestamp();

// One access-log line (without its newline): JSON with the time, the peer, the method, the
// target (cut at access_target_bytes), the status, the bytes and the duration.
std::string access_json(const access_record& r);

// The most of a request target an access-log line carries.
constexpr std::size_t access_target_bytes = 2048;
// Lines waiting for the writer, per destination, in bytes.
constexpr std::size_t log_queue_bytes = 1u << 20;
// Access-log lines wait up to this long for more to write with them, unless this many bytes
// are queued: a busy server's writer wakes a few times a second, not once per request.
constexpr auto access_batch_delay = std::chrono::milliseconds(50);
constexpr std::size_t access_batch_bytes = 64 * 1024;
// Diagnostics caused by peers, across the server, per second.
constexpr unsigned peer_lines_per_second = 20;

class logger {
public:
    logger() = default;
    ~logger(); // writes out what is queued, then joins the writer
    logger(const logger&) = delete;
    logger& operator=(const logger&) = delete;

    // Takes the level, opens the access log and starts the writer; throws startup_error naming
    // the file.
    void open(const server_options& options);
    // Opens the access log file again (after logrotate moved it: SIGHUP). Returns an error
    // message, empty on success; on failure the old file stays in use.
    std::string reopen();

    // Returns once every line queued so far has been written (server::stop() calls it, so a
    // stopped server's logs are complete on disk).
    void flush();

    bool enabled(log_level level) const noexcept {
        return level >= level_ && level != log_level::off;
    }
    // "PROGRAM: LEVEL: message" on stderr, if the level is enabled.
    void log(log_level level, std::string_view message);
    // The same for what a peer caused: within the shared per-second budget, else counted.
    void peer_log(log_level level, std::string_view message);

    bool access_enabled() const noexcept { return access_on_; }
    // Writes one access-log line (access_json(), made once by the caller, who may also send
    // it to /events).
    void access(std::string line);

    bool audit_enabled() const noexcept { return audit_on_; }
    // Writes one gateway audit line (JSON, made by the caller) to --audit-log.
    void audit(std::string line);

    // Lines dropped so far because a queue was full, and peer lines suppressed by the budget.
    std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
    std::uint64_t suppressed() const noexcept {
        return suppressed_total_.load(std::memory_order_relaxed);
    }

private:
    struct queue {
        std::string text;          // whole lines, each ending in '\n', written in one go
        std::uint64_t dropped = 0; // since the last report
    };
    enum class sink { err, access, audit };
    void push(sink to, std::string line);
    void writer_loop();

    log_level level_ = log_level::info;
    log_format format_ = log_format::text;
    bool access_on_ = false;
    std::string access_path_; // empty: stderr
    int access_fd_ = -1;      // the writer's; changed by the writer only
    bool own_access_fd_ = false;
    int reopened_fd_ = -1; // from reopen(), for the writer to take over (under mutex_)
    bool audit_on_ = false;
    std::string audit_path_;
    int audit_fd_ = -1;
    bool own_audit_fd_ = false;
    int reopened_audit_fd_ = -1;

    std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable written_; // the writer finished a round (for flush())
    bool writing_ = false;            // the writer holds lines it has not written yet
    bool flushing_ = false;
    queue err_, acc_, aud_;
    bool stopping_ = false;
    std::thread writer_;
    std::atomic<std::uint64_t> dropped_{0};

    // The peer-line budget: a one-second window.
    std::mutex budget_mutex_;
    std::chrono::steady_clock::time_point window_{};
    unsigned window_lines_ = 0;
    std::uint64_t suppressed_ = 0; // since the last line that went out
    std::atomic<std::uint64_t> suppressed_total_{0};
};

} // namespace udshttp::service::detail
