#pragma once

/// @file
/// What a route handler sees (request) and fills in (response).

#include <udshttp/proto/api.hpp>
#include <udshttp/proto/error.hpp>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace udshttp::service {

namespace http = boost::beast::http;

class route_match;

/// A request target split into its path and query, both still percent-encoded. An
/// absolute-form target ("http://host/a?b", RFC 9112 3.2.2) gives its path ("/a"), or "/"
/// when it has none.
struct target_parts {
    std::string_view path{};  ///< "/hello/Ada%20L"
    std::string_view query{}; ///< without '?'; empty if none
};
/// Splits a request target (see target_parts).
target_parts split_target(std::string_view target) noexcept;

/// The HTTP response a handler fills in. It arrives with status 200, the request's HTTP
/// version and keep-alive, and a Server field; the session sets Content-Length.
using response = http::response<http::string_body>;

/// One request as a handler sees it: the message, the path parameters and the peer.
/// @par Thread safety
/// Valid only during the handler call, on the connection's worker thread.
class request {
public:
    using message_type = http::request<http::string_body>;

    /// A request for `message` from `peer`; `match`, when given, is what router::resolve()
    /// found for it and supplies param(). All three must outlive the request.
    request(const message_type& message, const proto::peer_info& peer,
            const route_match* match = nullptr) noexcept
        : message_(message), peer_(peer), match_(match), target_(split_target(message.target())) {}

    /// The whole HTTP message (method, target, fields, body).
    const message_type& message() const noexcept { return message_; }
    /// The method.
    http::verb method() const noexcept { return message_.method(); }
    /// The path part of the target, still percent-encoded: "/hello/Ada%20L".
    std::string_view path() const noexcept { return target_.path; }
    /// The query part of the target without '?', still percent-encoded; empty if none.
    std::string_view query() const noexcept { return target_.query; }
    /// The body.
    const std::string& body() const noexcept { return message_.body(); }
    /// Who sent it: pid/uid/gid over Unix sockets, address/port over TCP.
    const proto::peer_info& peer() const noexcept { return peer_; }

    /// The percent-decoded value of path parameter {name}; empty if the route has none.
    std::string_view param(std::string_view name) const noexcept;
    /// True when the Accept field names `media_type` ("text/event-stream"; compared without
    /// regard to case; parameters such as q= are not weighed).
    bool accepts(std::string_view media_type) const noexcept;
    /// True when the Accept field asks for application/json.
    bool wants_json() const noexcept { return accepts("application/json"); }
    /// The percent-decoded value of query parameter `name` (its first occurrence; "" for a
    /// bare "name"), or nullopt if the query has none or its encoding is invalid.
    std::optional<std::string> query_param(std::string_view name) const;

private:
    const message_type& message_;
    const proto::peer_info& peer_;
    const route_match* match_;
    target_parts target_;
};

/// A handler that sees the request body as it arrives and answers while it arrives, in memory
/// bounded by one piece (64 KiB), whatever the body's size: echo, hashing, storing an upload.
/// One object per request, created by the route's factory; all calls on the worker thread.
/// A stream route's body is bound by max_body_bytes like any other (judged on Content-Length
/// before a byte is read, or counted as a chunked body arrives); what it never does is sit
/// whole in memory. The idle timeout bounds every pause.
class stream_handler {
public:
    virtual ~stream_handler() = default;
    /// The request head is complete (req.body() is empty). Set the status and fields on res
    /// (its body is ignored). Return the response body's exact length if known, or nullopt to
    /// send it chunked (HTTP/1.1) or delimited by close (HTTP/1.0).
    virtual std::optional<std::uint64_t> begin(const request& req, response& res) = 0;
    /// The next piece of the request body; append what to send now to out.
    virtual void data(std::string_view in, std::string& out) = 0;
    /// The body is complete; append any final output to out.
    virtual void end(std::string& out) { (void)out; }
    /// Optional. A body with a Content-Length up to 1 MiB is read whole before the handler
    /// sees it; whole() may then turn `body` into the response body in place and return true
    /// (echo does, and copies nothing). Return false (the default) to get data() and end().
    virtual bool whole(std::string& body) {
        (void)body;
        return false;
    }
};

/// Sets a text/plain body.
void set_text(response& res, std::string text);
/// Sets an application/json body.
void set_json(response& res, const nlohmann::json& body);
/// Turns the response into a JSON error answer: status from the error table, body
/// {"error":{"status":..,"reason":..,"code":..,"message":..}}.
void set_error(response& res, errc e, std::string message = {});

} // namespace udshttp::service
