// epoll-responder: the floor under every figure in bench/compare. One thread, one epoll set,
// no HTTP parser, no allocation per request: it finds the end of each request head, answers
// GET with a fixed response and echoes a POST body (by its Content-Length) as it arrives.
// It is not a server anyone should use; it shows what the kernel and the load generator allow.
//
//   epoll-responder [--unix PATH] [--tcp PORT]

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace {

constexpr std::string_view hello_response = "HTTP/1.1 200 OK\r\n"
                                            "Server: epoll-responder\r\n"
                                            "Content-Type: text/plain; charset=utf-8\r\n"
                                            "Content-Length: 15\r\n\r\n"
                                            "Hello Anonymous";
constexpr std::size_t buffer_size = 64 * 1024;

struct connection {
    int fd;
    std::vector<char> in = std::vector<char>(buffer_size);
    std::size_t len = 0;
    std::uint64_t body_left = 0; // bytes of the current POST body still to echo
    std::string out{};           // what the socket would not take yet
    bool want_out = false;
};

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "epoll-responder: %s: %s\n", what, std::strerror(errno));
    std::exit(1);
}

int listen_on(sockaddr* addr, socklen_t len) {
    const int fd = ::socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, addr, len) != 0)
        die("bind");
    if (::listen(fd, 4096) != 0)
        die("listen");
    return fd;
}

std::uint64_t content_length(std::string_view head) {
    for (std::size_t i = 0; i + 15 < head.size(); ++i) {
        if ((head[i] == 'C' || head[i] == 'c') &&
            ::strncasecmp(&head[i], "content-length:", 15) == 0)
            return std::strtoull(&head[i + 15], nullptr, 10);
    }
    return 0;
}

// Sends out (then piece); whatever the socket does not take is kept in out.
bool send_all(connection& c, std::string_view piece) {
    if (!c.out.empty()) {
        c.out.append(piece);
        piece = {};
        const auto n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN;
        c.out.erase(0, static_cast<std::size_t>(n));
        return true;
    }
    if (piece.empty())
        return true;
    const auto n = ::send(c.fd, piece.data(), piece.size(), MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN)
        return false;
    c.out.assign(piece.substr(n < 0 ? 0 : static_cast<std::size_t>(n)));
    return true;
}

// Answers what the buffer holds; false: close the connection.
bool serve(connection& c) {
    std::size_t pos = 0;
    std::string batch; // the answers to pipelined GETs, sent in one write
    while (pos < c.len) {
        if (c.body_left > 0) {
            const auto n = std::min<std::uint64_t>(c.body_left, c.len - pos);
            if (!send_all(c, batch) || !send_all(c, {c.in.data() + pos, n}))
                return false;
            batch.clear();
            pos += n;
            c.body_left -= n;
            continue;
        }
        const std::string_view rest(c.in.data() + pos, c.len - pos);
        const auto end = rest.find("\r\n\r\n");
        if (end == std::string_view::npos)
            break;
        const auto head = rest.substr(0, end + 4);
        pos += head.size();
        if (head.starts_with("GET ")) {
            batch.append(hello_response);
        } else {
            c.body_left = content_length(head);
            batch += "HTTP/1.1 200 OK\r\nServer: epoll-responder\r\nContent-Type: "
                     "application/octet-stream\r\nContent-Length: " +
                     std::to_string(c.body_left) + "\r\n\r\n";
        }
    }
    if (!send_all(c, batch))
        return false;
    if (pos == c.len) {
        c.len = 0;
    } else if (pos > 0) {
        std::memmove(c.in.data(), c.in.data() + pos, c.len - pos);
        c.len -= pos;
    } else if (c.len == c.in.size()) {
        return false; // a head larger than the buffer
    }
    return true;
}

} // namespace

int main(int argc, char** argv) {
    ::signal(SIGPIPE, SIG_IGN);
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    std::vector<int> listeners;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view flag = argv[i];
        if (flag == "--unix") {
            sockaddr_un sun{};
            sun.sun_family = AF_UNIX;
            std::snprintf(sun.sun_path, sizeof sun.sun_path, "%s", argv[i + 1]);
            ::unlink(argv[i + 1]);
            listeners.push_back(listen_on(reinterpret_cast<sockaddr*>(&sun), sizeof sun));
        } else if (flag == "--tcp") {
            sockaddr_in sin{};
            sin.sin_family = AF_INET;
            sin.sin_port = htons(static_cast<std::uint16_t>(std::atoi(argv[i + 1])));
            sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            listeners.push_back(listen_on(reinterpret_cast<sockaddr*>(&sin), sizeof sin));
        }
    }
    if (listeners.empty()) {
        std::fprintf(stderr, "usage: epoll-responder [--unix PATH] [--tcp PORT]\n");
        return 2;
    }
    for (int fd : listeners) {
        epoll_event ev{.events = EPOLLIN, .data = {.ptr = nullptr}};
        ev.data.u64 = static_cast<std::uint64_t>(fd);
        ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    std::vector<epoll_event> events(256);
    for (;;) {
        const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), -1);
        if (n < 0 && errno == EINTR)
            continue;
        for (int i = 0; i < n; ++i) {
            const auto tag = events[static_cast<std::size_t>(i)].data.u64;
            if (tag < 1u << 20) { // a listener (fds are small numbers, connections are pointers)
                const int lfd = static_cast<int>(tag);
                for (;;) {
                    const int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    const int one = 1;
                    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    auto* c = new connection{fd};
                    epoll_event ev{.events = EPOLLIN, .data = {.ptr = c}};
                    ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            auto* c = static_cast<connection*>(events[static_cast<std::size_t>(i)].data.ptr);
            bool ok = true;
            if (c->want_out) {
                ok = send_all(*c, {});
            } else {
                const auto got = ::recv(c->fd, c->in.data() + c->len, c->in.size() - c->len, 0);
                if (got <= 0) {
                    ok = got < 0 && errno == EAGAIN;
                } else {
                    c->len += static_cast<std::size_t>(got);
                    ok = serve(*c);
                }
            }
            if (!ok) {
                ::close(c->fd);
                delete c;
                continue;
            }
            // While output is pending, stop reading: the peer must drain before it may send
            // more. (serve() answers every complete head it has, so nothing waits behind it.)
            const bool want_out = !c->out.empty();
            if (want_out != c->want_out) {
                c->want_out = want_out;
                epoll_event ev{.events = want_out ? EPOLLOUT : EPOLLIN, .data = {.ptr = c}};
                ::epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            }
        }
    }
}
