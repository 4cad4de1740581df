// The rejection table and the checks that choose a rejection, without sockets.

#include "rejection.hpp"

#include <doctest/doctest.h>

#include <boost/asio/error.hpp>
#include <boost/beast/http/error.hpp>

#include <set>

using namespace udshttp;
using namespace udshttp::service;
using namespace udshttp::service::detail;
namespace http = boost::beast::http;

namespace {

// Parses `text` as a request head; the parser's error, if any, in ec.
struct parsed {
    request_parser parser;
    boost::system::error_code ec;
    explicit parsed(std::string_view text) {
        parser.eager(true);
        parser.put(boost::asio::buffer(text.data(), text.size()), ec);
    }
};

} // namespace

TEST_SUITE("internal") {

    TEST_CASE("each rejection has its own status and metric label") {
        const std::pair<rejection, unsigned> expected[] = {
            {rejection::max_connections, 503}, {rejection::forbidden, 403},
            {rejection::malformed, 400},       {rejection::header_too_large, 431},
            {rejection::body_too_large, 413},  {rejection::header_timeout, 408},
            {rejection::gateway_denied, 403},  {rejection::upstream_failed, 502},
            {rejection::upstream_timeout, 504}};
        std::set<std::string_view> labels;
        for (const auto& [r, status] : expected) {
            CHECK(http_status(row(r).error) == status);
            labels.insert(row(r).metric);
        }
        CHECK(labels.size() == std::size(rejections));
    }

    TEST_CASE("parser errors map to rejections that name the limit") {
        const server_options o{.max_header_bytes = 1000, .max_body_bytes = 5000};
        auto r = refusal_for(http::error::header_limit, o, 1234);
        REQUIRE(r);
        CHECK(r->why == rejection::header_too_large);
        CHECK(r->message == "request header block exceeds the limit of 1000 bytes");
        r = refusal_for(http::error::body_limit, o, 1234);
        REQUIRE(r);
        CHECK(r->why == rejection::body_too_large);
        CHECK(r->message.find("5000 bytes") != std::string::npos);
        r = refusal_for(http::error::buffer_overflow, o, 1234);
        REQUIRE(r);
        CHECK(r->why == rejection::malformed);
        CHECK(r->message.find("read buffer of 1234 bytes") != std::string::npos);
        r = refusal_for(http::error::bad_method, o, 1234);
        REQUIRE(r);
        CHECK(r->message.starts_with("malformed request: "));
        // The peer going away is nobody's fault: no answer.
        for (const auto e : {http::error::end_of_stream, http::error::partial_message})
            CHECK_FALSE(refusal_for(e, o, 1234));
        CHECK_FALSE(refusal_for(boost::asio::error::connection_reset, o, 1234));
    }

    TEST_CASE("check_head: RFC 9112 framing - Host - the body limit") {
        const server_options o{.max_body_bytes = 10};
        const auto verdict = [&](std::string_view head) -> std::string {
            parsed p(head);
            REQUIRE_FALSE(p.ec);
            auto r = check_head(p.parser, o);
            return r ? r->message : "ok";
        };
        CHECK(verdict("GET / HTTP/1.1\r\nHost: a\r\n\r\n") == "ok");
        CHECK(verdict("GET / HTTP/1.0\r\n\r\n") == "ok");
        CHECK(verdict("GET / HTTP/1.1\r\n\r\n") ==
              "malformed request: HTTP/1.1 request without a Host field");
        CHECK(verdict("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n") ==
              "malformed request: more than one Host field");
        CHECK(verdict("GET / HTTP/1.1\r\nHost: a b\r\n\r\n") ==
              "malformed request: invalid Host 'a b'");
        CHECK(verdict("GET /#x HTTP/1.1\r\nHost: a\r\n\r\n") ==
              "malformed request: '#' in the request target");
        CHECK(verdict("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n") ==
              "malformed request: Transfer-Encoding in an HTTP/1.0 request");
        CHECK(verdict("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n") ==
              "malformed request: Transfer-Encoding 'gzip' does not end in chunked");
        CHECK(verdict("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n") ==
              "request body exceeds the limit of 10 bytes");
        CHECK(verdict("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n") == "ok");
    }

    TEST_CASE("valid_host: uri-host with an optional port") {
        for (const auto* good : {"", "localhost", "[::1]:80", "127.0.0.1:8080", "a-b.c_d~", "%41"})
            CHECK_MESSAGE(valid_host(good), good);
        for (const auto* bad : {"a b", "a/b", "x:8o", "[::1", "[]", "a@b", "%4", "%zz"})
            CHECK_FALSE_MESSAGE(valid_host(bad), bad);
    }

    TEST_CASE("the refusals at accept time say why") {
        const server_options o{.max_connections = 7};
        CHECK(too_many_connections(o).message == "too many connections (limit 7)");
        CHECK(not_allowed("uid 5").message == "this peer may not call: uid 5");
        CHECK(header_timeout(server_options{.header_timeout = std::chrono::milliseconds(250)})
                  .message == "request header not received within 250 ms");
    }

} // TEST_SUITE
