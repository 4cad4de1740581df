// The client's awaitable API, streaming in both directions, its pool's idle timeout and its
// deadlines mid-body, and 1 GiB through /echo in bounded memory on both ends.

#include "support/support.hpp"

#include <udshttp/client/async_client.hpp>
#include <udshttp/client/client.hpp>
#include <udshttp/proto/url.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <regex>
#include <thread>

using namespace udshttp;
using namespace udshttp::test;
using namespace std::chrono_literals;

namespace {

boost::asio::awaitable<void> fetch(client::async_client& c, std::string url, std::string& out) {
    // The request is a named local: GCC 12 mishandles temporaries inside a co_await expression.
    client::request req{.method = "GET", .url = std::move(url)};
    auto r = co_await c.async_send(std::move(req));
    out = r ? r->body : "error: " + r.error().message;
}

// A source of `pieces` copies of `piece`.
client::body_source repeat(std::string piece, int pieces) {
    return [piece = std::move(piece),
            left = pieces](std::span<char> buf) mutable -> result<std::size_t> {
        if (left == 0)
            return std::size_t{0};
        --left;
        REQUIRE(buf.size() >= piece.size());
        std::memcpy(buf.data(), piece.data(), piece.size());
        return piece.size();
    };
}

// A Unix socket server on a thread that answers one request with a head and part of the body,
// then stalls until destroyed.
class stalling_server {
public:
    explicit stalling_server(const std::string& path) {
        fd_ = bind_unix_socket(path, 4);
        thread_ = std::thread([this] {
            while (!stop_) {
                const int conn = ::accept(fd_, nullptr, nullptr);
                if (conn < 0)
                    return;
                char buf[4096];
                [[maybe_unused]] auto n = ::recv(conn, buf, sizeof buf, 0);
                const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789";
                [[maybe_unused]] auto w = ::send(conn, head.data(), head.size(), MSG_NOSIGNAL);
                conns_.push_back(conn);
            }
        });
    }
    ~stalling_server() {
        stop_ = true;
        ::shutdown(fd_, SHUT_RDWR);
        ::close(fd_);
        thread_.join();
        for (int c : conns_)
            ::close(c);
    }

private:
    int fd_ = -1;
    std::atomic<bool> stop_{false};
    std::vector<int> conns_;
    std::thread thread_;
};

} // namespace

TEST_SUITE("client") {

    TEST_CASE("async_client: requests as coroutines on the caller's io_context") {
        server_fixture srv(true);
        boost::asio::io_context ctx;
        client::async_client c(ctx.get_executor());
        std::string a, b, d;
        boost::asio::co_spawn(ctx, fetch(c, srv.url("/hello/a"), a), boost::asio::detached);
        boost::asio::co_spawn(ctx, fetch(c, srv.url("/hello/b"), b), boost::asio::detached);
        boost::asio::co_spawn(ctx, fetch(c, srv.url("/hello/d"), d), boost::asio::detached);
        ctx.run();
        CHECK(a == "Hello a");
        CHECK(b == "Hello b");
        CHECK(d == "Hello d");
        CHECK(c.connections_opened() == 3); // in flight at once: one connection each
        CHECK(c.idle_connections() == 3);

        std::string again;
        ctx.restart();
        boost::asio::co_spawn(ctx, fetch(c, srv.url("/hello/again"), again), boost::asio::detached);
        ctx.run();
        CHECK(again == "Hello again");
        CHECK(c.connections_opened() == 3); // reused from the pool
    }

    TEST_CASE("pooled connections idle beyond idle_timeout are not reused") {
        server_fixture srv(true);
        client::client c({.idle_timeout = 100ms});
        REQUIRE(c.get(srv.url("/hello")));
        REQUIRE(c.get(srv.url("/hello")));
        CHECK(c.connections_opened() == 1);
        std::this_thread::sleep_for(250ms);
        REQUIRE(c.get(srv.url("/hello")));
        CHECK(c.connections_opened() == 2);
    }

    TEST_CASE("streaming: chunked up and down - progress - and sources that lie") {
        server_fixture srv(true);
        client::client c;
        std::string echoed;
        client::progress last;
        client::download dl;
        dl.sink = [&](std::string_view piece) -> result<void> {
            echoed.append(piece);
            return {};
        };
        dl.progress = [&](const client::progress& p) { last = p; };
        client::request req{.method = "POST", .url = srv.url("/echo")};
        req.body = client::streamed_body{repeat(std::string(40000, 'x'), 30)}; // chunked
        auto r = c.send(req, dl);
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(r->header("Transfer-Encoding") == "chunked"); // /echo mirrors the framing
        CHECK(r->body.empty());
        CHECK(echoed == std::string(1'200'000, 'x'));
        CHECK(last.sent == 1'200'000);
        CHECK(last.received == 1'200'000);
        CHECK_FALSE(last.send_total);

        // A declared length the source does not keep is an error, never a hung server.
        client::request short_req{.method = "POST", .url = srv.url("/echo")};
        short_req.body = client::streamed_body{repeat("hello", 1), 10};
        auto short_r = c.send(short_req);
        REQUIRE_FALSE(short_r);
        CHECK(short_r.error().message.find("ended after 5 of its declared 10 bytes") !=
              std::string::npos);
        client::request long_req{.method = "POST", .url = srv.url("/echo")};
        long_req.body = client::streamed_body{repeat("hello", 3), 7};
        auto long_r = c.send(long_req);
        REQUIRE_FALSE(long_r);
        CHECK(long_r.error().message.find("more than its declared 7 bytes") != std::string::npos);
        CHECK(response_of(c.get(srv.url("/hello"))).body ==
              "Hello Anonymous"); // the client still works

        // Files both ways: file_source knows the length (Content-Length), file_sink writes.
        const auto in = srv.dir().file("in.bin");
        const auto out = srv.dir().file("out.bin");
        std::string content(3 << 20, '\0');
        for (std::size_t i = 0; i < content.size(); ++i)
            content[i] = static_cast<char>(i * 7 + i / 4096);
        write_file(in, content);
        auto src = client::file_source(in);
        REQUIRE(src);
        CHECK(src->length == content.size());
        auto sink = client::file_sink(out);
        REQUIRE(sink);
        client::request file_req{.method = "PUT", .url = srv.url("/echo")};
        file_req.body = *src;
        auto file_r = c.send(file_req, {.sink = *sink, .progress = {}, .head = {}});
        REQUIRE(file_r);
        CHECK(file_r->header("Content-Length") == std::to_string(content.size()));
        sink = client::file_sink(srv.dir().file("unused")); // closes out.bin's descriptor
        CHECK(read_file(out) == content);
        CHECK(client::file_source(srv.dir().file("missing")).error().message ==
              "cannot read '" + srv.dir().file("missing") + "': No such file or directory");
    }

    TEST_CASE("full duplex: an early 413 ends the upload and is the answer") {
        server_fixture srv(true, {.max_body_bytes = 1 << 20});
        client::client c;
        std::uint64_t sent = 0;
        client::request req{.method = "POST", .url = srv.url("/echo")};
        req.body = client::streamed_body{[&](std::span<char> buf) -> result<std::size_t> {
                                             std::memset(buf.data(), 'u', buf.size());
                                             sent += buf.size();
                                             return buf.size();
                                         },
                                         std::uint64_t{100} << 20};
        auto r = c.send(req);
        REQUIRE(r);
        CHECK(r->status == 413);
        CHECK(sent < (std::uint64_t{10} << 20)); // stopped long before 100 MiB
    }

    TEST_CASE("the total deadline fires when a server stalls mid-body") {
        temp_dir dir;
        const auto path = dir.file("stall.sock");
        stalling_server server(path);
        client::client c({.timeout = 300ms});
        const auto url = proto::make_url(proto::endpoint::unix_path(path), "/slow");
        auto r = c.get(url);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == make_error_code(errc::timeout));
        CHECK(r.error().message == "GET " + url + ": request deadline of 300 ms exceeded");
        std::string got;
        auto streamed =
            c.send({.method = "GET", .url = url}, {.sink = [&](std::string_view p) -> result<void> {
                                                       got.append(p);
                                                       return {};
                                                   },
                                                   .progress = {},
                                                   .head = {}});
        REQUIRE_FALSE(streamed);
        CHECK(streamed.error().code == make_error_code(errc::timeout));
        CHECK(got == "0123456789"); // what came before the stall was delivered
    }

    TEST_CASE("1 GiB through /echo: client and server both stay under 64 MiB resident") {
        daemon_fixture d(false, {"--max-body-bytes", "2GiB"});
        const auto t0 = std::chrono::steady_clock::now();
        auto r = run({stream_check_path(), d.unix_url("/echo"), std::to_string(1ULL << 30)}, d.dir,
                     {}, 300s);
        const double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        INFO(r.err);
        REQUIRE(r.code == 0);
        std::smatch m;
        REQUIRE(std::regex_search(r.out, m, std::regex(R"(ok (\d+) maxrss_kb=(\d+))")));
        CHECK(m[1] == std::to_string(1ULL << 30));
        const auto client_kb = std::stoul(m[2]);
        const auto server_kb = vm_hwm_kb(d.proc->pid());
        MESSAGE("1 GiB echoed in " << secs << " s; peak RSS client " << client_kb / 1024
                                   << " MiB, server " << server_kb / 1024 << " MiB");
        CHECK(server_kb > 0);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
        MESSAGE("memory bounds not checked: the sanitizer's shadow memory (ASan's quarantine, "
                "TSan's history) dominates the resident size in this build");
#else
        CHECK(client_kb < 64 * 1024);
        CHECK(server_kb < 64 * 1024);
#endif

        // Chunked both ways (no length known up front).
        auto chunked =
            run({stream_check_path(), d.unix_url("/echo"), std::to_string(64 << 20), "chunked"},
                d.dir, {}, 120s);
        INFO(chunked.err);
        CHECK(chunked.code == 0);
        CHECK(chunked.out.find("chunked_answer=1") != std::string::npos);
    }

    TEST_CASE("udshttp CLI: -T streams a file up - -o streams it down - a meter on a terminal") {
        daemon_fixture d;
        const auto in = d.dir.file("big.bin");
        const auto out = d.dir.file("copy.bin");
        std::string content(8 << 20, '\0');
        for (std::size_t i = 0; i < content.size(); ++i)
            content[i] = static_cast<char>(i % 251);
        write_file(in, content);
        auto plain = run({udshttp_path(), "-T", in, "-o", out, d.unix_url("/echo")}, d.dir);
        CHECK(plain.code == 0);
        CHECK(plain.err.empty()); // stderr is not a terminal: no meter
        CHECK(read_file(out) == content);

        if (!require_peer("/usr/bin/python3", "python3"))
            return;
        // The same with stderr on a pseudo-terminal.
        const std::string on_tty = "import os,pty,subprocess,sys\n"
                                   "m,s=pty.openpty()\n"
                                   "rc=subprocess.run(sys.argv[1:],stderr=s).returncode\n"
                                   "os.close(s)\n"
                                   "data=b''\n"
                                   "while True:\n"
                                   "    try:\n"
                                   "        chunk=os.read(m,65536)\n"
                                   "    except OSError:\n"
                                   "        break\n"
                                   "    if not chunk: break\n"
                                   "    data+=chunk\n"
                                   "sys.stdout.write(data.decode(errors='replace'))\n"
                                   "sys.exit(rc)\n";
        auto tty = run({"/usr/bin/python3", "-c", on_tty, udshttp_path(), "-T", in, "-o", out,
                        d.unix_url("/echo")},
                       d.dir);
        CHECK(tty.code == 0);
        CHECK(tty.out.find("of 8.0") != std::string::npos);
        CHECK(tty.out.find("MiB/s") != std::string::npos);
        // The last line drawn has the totals, however quick the transfer was.
        const auto last = tty.out.substr(tty.out.rfind("\r  sent"));
        CHECK(last.find("sent       8.0 MiB of 8.0   received       8.0 MiB of 8.0") !=
              std::string::npos);
        CHECK(read_file(out) == content);
        auto silent = run({"/usr/bin/python3", "-c", on_tty, udshttp_path(), "-s", "-T", in, "-o",
                           out, d.unix_url("/echo")},
                          d.dir);
        CHECK(silent.out.empty());
    }
}
