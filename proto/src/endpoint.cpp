#include <udshttp/proto/endpoint.hpp>

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstddef>
#include <cstring>
#include <limits>

namespace udshttp::proto {

std::optional<endpoint> endpoint::from_sockaddr(const void* sa, std::size_t len) {
    if (len < sizeof(sa_family_t))
        return std::nullopt;
    sockaddr_storage ss{};
    std::memcpy(&ss, sa, std::min(len, sizeof ss));
    std::array<char, INET6_ADDRSTRLEN> text{};
    switch (ss.ss_family) {
    case AF_UNIX: {
        const auto& un = reinterpret_cast<const sockaddr_un&>(ss);
        const auto start = offsetof(sockaddr_un, sun_path);
        if (len <= start)
            return std::nullopt; // unnamed
        const auto path_len = std::min(len, sizeof(sockaddr_un)) - start;
        if (un.sun_path[0] == '\0')
            return abstract(std::string(un.sun_path + 1, path_len - 1));
        return unix_path(std::string(un.sun_path, ::strnlen(un.sun_path, path_len)));
    }
    case AF_INET: {
        if (len < sizeof(sockaddr_in))
            return std::nullopt;
        const auto& in = reinterpret_cast<const sockaddr_in&>(ss);
        ::inet_ntop(AF_INET, &in.sin_addr, text.data(), text.size());
        return tcp(text.data(), ntohs(in.sin_port));
    }
    case AF_INET6: {
        if (len < sizeof(sockaddr_in6))
            return std::nullopt;
        const auto& in6 = reinterpret_cast<const sockaddr_in6&>(ss);
        ::inet_ntop(AF_INET6, &in6.sin6_addr, text.data(), text.size());
        return tcp(text.data(), ntohs(in6.sin6_port));
    }
    default:
        return std::nullopt;
    }
}

namespace {

static_assert(max_unix_path_length == sizeof(sockaddr_un::sun_path) - 1,
              "max_unix_path_length must follow the platform's sun_path");

error invalid(std::string_view text, std::string_view why) {
    std::string msg = "invalid endpoint '";
    msg.append(text).append("': ").append(why);
    return {make_error_code(errc::invalid_endpoint), std::move(msg)};
}

bool all_digits(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Four dot-separated groups of digits: what a user means as an IPv4 address.
bool looks_like_ipv4(std::string_view t) {
    int groups = 0;
    for (std::size_t start = 0;;) {
        const auto dot = t.find('.', start);
        const auto group = t.substr(start, dot == std::string_view::npos ? dot : dot - start);
        if (group.empty() || group.size() > 3 || !all_digits(group))
            return false;
        ++groups;
        if (dot == std::string_view::npos)
            return groups == 4;
        start = dot + 1;
    }
}

result<endpoint> parse_unix_path(std::string_view text, std::string_view path) {
    if (path.empty())
        return invalid(text, "the socket path is empty");
    if (path.find('\0') != std::string_view::npos)
        return invalid(text, "the socket path contains a NUL byte");
    if (path.size() > max_unix_path_length)
        return error{make_error_code(errc::socket_path_too_long),
                     "socket path '" + std::string(path) + "' is " + std::to_string(path.size()) +
                         " bytes; the limit on this platform is " +
                         std::to_string(max_unix_path_length) +
                         " (use a shorter path, a relative path, or an abstract @name)"};
    return endpoint::unix_path(std::string(path));
}

result<endpoint> parse_abstract(std::string_view text, std::string_view name) {
    if (name.empty())
        return invalid(text, "the abstract socket name after '@' is empty");
    if (name.size() > max_abstract_name_length)
        return error{make_error_code(errc::socket_path_too_long),
                     "abstract socket name '@" + std::string(name) + "' is " +
                         std::to_string(name.size()) + " bytes; the limit is " +
                         std::to_string(max_abstract_name_length)};
    return endpoint::abstract(std::string(name));
}

bool valid_host_name(std::string_view h) {
    if (h.empty() || h.size() > 253)
        return false;
    return std::all_of(h.begin(), h.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '.' || c == '_';
    });
}

result<std::uint16_t> parse_port(std::string_view text, std::string_view port) {
    unsigned value = 0;
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc{} || p != port.data() + port.size() ||
        value > std::numeric_limits<std::uint16_t>::max())
        return invalid(text, "port '" + std::string(port) + "' is not a number from 0 to 65535");
    return static_cast<std::uint16_t>(value);
}

result<endpoint> parse_host_port(std::string_view text, std::string_view hp) {
    std::string_view host;
    std::string_view rest;
    if (!hp.empty() && hp.front() == '[') {
        const auto close = hp.find(']');
        if (close == std::string_view::npos)
            return invalid(text, "missing ']' after the IPv6 address");
        host = hp.substr(1, close - 1);
        in6_addr a6{};
        if (inet_pton(AF_INET6, std::string(host).c_str(), &a6) != 1)
            return invalid(text, "'" + std::string(host) + "' is not an IPv6 address");
        rest = hp.substr(close + 1);
    } else {
        const auto colon = hp.rfind(':');
        if (colon == std::string_view::npos)
            return invalid(text, "expected host:port");
        host = hp.substr(0, colon);
        if (host.find(':') != std::string_view::npos)
            return invalid(text, "IPv6 addresses need brackets, as in [::1]:8080");
        if (!valid_host_name(host))
            return invalid(text, "'" + std::string(host) + "' is not a host name or IP address");
        rest = hp.substr(colon);
    }
    if (rest.empty() || rest.front() != ':')
        return invalid(text, "expected ':port' after the host");
    auto port = parse_port(text, rest.substr(1));
    if (!port)
        return port.error();
    return endpoint::tcp(std::string(host), *port);
}

} // namespace

endpoint endpoint::unix_path(std::string path) {
    return {.kind = transport::unix_path, .address = std::move(path)};
}

endpoint endpoint::abstract(std::string name) {
    return {.kind = transport::unix_abstract, .address = std::move(name)};
}

endpoint endpoint::tcp(std::string host, std::uint16_t port) {
    return {.kind = transport::tcp, .address = std::move(host), .port = port};
}

result<endpoint> endpoint::parse(std::string_view text) {
    if (text.empty())
        return invalid(text, "it is empty; expected a socket path, @name, host:port, fd:N or "
                             "systemd");
    if (text.starts_with("unix:")) {
        auto rest = text.substr(5);
        if (rest.starts_with("@"))
            return parse_abstract(text, rest.substr(1));
        return parse_unix_path(text, rest);
    }
    if (text.starts_with("@"))
        return parse_abstract(text, text.substr(1));
    if (text.starts_with("tcp://"))
        return parse_host_port(text, text.substr(6));
    if (text.starts_with("tcp:"))
        return parse_host_port(text, text.substr(4));
    if (text.starts_with("fd:")) {
        const auto digits = text.substr(3);
        int fd = -1;
        auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), fd);
        if (!all_digits(digits) || ec != std::errc{} || p != digits.data() + digits.size())
            return invalid(text, "expected fd:N with N a file descriptor number");
        return endpoint{.kind = transport::inherited_fd, .address = {}, .port = 0, .fd = fd};
    }
    if (text == "systemd")
        return endpoint{.kind = transport::systemd, .address = {}, .port = 0, .fd = -1};
    if (text.starts_with("systemd:")) {
        auto name = text.substr(8);
        if (name.empty())
            return invalid(text, "the systemd socket name after 'systemd:' is empty");
        return endpoint{
            .kind = transport::systemd, .address = std::string(name), .port = 0, .fd = -1};
    }
    if (text.find("://") != std::string_view::npos)
        return invalid(text, "this is a URL; an endpoint is a socket path, @name or host:port");
    if (text.find('/') != std::string_view::npos)
        return parse_unix_path(text, text);
    if (text.front() == '[' || text.find(':') != std::string_view::npos)
        return parse_host_port(text, text);
    if (all_digits(text))
        return invalid(text, "ambiguous; write tcp://127.0.0.1:" + std::string(text) +
                                 " for TCP or ./" + std::string(text) + " for a socket file");
    // A host without a port reads as TCP but would become a socket file named after the host.
    if (text == "localhost" || looks_like_ipv4(text))
        return invalid(text, "ambiguous: a host needs a port (tcp://" + std::string(text) +
                                 ":8080); write ./" + std::string(text) + " for a socket file");
    return parse_unix_path(text, text);
}

std::string endpoint::to_string() const {
    switch (kind) {
    case transport::unix_path:
        return "unix:" + address;
    case transport::unix_abstract:
        return "unix:@" + address;
    case transport::tcp:
        if (address.find(':') != std::string::npos)
            return "tcp://[" + address + "]:" + std::to_string(port);
        return "tcp://" + address + ":" + std::to_string(port);
    case transport::inherited_fd:
        return "fd:" + std::to_string(fd);
    case transport::systemd:
        return address.empty() ? "systemd" : "systemd:" + address;
    }
    return "?";
}

} // namespace udshttp::proto
