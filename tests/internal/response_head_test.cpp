// format_head() against Beast's own serializer, over a corpus of responses: the bytes must be
// the same, or format_head() must decline (and Beast writes).

#include "response_head.hpp"

#include <doctest/doctest.h>

#include <boost/beast/http/write.hpp>

#include <sstream>
#include <vector>

using namespace udshttp::service;
using namespace udshttp::service::detail;

namespace {

constexpr std::string_view date = "Mon, 23 Nov 2026 23:58:21 GMT";

// What Beast writes for the head of `res` once Server, Date, Content-Length and the
// connection option are set on it as the session sets them.
std::string beast_head(response res, std::optional<std::uint64_t> length, bool keep_alive) {
    stamp(res, date);
    if (length)
        res.content_length(*length);
    res.keep_alive(keep_alive);
    std::ostringstream out;
    out << res.base();
    return out.str();
}

struct sample {
    const char* name;
    response res;
};

std::vector<sample> corpus() {
    std::vector<sample> out;
    const auto add = [&](const char* name, unsigned version, unsigned status, auto&& fill) {
        response r{static_cast<http::status>(status), version};
        fill(r);
        out.push_back({name, std::move(r)});
    };
    const auto none = [](response&) {};
    add("plain 200", 11, 200, none);
    add("1.0 200", 10, 200, none);
    add("404 json", 11, 404, [](response& r) {
        r.set(http::field::content_type, "application/json");
        r.reason("Not Found");
    });
    add("own reason", 11, 200, [](response& r) { r.reason("Fine Thanks"); });
    add("unknown status with a reason", 11, 599, [](response& r) { r.reason("Mine"); });
    add("413", 11, 413, none);
    add("204", 11, 204, none);
    add("own Server", 11, 200, [](response& r) { r.set(http::field::server, "mine/1"); });
    add("own Date", 11, 200, [](response& r) { r.set(http::field::date, "yesterday"); });
    add("custom fields", 11, 201, [](response& r) {
        r.set("X-Trace", "abc");
        r.insert("Set-Cookie", "a=1");
        r.insert("Set-Cookie", "b=2");
        r.set(http::field::cache_control, "no-store");
    });
    add("empty value", 10, 500, [](response& r) { r.set("X-Empty", ""); });
    return out;
}

} // namespace

TEST_SUITE("internal") {

    TEST_CASE("format_head writes what Beast's serializer writes") {
        for (auto& s : corpus()) {
            for (const bool keep_alive : {true, false}) {
                for (const auto length :
                     {std::optional<std::uint64_t>{}, std::optional<std::uint64_t>{0},
                      std::optional<std::uint64_t>{1234567}}) {
                    CAPTURE(s.name);
                    CAPTURE(keep_alive);
                    CAPTURE(length.value_or(UINT64_MAX));
                    std::string ours;
                    REQUIRE(format_head(s.res, length, keep_alive, date, ours));
                    CHECK(ours == beast_head(s.res, length, keep_alive));
                }
            }
        }
    }

    TEST_CASE("format_head: RFC 9110's reason phrases - none for a status it does not name") {
        std::string out;
        REQUIRE(format_head(response{http::status::payload_too_large, 11}, 0, true, date, out));
        CHECK(out.starts_with("HTTP/1.1 413 Content Too Large\r\n"));
        REQUIRE(format_head(response{static_cast<http::status>(599), 11}, 0, true, date, out));
        CHECK(out.starts_with("HTTP/1.1 599 \r\n")); // not Beast's "<unknown-status>"
    }

    TEST_CASE("format_head declines a handler's own framing or connection fields") {
        response chunked{http::status::ok, 11};
        chunked.set(http::field::transfer_encoding, "chunked");
        response upgrade{http::status::ok, 11};
        upgrade.set(http::field::connection, "upgrade");
        std::string out;
        CHECK_FALSE(format_head(chunked, std::nullopt, true, date, out));
        CHECK_FALSE(format_head(upgrade, 5, true, date, out));
    }

    TEST_CASE("finish: no body for HEAD - 1xx - 204 - 304") {
        response res{http::status::ok, 11};
        res.body() = "abc";
        res.set(http::field::content_length, "99");
        CHECK(finish(res, http::verb::get) == 3u);
        CHECK(res.count(http::field::content_length) == 0);
        CHECK(res.body() == "abc");
        CHECK(finish(res, http::verb::head) == 3u);
        CHECK(res.body().empty());
        for (const unsigned status : {100u, 204u, 304u}) {
            response r{static_cast<http::status>(status), 11};
            r.body() = "x";
            CHECK_FALSE(finish(r, http::verb::get).has_value());
            CHECK(r.body().empty());
        }
    }

} // TEST_SUITE
