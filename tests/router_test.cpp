// The router without sockets: resolve() finds the route and its params, dispatch() answers.

#include <udshttp/service/router.hpp>

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <stdexcept>

using namespace udshttp::service;

namespace {

void noop(const request&, response&) {}

// A request for `target` sent to `r`, resolved and dispatched as the session does it.
struct call {
    http::request<http::string_body> msg;
    udshttp::proto::peer_info peer;
    route_match match;
    response res{http::status::ok, 11};
    router::outcome outcome;

    call(const router& r, http::verb method, std::string_view target) {
        msg.method(method);
        msg.target(target);
        match = r.resolve(method, target);
        const request req(msg, peer, &match);
        outcome = r.dispatch(match, req, res);
    }
    std::string code() const {
        return nlohmann::json::parse(res.body())["error"]["code"].get<std::string>();
    }
};

} // namespace

TEST_SUITE("service") {

    TEST_CASE("router: literal and {param} routes - percent-decoded params") {
        router r;
        std::string seen;
        r.get("/hello", [&](const request&, response&) { seen = "hello"; });
        r.get("/hello/{name}",
              [&](const request& req, response&) { seen = std::string(req.param("name")); });
        r.get("/items/{id}/parts/{part}", [&](const request& req, response&) {
            seen = std::string(req.param("id")) + "|" + std::string(req.param("part")) + "|" +
                   std::string(req.param("missing"));
        });

        call plain(r, http::verb::get, "/hello");
        CHECK(plain.outcome.by_route);
        CHECK(plain.match.index() == 0u);
        CHECK(seen == "hello");

        call named(r, http::verb::get, "/hello/Ada%20Lovelace?x=1");
        CHECK(named.outcome.by_route);
        CHECK(seen == "Ada Lovelace");
        CHECK(named.match.param("name") == "Ada Lovelace");

        call two(r, http::verb::get, "/items/7/parts/a%2Fb");
        CHECK(two.match.index() == 2u);
        CHECK(seen == "7|a/b|");
    }

    TEST_CASE("router: an absolute-form target is matched by its path") {
        router r;
        r.get("/hello", noop);
        r.get("/", noop);
        CHECK(r.resolve(http::verb::get, "http://localhost/hello?x").index() == 0u);
        CHECK(r.resolve(http::verb::get, "http://localhost").index() == 1u);
        CHECK(r.resolve(http::verb::get, "HTTP://h?q").index() == 1u);
    }

    TEST_CASE("router: dispatch answers 404 - 405 with Allow - HEAD by GET") {
        router r;
        r.get("/echo", noop);
        r.post("/echo", noop);
        r.add(http::verb::put, "/echo", noop);

        call none(r, http::verb::get, "/nope");
        CHECK_FALSE(none.match.found());
        CHECK_FALSE(none.outcome.by_route);
        CHECK(none.res.result_int() == 404);
        CHECK(none.code() == "not_found");
        CHECK(none.res.body().find("no route for GET /nope") != std::string::npos);

        call wrong(r, http::verb::delete_, "/echo");
        CHECK_FALSE(wrong.match.found());
        CHECK(wrong.res.result_int() == 405);
        CHECK(wrong.res[http::field::allow] == "GET, POST, PUT, HEAD");
        CHECK(wrong.res.body().find("DELETE is not allowed on /echo") != std::string::npos);

        call head(r, http::verb::head, "/echo");
        CHECK(head.outcome.by_route);
        CHECK(head.res.result_int() == 200);
    }

    TEST_CASE("router: segments match whole - a {param} is never empty") {
        router q;
        q.get("/hello/{name}", noop);
        for (const auto* target : {"/hello/", "/hello/a/b", "/hello", "hello/x"}) {
            CAPTURE(target);
            CHECK_FALSE(q.resolve(http::verb::get, target).found());
        }
    }

    TEST_CASE("router: bad percent-encoding in a param is a 400 - not decoded") {
        router r;
        bool ran = false;
        r.get("/hello/{name}", [&](const request&, response&) { ran = true; });
        call bad(r, http::verb::get, "/hello/%zz");
        CHECK_FALSE(bad.match.found());
        CHECK_FALSE(ran);
        CHECK(bad.res.result_int() == 400);
        CHECK(bad.res.body().find("invalid percent-encoding in path '/hello/%zz'") !=
              std::string::npos);
    }

    TEST_CASE("router: a handler that throws becomes a 500 and says why") {
        router r;
        r.get("/boom", [](const request&, response& res) {
            res.set(http::field::content_type, "text/html");
            res.body() = "half an answer";
            throw std::runtime_error("disk on fire");
        });
        call boom(r, http::verb::get, "/boom");
        CHECK_FALSE(boom.outcome.by_route);
        CHECK(boom.outcome.failure == "disk on fire");
        CHECK(boom.res.result_int() == 500);
        CHECK(boom.res[http::field::content_type] == "application/json");
        CHECK(boom.code() == "internal_error");
    }

    TEST_CASE("router: stream routes open a stream handler - dispatch refuses them") {
        struct sink : stream_handler {
            std::optional<std::uint64_t> begin(const request&, response&) override { return 0; }
            void data(std::string_view, std::string&) override {}
        };
        router r;
        r.add_stream(http::verb::post, "/up", [] { return std::make_unique<sink>(); });
        r.get("/plain", noop);
        const auto m = r.resolve(http::verb::post, "/up");
        CHECK(m.found());
        CHECK(m.streams());
        CHECK(r.open_stream(m) != nullptr);
        CHECK(r.open_stream(r.resolve(http::verb::get, "/plain")) == nullptr);
        call plain_call(r, http::verb::post, "/up");
        CHECK(plain_call.res.result_int() == 500);
    }

    TEST_CASE("router: add() tells the handler shapes apart - heartbeat() fits stream writers "
              "only") {
        router r;
        r.get("/plain", noop);
        r.get("/async", [](const request&, response&) -> awaitable<> { co_return; });
        r.get("/writer", [](const request&, response_stream&) -> awaitable<> {
             co_return;
         }).heartbeat(std::chrono::seconds(15));
        CHECK(r.resolve(http::verb::get, "/plain").kind() == route_kind::plain);
        CHECK(r.resolve(http::verb::get, "/async").kind() == route_kind::async);
        const auto w = r.resolve(http::verb::get, "/writer");
        CHECK(w.kind() == route_kind::writer);
        CHECK(w.heartbeat() == std::chrono::seconds(15));
        CHECK(r.resolve(http::verb::get, "/async").heartbeat().count() == 0);
        // Only a plain route is dispatched; the others are the session's to run.
        call async_call(r, http::verb::get, "/async");
        CHECK(async_call.res.result_int() == 500);
        CHECK_THROWS_AS(r.heartbeat(std::chrono::seconds(0)), std::invalid_argument);
        r.get("/plain2", noop);
        CHECK_THROWS_AS(r.heartbeat(std::chrono::seconds(1)), std::logic_error);
        CHECK_THROWS_AS(r.get("/empty", async_handler{}), std::invalid_argument);
        CHECK_THROWS_AS(r.get("/empty", stream_writer{}), std::invalid_argument);
        std::size_t writers = 0;
        r.for_each([&](const route_view& v) { writers += v.writes_stream; });
        CHECK(writers == 1);
    }

    TEST_CASE("router: upgrade handlers join a route of the same method and pattern - or stand "
              "alone with 426") {
        router r;
        r.get("/live", noop);
        r.get("/live", [](const request&, websocket&) -> awaitable<> { co_return; });
        r.get("/ws-only", [](const request&, websocket&) -> awaitable<> {
             co_return;
         }).describe({.summary = "only a WebSocket"});
        const auto live = r.resolve(http::verb::get, "/live");
        CHECK(live.kind() == route_kind::plain);
        CHECK(live.websocket());
        CHECK_FALSE(live.upgrades());
        CHECK(r.size() == 2);
        CHECK_THROWS_AS(
            r.get("/live", [](const request&, websocket&) -> awaitable<> { co_return; }),
            std::invalid_argument);
        CHECK_THROWS_AS(r.get("/live", noop), std::invalid_argument);
        call only(r, http::verb::get, "/ws-only");
        CHECK(only.res.result_int() == 426);
        CHECK(only.res[http::field::upgrade] == "websocket");
        std::string summary;
        r.for_each([&](const route_view& v) {
            if (v.pattern == "/ws-only")
                summary = v.doc.summary;
        });
        CHECK(summary == "only a WebSocket");
    }

    TEST_CASE("router: malformed patterns and duplicates are refused") {
        router r;
        r.get("/a/{b}", noop);
        CHECK_THROWS_AS(r.get("/a/{b}", noop), std::invalid_argument);
        CHECK_THROWS_AS(r.get("nope", noop), std::invalid_argument);
        CHECK_THROWS_AS(r.get("/x{y}", noop), std::invalid_argument);
        CHECK_THROWS_AS(r.get("/{a/b}", noop), std::invalid_argument);
        CHECK_THROWS_AS(r.get("/ok", handler{}), std::invalid_argument);
        CHECK(r.contains(http::verb::get, "/a/{b}"));
        CHECK(r.size() == 1);
        std::vector<std::string> seen;
        r.describe({.summary = "B"});
        r.for_each([&](const route_view& v) {
            seen.push_back(std::to_string(v.index) + " " + std::string(v.pattern) + " " +
                           v.doc.summary);
        });
        CHECK(seen == std::vector<std::string>{"0 /a/{b} B"});
    }

    TEST_CASE("request: path - query - Accept negotiation") {
        http::request<http::string_body> msg;
        udshttp::proto::peer_info peer;
        msg.target("/hello/x?a=1&b=2");
        msg.set(http::field::accept, "text/html, Application/JSON;q=0.9");
        const request req(msg, peer);
        CHECK(req.path() == "/hello/x");
        CHECK(req.query() == "a=1&b=2");
        CHECK(req.wants_json());
        CHECK(req.param("any").empty());
        msg.set(http::field::accept, "*/*");
        CHECK_FALSE(request(msg, peer).wants_json());
        CHECK(split_target("http://h").path == "/");
        CHECK(split_target("http://h?q=1").query == "q=1");
    }

} // TEST_SUITE
