// Fault injection on real sockets, in the style of Beast's fail_count: this file defines the
// socket calls Asio makes (recv, recvmsg, send, sendmsg, accept, accept4, connect). Being in
// the executable, the definitions come first in symbol lookup, so every library's calls land
// here; each forwards to the next definition (libc, or a sanitizer's interceptor before it)
// found with dlsym(RTLD_NEXT). While armed, calls on the chosen side of connections to one
// socket path are counted and the Nth is made to fail; everything else passes straight through.
// Nothing is simulated: the kernel still does the I/O, only one call's outcome is changed.

#include "fault/inject.hpp"

#include <dlfcn.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <deque>
#include <string>
#include <type_traits>

namespace udshttp::test::fault {
namespace {

std::atomic<int> armed_mode{0}; // 0: off; else 1 + static_cast<int>(mode)
std::atomic<int> armed_side{0};
std::atomic<long> counter{0};
std::atomic<long> fail_at{0};
std::atomic<bool> did_fire{false};
// The socket path. A new one is appended (a deque never moves its elements) and pointed to,
// never written in place, so that a call racing with arm() never reads a changing string.
std::deque<std::string> paths(1);
std::atomic<const std::string*> target{&paths.front()};

bool is_target(const sockaddr_un& a, socklen_t len) {
    if (a.sun_family != AF_UNIX || len <= offsetof(sockaddr_un, sun_path))
        return false;
    const auto& path = *target.load();
    const auto n = ::strnlen(a.sun_path, len - offsetof(sockaddr_un, sun_path));
    return n == path.size() && std::memcmp(a.sun_path, path.data(), n) == 0;
}

bool local_is_target(int fd) {
    sockaddr_un a{};
    socklen_t len = sizeof a;
    return ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0 && is_target(a, len);
}

bool peer_is_target(int fd) {
    sockaddr_un a{};
    socklen_t len = sizeof a;
    return ::getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0 && is_target(a, len);
}

// Whether fd belongs to the armed side: the server's sockets (accepted ones and the listener)
// have the target as their own address; the client's have it as the peer's.
bool on_side(int fd) {
    if (static_cast<side>(armed_side.load()) == side::server)
        return local_is_target(fd);
    return peer_is_target(fd) && !local_is_target(fd);
}

// The verdict for one call: pass, or the armed mode if this is the Nth counted call.
int decide(bool counted) {
    if (!counted)
        return 0;
    if (counter.fetch_add(1) + 1 != fail_at.load())
        return 0;
    did_fire = true;
    return armed_mode.load();
}

int decide_fd(int fd) {
    return armed_mode.load() != 0 && on_side(fd) ? decide(true) : 0;
}

constexpr int fail_error = 1 + static_cast<int>(mode::error);
constexpr int fail_short = 1 + static_cast<int>(mode::short_transfer);

template <class F> F next(const char* name) {
    return reinterpret_cast<F>(::dlsym(RTLD_NEXT, name));
}

// A message header whose buffers are cut down to the first byte.
msghdr one_byte(const msghdr& msg, iovec& first) {
    msghdr m = msg;
    for (std::size_t i = 0; i < msg.msg_iovlen; ++i)
        if (msg.msg_iov[i].iov_len > 0) {
            first = {msg.msg_iov[i].iov_base, 1};
            m.msg_iov = &first;
            m.msg_iovlen = 1;
            break;
        }
    return m;
}

// recv and send: the real call, failed or cut to one byte when it is the Nth.
template <class Real, class Buffer>
ssize_t transfer(Real real, int fd, Buffer buf, size_t len, int flags) {
    switch (decide_fd(fd)) {
    case fail_error:
        errno = ECONNRESET;
        return -1;
    case fail_short:
        len = std::min<size_t>(len, 1);
        break;
    }
    return real(fd, buf, len, flags);
}

// recvmsg and sendmsg, the same way.
template <class Real, class Msg> ssize_t transfer_msg(Real real, int fd, Msg* msg, int flags) {
    switch (decide_fd(fd)) {
    case fail_error:
        errno = ECONNRESET;
        return -1;
    case fail_short: {
        iovec first{};
        auto m = one_byte(*msg, first);
        const auto n = real(fd, &m, flags);
        if constexpr (!std::is_const_v<Msg>)
            msg->msg_flags = m.msg_flags;
        return n;
    }
    }
    return real(fd, msg, flags);
}

} // namespace

void arm(const std::string& socket_path, side s, mode m, long nth) {
    disarm();
    if (*target.load() != socket_path)
        target = &paths.emplace_back(socket_path);
    armed_side = static_cast<int>(s);
    counter = 0;
    fail_at = nth;
    did_fire = false;
    armed_mode = 1 + static_cast<int>(m);
}

void disarm() {
    armed_mode = 0;
}

bool fired() {
    return did_fire.load();
}

long operations() {
    return counter.load();
}

} // namespace udshttp::test::fault

using namespace udshttp::test::fault;

extern "C" {

ssize_t recv(int fd, void* buf, size_t len, int flags) {
    static const auto real = next<ssize_t (*)(int, void*, size_t, int)>("recv");
    return transfer(real, fd, buf, len, flags);
}

ssize_t send(int fd, const void* buf, size_t len, int flags) {
    static const auto real = next<ssize_t (*)(int, const void*, size_t, int)>("send");
    return transfer(real, fd, buf, len, flags);
}

ssize_t recvmsg(int fd, msghdr* msg, int flags) {
    static const auto real = next<ssize_t (*)(int, msghdr*, int)>("recvmsg");
    return transfer_msg(real, fd, msg, flags);
}

ssize_t sendmsg(int fd, const msghdr* msg, int flags) {
    static const auto real = next<ssize_t (*)(int, const msghdr*, int)>("sendmsg");
    return transfer_msg(real, fd, msg, flags);
}

// Out of descriptors: the listener must back off and keep accepting.
int accept(int fd, sockaddr* addr, socklen_t* len) {
    static const auto real = next<int (*)(int, sockaddr*, socklen_t*)>("accept");
    if (decide_fd(fd) == fail_error) {
        errno = EMFILE;
        return -1;
    }
    return real(fd, addr, len);
}

int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
    static const auto real = next<int (*)(int, sockaddr*, socklen_t*, int)>("accept4");
    if (decide_fd(fd) == fail_error) {
        errno = EMFILE;
        return -1;
    }
    return real(fd, addr, len, flags);
}

// The client's connect, recognised by the address it dials.
int connect(int fd, const sockaddr* addr, socklen_t len) {
    static const auto real = next<int (*)(int, const sockaddr*, socklen_t)>("connect");
    const bool counted = armed_mode.load() != 0 &&
                         static_cast<side>(armed_side.load()) == side::client &&
                         is_target(*reinterpret_cast<const sockaddr_un*>(addr), len);
    if (decide(counted) == fail_error) {
        errno = ECONNREFUSED;
        return -1;
    }
    return real(fd, addr, len);
}

} // extern "C"
