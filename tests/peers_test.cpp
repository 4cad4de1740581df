// Real peers that nobody here wrote. Clients: curl over a socket path and an abstract socket
// in HTTP/1.0 and 1.1, Python's http.client, Node's http and Go's net/http, each driving
// udshttpd. Servers: nginx and aiohttp on Unix sockets, driven by udshttp::client. Each peer
// is a real process on a real socket; a missing peer fails in CI and is skipped elsewhere.

#include "support/support.hpp"

#include <udshttp/client/client.hpp>
#include <udshttp/proto/url.hpp>

#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <thread>

using namespace udshttp;
using namespace udshttp::test;

namespace {

// udshttpd for the peer clients: a socket path and an abstract name, and a 1 MiB body limit
// so that every peer can also be shown a 413.
constexpr std::size_t peer_body_limit = 1 << 20;

struct peer_daemon : daemon_fixture {
    peer_daemon()
        : daemon_fixture(false, {"--listen", "@" + abstract_name(), "--max-body-bytes", "1MiB"}) {
        REQUIRE(proc->wait_for_output("@" + abstract_name()));
    }
    static std::string abstract_name() { return "udshttp-peers-" + std::to_string(::getpid()); }
};

// Every byte value, `n` bytes.
std::string pattern(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i)
        s[i] = static_cast<char>(i * 7 + (i >> 8));
    return s;
}

// Waits until a server child has created its socket file (or exits).
bool wait_for_socket(child& server, const std::string& path) {
    for (int i = 0; i < 300; ++i) {
        if (std::filesystem::is_socket(path))
            return true;
        if (server.wait(10ms))
            return false;
    }
    return false;
}

// A body source handing out `data` in pieces of at most 1000 bytes, length unknown: the
// client sends it chunked.
client::body_source pieces_of(const std::string& data, std::size_t& at) {
    return [&data, &at](std::span<char> buf) -> result<std::size_t> {
        const auto n = std::min({buf.size(), data.size() - at, std::size_t{1000}});
        std::memcpy(buf.data(), data.data() + at, n);
        at += n;
        return n;
    };
}

} // namespace

TEST_SUITE("peers") {

    TEST_CASE("curl: socket path and abstract socket - HTTP/1.0 and 1.1 - hello echo chunked "
              "errors") {
        if (!require_peer("curl", "curl"))
            return;
        peer_daemon d;
        const auto body = pattern(256 * 1024);
        write_file(d.dir.file("body"), body);
        write_file(d.dir.file("big"), std::string(peer_body_limit + 1, 'x'));
        const std::vector<std::vector<std::string>> transports{
            {"--unix-socket", d.socket_path()},
            {"--abstract-unix-socket", peer_daemon::abstract_name()}};
        for (const auto& transport : transports) {
            for (const std::string version : {"--http1.0", "--http1.1"}) {
                CAPTURE(transport[0]);
                CAPTURE(version);
                auto curl = [&](std::vector<std::string> args) {
                    std::vector<std::string> argv{"curl", "-sS", version};
                    argv.insert(argv.end(), transport.begin(), transport.end());
                    argv.insert(argv.end(), args.begin(), args.end());
                    return run(argv, d.dir);
                };
                const auto expected_version = version == "--http1.0" ? "HTTP/1.0 " : "HTTP/1.1 ";
                auto hello = curl({"-i", "http://localhost/hello/curl"});
                CHECK(hello.out.starts_with(std::string(expected_version) + "200 OK"));
                CHECK(body_of(hello.out) == "Hello curl");
                CHECK(curl({"-H", "Accept: application/json", "http://localhost/hello/Ada"}).out ==
                      R"({"message":"Hello Ada","name":"Ada"})");

                auto echo = curl({"--data-binary", "@" + d.dir.file("body"), "-H",
                                  "Content-Type: application/x-curl", "-o", d.dir.file("out"), "-w",
                                  "%{content_type}", "http://localhost/echo"});
                CHECK(echo.code == 0);
                CHECK(echo.out == "application/x-curl");
                CHECK(read_file(d.dir.file("out")) == body);

                if (version == "--http1.1") { // chunked uploads are HTTP/1.1 only
                    auto chunked = curl({"-H", "Transfer-Encoding: chunked", "--data-binary",
                                         "@" + d.dir.file("body"), "-o", d.dir.file("out"),
                                         "http://localhost/echo"});
                    CHECK(chunked.code == 0);
                    CHECK(read_file(d.dir.file("out")) == body);
                    // Two URLs on one command line: the second reuses the connection.
                    auto twice =
                        curl({"-v", "http://localhost/hello/1", "http://localhost/hello/2"});
                    CHECK(twice.out == "Hello 1Hello 2");
                    // (curl 7.88 never reuses an abstract-socket connection: "is still name
                    // resolving, can't reuse". Its own quirk; it opens a second one.)
                    if (transport[0] == "--unix-socket")
                        CHECK(twice.err.find("Re-using existing connection") != std::string::npos);
                }

                auto nf = curl({"-w", "%{http_code}", "http://localhost/nope"});
                CHECK(nf.out.ends_with("404"));
                CHECK(nf.out.find(R"("code":"not_found")") != std::string::npos);
                auto na = curl({"-i", "-X", "DELETE", "http://localhost/echo"});
                CHECK(status_line(na.out).find(" 405 ") != std::string::npos);
                CHECK(na.out.find("Allow: ") != std::string::npos);
                auto big = curl({"--data-binary", "@" + d.dir.file("big"), "-w", "%{http_code}",
                                 "http://localhost/echo"});
                CHECK(big.out.ends_with("413"));
                CHECK(big.out.find(R"("code":"payload_too_large")") != std::string::npos);
                auto bad = curl({"-w", "%{http_code}", "-H", "Content-Length: x", "-d", "y",
                                 "http://localhost/echo"});
                CHECK(bad.out.ends_with("400"));
            }
        }
    }

    TEST_CASE("Python http.client over a connected AF_UNIX socket") {
        if (!require_peer("/usr/bin/python3", "python3"))
            return;
        peer_daemon d;
        check_peer(run({"/usr/bin/python3", peers_dir() + "/httpclient_peer.py", d.socket_path(),
                        std::to_string(peer_body_limit)},
                       d.dir),
                   "http.client");
    }

    TEST_CASE("Node http.request with socketPath") {
        if (!require_peer("node", "nodejs"))
            return;
        peer_daemon d;
        check_peer(run({"node", peers_dir() + "/node_client.js", d.socket_path(),
                        std::to_string(peer_body_limit)},
                       d.dir),
                   "node");
    }

    TEST_CASE("streams: curl -N prints each SSE event as it is published") {
        if (!require_peer("curl", "curl"))
            return;
        peer_daemon d;
        child curl({"curl", "-sSN", "--unix-socket", d.socket_path(), "-H",
                    "Accept: text/event-stream", "http://localhost/topics/curl"},
                   d.dir);
        client::client c;
        // Each publish shows up in curl's output while its stream is still open.
        for (int i = 1; i <= 3; ++i) {
            const auto text = "event number " + std::to_string(i);
            REQUIRE(eventually([&] {
                // Until curl has subscribed, a publish reaches no one; publish again.
                auto r = c.post(d.unix_url("/topics/curl"), text, "text/plain");
                return r && curl.wait_for_output("data: " + text + "\n", 300ms);
            }));
        }
        CHECK_FALSE(curl.wait(10ms)); // still streaming
        curl.signal(SIGTERM);
        curl.wait();
    }

    TEST_CASE("streams: aiohttp reads SSE and NDJSON as they arrive - resumes with "
              "Last-Event-ID") {
        if (!require_python_module("aiohttp", "python3-aiohttp"))
            return;
        peer_daemon d;
        check_peer(
            run({"/usr/bin/python3", peers_dir() + "/aiohttp_streams.py", d.socket_path()}, d.dir),
            "aiohttp-streams");
    }

    TEST_CASE("streams: Node reads an NDJSON stream over socketPath") {
        if (!require_peer("node", "nodejs"))
            return;
        peer_daemon d;
        check_peer(run({"node", peers_dir() + "/node_stream.js", d.socket_path()}, d.dir),
                   "node-stream");
    }

    TEST_CASE("websockets: echo over a Unix socket and TCP - ping - size limit - a topic") {
        if (!require_python_module("websockets", "python3-websockets"))
            return;
        daemon_fixture d(true, {"--max-body-bytes", "128KiB"});
        check_peer(run({"/usr/bin/python3", peers_dir() + "/websockets_client.py", d.socket_path(),
                        std::to_string(d.tcp_port), std::to_string(128 * 1024)},
                       d.dir),
                   "websockets");
    }

    TEST_CASE("Go net/http with a unix dialer") {
        if (!require_peer("go", "golang-go"))
            return;
        peer_daemon d;
        // GOCACHE in the build tree: the first run compiles net/http (a minute on 2 cores),
        // later runs reuse it. GO111MODULE=off runs a lone file without a module.
        auto r = run({"go", "run", peers_dir() + "/go_client.go", d.socket_path(),
                      std::to_string(peer_body_limit)},
                     d.dir,
                     {.env = {"GO111MODULE=off",
                              "GOCACHE=" + std::string(UDSHTTP_TEST_BUILD_DIR) + "/gocache",
                              "HOME=" + d.dir.path()}},
                     300s);
        check_peer(r, "go");
    }

    TEST_CASE("the udshttp client against nginx on a Unix socket") {
        if (!require_peer("nginx", "nginx-light"))
            return;
        const std::string module = "/usr/lib/nginx/modules/ngx_http_echo_module.so";
        if (!std::filesystem::exists(module)) {
            if (in_ci())
                FAIL(module << " is missing in CI; the test command installs "
                               "libnginx-mod-http-echo");
            MESSAGE("skipped: " << module << " not found (apt-get install libnginx-mod-http-echo)");
            return;
        }
        temp_dir dir;
        const auto sock = dir.file("nginx.sock");
        const auto file = pattern(3 << 20);
        write_file(dir.file("file.bin"), file);
        // One process (master_process off), in the foreground, everything under the temp dir.
        write_file(dir.file("nginx.conf"),
                   "load_module " + module + ";\n" + "daemon off;\nmaster_process off;\n" + "pid " +
                       dir.file("nginx.pid") + ";\nerror_log " + dir.file("error.log") +
                       " warn;\nevents { worker_connections 64; }\nhttp {\n" +
                       "  access_log off;\n" + "  client_body_temp_path " + dir.file("body") +
                       ";\n  proxy_temp_path " + dir.file("proxy") + ";\n  fastcgi_temp_path " +
                       dir.file("fastcgi") + ";\n  uwsgi_temp_path " + dir.file("uwsgi") +
                       ";\n  scgi_temp_path " + dir.file("scgi") + ";\n  server {\n" +
                       "    listen unix:" + sock + ";\n    root " + dir.path() + ";\n" +
                       "    client_max_body_size 4m;\n    client_body_buffer_size 4m;\n" +
                       "    location = /hello { default_type text/plain; return 200 'Hello from "
                       "nginx'; }\n" +
                       "    location = /echo { echo_read_request_body; echo_request_body; }\n" +
                       "    location = /small { client_max_body_size 1k; "
                       "echo_read_request_body; echo_request_body; }\n  }\n}\n");
        child nginx({"nginx", "-p", dir.path(), "-c", dir.file("nginx.conf")}, dir);
        REQUIRE_MESSAGE(wait_for_socket(nginx, sock),
                        "nginx did not start: " << nginx.err() << read_file(dir.file("error.log")));
        auto url = [&](const std::string& target) {
            return proto::make_url(proto::endpoint::unix_path(sock), target);
        };

        client::client c;
        auto hello = c.get(url("/hello"));
        REQUIRE(hello);
        CHECK(hello->status == 200);
        CHECK(hello->body == "Hello from nginx");
        CHECK(hello->header("Server").starts_with("nginx"));

        auto got = c.get(url("/file.bin")); // 3 MiB of static file, Content-Length framed
        REQUIRE(got);
        CHECK(got->body == file);
        auto head = c.send({.method = "HEAD", .url = url("/file.bin")});
        REQUIRE(head);
        CHECK(head->header("Content-Length") == std::to_string(file.size()));
        CHECK(head->body.empty());

        std::string streamed; // the same file through a sink, in pieces
        auto down = c.send({.method = "GET", .url = url("/file.bin")},
                           {.sink = [&](std::string_view p) -> result<void> {
                                streamed.append(p);
                                return {};
                            },
                            .progress = {},
                            .head = {}});
        REQUIRE(down);
        CHECK(streamed == file);

        const auto body = pattern(1 << 20);
        auto echo = c.post(url("/echo"), body);
        REQUIRE(echo);
        CHECK(echo->body == body);
        std::size_t at = 0;
        auto chunked = c.send({.method = "POST",
                               .url = url("/echo"),
                               .body = client::streamed_body{pieces_of(body, at)}});
        REQUIRE(chunked);
        CHECK(chunked->status == 200);
        CHECK(chunked->body == body); // nginx took the chunked upload whole

        auto nf = c.get(url("/nope"));
        REQUIRE(nf);
        CHECK(nf->status == 404);
        CHECK(c.connections_opened() == 1); // all of the above on one keep-alive connection

        auto too_big = c.post(url("/small"), std::string(64 * 1024, 'x'));
        REQUIRE(too_big); // nginx answers 413 before the body and closes: still an answer
        CHECK(too_big->status == 413);
        auto after = c.get(url("/hello")); // a fresh connection replaces the closed one
        REQUIRE(after);
        CHECK(after->body == "Hello from nginx");

        nginx.signal(SIGQUIT); // graceful stop, by PID
        CHECK(nginx.wait(10s) == 0);
    }

    TEST_CASE("the udshttp client against an aiohttp web.run_app(path=...) server") {
        if (!require_python_module("aiohttp", "python3-aiohttp"))
            return;
        temp_dir dir;
        const auto sock = dir.file("aiohttp.sock");
        child server({"/usr/bin/python3", peers_dir() + "/aiohttp_server.py", sock}, dir);
        REQUIRE_MESSAGE(wait_for_socket(server, sock), "aiohttp did not start: " << server.err());
        auto url = [&](const std::string& target) {
            return proto::make_url(proto::endpoint::unix_path(sock), target);
        };

        client::client c;
        auto hello = c.get(url("/hello"));
        REQUIRE(hello);
        CHECK(hello->body == "Hello from aiohttp");
        CHECK(hello->header("Server").find("aiohttp") != std::string::npos);
        auto json = c.get_json(url("/json"));
        REQUIRE(json);
        CHECK(*json == nlohmann::json{{"server", "aiohttp"}, {"ok", true}});

        const auto body = pattern(2 << 20);
        auto echo = c.send({.method = "POST",
                            .url = url("/echo"),
                            .headers = {{"Content-Type", "application/x-test"}},
                            .body = body});
        REQUIRE(echo);
        CHECK(echo->body == body);
        CHECK(echo->header("Content-Type") == "application/x-test");
        std::size_t at = 0;
        auto chunked = c.send({.method = "POST",
                               .url = url("/echo"),
                               .body = client::streamed_body{pieces_of(body, at)}});
        REQUIRE(chunked);
        CHECK(chunked->body == body);

        // A chunked download, into memory and through a sink.
        constexpr std::size_t n = 5'000'000;
        auto stream = c.get(url("/stream?n=" + std::to_string(n)));
        REQUIRE(stream);
        CHECK(stream->header("Transfer-Encoding") == "chunked");
        REQUIRE(stream->body.size() == n);
        bool pattern_ok = true;
        for (std::size_t i = 0; i < n && pattern_ok; ++i)
            pattern_ok = static_cast<unsigned char>(stream->body[i]) == i % 251;
        CHECK(pattern_ok);
        std::size_t sunk = 0;
        auto down = c.send({.method = "GET", .url = url("/stream?n=" + std::to_string(n))},
                           {.sink = [&](std::string_view p) -> result<void> {
                                sunk += p.size();
                                return {};
                            },
                            .progress = {},
                            .head = {}});
        REQUIRE(down);
        CHECK(sunk == n);

        auto nf = c.get(url("/nope"));
        REQUIRE(nf);
        CHECK(nf->status == 404);
        auto na = c.send({.method = "DELETE", .url = url("/hello")});
        REQUIRE(na);
        CHECK(na->status == 405);
        CHECK(c.connections_opened() == 1);
        auto not_json = c.get_json(url("/hello"));
        REQUIRE_FALSE(not_json);
        CHECK(not_json.error().code == make_error_code(errc::invalid_json));

        server.signal(SIGTERM);
        CHECK(server.wait(10s).has_value());
    }

} // TEST_SUITE
