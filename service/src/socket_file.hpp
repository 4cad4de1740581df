#pragma once

// The life of a socket file in the user's filesystem:
//   1. lock PATH.lock (flock): of two servers started at once on PATH, exactly one proceeds;
//   2. look at PATH: nothing -> go on; not a socket -> refuse and touch nothing; a socket with a
//      live server -> refuse ("already serving"); a stale socket (connect refused) -> unlink it;
//   3. bind, then apply mode/owner/group, then listen: before listen() a connect is refused, so
//      the socket is never reachable with looser permissions than asked for;
//   4. on destruction, unlink PATH only if the inode there is still the one this process bound.

#include <udshttp/service/server.hpp>

#include <sys/types.h>

#include <string>

namespace udshttp::service::detail {

class socket_file {
public:
    // Steps 1 and 2. Throws startup_error naming the path.
    explicit socket_file(std::string path);
    ~socket_file();
    socket_file(const socket_file&) = delete;
    socket_file& operator=(const socket_file&) = delete;

    // Step 3, between bind() and listen(). Throws startup_error naming the path.
    void bound(const server_options& options);

    const std::string& path() const noexcept { return path_; }

private:
    void release() noexcept;

    std::string path_;
    std::string lock_path_;
    int lock_fd_ = -1;
    bool have_inode_ = false;
    dev_t dev_ = 0;
    ino_t ino_ = 0;
};

// Throws startup_error with "context: <errno meaning>".
[[noreturn]] void throw_errno(int err, const std::string& context);

} // namespace udshttp::service::detail
