// libFuzzer target: the client's response handling, over a real socket. A plain server thread
// in this process listens on an abstract Unix socket, takes each connection, reads the request
// head and answers with the input's bytes, then closes. The first input byte picks what the
// client asks (GET, HEAD, POST with a body, a chunked upload streamed to a sink); the rest is
// the answer. Whatever the bytes, udshttp::client must return a response or an error naming
// what went wrong, within its deadline, and a response must be consistent with its framing.
//
// With the mode byte's high bit set the answer never ends: the input's second byte N (1..64)
// says how many of the answer's last bytes the server then repeats, up to 192 KiB (past the
// client's 64 KiB + 64 KiB read buffer) - an endless
// chunk extension, trailer section or header block. The client must still fail cleanly, in
// bounded memory (ASan's limits) and within its deadline.

#include <udshttp/client/client.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace {

namespace client = udshttp::client;

std::string socket_name() {
    return "udshttp-fuzz-response-" + std::to_string(::getpid());
}

// What the server thread answers with; set before each request.
std::mutex answer_mutex;
std::string answer;
std::size_t repeat_unit = 0; // 0: the answer ends; else its last repeat_unit bytes go on

// Reads what the client sends until the end of its head, or for 20 ms without more: the
// answer may come before the request is complete, as a server's early 413 does.
void read_request_head(int fd) {
    std::string got;
    char buf[4096];
    while (got.find("\r\n\r\n") == std::string::npos) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 20) <= 0)
            return;
        const auto n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0)
            return;
        got.append(buf, static_cast<std::size_t>(n));
    }
}

void serve(int listener) {
    for (;;) {
        const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        read_request_head(fd);
        std::string reply;
        std::size_t unit = 0;
        {
            std::lock_guard lock(answer_mutex);
            reply = answer;
            unit = repeat_unit;
        }
        if (unit > 0 && unit <= reply.size()) {
            std::string tail = reply.substr(reply.size() - unit);
            while (tail.size() < 4096)
                tail += tail;
            while (reply.size() < (192u << 10))
                reply += tail;
        }
        std::size_t sent = 0;
        while (sent < reply.size()) {
            const auto n = ::send(fd, reply.data() + sent, reply.size() - sent, MSG_NOSIGNAL);
            if (n <= 0)
                break;
            sent += static_cast<std::size_t>(n);
        }
        ::close(fd);
    }
}

// Started on first use and never stopped: the process ends with it.
void start_server() {
    static const bool started = [] {
        const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        const auto name = socket_name();
        std::memcpy(addr.sun_path + 1, name.data(), name.size());
        const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
        if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
            ::listen(fd, 64) != 0)
            std::abort();
        std::thread(serve, fd).detach();
        return true;
    }();
    (void)started;
}

[[noreturn]] void fail(const char* what, const std::string& detail) {
    std::fprintf(stderr, "fuzz_response: %s: %s\n", what, detail.c_str());
    std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0)
        return -1; // no mode byte: not a useful input
    start_server();
    const bool endless = (data[0] & 0x80) != 0 && size >= 3;
    const std::size_t skip = endless ? 2 : 1;
    {
        std::lock_guard lock(answer_mutex);
        answer.assign(reinterpret_cast<const char*>(data) + skip, size - skip);
        repeat_unit = endless ? std::clamp<std::size_t>(data[1] % 64, 1, size - skip) : 0;
    }
    const unsigned mode = data[0] % 4;
    const auto started = std::chrono::steady_clock::now();

    // A fresh client each time: no pooled connection carries one input into the next.
    client::client c(client::client_options{
        .connect_timeout = std::chrono::milliseconds(2000),
        .timeout = std::chrono::milliseconds(3000),
        .max_response_bytes = 64 * 1024,
    });
    client::request req;
    req.url = "http+unix://%40" + socket_name() + "/fuzz";
    std::string sunk;
    client::download dl;
    std::optional<client::response> head_seen;
    udshttp::result<client::response> r = client::response{};
    switch (mode) {
    case 0:
        r = c.send(req);
        break;
    case 1:
        req.method = "HEAD";
        r = c.send(req);
        break;
    case 2:
        req.method = "POST";
        req.body = std::string(8192, 'b');
        r = c.send(req);
        break;
    default: {
        req.method = "POST";
        std::size_t left = 3 * 65536; // more than a socket buffer: the upload outlives the answer
        req.body = udshttp::client::streamed_body{
            [&left](std::span<char> buf) -> udshttp::result<std::size_t> {
                const auto n = std::min(left, buf.size());
                std::memset(buf.data(), 'u', n);
                left -= n;
                return n;
            }};
        dl.sink = [&sunk](std::string_view piece) -> udshttp::result<void> {
            sunk.append(piece);
            return {};
        };
        dl.head = [&head_seen](const client::response& h) { head_seen = h; };
        r = c.send(req, dl);
        break;
    }
    }

    // The 3 s deadline, with room for a loaded machine: a reader stuck in an endless line
    // must not outlive it by much.
    if (std::chrono::steady_clock::now() - started > std::chrono::seconds(6))
        fail("the request outlived its 3 s deadline by more than 3 s",
             r ? "answered" : r.error().message);
    static const bool verbose = std::getenv("UDSHTTP_FUZZ_VERBOSE") != nullptr;
    if (verbose)
        std::fprintf(stderr, "fuzz_response: mode %u: %s\n", mode,
                     r ? ("status " + std::to_string(r->status)).c_str()
                       : r.error().message.c_str());
    if (!r) {
        if (r.error().message.empty())
            fail("an error without a message", "");
        if (r.error().message.starts_with("invalid URL"))
            fail("the harness's own URL was refused", r.error().message); // fuzzing nothing

        return 0;
    }
    const auto& res = *r;
    if (res.status < 100 || res.status > 999)
        fail("a status outside 100..999 was accepted", std::to_string(res.status));
    if (mode == 3) {
        if (!res.body.empty())
            fail("a response streamed to a sink also has a body in memory", "");
        if (!head_seen || head_seen->status != res.status)
            fail("the head callback did not see the final status", std::to_string(res.status));
    }
    // A body framed by Content-Length must have exactly that length (a HEAD answer, 1xx, 204
    // and 304 carry none).
    const auto length_text = res.header("content-length");
    const bool bodiless =
        mode == 1 || res.status / 100 == 1 || res.status == 204 || res.status == 304;
    std::uint64_t length = 0;
    if (!bodiless && !length_text.empty() &&
        std::from_chars(length_text.data(), length_text.data() + length_text.size(), length).ec ==
            std::errc{} &&
        res.header("transfer-encoding").empty()) {
        const auto got = mode == 3 ? sunk.size() : res.body.size();
        if (got != length)
            fail("the body length differs from Content-Length",
                 std::to_string(got) + " != " + std::string(length_text));
    }
    return 0;
}
