// udshttpd as an attacker sees it: every input a local peer controls has a bound, and every
// bound is shown here over real sockets against a real udshttpd process (whose peak resident
// size is read from /proc) or an in-process server. Label "adversarial".

#include "support/support.hpp"

#include <udshttp/client/client.hpp>
#include <udshttp/proto/url.hpp>
#include <udshttp/service/server.hpp>

#include <doctest/doctest.h>

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

using namespace udshttp;
using namespace udshttp::test;
using namespace std::chrono_literals;

namespace {

constexpr uid_t nobody = 65534;

// The most a peer may make udshttpd hold here: its own size plus read buffers, far below the
// hundreds of MiB that the unbounded cases reached.
constexpr std::size_t resident_bound_kb = 48 * 1024;

bool resident_checked() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return false;
#else
    return true;
#endif
}

void check_resident(pid_t pid) {
    const auto kb = vm_hwm_kb(pid);
    MESSAGE("udshttpd peak resident size: " << kb / 1024 << " MiB");
    CHECK(kb > 0);
    if (resident_checked())
        CHECK(kb < resident_bound_kb);
    else
        MESSAGE("resident bound not checked: sanitizer shadow memory dominates in this build");
}

void send_timeout(int fd, std::chrono::milliseconds t) {
    timeval tv{.tv_sec = static_cast<time_t>(t.count() / 1000),
               .tv_usec = static_cast<suseconds_t>(t.count() % 1000 * 1000)};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// Sends `prefix`, then `filler` over and over until `limit` bytes went out or the server stops
// taking them; then half-closes and returns everything the server answered.
std::string flood(const proto::endpoint& ep, const std::string& prefix, const std::string& filler,
                  std::size_t limit) {
    raw_socket s(ep, 10s);
    REQUIRE(s.connected());
    send_timeout(s.fd(), 10s);
    std::string block;
    while (block.size() < 64 * 1024)
        block += filler;
    bool ok = s.send(prefix);
    for (std::size_t sent = 0; ok && sent < limit; sent += block.size())
        ok = s.send(block);
    s.shutdown_write();
    return s.read_all();
}

std::string chunked_head(const std::string& target) {
    return "POST " + target + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
}

std::string metrics_of(const proto::endpoint& ep) {
    return body_of(roundtrip(ep, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
}

} // namespace

TEST_SUITE("adversarial") {

    TEST_CASE("endless chunk extensions - chunk-size lines - trailers: 400 in bounded memory") {
        daemon_fixture d;
        const auto ep = proto::endpoint::unix_path(d.socket_path());
        constexpr std::size_t flood_bytes = 32u << 20;
        SUBCASE("chunk extension") {
            CHECK(status_line(flood(ep, chunked_head("/echo") + "1;", "a", flood_bytes)) ==
                  "HTTP/1.1 400 Bad Request");
        }
        SUBCASE("chunk-size line") {
            CHECK(status_line(flood(ep, chunked_head("/echo"), "0", flood_bytes)) ==
                  "HTTP/1.1 400 Bad Request");
        }
        SUBCASE("trailer section") {
            const auto raw = flood(ep, chunked_head("/echo") + "0\r\n", "a:b\r\n", flood_bytes);
            CHECK(status_line(raw) == "HTTP/1.1 400 Bad Request");
            CHECK(raw.find("trailer section does not fit the read buffer") != std::string::npos);
        }
        check_resident(d.proc->pid());
        CHECK(
            body_of(roundtrip(ep, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) ==
            "Hello Anonymous");
    }

    TEST_CASE("a header block of tiny fields is counted whole against --max-header-bytes") {
        daemon_fixture d(false, {"--max-header-bytes", "4096"});
        const auto ep = proto::endpoint::unix_path(d.socket_path());
        // 10 MiB of "a:b" fields: 431, not 200 (Beast's own limit counts only unconsumed bytes).
        const auto raw = flood(ep, "GET /hello HTTP/1.1\r\nHost: x\r\n", "a:b\r\n", 10u << 20);
        CHECK(status_line(raw) == "HTTP/1.1 431 Request Header Fields Too Large");
        check_resident(d.proc->pid());

        // The limit is exact: a head of 4096 bytes is served, 4097 is not.
        const auto head_of = [](std::size_t size) {
            std::string head = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
            const std::string field = "a:b\r\n";
            while (head.size() + field.size() + 6 <= size)
                head += field;
            head += "X:" + std::string(size - head.size() - 6, 'y') + "\r\n\r\n";
            REQUIRE(head.size() == size);
            return head;
        };
        CHECK(status_line(roundtrip(ep, head_of(4096))) == "HTTP/1.1 200 OK");
        CHECK(status_line(roundtrip(ep, head_of(4097))) ==
              "HTTP/1.1 431 Request Header Fields Too Large");
    }

    TEST_CASE("refused peers get 403 before they send a byte and take no allowed peer's place") {
        if (::geteuid() != 0) {
            MESSAGE("skipped: needs root, to call as both an allowed and a refused uid");
            return;
        }
        daemon_fixture d(false, {"--allow-uid", "nobody", "--socket-mode", "0666",
                                 "--max-connections", "4", "--header-timeout", "30s"});
        ::chmod(d.dir.path().c_str(), 0755);
        const auto ep = proto::endpoint::unix_path(d.socket_path());
        // 40 refused peers (this process is root, not nobody) that never send anything.
        std::vector<std::unique_ptr<raw_socket>> refused;
        for (int i = 0; i < 40; ++i)
            refused.push_back(std::make_unique<raw_socket>(ep, 5s));
        const auto t0 = std::chrono::steady_clock::now();
        const auto first = refused.front()->read_all(); // answered, then closed
        const auto waited = std::chrono::steady_clock::now() - t0;
        CHECK(status_line(first) == "HTTP/1.1 403 Forbidden");
        CHECK(first.find("is not in --allow-uid/--allow-gid") != std::string::npos);
        CHECK(waited < 3s); // the short linger, not the 30 s header timeout
        // An allowed peer is served while the refused ones are still connected.
        auto allowed = run({udshttp_path(), "-sS", d.unix_url("/hello")}, d.dir,
                           {.uid = nobody, .env = {}, .stdin_file = {}});
        INFO(allowed.err);
        CHECK(allowed.out == "Hello Anonymous");
        for (std::size_t i = 1; i < refused.size(); ++i)
            CHECK(status_line(refused[i]->read_all()) == "HTTP/1.1 403 Forbidden");
    }

    TEST_CASE("bodies no handler reads: 404 and 405 answer before the body and drop it") {
        daemon_fixture d;
        const auto ep = proto::endpoint::unix_path(d.socket_path());
        for (const std::string target : {"/nope", "/healthz"}) {
            raw_socket s(ep, 10s);
            REQUIRE(s.send("POST " + target +
                           " HTTP/1.1\r\nHost: x\r\nContent-Length: 60000000\r\n\r\n"));
            // No body byte sent: the answer comes anyway, and the connection closes after a
            // quiet linger.
            const auto raw = s.read_all();
            CHECK(status_line(raw) == (target == "/nope" ? "HTTP/1.1 404 Not Found"
                                                         : "HTTP/1.1 405 Method Not Allowed"));
            CHECK(raw.find("Connection: close\r\n") != std::string::npos);
        }
        // Six uploads of 60 MB to routes that do not read them cost no memory.
        std::vector<std::thread> uploads;
        std::atomic<int> answered{0};
        for (int i = 0; i < 6; ++i)
            uploads.emplace_back([&, i] {
                const auto raw =
                    flood(ep,
                          "POST /nope/" + std::to_string(i) +
                              " HTTP/1.1\r\nHost: x\r\nContent-Length: 60000000\r\n\r\n",
                          "z", 60'000'000);
                if (status_line(raw) == "HTTP/1.1 404 Not Found")
                    ++answered;
            });
        for (auto& t : uploads)
            t.join();
        CHECK(answered == 6);
        check_resident(d.proc->pid());
        // Without a body, the connection stays open for the next request.
        raw_socket s(ep);
        REQUIRE(s.send("GET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n"
                       "Connection: close\r\n\r\n"));
        const auto both = s.read_all();
        CHECK(count_responses(both) == 2);
        CHECK(both.ends_with("Hello Anonymous"));
    }

    TEST_CASE("a chunked upload over the limit to a stream route is cut - logged and counted") {
        daemon_fixture d(false, {"--max-body-bytes", "1MiB"});
        const auto ep = proto::endpoint::unix_path(d.socket_path());
        raw_socket s(ep, 10s);
        send_timeout(s.fd(), 10s);
        std::string answer;
        std::thread reader([&] { answer = s.read_all(); });
        std::string chunk = "10000\r\n" + std::string(0x10000, 'c') + "\r\n";
        bool ok = s.send(chunked_head("/echo"));
        for (int i = 0; ok && i < 32; ++i) // 2 MiB
            ok = s.send(chunk);
        if (ok)
            s.send("0\r\n\r\n");
        s.shutdown_write();
        reader.join();
        CHECK(status_line(answer) == "HTTP/1.1 200 OK"); // the echo began before the limit
        CHECK_FALSE(answer.ends_with("0\r\n\r\n"));      // and ends without its last chunk
        CHECK(metrics_of(ep).find("udshttp_rejected_total{reason=\"body_too_large\"} 1") !=
              std::string::npos);
        CHECK(eventually([&] {
            return d.proc->err().find("warn: cut the answer to /echo after ") != std::string::npos;
        }));
    }

    TEST_CASE("a huge Content-Length neither throws nor stops the server") {
        server_fixture srv(true, {.max_body_bytes = 100ULL << 30}, [](service::router& r) {
            r.post("/sink", [](const service::request& req, service::response& res) {
                service::set_text(res, std::to_string(req.message().body().size()));
            });
        });
        // 100 GB declared: nothing is reserved for it up front; the peer goes away early.
        {
            raw_socket s(srv.endpoint());
            REQUIRE(
                s.send("POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n\r\n" +
                       std::string(1 << 20, 'b')));
        }
        CHECK(body_of(roundtrip(srv.endpoint(), "POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: "
                                                "3\r\nConnection: close\r\n\r\nabc")) == "3");
        // A route that reads its body whole parses chunks with the same bounds as a stream.
        CHECK(status_line(flood(srv.endpoint(), chunked_head("/sink") + "1;", "e", 8u << 20)) ==
              "HTTP/1.1 400 Bad Request");
    }

    TEST_CASE_TEMPLATE("RFC 9112 framing and Host rules", T, unix_transport, tcp_transport) {
        transport_fixture<T> srv({.idle_timeout = 2s});
        const auto& ep = srv.endpoint();
        const auto answer = [&](const std::string& head) { return roundtrip(ep, head); };
        // Connection: close in a second field line closes (read_all returns well before 2 s).
        const auto closed = answer("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n"
                                   "Connection: close\r\n\r\n");
        CHECK(closed.find("Connection: close\r\n") != std::string::npos);
        CHECK(count_responses(closed) == 1);
        // Host: more than one line, or not uri-host[:port], is 400.
        CHECK(status_line(answer("GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")) ==
              "HTTP/1.1 400 Bad Request");
        CHECK(status_line(answer("GET /hello HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n")) ==
              "HTTP/1.1 400 Bad Request");
        for (const std::string bad : {"a b", "a/b", "x:8o", "[::1", "a@b"})
            CHECK(status_line(answer("GET /hello HTTP/1.1\r\nHost: " + bad + "\r\n\r\n")) ==
                  "HTTP/1.1 400 Bad Request");
        for (const std::string good : {"localhost", "[::1]:80", "127.0.0.1:8080", "a-b.c_d~"})
            CHECK(status_line(answer("GET /hello HTTP/1.1\r\nHost: " + good +
                                     "\r\nConnection: close\r\n\r\n")) == "HTTP/1.1 200 OK");
        // Absolute-form is served as its path.
        CHECK(body_of(answer("GET http://localhost/hello/ada?x=1 HTTP/1.1\r\nHost: localhost\r\n"
                             "Connection: close\r\n\r\n")) == "Hello ada");
        CHECK(body_of(answer("GET HTTP://localhost HTTP/1.1\r\nHost: localhost\r\n"
                             "Connection: close\r\n\r\n")) == "Hello Anonymous");
        // Transfer-Encoding in HTTP/1.0 is faulty framing.
        CHECK(status_line(answer("POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 "3\r\nabc\r\n0\r\n\r\n")) == "HTTP/1.0 400 Bad Request");
        // A fragment is never part of a request target.
        CHECK(status_line(answer("GET /hello#frag HTTP/1.1\r\nHost: x\r\n\r\n")) ==
              "HTTP/1.1 400 Bad Request");
    }

    TEST_CASE("abstract names longer than sockaddr_un holds are refused, never thrown") {
        const std::string name(proto::max_abstract_name_length + 1, 'n');
        const auto parsed = proto::endpoint::parse("@" + name);
        REQUIRE_FALSE(parsed);
        CHECK(parsed.error().code == make_error_code(errc::socket_path_too_long));
        CHECK(proto::endpoint::parse("@" + name.substr(1)));
        // Built by hand, past the grammar: the client answers an error, the server refuses.
        client::client c;
        const auto r = c.get(proto::make_url(proto::endpoint::abstract(name), "/hello"));
        REQUIRE_FALSE(r);
        CHECK(r.error().code == make_error_code(errc::socket_path_too_long));
        service::server srv({.listen = {proto::endpoint::abstract(name)}});
        CHECK_THROWS_AS(srv.start(), service::startup_error);
        temp_dir dir;
        const auto cli = run({udshttpd_path(), "--listen", "@" + name}, dir);
        CHECK(cli.code == 2);
        CHECK(cli.err.find("the limit is 106") != std::string::npos);
    }
}
