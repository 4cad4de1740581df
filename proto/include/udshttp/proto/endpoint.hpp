#pragma once

/// @file
/// Endpoint: where a server listens or a client connects. One grammar for `udshttpd --listen`,
/// the client and the CLI:
///
///   unix:/run/app.sock  /run/app.sock  ./app.sock  app.sock     Unix socket path
///   unix:@name  @name                                          Linux abstract socket
///   tcp://127.0.0.1:8080  127.0.0.1:8080  [::1]:8080  localhost:8080   TCP
///   fd:3  systemd  systemd:NAME                                inherited listening socket

#include <udshttp/proto/error.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace udshttp::proto {

/// The longest Unix socket path Linux accepts: sizeof(sockaddr_un::sun_path) minus the NUL.
inline constexpr std::size_t max_unix_path_length = 107;

/// The longest abstract socket name (after the '@'): the NUL that marks an abstract name takes
/// the first byte of sun_path, and Asio's local endpoint keeps one more for a terminator.
inline constexpr std::size_t max_abstract_name_length = max_unix_path_length - 1;

/// The kinds of endpoint.
enum class transport {
    unix_path,     ///< a socket file in the filesystem
    unix_abstract, ///< a Linux abstract socket name (no file)
    tcp,           ///< TCP over IPv4 or IPv6
    inherited_fd,  ///< an already-listening socket passed as a file descriptor
    systemd,       ///< sockets passed by systemd (LISTEN_FDS / LISTEN_FDNAMES)
};

/// One endpoint. A plain value: copy it, compare it, print it.
struct endpoint {
    transport kind = transport::unix_path;
    /// Unix path, abstract name (without the '@'), TCP host (without brackets) or systemd name.
    std::string address{};
    std::uint16_t port = 0; ///< TCP port; 0 asks the kernel for a free one when listening
    int fd = -1;            ///< inherited_fd only

    /// A Unix socket path endpoint (not validated; parse() validates).
    static endpoint unix_path(std::string path);
    /// A Linux abstract socket endpoint, name without the leading '@'.
    static endpoint abstract(std::string name);
    /// A TCP endpoint; host is a name or an IP literal without brackets.
    static endpoint tcp(std::string host, std::uint16_t port);

    /// True for Unix path and abstract endpoints.
    bool is_unix() const noexcept {
        return kind == transport::unix_path || kind == transport::unix_abstract;
    }

    /// False for a Unix path or abstract name longer than sockaddr_un holds (one built by
    /// hand: parse() refuses those); true for every other endpoint.
    bool fits_sockaddr() const noexcept {
        return (kind != transport::unix_path || address.size() <= max_unix_path_length) &&
               (kind != transport::unix_abstract || address.size() <= max_abstract_name_length);
    }

    /// The endpoint a socket address names (getsockname(), getpeername()): a Unix path, an
    /// abstract name, or a TCP address and port. nullopt for an unnamed Unix socket, a family
    /// that is none of these, or a length too short for its family. `sa` is a `sockaddr*`.
    static std::optional<endpoint> from_sockaddr(const void* sa, std::size_t len);

    /// Parses the grammar above. Errors name the input and what is wrong with it.
    static result<endpoint> parse(std::string_view text);

    /// The canonical form: `unix:/p`, `unix:@n`, `tcp://h:p`, `tcp://[v6]:p`, `fd:N`,
    /// `systemd[:N]`.
    std::string to_string() const;

    friend bool operator==(const endpoint&, const endpoint&) = default;
};

} // namespace udshttp::proto
