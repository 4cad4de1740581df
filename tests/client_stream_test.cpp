// The client's stream readers: the SSE and NDJSON parsers fed in awkward pieces, and
// read_events()/read_json_lines() against real servers, with a reconnect that resumes.

#include "support/support.hpp"

#include <udshttp/client/stream.hpp>
#include <udshttp/client/websocket.hpp>
#include <udshttp/service/async.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <thread>

using namespace udshttp;
using namespace udshttp::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

// Two events a connection, with ids counting on from Last-Event-ID: a reader that resumes
// sees one unbroken sequence.
void counting_routes(service::router& r) {
    r.get("/count",
          [](const service::request&, service::response_stream& out) -> asio::awaitable<void> {
              const auto from =
                  out.last_event_id().empty() ? 0 : std::stoi(std::string(out.last_event_id()));
              for (int i = from + 1; i <= from + 2; ++i) {
                  const auto id = std::to_string(i);
                  const auto data = "n" + id;
                  const service::sse_event e{.data = data, .id = id, .retry = 10ms};
                  co_await out.write_event(e);
              }
          });
    r.get("/lines",
          [](const service::request&, service::response_stream& out) -> asio::awaitable<void> {
              for (int i = 0; i < 3; ++i) {
                  const nlohmann::json v{{"i", i}};
                  co_await out.write_json(v);
                  co_await out.write("\n"); // a blank line between: a heartbeat, skipped
              }
          });
}

} // namespace

TEST_SUITE("client") {

    TEST_CASE("sse_parser: any split of the bytes - CR LF and CRLF - comments - retry - ids") {
        const std::string text = ": hello\r\nevent: a\r\ndata: one\r\ndata: two\r\nid: 7\r\n\r\n"
                                 "retry: 250\ndata: x\n\n:c\rdata: y\r\rid\n\ndata\n\n";
        for (std::size_t step = 1; step <= text.size(); ++step) {
            CAPTURE(step);
            std::vector<client::sse_event> got;
            client::sse_parser p([&](const client::sse_event& e) {
                got.push_back(e);
                return true;
            });
            for (std::size_t at = 0; at < text.size(); at += step)
                REQUIRE(p.feed(std::string_view(text).substr(at, step)));
            REQUIRE(got.size() == 4);
            CHECK(got[0].type == "a");
            CHECK(got[0].data == "one\ntwo");
            CHECK(got[0].id == "7");
            CHECK(got[1].type == "message");
            CHECK(got[1].data == "x");
            CHECK(got[1].id == "7"); // in force until changed
            CHECK(got[2].data == "y");
            CHECK(got[3].data.empty()); // "data" alone is an empty data line
            CHECK(got[3].id.empty());   // "id" alone resets it
            CHECK(p.retry() == 250ms);
        }
        client::sse_parser bounded([](const client::sse_event&) { return true; }, 16);
        auto r = bounded.feed(std::string(17, 'x'));
        CHECK_FALSE(r);
        CHECK(r.error().message == "an event-stream line is longer than 16 bytes");
    }

    TEST_CASE("ndjson_parser: values across pieces - blank lines skipped - bad JSON named") {
        std::vector<nlohmann::json> got;
        client::ndjson_parser p([&](const nlohmann::json& v) {
            got.push_back(v);
            return got.size() < 3;
        });
        REQUIRE(p.feed("{\"a\":1}\n\n  \r\n{\"a\""));
        REQUIRE(p.feed(":2}\r\n"));
        CHECK(got.size() == 2);
        auto stop = p.feed("[3]\n[4]\n");
        REQUIRE(stop);
        CHECK_FALSE(*stop); // the handler said stop at the third
        CHECK(got.size() == 3);
        client::ndjson_parser bad([](const nlohmann::json&) { return true; });
        auto r = bad.feed("{nope\n");
        CHECK_FALSE(r);
        CHECK(r.error().message == "an NDJSON line is not JSON: {nope");
    }

    TEST_CASE("read_events resumes with Last-Event-ID after the stream ends - "
              "read_json_lines on both clients") {
        server_fixture srv(true, {}, counting_routes);
        client::client c;
        std::vector<std::string> ids;
        auto r = client::read_events(c, srv.url("/count"),
                                     [&](const client::sse_event& e) {
                                         ids.push_back(e.id);
                                         CHECK(e.data == "n" + e.id);
                                         return ids.size() < 6;
                                     },
                                     {.reconnect = true});
        REQUIRE(r);
        CHECK(ids == std::vector<std::string>{"1", "2", "3", "4", "5", "6"});
        // Without reconnect, the end of the stream ends the call.
        ids.clear();
        REQUIRE(client::read_events(c, srv.url("/count"), [&](const client::sse_event& e) {
            ids.push_back(e.id);
            return true;
        }));
        CHECK(ids.size() == 2);

        std::vector<int> values;
        REQUIRE(client::read_json_lines(c, srv.url("/lines"), [&](const nlohmann::json& v) {
            values.push_back(v["i"].get<int>());
            return true;
        }));
        CHECK(values == std::vector<int>{0, 1, 2});

        asio::io_context ctx;
        client::async_client ac(ctx.get_executor());
        std::vector<int> async_values;
        bool done = false;
        asio::co_spawn(
            ctx,
            [&]() -> asio::awaitable<void> {
                auto ar = co_await client::async_read_json_lines(
                    ac, srv.url("/lines"), [&](const nlohmann::json& v) {
                        async_values.push_back(v["i"].get<int>());
                        return true;
                    });
                done = static_cast<bool>(ar);
            },
            asio::detached);
        ctx.run();
        CHECK(done);
        CHECK(async_values == values);

        // An error status is an error carrying the server's message.
        auto missing =
            client::read_events(c, srv.url("/nope"), [](const client::sse_event&) { return true; });
        REQUIRE_FALSE(missing);
        CHECK(missing.error().code == errc::not_found);
        CHECK(missing.error().message.find("no route for GET /nope") != std::string::npos);
    }

    TEST_CASE_TEMPLATE("websocket client: ws+unix and ws URLs - text and binary - close codes - "
                       "a refused upgrade names its status",
                       T, unix_transport, tcp_transport) {
        transport_fixture<T> srv;
        const auto ws_url = [&](const std::string& target) {
            return "ws" + srv.url(target).substr(4); // http+unix://... -> ws+unix://...
        };
        auto ws = client::websocket::connect(ws_url("/ws/echo"));
        REQUIRE_MESSAGE(ws, (ws ? "" : ws.error().message));
        REQUIRE(ws->send("hello"));
        auto m = ws->receive();
        REQUIRE(m);
        REQUIRE(*m);
        CHECK((*m)->data == "hello");
        CHECK_FALSE((*m)->binary);
        const std::string bytes("\0\1\xff", 3);
        REQUIRE(ws->send(bytes, true));
        m = ws->receive();
        REQUIRE((m && *m));
        CHECK((*m)->data == bytes);
        CHECK((*m)->binary);
        REQUIRE(ws->close(1000));

        // A topic over WebSocket, published over HTTP.
        auto sub = client::websocket::connect(ws_url("/topics/ws-client"));
        REQUIRE(sub);
        client::client c;
        REQUIRE(eventually([&] {
            auto r = c.post(srv.url("/topics/ws-client"), "news", "text/plain");
            return r && r->status == 200;
        }));
        auto got = sub->receive();
        REQUIRE((got && *got));
        CHECK(nlohmann::json::parse((*got)->data)["data"] == "news");

        auto refused = client::websocket::connect(ws_url("/nope"));
        REQUIRE_FALSE(refused);
        CHECK(refused.error().code == errc::not_found);
        CHECK(refused.error().message.find("404 Not Found") != std::string::npos);
        auto nobody = client::websocket::connect("ws+unix://%2Fno%2Fsuch.sock/ws");
        REQUIRE_FALSE(nobody);
        CHECK(nobody.error().code == errc::no_such_socket);
    }
}
