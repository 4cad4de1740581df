// Coroutine handlers and response streams (async.hpp) over real sockets: handlers that wait,
// cancellation when the peer leaves (and not on a half-close), NDJSON and SSE streams with
// backpressure, heartbeats, the write-stall deadline, and the drain's last words.

#include "support/support.hpp"

#include <udshttp/client/client.hpp>
#include <udshttp/service/async.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>

using namespace udshttp;
using namespace udshttp::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;

#define BOTH_TRANSPORTS unix_transport, tcp_transport

namespace {

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(asio::use_awaitable);
}

// What the routes below saw, for the tests to check.
std::atomic<int> cancelled_handlers{0};
std::atomic<int> finished_handlers{0};
std::atomic<std::uint64_t> bytes_written{0};
std::atomic<bool> write_failed{false};
std::mutex heard_mutex;
std::string heard; // what /talk read after it had shut its own side

std::size_t open_fds() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd"))
        ++n;
    return n;
}

void coroutine_routes(service::router& r) {
    r.get("/wait/{ms}",
          [](const service::request& req, service::response& res) -> asio::awaitable<void> {
              co_await sleep_for(
                  std::chrono::milliseconds(std::stoi(std::string(req.param("ms")))));
              service::set_text(res, "waited " + std::string(req.param("ms")));
          });
    r.get("/forever", [](const service::request&, service::response& res) -> asio::awaitable<void> {
        try {
            co_await sleep_for(60s);
        } catch (const boost::system::system_error& e) {
            if (e.code() == asio::error::operation_aborted)
                ++cancelled_handlers;
            throw;
        }
        service::set_text(res, "never");
    });
    r.get("/stubborn", [](const service::request&, service::response&) -> asio::awaitable<void> {
        for (;;) { // ignores cancellation: only the drain timeout ends it
            try {
                co_await asio::this_coro::reset_cancellation_state();
                co_await sleep_for(50ms);
            } catch (const boost::system::system_error&) {
            }
        }
    });
    r.get("/throws", [](const service::request&, service::response&) -> asio::awaitable<void> {
        co_await sleep_for(1ms);
        throw std::runtime_error("the database is on fire");
    });
    r.get("/ndjson",
          [](const service::request& req, service::response_stream& out) -> asio::awaitable<void> {
              const int n = req.query().empty() ? 3 : std::stoi(std::string(req.query()));
              for (int i = 0; i < n; ++i) {
                  // Named locals: GCC 12 mishandles temporaries inside a co_await expression.
                  const nlohmann::json line{{"seq", i}};
                  co_await out.write_json(line);
                  co_await sleep_for(5ms);
              }
              ++finished_handlers;
          });
    r.get("/sse",
          [](const service::request&, service::response_stream& out) -> asio::awaitable<void> {
              const auto data = "resumed after " + std::string(out.last_event_id());
              const service::sse_event first{
                  .data = data, .event = "hello", .id = "1", .retry = 1500ms};
              co_await out.write_event(first);
              const service::sse_event second{.data = "two\nlines"};
              co_await out.write_event(second);
              co_await out.write_comment("just a comment");
          });
    r.get("/quiet",
          [](const service::request&, service::response_stream& out) -> asio::awaitable<void> {
              const service::sse_event first{.data = "first"};
              co_await out.write_event(first);
              co_await out.flush();
              co_await sleep_for(1500ms);
              const service::sse_event last{.data = "last"};
              co_await out.write_event(last);
          })
        .heartbeat(100ms);
    r.get("/firehose",
          [](const service::request&, service::response_stream& out) -> asio::awaitable<void> {
              const std::string piece(64 * 1024, 'x');
              try {
                  for (int i = 0; i < 256; ++i) { // 16 MiB
                      co_await out.write(piece);
                      bytes_written += piece.size();
                  }
              } catch (const boost::system::system_error&) {
                  write_failed = true;
                  throw;
              }
          });
    r.add(service::http::verb::post, "/talk",
          [](const service::request&, service::upgraded_stream& up) -> asio::awaitable<void> {
              // Says its piece and ends its side first, then reads the peer to its end.
              co_await up.write(std::string_view("bye"));
              up.shutdown_write();
              std::array<char, 256> buf;
              std::string got;
              for (;;) {
                  const auto n = co_await up.read_some(buf);
                  if (n == 0)
                      break;
                  got.append(buf.data(), n);
              }
              const std::lock_guard lock(heard_mutex);
              heard = got;
          });
    r.get("/watch",
          [](const service::request& req, service::response_stream& out) -> asio::awaitable<void> {
              if (req.query() == "sse") {
                  const service::sse_event e{.data = "watching"};
                  co_await out.write_event(e);
              } else {
                  const nlohmann::json line{{"type", "watching"}};
                  co_await out.write_json(line);
              }
              co_await sleep_for(60s); // until the drain or the peer ends it
          });
}

} // namespace

TEST_SUITE("async") {
    TEST_CASE("format_event gives the bytes write_event sends - once for many streams") {
        const service::sse_event e{.data = "one\r\ntwo\nthree",
                                   .event = "tick",
                                   .id = "7",
                                   .retry = std::chrono::milliseconds(1500)};
        CHECK(service::format_event(e) ==
              "event: tick\nid: 7\nretry: 1500\ndata: one\ndata: two\ndata: three\n\n");
        CHECK(service::format_event({.data = ""}) == "data: \n\n");
        CHECK_THROWS_AS(service::format_event({.data = "x", .id = "1\n2"}), std::invalid_argument);
        CHECK_THROWS_AS(service::format_event({.data = "x", .event = "a\rb"}),
                        std::invalid_argument);
    }

    TEST_CASE_TEMPLATE("a coroutine handler answers when it returns - a throw is a 500", T,
                       BOTH_TRANSPORTS) {
        transport_fixture<T> srv({}, coroutine_routes);
        client::client c;
        auto r = c.get(srv.url("/wait/20"));
        CHECK(response_of(r).status == 200);
        CHECK(response_of(r).body == "waited 20");
        auto bad = c.get(srv.url("/throws"));
        CHECK(response_of(bad).status == 500);
        // The connection goes on after both.
        CHECK(response_of(c.get(srv.url("/hello"))).status == 200);
    }

    TEST_CASE("200 requests waiting 1 s on one worker all finish in about 1 s - hello answers "
              "meanwhile") {
        server_fixture srv(true, {.threads = 1, .max_connections = 1024}, coroutine_routes);
        std::vector<std::unique_ptr<raw_socket>> waiting;
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < 200; ++i) {
            waiting.push_back(std::make_unique<raw_socket>(srv.endpoint(), 10s));
            REQUIRE(waiting.back()->send("GET /wait/1000 HTTP/1.1\r\nHost: x\r\n"
                                         "Connection: close\r\n\r\n"));
        }
        // While they wait, the worker is free.
        const auto h0 = std::chrono::steady_clock::now();
        client::client c;
        CHECK(response_of(c.get(srv.url("/hello"))).status == 200);
        CHECK(std::chrono::steady_clock::now() - h0 < 500ms);
        int answered = 0;
        for (auto& s : waiting)
            answered += body_of(s->read_all()) == "waited 1000";
        const auto took = std::chrono::steady_clock::now() - t0;
        CHECK(answered == 200);
        CHECK(took >= 1s);
        CHECK(took < 5s); // loosely: serially they would take 200 s
    }

    TEST_CASE_TEMPLATE("a peer that goes away cancels its handler - nothing leaks", T,
                       BOTH_TRANSPORTS) {
        transport_fixture<T> srv({}, coroutine_routes);
        const auto fds = open_fds();
        const int before = cancelled_handlers.load();
        {
            raw_socket s(srv.endpoint());
            REQUIRE(s.send("GET /forever HTTP/1.1\r\nHost: x\r\n\r\n"));
            std::this_thread::sleep_for(100ms);
        } // closed
        CHECK(eventually([&] { return cancelled_handlers.load() == before + 1; }, 5s));
        client::client c;
        CHECK(eventually([&] {
            auto h = c.get_json(srv.url("/healthz"));
            return h && (*h)["connections"] == 1; // this client's own
        }));
        c = client::client{};
        CHECK(eventually([&] { return open_fds() <= fds; }));
        auto m = response_of(client::client{}.get(srv.url("/metrics"))).body;
        CHECK(m.find("code=\"499\"} 1") != std::string::npos);
    }

    TEST_CASE("over a Unix socket a half-close is not a disconnect: the answer still comes") {
        server_fixture srv(true, {}, coroutine_routes);
        raw_socket s(srv.endpoint());
        REQUIRE(s.send("GET /wait/300 HTTP/1.1\r\nHost: x\r\n\r\n"));
        s.shutdown_write();
        const auto raw = s.read_all();
        CHECK(status_line(raw) == "HTTP/1.1 200 OK");
        CHECK(body_of(raw) == "waited 300");
    }

    TEST_CASE_TEMPLATE("an NDJSON stream is chunked on HTTP/1.1 - close-delimited on 1.0", T,
                       BOTH_TRANSPORTS) {
        transport_fixture<T> srv({}, coroutine_routes);
        client::client c;
        auto r = c.get(srv.url("/ndjson?3"));
        REQUIRE(response_of(r).status == 200);
        CHECK(r->header("Content-Type") == "application/x-ndjson");
        CHECK(r->header("Transfer-Encoding") == "chunked");
        CHECK(r->body == "{\"seq\":0}\n{\"seq\":1}\n{\"seq\":2}\n");
        // The connection is kept and serves the next request.
        CHECK(response_of(c.get(srv.url("/hello"))).status == 200);
        CHECK(c.connections_opened() == 1);

        raw_socket old(srv.endpoint());
        REQUIRE(old.send("GET /ndjson?2 HTTP/1.0\r\n\r\n"));
        const auto raw = old.read_all();
        CHECK(status_line(raw) == "HTTP/1.0 200 OK");
        CHECK(raw.find("Transfer-Encoding") == std::string::npos);
        CHECK(raw.find("Content-Length") == std::string::npos);
        CHECK(body_of(raw) == "{\"seq\":0}\n{\"seq\":1}\n");
    }

    TEST_CASE("SSE events are framed as the standard says - Last-Event-ID reaches the handler") {
        server_fixture srv(true, {}, coroutine_routes);
        raw_socket s(srv.endpoint());
        REQUIRE(s.send("GET /sse HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 41\r\n\r\n"));
        std::string raw;
        REQUIRE(read_until(s, raw, "0\r\n\r\n"));
        CHECK(raw.find("Content-Type: text/event-stream\r\n") != std::string::npos);
        bool complete = false;
        CHECK(dechunk(raw, &complete) == "event: hello\nid: 1\nretry: 1500\n"
                                         "data: resumed after 41\n\n"
                                         "data: two\ndata: lines\n\n"
                                         ": just a comment\n\n");
        CHECK(complete);
    }

    TEST_CASE("HEAD on a stream route gets the head alone") {
        server_fixture srv(true, {}, coroutine_routes);
        raw_socket s(srv.endpoint());
        REQUIRE(s.send("HEAD /watch HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
        const auto raw = s.read_all();
        CHECK(status_line(raw) == "HTTP/1.1 200 OK");
        CHECK(raw.find("Transfer-Encoding: chunked\r\n") != std::string::npos);
        CHECK(raw.substr(raw.find("\r\n\r\n") + 4).empty());
    }

    TEST_CASE("a quiet stream with heartbeats outlives the idle timeout") {
        server_fixture srv(true, {.idle_timeout = 500ms}, coroutine_routes);
        raw_socket s(srv.endpoint(), 10s);
        REQUIRE(s.send("GET /quiet HTTP/1.1\r\nHost: x\r\n\r\n"));
        std::string raw;
        REQUIRE(read_until(s, raw, "0\r\n\r\n", 10s));
        bool complete = false;
        const auto body = dechunk(raw, &complete);
        CHECK(complete);
        CHECK(body.find("data: first\n\n") == 0);
        CHECK(body.find("data: last\n\n") != std::string::npos);
        // 1.5 s of quiet at 100 ms: about 14 heartbeats; loosely, several.
        std::size_t beats = 0;
        for (auto p = body.find(":\n\n"); p != std::string::npos; p = body.find(":\n\n", p + 3))
            ++beats;
        CHECK(beats >= 5);
    }

    TEST_CASE_TEMPLATE("a stream waits for a slow reader in bounded memory - a peer that stops "
                       "reading is cut by the write-stall deadline",
                       T, BOTH_TRANSPORTS) {
        {
            transport_fixture<T> srv({}, coroutine_routes);
            bytes_written = 0;
            raw_socket s(srv.endpoint(), 10s);
            REQUIRE(s.send("GET /firehose HTTP/1.1\r\nHost: x\r\n\r\n"));
            std::this_thread::sleep_for(300ms); // nothing read meanwhile
            // The handler is held back: what it wrote is the socket buffers plus 64 KiB.
            CHECK(bytes_written.load() < 8u << 20);
            std::string raw;
            REQUIRE(read_until(s, raw, "0\r\n\r\n", 10s));
            bool complete = false;
            CHECK(dechunk(raw, &complete).size() == 16u << 20);
            CHECK(complete);
        }
        transport_fixture<T> srv({.idle_timeout = 300ms}, coroutine_routes);
        write_failed = false;
        raw_socket s(srv.endpoint(), 10s);
        REQUIRE(s.send("GET /firehose HTTP/1.1\r\nHost: x\r\n\r\n"));
        CHECK(eventually([] { return write_failed.load(); }, 5s));
    }

    TEST_CASE_TEMPLATE("the drain ends open streams with their last words and the server stops", T,
                       BOTH_TRANSPORTS) {
        auto srv = std::make_unique<transport_fixture<T>>(
            service::server_options{.drain_timeout = 5s}, coroutine_routes);
        raw_socket sse(srv->endpoint());
        raw_socket nd(srv->endpoint());
        REQUIRE(sse.send("GET /watch?sse HTTP/1.1\r\nHost: x\r\n\r\n"));
        REQUIRE(nd.send("GET /watch HTTP/1.1\r\nHost: x\r\n\r\n"));
        std::string a, b;
        REQUIRE(read_until(sse, a, "data: watching\n\n"));
        REQUIRE(read_until(nd, b, "{\"type\":\"watching\"}\n"));
        const auto t0 = std::chrono::steady_clock::now();
        srv->server().stop();
        CHECK(std::chrono::steady_clock::now() - t0 < 3s);
        a += sse.read_all();
        b += nd.read_all();
        bool complete = false;
        CHECK(dechunk(a, &complete) ==
              "data: watching\n\nevent: shutdown\ndata: the server is shutting down\n\n");
        CHECK(complete);
        CHECK(dechunk(b, &complete) == "{\"type\":\"watching\"}\n{\"type\":\"shutdown\"}\n");
        CHECK(complete);
    }

    TEST_CASE_TEMPLATE("Upgrade: tcp hands over the raw connection - each direction ends on its "
                       "own",
                       T, BOTH_TRANSPORTS) {
        transport_fixture<T> srv({}, coroutine_routes);
        { // The built-in echo, upgraded: the caller's EOF comes back after all it sent.
            raw_socket s(srv.endpoint());
            REQUIRE(s.send("POST /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                           "Upgrade: tcp\r\n\r\nsent with the head;"));
            std::string got;
            REQUIRE(read_until(s, got, "sent with the head;"));
            CHECK(got.starts_with("HTTP/1.1 101 Switching Protocols\r\nUpgrade: tcp\r\n"
                                  "Connection: Upgrade\r\n"));
            REQUIRE(s.send("and after it"));
            s.shutdown_write(); // we are done sending, still reading
            got += s.read_all();
            CHECK(got.ends_with("\r\n\r\nsent with the head;and after it"));
        }
        { // The server ends its side first; we still send, and it still reads.
            {
                const std::lock_guard lock(heard_mutex);
                heard.clear();
            }
            raw_socket s(srv.endpoint());
            REQUIRE(s.send("POST /talk HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                           "Upgrade: tcp\r\n\r\n"));
            const auto got = s.read_all(); // to the server's EOF
            CHECK(got.ends_with("\r\n\r\nbye"));
            REQUIRE(s.send("still talking"));
            s.shutdown_write();
            CHECK(eventually([] {
                const std::lock_guard lock(heard_mutex);
                return heard == "still talking";
            }));
        }
        { // The built-in echo keeps the idle timeout: a silent hijacker is cut.
            transport_fixture<T> quick({.idle_timeout = std::chrono::milliseconds(300)});
            raw_socket s(quick.endpoint(), 10s);
            REQUIRE(s.send("POST /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                           "Upgrade: tcp\r\n\r\n"));
            const auto t0 = std::chrono::steady_clock::now();
            const auto got = s.read_all(); // returns when the server closes
            CHECK(got.starts_with("HTTP/1.1 101 "));
            CHECK(std::chrono::steady_clock::now() - t0 < 5s);
        }
        // Without an Upgrade the same route is a plain POST /echo; an upgrade-only route
        // answers 426.
        raw_socket plain(srv.endpoint());
        REQUIRE(plain.send("GET /ws/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
        const auto raw = plain.read_all();
        CHECK(status_line(raw) == "HTTP/1.1 426 Upgrade Required");
        CHECK(raw.find("Upgrade: websocket\r\n") != std::string::npos);
    }

    TEST_CASE("a handler that ignores cancellation is cut at the drain timeout") {
        server_fixture srv(true, {.drain_timeout = 300ms}, coroutine_routes);
        raw_socket s(srv.endpoint());
        REQUIRE(s.send("GET /stubborn HTTP/1.1\r\nHost: x\r\n\r\n"));
        std::this_thread::sleep_for(100ms);
        const auto t0 = std::chrono::steady_clock::now();
        srv.server().stop();
        CHECK(std::chrono::steady_clock::now() - t0 < 3s);
        CHECK(s.read_all().empty()); // cut without an answer
    }
}
