#include <udshttp/service/router.hpp>

#include <doctest/doctest.h>

using namespace udshttp::service;

namespace {
struct probe {
    http::request<http::string_body> msg;
    udshttp::proto::peer_info peer;
    request req{msg, peer};
};
void noop(const request&, response&) {}
} // namespace

TEST_SUITE("service") {

    TEST_CASE("router: literal and {param} routes - percent-decoded params") {
        router r;
        int hit = 0;
        r.get("/hello", [&](const request&, response&) { hit = 1; });
        r.get("/hello/{name}", [&](const request&, response&) { hit = 2; });
        r.get("/items/{id}/parts/{part}", [&](const request&, response&) { hit = 3; });
        probe p;
        response res;

        auto m = r.match(http::verb::get, "/hello", p.req);
        REQUIRE(m.target);
        (*m.target)(p.req, res);
        CHECK(hit == 1);

        m = r.match(http::verb::get, "/hello/Ada%20Lovelace", p.req);
        REQUIRE(m.target);
        (*m.target)(p.req, res);
        CHECK(hit == 2);
        CHECK(p.req.param("name") == "Ada Lovelace");

        m = r.match(http::verb::get, "/items/7/parts/a%2Fb", p.req);
        REQUIRE(m.target);
        CHECK(p.req.param("id") == "7");
        CHECK(p.req.param("part") == "a/b");
        CHECK(p.req.param("missing").empty());
    }

    TEST_CASE("router: 404 - 405 with Allow - HEAD answered by GET") {
        router r;
        r.get("/echo", noop);
        r.post("/echo", noop);
        r.add(http::verb::put, "/echo", noop);
        probe p;

        auto none = r.match(http::verb::get, "/nope", p.req);
        CHECK_FALSE(none.target);
        CHECK_FALSE(none.path_known);

        auto wrong = r.match(http::verb::delete_, "/echo", p.req);
        CHECK_FALSE(wrong.target);
        CHECK(wrong.path_known);
        CHECK(wrong.allow == "GET, POST, PUT, HEAD");

        CHECK(r.match(http::verb::head, "/echo", p.req).target);
        // Segments must match whole; a {param} never matches an empty segment.
        router q;
        q.get("/hello/{name}", noop);
        CHECK_FALSE(q.match(http::verb::get, "/hello/", p.req).target);
        CHECK_FALSE(q.match(http::verb::get, "/hello/a/b", p.req).target);
        CHECK_FALSE(q.match(http::verb::get, "/hello", p.req).target);
        CHECK_FALSE(q.match(http::verb::get, "hello/x", p.req).target);
    }

    TEST_CASE("router: bad percent-encoding in a param is flagged - not decoded") {
        router r;
        r.get("/hello/{name}", noop);
        probe p;
        auto m = r.match(http::verb::get, "/hello/%zz", p.req);
        CHECK_FALSE(m.target);
        CHECK(m.bad_encoding);
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
    }

    TEST_CASE("request: path - query - Accept negotiation") {
        probe p;
        p.msg.target("/hello/x?a=1&b=2");
        p.msg.set(http::field::accept, "text/html, Application/JSON;q=0.9");
        request req(p.msg, p.peer);
        CHECK(req.path() == "/hello/x");
        CHECK(req.query() == "a=1&b=2");
        CHECK(req.wants_json());
        p.msg.set(http::field::accept, "*/*");
        CHECK_FALSE(request(p.msg, p.peer).wants_json());
    }

} // TEST_SUITE
