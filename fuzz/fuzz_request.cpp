// libFuzzer target: the server's request handling, end to end. One udshttp::service::server
// runs in this process on an abstract Unix socket; every input is written to a fresh connection
// as raw bytes, the write side is shut, and the answer is read to EOF. Whatever the bytes, the
// server must not crash (ASan and UBSan watch both threads), must close the connection within
// a bounded time once the peer has, and may only ever send well-formed HTTP/1.x status lines.
//
// Inputs are at most 16 KiB, but the bounds that matter most are on what never ends (a
// chunk-size line, its extensions, a trailer section, a header block of tiny fields). So an
// input that starts with a NUL byte is a pattern: its next byte N (1..64) says how many of its
// last bytes are repeated after it, up to 192 KiB in all - past every buffer the server has
// (here 4 KiB of head + 64 KiB).

#include <udshttp/service/server.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

namespace service = udshttp::service;

std::string socket_name() {
    return "udshttp-fuzz-request-" + std::to_string(::getpid());
}

// Started on first use and never stopped: the process ends with it.
void start_server() {
    static service::server* srv = [] {
        auto* s = new service::server(service::server_options{
            .listen = {"@" + socket_name()},
            .threads = 1,
            .max_header_bytes = 4096,
            .max_body_bytes = 64 * 1024,
            .header_timeout = std::chrono::milliseconds(2000),
            .idle_timeout = std::chrono::milliseconds(2000),
            .log_level = service::log_level::off,
            .builtin_routes = true, // echo's stream route, metrics, openapi: all in reach
        });
        // An embedder's routes too: a parameter, a JSON body, a handler that throws.
        s->routes().get("/items/{id}", [](const service::request& req, service::response& res) {
            service::set_text(res, std::string(req.param("id")));
        });
        s->routes().post("/json", [](const service::request& req, service::response& res) {
            const auto doc = nlohmann::json::parse(req.body(), nullptr, false);
            service::set_json(res, doc.is_discarded() ? nlohmann::json("not json") : doc);
        });
        s->routes().get("/throw", [](const service::request&, service::response&) {
            throw std::runtime_error("handler failed");
        });
        s->start();
        return s;
    }();
    (void)srv;
}

[[noreturn]] void fail(const char* what, std::string_view output) {
    std::fprintf(stderr, "fuzz_request: %s; the server sent %zu bytes:\n%.*s\n", what,
                 output.size(), static_cast<int>(std::min<std::size_t>(output.size(), 2000)),
                 output.data());
    std::abort();
}

// Every answer starts with a status line "HTTP/1.x ddd " (the server answers an HTTP/1.0
// request in kind). Only the first is checked strictly; pipelined ones follow bodies.
void check_status_line(std::string_view out, std::string_view all) {
    if (out.size() < 13 || (out.substr(0, 9) != "HTTP/1.1 " && out.substr(0, 9) != "HTTP/1.0 "))
        fail("the answer does not start with an HTTP/1.x status line", all);
    for (std::size_t i = 9; i < 12; ++i)
        if (out[i] < '0' || out[i] > '9')
            fail("the status code is not three digits", all);
    if (out[9] < '1' || out[9] > '5' || out[12] != ' ')
        fail("the status code is out of range", all);
}

// An interim "100 Continue" may come first and carries only its status line; if the body it
// invited then never came whole, nothing follows it. A final answer names the server.
void check_output(std::string_view out) {
    std::string_view rest = out;
    while (!rest.empty()) {
        check_status_line(rest, out);
        if (rest[9] != '1')
            break;
        const auto end = rest.find("\r\n\r\n");
        if (end == std::string_view::npos)
            fail("an interim answer without the end of its head", out);
        rest.remove_prefix(end + 4);
    }
    if (!rest.empty() && rest.find("\r\nServer: udshttp/") == std::string_view::npos)
        fail("the answer has no Server field", out);
}

} // namespace

// The bytes to send: the input itself, or the expansion of a pattern input (see the top).
std::string expand(const std::uint8_t* data, std::size_t size) {
    std::string in(reinterpret_cast<const char*>(data), size);
    if (size < 3 || data[0] != 0)
        return in;
    const std::size_t unit = std::clamp<std::size_t>(data[1] % 64, 1, size - 2);
    std::string out = in.substr(2);
    std::string tail = out.substr(out.size() - unit);
    while (tail.size() < 4096) // doubled first: a few large appends, not 200,000 small ones
        tail += tail;
    while (out.size() < (192u << 10))
        out += tail;
    return out;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* raw, std::size_t raw_size) {
    start_server();
    const std::string input = expand(raw, raw_size);
    const auto* data = input.data();
    const auto size = input.size();
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        std::abort();
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const auto name = socket_name();
    std::memcpy(addr.sun_path + 1, name.data(), name.size());
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0)
        std::abort();

    // Write the input and read the answer at once (a pipelined echo answers while we write),
    // then shut the write side and read to EOF. 5 s without progress is a hang.
    std::string out;
    std::size_t sent = 0;
    bool shut = false;
    char buf[16384];
    for (;;) {
        if (sent == size && !shut) {
            ::shutdown(fd, SHUT_WR);
            shut = true;
        }
        pollfd p{fd, static_cast<short>(POLLIN | (shut ? 0 : POLLOUT)), 0};
        if (::poll(&p, 1, 5000) <= 0)
            fail("no progress for 5 s (the server neither read, answered nor closed)", out);
        if (p.revents & POLLIN || p.revents & (POLLHUP | POLLERR)) {
            const auto n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n == 0)
                break;
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    continue;
                break; // ECONNRESET: the server gave up on us; that is allowed
            }
            out.append(buf, static_cast<std::size_t>(n));
        }
        if (!shut && (p.revents & POLLOUT)) {
            const auto n = ::send(fd, data + sent, size - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n > 0)
                sent += static_cast<std::size_t>(n);
            else if (n < 0 && errno != EAGAIN && errno != EINTR)
                sent = size; // the server closed its side; read what it said
        }
    }
    ::close(fd);
    check_output(out);
    return 0;
}
