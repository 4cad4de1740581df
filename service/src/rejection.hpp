#pragma once

// Every way a connection or request is turned away before a route answers it, in one table:
// the error answered (and so the status), and the reason label of udshttp_rejected_total.
// The functions below decide which rejection a parse failure or a request head deserves and
// say why in one line that names the limit.

#include <udshttp/proto/error.hpp>
#include <udshttp/service/server.hpp>

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <cstddef>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>

namespace udshttp::service::detail {

enum class rejection : unsigned {
    max_connections,  // over --max-connections
    forbidden,        // peer not in --allow-uid/--allow-gid
    malformed,        // the parser or the head checks refused the request
    header_too_large, // the head is over --max-header-bytes
    body_too_large,   // the body is over --max-body-bytes
    header_timeout,   // the head did not arrive within --header-timeout
    gateway_denied,   // the gateway's rules refused the request
    upstream_failed,  // the gateway's upstream is down or answered badly (502)
    upstream_timeout, // the gateway's upstream did not answer in time (504)
    count_
};

struct rejection_row {
    errc error;              // what is answered (its status comes from proto's error table)
    std::string_view metric; // the reason label
};
constexpr rejection_row rejections[] = {
    {errc::service_unavailable, "max_connections"},
    {errc::forbidden, "forbidden"},
    {errc::bad_request, "malformed"},
    {errc::header_fields_too_large, "header_too_large"},
    {errc::payload_too_large, "body_too_large"},
    {errc::request_timeout, "header_timeout"},
    {errc::forbidden, "gateway_denied"},
    {errc::bad_gateway, "upstream_failed"},
    {errc::gateway_timeout, "upstream_timeout"},
};
static_assert(std::size(rejections) == std::size_t(rejection::count_));

constexpr const rejection_row& row(rejection r) noexcept {
    return rejections[std::size_t(r)];
}

// A rejection and the one-line message its answer carries.
struct refusal {
    rejection why;
    std::string message;
};

using request_parser = boost::beast::http::request_parser<boost::beast::http::string_body>;

// What a failed parse or read is answered with; nullopt: close without answering (the peer
// went away or sent nothing). `read_cap` is the read buffer's bound, named when a line does
// not fit it.
std::optional<refusal> refusal_for(const boost::system::error_code& ec, const server_options& o,
                                   std::size_t read_cap);

// The checks a request head must pass before its body is read or routed (RFC 9112 framing,
// Host, the body limit judged on Content-Length); nullopt when it passes.
std::optional<refusal> check_head(const request_parser& parser, const server_options& o);

refusal header_timeout(const server_options& o);
refusal too_many_connections(const server_options& o);
refusal not_allowed(std::string_view why);

// RFC 9110 7.2 / RFC 3986 3.2.2: Host = uri-host [ ":" port ]; empty is allowed.
bool valid_host(std::string_view host) noexcept;

} // namespace udshttp::service::detail
