#pragma once

/// @file
/// URLs <-> {endpoint, target}.
///
///   http+unix://%2Frun%2Fapp.sock/hello?x=1   socket path, percent-encoded as the authority
///   http+unix://%40name/hello                  abstract socket (%00name works too)
///   http://127.0.0.1:8080/hello                TCP (IPv6 as [::1]; port 80 when omitted)
///   ws+unix://..., ws://...                    the same endpoints, for a WebSocket
///
/// Percent-decoding is plain RFC 3986 decoding: a '+' stays a '+'.

#include <udshttp/proto/endpoint.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace udshttp::proto {

/// A parsed request URL.
struct url {
    endpoint where{};     ///< where to connect
    std::string target{}; ///< origin-form request target, still percent-encoded: "/hello?x=1"
    std::string
        host{}; ///< the Host header to send: "localhost" over Unix sockets, else host[:port]

    /// Parses an http+unix:// or http:// URL (or ws+unix://, ws://). Errors name the URL and
    /// what is wrong.
    static result<url> parse(std::string_view text);

    /// The canonical URL string (http+unix://%2F.../target or http://host:port/target).
    std::string to_string() const;
};

/// The URL that reaches `target` on `where` (a Unix path, abstract name or TCP endpoint).
std::string make_url(const endpoint& where, std::string_view target = "/");

/// Percent-encodes everything but RFC 3986 unreserved characters ("/run/a.sock" ->
/// "%2Frun%2Fa.sock").
std::string percent_encode(std::string_view text);

/// RFC 3986 percent-decoding; nullopt when a '%' is not followed by two hex digits.
std::optional<std::string> percent_decode(std::string_view text);

} // namespace udshttp::proto
