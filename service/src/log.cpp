#include "log.hpp"

#include <nlohmann/json.hpp>

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <string>

namespace udshttp::service {

std::optional<log_level> parse_log_level(std::string_view text) noexcept {
    constexpr std::pair<std::string_view, log_level> names[] = {{"debug", log_level::debug},
                                                                {"info", log_level::info},
                                                                {"warn", log_level::warn},
                                                                {"error", log_level::error},
                                                                {"off", log_level::off}};
    for (const auto& [name, level] : names)
        if (text == name)
            return level;
    return std::nullopt;
}

namespace detail {
namespace {

constexpr std::string_view level_name(log_level l) {
    switch (l) {
    case log_level::debug:
        return "debug";
    case log_level::info:
        return "info";
    case log_level::warn:
        return "warn";
    case log_level::error:
        return "error";
    case log_level::off:
        break;
    }
    return "off";
}

// All of `line`, however the descriptor splits it; gives up on an error other than EINTR
// (a closed pipe: the log is lost, the server goes on).
void write_all(int fd, const std::string& line) {
    std::size_t done = 0;
    while (done < line.size()) {
        const auto n = ::write(fd, line.data() + done, line.size() - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        done += static_cast<std::size_t>(n);
    }
}

// RFC 3339 UTC with milliseconds: 2026-11-22T18:20:01.123Z
std::string timestamp() {
    const auto now = std::chrono::system_clock::now();
    const auto t = std::chrono::system_clock::to_time_t(now);
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
        1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    const auto len = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    char out[40];
    std::snprintf(out, sizeof out, "%.*s.%03dZ", static_cast<int>(len), buf, static_cast<int>(ms));
    return out;
}

int open_access_log(const std::string& path) {
    return ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

std::string diagnostic(log_level level, std::string_view message) {
    std::string line = program_invocation_short_name;
    line.append(": ").append(level_name(level)).append(": ").append(message);
    return line;
}

} // namespace

logger::~logger() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (writer_.joinable())
        writer_.join();
    if (own_access_fd_ && access_fd_ >= 0)
        ::close(access_fd_);
    if (reopened_fd_ >= 0)
        ::close(reopened_fd_);
}

void logger::open(const server_options& options) {
    level_ = options.log_level;
    if (!options.access_log.empty()) {
        if (options.access_log == "-") {
            access_fd_ = STDERR_FILENO;
        } else {
            const int fd = open_access_log(options.access_log);
            if (fd < 0) {
                const boost::system::error_code ec(errno, boost::system::system_category());
                throw startup_error(ec, "cannot open access log " + options.access_log + ": " +
                                            ec.message());
            }
            access_fd_ = fd;
            own_access_fd_ = true;
            access_path_ = options.access_log;
        }
        access_on_ = true;
    }
    writer_ = std::thread([this] { writer_loop(); });
}

std::string logger::reopen() {
    if (access_path_.empty())
        return {};
    const int fd = open_access_log(access_path_);
    if (fd < 0)
        return "cannot reopen access log " + access_path_ + ": " + std::strerror(errno);
    std::lock_guard lock(mutex_);
    if (reopened_fd_ >= 0)
        ::close(reopened_fd_);
    reopened_fd_ = fd;
    wake_.notify_all();
    return {};
}

void logger::push(bool access, std::string line) {
    line += '\n';
    {
        std::lock_guard lock(mutex_);
        auto& q = access ? acc_ : err_;
        if (!writer_.joinable() || stopping_) {
            // Not started (a server that never started) or shutting down: write directly.
            write_all(access ? access_fd_ : STDERR_FILENO, line);
            return;
        }
        if (q.bytes + line.size() > log_queue_bytes) {
            ++q.dropped;
            dropped_.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        q.bytes += line.size();
        q.lines.push_back(std::move(line));
        // The writer takes everything queued at once: a queue that already held a line has a
        // wake-up on its way, so only the first line of a batch costs a futex call.
        if (q.lines.size() > 1)
            return;
    }
    wake_.notify_one();
}

void logger::writer_loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [this] {
            return stopping_ || !err_.lines.empty() || !acc_.lines.empty() || reopened_fd_ >= 0;
        });
        if (reopened_fd_ >= 0) {
            if (own_access_fd_)
                ::close(access_fd_);
            access_fd_ = std::exchange(reopened_fd_, -1);
            own_access_fd_ = true;
        }
        auto err_lines = std::move(err_.lines);
        auto acc_lines = std::move(acc_.lines);
        err_.lines.clear();
        acc_.lines.clear();
        err_.bytes = acc_.bytes = 0;
        const auto err_dropped = std::exchange(err_.dropped, 0);
        const auto acc_dropped = std::exchange(acc_.dropped, 0);
        const bool done = stopping_;
        const int afd = access_fd_;
        lock.unlock();
        for (const auto& l : err_lines)
            write_all(STDERR_FILENO, l);
        for (const auto& l : acc_lines)
            write_all(afd, l);
        if (err_dropped + acc_dropped > 0)
            write_all(STDERR_FILENO,
                      diagnostic(log_level::warn,
                                 std::to_string(err_dropped) + " diagnostic and " +
                                     std::to_string(acc_dropped) +
                                     " access log line(s) dropped: the log was not read fast "
                                     "enough") +
                          '\n');
        lock.lock();
        if (done && err_.lines.empty() && acc_.lines.empty())
            return;
    }
}

void logger::log(log_level level, std::string_view message) {
    if (!enabled(level))
        return;
    push(false, diagnostic(level, message));
}

void logger::peer_log(log_level level, std::string_view message) {
    if (!enabled(level))
        return;
    std::uint64_t suppressed = 0;
    {
        std::lock_guard lock(budget_mutex_);
        const auto now = std::chrono::steady_clock::now();
        if (now - window_ >= std::chrono::seconds(1)) {
            window_ = now;
            window_lines_ = 0;
        }
        if (window_lines_ >= peer_lines_per_second) {
            ++suppressed_;
            suppressed_total_.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        ++window_lines_;
        suppressed = std::exchange(suppressed_, 0);
    }
    auto line = diagnostic(level, message);
    if (suppressed > 0)
        line += " (" + std::to_string(suppressed) + " similar line(s) suppressed before this one)";
    push(false, std::move(line));
}

void logger::access(const access_record& r) {
    if (!access_on_)
        return;
    nlohmann::ordered_json j;
    j["time"] = timestamp();
    j["transport"] = r.peer.transport;
    if (r.peer.transport == "unix") {
        for (const auto& [key, value] :
             {std::pair{"pid", r.peer.pid}, {"uid", r.peer.uid}, {"gid", r.peer.gid}})
            if (value)
                j[key] = *value;
    } else {
        j["address"] = r.peer.address;
        j["port"] = r.peer.port;
    }
    j["method"] = r.method.substr(0, quote_bytes);
    j["target"] = r.target.substr(0, access_target_bytes);
    if (r.target.size() > access_target_bytes)
        j["target_bytes"] = r.target.size(); // the target was cut; this is its full size
    j["status"] = r.status;
    j["bytes_in"] = r.bytes_in;
    j["bytes_out"] = r.bytes_out;
    j["duration_ms"] = std::chrono::duration<double, std::milli>(r.duration).count();
    // A target is bytes from the wire: replace invalid UTF-8 instead of throwing.
    push(true, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

} // namespace detail
} // namespace udshttp::service
