#include "rejection.hpp"

#include <udshttp/proto/text.hpp>

#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>

#include <algorithm>
#include <cctype>

namespace udshttp::service::detail {
namespace {

namespace http = boost::beast::http;

std::string limit_message(rejection r, const server_options& o) {
    if (r == rejection::header_too_large)
        return "request header block exceeds the limit of " + std::to_string(o.max_header_bytes) +
               " bytes";
    return "request body exceeds the limit of " + std::to_string(o.max_body_bytes) + " bytes";
}

refusal malformed(std::string why) {
    return {rejection::malformed, "malformed request: " + std::move(why)};
}

} // namespace

std::optional<refusal> refusal_for(const boost::system::error_code& ec, const server_options& o,
                                   std::size_t read_cap) {
    if (ec == http::error::header_limit)
        return refusal{rejection::header_too_large, limit_message(rejection::header_too_large, o)};
    if (ec == http::error::body_limit)
        return refusal{rejection::body_too_large, limit_message(rejection::body_too_large, o)};
    if (ec == http::error::buffer_overflow)
        return malformed("a chunk-size line or trailer section does not fit the read buffer of " +
                         std::to_string(read_cap) + " bytes");
    // Any other parser error is the request's fault; the end of input is nobody's.
    if (ec.category() != http::make_error_code(http::error::bad_method).category() ||
        ec == http::error::end_of_stream || ec == http::error::partial_message ||
        ec == http::error::need_more || ec == http::error::need_buffer)
        return std::nullopt;
    return malformed(ec.message());
}

std::optional<refusal> check_head(const request_parser& parser, const server_options& o) {
    const auto& msg = parser.get();
    // RFC 9112 6.1: Transfer-Encoding in a 1.0 message is faulty framing (1.0 has none).
    if (msg.version() < 11 && msg.count(http::field::transfer_encoding) != 0)
        return malformed("Transfer-Encoding in an HTTP/1.0 request");
    // RFC 9112 6.3: a request whose transfer codings do not end in chunked has no knowable
    // length (Beast would read to EOF): 400 and close, the request-smuggling rule.
    if (msg.count(http::field::transfer_encoding) != 0 && !parser.chunked())
        return malformed("Transfer-Encoding '" + proto::quote(msg[http::field::transfer_encoding]) +
                         "' does not end in chunked");
    // RFC 9112 6.3: Content-Length and Transfer-Encoding together is how requests are
    // smuggled past a filter (CVE-2024-41110 used Content-Length: 0 with a chunked body): 400.
    if (msg.count(http::field::transfer_encoding) != 0 &&
        msg.count(http::field::content_length) != 0)
        return malformed("both Content-Length and Transfer-Encoding");
    // RFC 9112 3.2: 400 for a 1.1 request without Host, for more than one Host field line,
    // and for a Host that is not uri-host [":" port].
    const auto hosts = msg.count(http::field::host);
    if (msg.version() >= 11 && hosts == 0)
        return malformed("HTTP/1.1 request without a Host field");
    if (hosts > 1)
        return malformed("more than one Host field");
    if (hosts == 1 && !valid_host(msg[http::field::host]))
        return malformed("invalid Host '" + proto::quote(msg[http::field::host]) + "'");
    // RFC 9112 3.2: a fragment is never sent; a '#' in the target is not a request target.
    if (msg.target().find('#') != std::string_view::npos)
        return malformed("'#' in the request target");
    // --max-body-bytes, judged on Content-Length before any body byte is read (so
    // Expect: 100-continue gets the 413 instead of a 100); a chunked body is cut off at it.
    if (const auto length = parser.content_length(); length && *length > o.max_body_bytes)
        return refusal{rejection::body_too_large, limit_message(rejection::body_too_large, o)};
    return std::nullopt;
}

refusal header_timeout(const server_options& o) {
    return {rejection::header_timeout, "request header not received within " +
                                           std::to_string(o.header_timeout.count()) + " ms"};
}

refusal too_many_connections(const server_options& o) {
    return {rejection::max_connections,
            "too many connections (limit " + std::to_string(o.max_connections) + ")"};
}

refusal not_allowed(std::string_view why) {
    return {rejection::forbidden, "this peer may not call: " + std::string(why)};
}

bool valid_host(std::string_view h) noexcept {
    const auto sub_delim_or_unreserved = [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) ||
               std::string_view("-._~!$&'()*+,;=").find(c) != std::string_view::npos;
    };
    std::size_t i = 0;
    if (!h.empty() && h.front() == '[') {
        const auto close = h.find(']');
        if (close == std::string_view::npos || close == 1)
            return false;
        for (i = 1; i < close; ++i)
            if (!sub_delim_or_unreserved(h[i]) && h[i] != ':')
                return false;
        i = close + 1;
    } else {
        for (; i < h.size() && h[i] != ':'; ++i) {
            if (h[i] == '%') {
                if (i + 2 >= h.size() || !std::isxdigit(static_cast<unsigned char>(h[i + 1])) ||
                    !std::isxdigit(static_cast<unsigned char>(h[i + 2])))
                    return false;
                i += 2;
            } else if (!sub_delim_or_unreserved(h[i])) {
                return false;
            }
        }
    }
    if (i == h.size())
        return true;
    if (h[i] != ':')
        return false;
    return std::all_of(h.begin() + static_cast<std::ptrdiff_t>(i) + 1, h.end(),
                       [](char c) { return c >= '0' && c <= '9'; });
}

} // namespace udshttp::service::detail
