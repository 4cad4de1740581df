#include "sd_notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace udshttp::service::detail {

std::string notify_systemd(std::string_view state) {
    const char* where = std::getenv("NOTIFY_SOCKET");
    if (!where || !*where)
        return {};
    const std::string_view path(where);
    if (path[0] != '/' && path[0] != '@')
        return "NOTIFY_SOCKET=" + std::string(path) + " is neither a path nor @name";
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path)
        return "NOTIFY_SOCKET is longer than a socket address holds";
    std::memcpy(addr.sun_path, path.data(), path.size());
    if (path[0] == '@')
        addr.sun_path[0] = '\0'; // abstract
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return std::string("socket(): ") + std::strerror(errno);
    const auto sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                               reinterpret_cast<const sockaddr*>(&addr), len);
    const int err = errno;
    ::close(fd);
    if (sent < 0)
        return "sending to NOTIFY_SOCKET " + std::string(path) + ": " + std::strerror(err);
    return {};
}

} // namespace udshttp::service::detail
