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

} // namespace

// RFC 3339 UTC with milliseconds: 2026-11-22T18:20:01.123Z
std::string log_timestamp() {
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

namespace {

int open_access_log(const std::string& path) {
    return ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

} // namespace

std::string diagnostic(log_format format, log_level level, std::string_view message) {
    if (format == log_format::json) {
        nlohmann::ordered_json j;
        j["time"] = log_timestamp();
        j["level"] = level_name(level);
        j["program"] = program_invocation_short_name;
        j["message"] = message;
        // A message may quote a peer's bytes (already escaped by quote()); never throw on them.
        return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
    std::string line = program_invocation_short_name;
    line.append(": ").append(level_name(level)).append(": ").append(message);
    return line;
}

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
    if (own_audit_fd_ && audit_fd_ >= 0)
        ::close(audit_fd_);
    if (reopened_audit_fd_ >= 0)
        ::close(reopened_audit_fd_);
}

void logger::open(const server_options& options) {
    level_ = options.log_level;
    format_ = options.log_format;
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
    if (const auto& audit = options.gateway.audit_log; !audit.empty()) {
        if (audit == "-") {
            audit_fd_ = STDERR_FILENO;
        } else {
            const int fd = open_access_log(audit);
            if (fd < 0) {
                const boost::system::error_code ec(errno, boost::system::system_category());
                throw startup_error(ec, "cannot open audit log " + audit + ": " + ec.message());
            }
            audit_fd_ = fd;
            own_audit_fd_ = true;
            audit_path_ = audit;
        }
        audit_on_ = true;
    }
    writer_ = std::thread([this] { writer_loop(); });
}

std::string logger::reopen() {
    std::string failed;
    const auto again = [&](const std::string& path, int& slot, std::string_view what) {
        if (path.empty())
            return;
        const int fd = open_access_log(path);
        if (fd < 0) {
            failed += (failed.empty() ? "" : "; ") + std::string("cannot reopen ") +
                      std::string(what) + " " + path + ": " + std::strerror(errno);
            return;
        }
        std::lock_guard lock(mutex_);
        if (slot >= 0)
            ::close(slot);
        slot = fd;
        wake_.notify_all();
    };
    again(access_path_, reopened_fd_, "access log");
    again(audit_path_, reopened_audit_fd_, "audit log");
    return failed;
}

void logger::flush() {
    std::unique_lock lock(mutex_);
    if (!writer_.joinable())
        return;
    flushing_ = true;
    wake_.notify_one();
    written_.wait(lock, [this] {
        return err_.text.empty() && acc_.text.empty() && aud_.text.empty() && !writing_;
    });
    flushing_ = false;
}

void logger::push(sink to, std::string line) {
    const bool access = to != sink::err; // access and audit lines are batched alike
    {
        std::lock_guard lock(mutex_);
        auto& q = to == sink::access ? acc_ : to == sink::audit ? aud_ : err_;
        if (!writer_.joinable() || stopping_) {
            // Not started (a server that never started) or shutting down: write directly.
            line += '\n';
            write_all(to == sink::access  ? access_fd_
                      : to == sink::audit ? audit_fd_
                                          : STDERR_FILENO,
                      line);
            return;
        }
        if (q.text.size() + line.size() + 1 > log_queue_bytes) {
            ++q.dropped;
            dropped_.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        const bool was_empty = q.text.empty();
        q.text.append(line).push_back('\n');
        // The writer takes everything queued at once: a queue that already held a line has a
        // wake-up on its way, so only the first line of a batch costs a futex call - and a
        // batch of access lines waits for the writer's delay unless it has grown large.
        const bool full = access && q.text.size() >= access_batch_bytes &&
                          q.text.size() - line.size() - 1 < access_batch_bytes;
        if (!was_empty && !full)
            return;
    }
    wake_.notify_one();
}

void logger::writer_loop() {
    // The writer's side of each queue: swapped with the queue's text under the lock, written
    // out (one write for a whole batch) outside it, and handed back with its capacity kept.
    std::string err_text, acc_text, aud_text;
    std::unique_lock lock(mutex_);
    for (;;) {
        const auto urgent = [this] {
            return stopping_ || !err_.text.empty() || reopened_fd_ >= 0 ||
                   reopened_audit_fd_ >= 0 || acc_.text.size() >= access_batch_bytes ||
                   aud_.text.size() >= access_batch_bytes ||
                   (flushing_ && (!acc_.text.empty() || !aud_.text.empty()));
        };
        wake_.wait(lock, [&] { return urgent() || !acc_.text.empty() || !aud_.text.empty(); });
        // Access lines alone are not urgent: gather them for a moment, so that a busy server
        // costs the writer one wake-up and one write per batch, not one per request.
        if (!urgent())
            wake_.wait_for(lock, access_batch_delay, urgent);
        if (reopened_fd_ >= 0) {
            if (own_access_fd_)
                ::close(access_fd_);
            access_fd_ = std::exchange(reopened_fd_, -1);
            own_access_fd_ = true;
        }
        if (reopened_audit_fd_ >= 0) {
            if (own_audit_fd_)
                ::close(audit_fd_);
            audit_fd_ = std::exchange(reopened_audit_fd_, -1);
            own_audit_fd_ = true;
        }
        err_text.swap(err_.text);
        acc_text.swap(acc_.text);
        aud_text.swap(aud_.text);
        const auto err_dropped = std::exchange(err_.dropped, 0);
        const auto acc_dropped = std::exchange(acc_.dropped, 0) + std::exchange(aud_.dropped, 0);
        const bool done = stopping_;
        const int afd = access_fd_;
        const int udf = audit_fd_;
        writing_ = true;
        lock.unlock();
        if (err_dropped + acc_dropped > 0)
            err_text +=
                diagnostic(format_, log_level::warn,
                           std::to_string(err_dropped) + " diagnostic and " +
                               std::to_string(acc_dropped) +
                               " access or audit log line(s) dropped: the log was not read fast "
                               "enough") +
                '\n';
        write_all(STDERR_FILENO, err_text);
        write_all(afd, acc_text);
        write_all(udf, aud_text);
        err_text.clear();
        acc_text.clear();
        aud_text.clear();
        lock.lock();
        writing_ = false;
        written_.notify_all();
        if (done && err_.text.empty() && acc_.text.empty() && aud_.text.empty())
            return;
    }
}

void logger::log(log_level level, std::string_view message) {
    if (!enabled(level))
        return;
    push(sink::err, diagnostic(format_, level, message));
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
    if (suppressed == 0) {
        push(sink::err, diagnostic(format_, level, message));
        return;
    }
    std::string text(message);
    text += " (" + std::to_string(suppressed) + " similar line(s) suppressed before this one)";
    push(sink::err, diagnostic(format_, level, text));
}

std::string access_json(const access_record& r) {
    nlohmann::ordered_json j;
    j["time"] = log_timestamp();
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
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void logger::audit(std::string line) {
    if (!audit_on_)
        return;
    push(sink::audit, std::move(line));
}

void logger::access(std::string line) {
    if (!access_on_)
        return;
    push(sink::access, std::move(line));
}

} // namespace detail
} // namespace udshttp::service
