#include "socket_file.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace udshttp::service::detail {
namespace {

std::string describe(mode_t mode) {
    if (S_ISREG(mode))
        return "a regular file";
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISLNK(mode))
        return "a symbolic link";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISCHR(mode) || S_ISBLK(mode))
        return "a device node";
    return "not a socket";
}

// connect() to an existing socket file: 0 when a server answers, else the errno.
int probe(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    const int err = rc == 0 ? 0 : errno;
    ::close(fd);
    return err;
}

} // namespace

void throw_errno(int err, const std::string& context) {
    const boost::system::error_code ec(err, boost::system::system_category());
    throw startup_error(ec, context + ": " + ec.message());
}

socket_file::socket_file(std::string path) : path_(std::move(path)), lock_path_(path_ + ".lock") {
    const auto parent = std::filesystem::path(path_).parent_path();
    std::error_code fs_ec;
    if (!parent.empty() && !std::filesystem::is_directory(parent, fs_ec))
        throw startup_error(boost::system::error_code(ENOENT, boost::system::system_category()),
                            "cannot listen on unix:" + path_ + ": directory '" + parent.string() +
                                "' does not exist");

    lock_fd_ = ::open(lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lock_fd_ < 0)
        throw_errno(errno,
                    "cannot listen on unix:" + path_ + ": cannot open lock file " + lock_path_);
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        ::close(lock_fd_);
        lock_fd_ = -1; // the lock file belongs to the server that holds it
        if (err == EWOULDBLOCK)
            throw startup_error(
                boost::system::error_code(EADDRINUSE, boost::system::system_category()),
                "already serving on " + path_ + " (another server holds " + lock_path_ + ")");
        throw_errno(err, "cannot listen on unix:" + path_ + ": cannot lock " + lock_path_);
    }

    struct stat st {};
    if (::lstat(path_.c_str(), &st) != 0) {
        if (errno == ENOENT)
            return;
        const int err = errno;
        release();
        throw_errno(err, "cannot listen on unix:" + path_);
    }
    if (!S_ISSOCK(st.st_mode)) {
        release();
        throw startup_error(boost::system::error_code(EEXIST, boost::system::system_category()),
                            "refusing to listen on " + path_ + ": it exists and is " +
                                describe(st.st_mode) + ", not a socket; it was left untouched");
    }
    const int err = probe(path_);
    if (err == 0) {
        release();
        throw startup_error(boost::system::error_code(EADDRINUSE, boost::system::system_category()),
                            "already serving on " + path_ + " (a server answered on it)");
    }
    if (err != ECONNREFUSED) {
        release();
        throw_errno(err, "cannot listen on unix:" + path_ + ": probing the existing socket");
    }
    // Stale: nobody listens, and we hold the lock, so no other starter is about to.
    if (::unlink(path_.c_str()) != 0 && errno != ENOENT) {
        const int uerr = errno;
        release();
        throw_errno(uerr, "cannot remove stale socket " + path_);
    }
}

void socket_file::bound(const server_options& options) {
    if (::chmod(path_.c_str(), static_cast<mode_t>(options.socket_mode)) != 0)
        throw_errno(errno, "cannot set mode of socket " + path_);
    if (options.socket_owner || options.socket_group) {
        const uid_t uid = options.socket_owner.value_or(static_cast<uid_t>(-1));
        const gid_t gid = options.socket_group.value_or(static_cast<gid_t>(-1));
        if (::lchown(path_.c_str(), uid, gid) != 0)
            throw_errno(errno, "cannot set owner/group of socket " + path_);
    }
    struct stat st {};
    if (::lstat(path_.c_str(), &st) != 0)
        throw_errno(errno, "cannot stat socket " + path_ + " after bind");
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    have_inode_ = true;
}

socket_file::~socket_file() {
    release();
}

void socket_file::release() noexcept {
    if (have_inode_) {
        struct stat st {};
        if (::lstat(path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == dev_ &&
            st.st_ino == ino_)
            ::unlink(path_.c_str());
        have_inode_ = false;
    }
    if (lock_fd_ >= 0) {
        ::unlink(lock_path_.c_str());
        ::close(lock_fd_);
        lock_fd_ = -1;
    }
}

} // namespace udshttp::service::detail
