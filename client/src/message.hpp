#pragma once

// The request as it goes on the wire, and the checks that keep a caller's bytes from
// changing its meaning.

#include <udshttp/client/client.hpp>
#include <udshttp/proto/url.hpp>

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>

#include <optional>
#include <string>

namespace udshttp::client::detail {

// Why the request must not go out as it is, or nullopt. A CR or LF in a method, name or value
// would end the line early and let the rest pass for fields or a second request (header
// injection, request smuggling); every caller of the library is protected here.
std::optional<std::string> refuse_to_send(const request& req);

// The request head: method, target, the caller's fields in order, then Host, User-Agent and
// the framing (Content-Length, or chunked for a source of unknown length) where not given.
boost::beast::http::request<boost::beast::http::buffer_body>
make_message(const request& req, const proto::url& u, const client_options& options);

// The error for a response whose status is not 2xx: "WHAT: 404 Not Found: <the server's
// message>", with the errc of the server's error code (else of the status).
error answer_error(const std::string& what, const response& r);

// GET, HEAD, PUT, DELETE, OPTIONS, TRACE (RFC 9110 9.2.2).
bool idempotent(std::string_view method) noexcept;

} // namespace udshttp::client::detail
