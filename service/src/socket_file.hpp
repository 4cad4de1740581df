#pragma once

// The life of a socket file in the user's filesystem:
//   1. lock PATH.lock (flock): of two servers started at once on PATH, exactly one proceeds.
//      The lock file is opened without following symlinks or blocking on a FIFO; anything but
//      a regular file there is refused and left alone. A lock file this process created is
//      unlinked on exit while still held; one it found is never unlinked. After flock() the
//      holder checks that PATH.lock still names the file it locked (else it starts over), so
//      a starter that opened the file just before its holder unlinked it cannot hold a lock
//      on a file nobody else will see;
//   2. look at PATH: nothing -> go on; not a socket -> refuse and touch nothing; a socket with a
//      live server (a non-blocking connect is accepted, or its queue is full) -> refuse
//      ("already serving"); a stale socket (connect refused) -> unlink it;
//   3. bind (the listener fchmod()s the socket first, so the file is born with at most the
//      mode), then set mode/owner/group through an O_PATH descriptor of what bind() created
//      (a symlink swapped in is refused, never followed), then listen: before listen() a
//      connect is refused, so the socket is never reachable with looser permissions; a failure
//      here removes the socket again;
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
    void lock();
    void release() noexcept;

    std::string path_;
    std::string lock_path_;
    int lock_fd_ = -1;
    bool created_lock_ = false;
    bool have_inode_ = false;
    dev_t dev_ = 0;
    ino_t ino_ = 0;
};

// Throws startup_error with "context: <errno meaning>".
[[noreturn]] void throw_errno(int err, const std::string& context);

} // namespace udshttp::service::detail
