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
#include <utility>

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

// A non-blocking connect() to an existing socket file: 0 when a server accepts it, EAGAIN when
// one is listening with a full queue (alive, just busy), else the errno. Never waits: a
// blocking connect to a full queue would hang the start while holding the lock.
int probe(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
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

// Closes a descriptor on every way out of a scope unless released.
class fd_guard {
public:
    explicit fd_guard(int fd) noexcept : fd_(fd) {}
    ~fd_guard() {
        if (fd_ >= 0)
            ::close(fd_);
    }
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    int get() const noexcept { return fd_; }
    int release() noexcept { return std::exchange(fd_, -1); }

private:
    int fd_;
};

bool same_file(const struct stat& a, const struct stat& b) {
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
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

    lock();

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
    if (err == 0 || err == EAGAIN) {
        release();
        throw startup_error(boost::system::error_code(EADDRINUSE, boost::system::system_category()),
                            "already serving on " + path_ +
                                (err == 0 ? " (a server answered on it)"
                                          : " (a server listens on it; its queue is full)"));
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

void socket_file::lock() {
    const auto fail = [this](int err, const std::string& what) {
        throw_errno(err, "cannot listen on unix:" + path_ + ": " + what + " " + lock_path_);
    };
    // Flags for every open: never follow a symlink planted at PATH.lock, never block on a FIFO.
    constexpr int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
    for (int attempt = 0; attempt < 8; ++attempt) {
        bool created = true;
        int opened = ::open(lock_path_.c_str(), flags | O_CREAT | O_EXCL, 0600);
        if (opened < 0 && errno == EEXIST) {
            created = false; // someone else's (or a crashed server's): never unlinked
            opened = ::open(lock_path_.c_str(), flags);
        }
        if (opened < 0) {
            if (errno == ENOENT)
                continue; // its holder removed it between our two opens
            fail(errno, errno == ELOOP ? "refusing the symbolic link" : "cannot open lock file");
        }
        fd_guard fd(opened);
        struct stat held {};
        if (::fstat(fd.get(), &held) != 0)
            fail(errno, "cannot stat lock file");
        if (!S_ISREG(held.st_mode))
            throw startup_error(boost::system::error_code(EEXIST, boost::system::system_category()),
                                "refusing to listen on " + path_ + ": its lock file " + lock_path_ +
                                    " is " + describe(held.st_mode) +
                                    ", not a regular file; it was left untouched");
        if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
            if (errno == EWOULDBLOCK) // the lock file belongs to the server that holds it
                throw startup_error(
                    boost::system::error_code(EADDRINUSE, boost::system::system_category()),
                    "already serving on " + path_ + " (another server holds " + lock_path_ + ")");
            fail(errno, "cannot lock");
        }
        // Held - if PATH.lock is still the file we locked. A holder that created it unlinks it
        // on exit (while still holding it); had we opened it just before, we now hold a lock
        // on a file nobody else will ever open, and must start over on the new one.
        struct stat now {};
        if (::stat(lock_path_.c_str(), &now) == 0 && same_file(now, held)) {
            lock_fd_ = fd.release();
            created_lock_ = created;
            return;
        }
    }
    fail(EAGAIN, "kept changing while locking");
}

void socket_file::bound(const server_options& options) {
    // Everything after bind() goes through one descriptor of the path as it is now (O_PATH,
    // no symlink followed): a file swapped in after bind() cannot redirect the mode or owner
    // to something else. bind() itself created the socket with at most the mode (the listener
    // fchmod()s the socket first, and Linux applies that mode, less the umask, to the file),
    // so the file is never looser than asked, only possibly tighter until the chmod below.
    fd_guard fd(::open(path_.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (fd.get() < 0)
        throw_errno(errno, "cannot open socket " + path_ + " after bind");
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
        throw_errno(errno, "cannot stat socket " + path_ + " after bind");
    if (!S_ISSOCK(st.st_mode))
        throw startup_error(boost::system::error_code(EEXIST, boost::system::system_category()),
                            "refusing to listen on " + path_ + ": it was replaced by " +
                                describe(st.st_mode) + " right after bind; it was left untouched");
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    have_inode_ = true; // from here on a failure removes the socket (release())
    const auto mode = static_cast<mode_t>(options.socket_mode & 07777);
    // chmod() through /proc/self/fd changes exactly the inode the descriptor names.
    const auto by_fd = "/proc/self/fd/" + std::to_string(fd.get());
    if ((st.st_mode & 07777) != mode && ::chmod(by_fd.c_str(), mode) != 0)
        throw_errno(errno, "cannot set mode of socket " + path_);
    if (options.socket_owner || options.socket_group) {
        const uid_t uid = options.socket_owner.value_or(static_cast<uid_t>(-1));
        const gid_t gid = options.socket_group.value_or(static_cast<gid_t>(-1));
        if (::fchownat(fd.get(), "", uid, gid, AT_EMPTY_PATH) != 0)
            throw_errno(errno, "cannot set owner/group of socket " + path_);
    }
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
        // Only a lock file this process created, and only while holding it (lock() explains
        // why a starter that opened it meanwhile is not fooled).
        if (created_lock_)
            ::unlink(lock_path_.c_str());
        ::close(lock_fd_);
        lock_fd_ = -1;
    }
}

} // namespace udshttp::service::detail
