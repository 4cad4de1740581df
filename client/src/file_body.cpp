// Request bodies read from a file or stdin, response bodies written to one: descriptors
// read and written a piece at a time, never whole in memory.

#include <udshttp/client/client.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

namespace udshttp::client {
namespace {

result<int> open_or_error(const std::string& path, int flags, const char* what) {
    const int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
    if (fd < 0)
        return error{make_error_code(errc::io_error),
                     std::string("cannot ") + what + " '" + path + "': " + std::strerror(errno)};
    return fd;
}

// Owns a descriptor for the lifetime of the source or sink that captures it.
struct fd_owner {
    int fd;
    bool owned;
    ~fd_owner() {
        if (owned)
            ::close(fd);
    }
};

} // namespace

result<streamed_body> file_source(const std::string& path) {
    auto owner = std::make_shared<fd_owner>(fd_owner{STDIN_FILENO, false});
    if (path != "-") {
        auto fd = open_or_error(path, O_RDONLY, "read");
        if (!fd)
            return fd.error();
        owner->fd = *fd;
        owner->owned = true;
    }
    std::optional<std::uint64_t> length;
    struct stat st {};
    if (::fstat(owner->fd, &st) != 0)
        st.st_mode = 0; // unknown: waited on, like a pipe
    if (S_ISREG(st.st_mode))
        length = static_cast<std::uint64_t>(st.st_size) -
                 static_cast<std::uint64_t>(std::max<off_t>(0, ::lseek(owner->fd, 0, SEEK_CUR)));
    const std::string name = path == "-" ? "stdin" : "'" + path + "'";
    body_source source = [owner, name](std::span<char> buf) -> result<std::size_t> {
        for (;;) {
            const auto n = ::read(owner->fd, buf.data(), buf.size());
            if (n >= 0)
                return static_cast<std::size_t>(n);
            if (errno != EINTR)
                return error{make_error_code(errc::io_error),
                             "cannot read " + name + ": " + std::strerror(errno)};
        }
    };
    // A regular file is always readable (and epoll refuses it); anything else may wait.
    const int wait_fd = S_ISREG(st.st_mode) ? -1 : owner->fd;
    return streamed_body{std::move(source), length, wait_fd};
}

result<body_sink> file_sink(const std::string& path) {
    auto owner = std::make_shared<fd_owner>(fd_owner{STDOUT_FILENO, false});
    if (path != "-") {
        auto fd = open_or_error(path, O_WRONLY | O_CREAT | O_TRUNC, "write");
        if (!fd)
            return fd.error();
        owner->fd = *fd;
        owner->owned = true;
    }
    const std::string name = path == "-" ? "stdout" : "'" + path + "'";
    return body_sink([owner, name](std::string_view piece) -> result<void> {
        while (!piece.empty()) {
            const auto n = ::write(owner->fd, piece.data(), piece.size());
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return error{make_error_code(errc::io_error),
                             "cannot write " + name + ": " + std::strerror(errno)};
            piece.remove_prefix(static_cast<std::size_t>(n));
        }
        return {};
    });
}

} // namespace udshttp::client
