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

void write_line(int fd, std::string& line) {
    line += '\n';
    [[maybe_unused]] auto n = ::write(fd, line.data(), line.size());
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

} // namespace

logger::~logger() {
    if (own_access_fd_)
        ::close(access_fd_);
}

void logger::open(const server_options& options) {
    level_ = options.log_level;
    if (options.access_log.empty())
        return;
    if (options.access_log == "-") {
        access_fd_ = STDERR_FILENO;
        return;
    }
    const int fd =
        ::open(options.access_log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        const boost::system::error_code ec(errno, boost::system::system_category());
        throw startup_error(ec,
                            "cannot open access log " + options.access_log + ": " + ec.message());
    }
    access_fd_ = fd;
    own_access_fd_ = true;
}

void logger::log(log_level level, std::string_view message) const {
    if (!enabled(level))
        return;
    std::string line = program_invocation_short_name;
    line.append(": ").append(level_name(level)).append(": ").append(message);
    write_line(STDERR_FILENO, line);
}

void logger::access(const access_record& r) const {
    if (access_fd_ < 0)
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
    j["method"] = r.method;
    j["target"] = r.target;
    j["status"] = r.status;
    j["bytes_in"] = r.bytes_in;
    j["bytes_out"] = r.bytes_out;
    j["duration_ms"] = std::chrono::duration<double, std::milli>(r.duration).count();
    // A target is bytes from the wire: replace invalid UTF-8 instead of throwing.
    auto line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    write_line(access_fd_, line);
}

} // namespace detail
} // namespace udshttp::service
