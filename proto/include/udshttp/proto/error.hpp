#pragma once

/// @file
/// The error model both ends share: one enum, one category, and one table that maps each error
/// to an HTTP status and a stable string code (the `code` field of every JSON error body).

#include <boost/system/error_code.hpp>

#include <optional>
#include <string_view>
#include <type_traits>

namespace udshttp {

/// Every error udshttp itself reports. Values are stable; new ones are appended.
enum class errc {
    // Parsing, in proto (no I/O).
    invalid_endpoint = 1, ///< an endpoint string does not follow the grammar
    invalid_url,          ///< a URL is malformed
    unsupported_scheme,   ///< a URL scheme other than http or http+unix
    socket_path_too_long, ///< a Unix socket path exceeds sun_path
    invalid_json,         ///< a body is not the JSON message that was expected

    // Answers the server gives; each maps to the HTTP status in its comment.
    bad_request,             ///< 400
    forbidden,               ///< 403
    not_found,               ///< 404
    method_not_allowed,      ///< 405
    request_timeout,         ///< 408
    payload_too_large,       ///< 413
    header_fields_too_large, ///< 431
    internal_error,          ///< 500
    service_unavailable,     ///< 503

    // Transport failures the client reports.
    no_such_socket,     ///< connect: ENOENT, no socket file at the path
    connection_refused, ///< connect: ECONNREFUSED, a stale socket or nothing listening
    permission_denied,  ///< connect: EACCES/EPERM on the socket file or its directory
    connect_failed,     ///< connect failed for another reason (the errno is in the message)
    connect_timeout,    ///< the connect deadline fired
    timeout,            ///< the total request deadline fired
    connection_closed,  ///< the peer closed the connection before a complete response
    protocol_error,     ///< the peer's response is not valid HTTP/1.1
    io_error,           ///< reading or writing a local file or the connection failed

    // Appended later.
    invalid_request, ///< a method, header name or value the client refuses to send (CR, LF...)
    bad_gateway,     ///< 502: the gateway's upstream is down or answered with broken HTTP
    gateway_timeout, ///< 504: the gateway's upstream did not answer in time
};

/// The error category of udshttp::errc ("udshttp").
const boost::system::error_category& error_category() noexcept;

/// Makes an error_code from an errc (found by ADL).
inline boost::system::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), error_category()};
}

/// The HTTP status an errc is answered with; 500 for errors that are not HTTP answers.
unsigned http_status(errc e) noexcept;

/// The stable lower_snake string used as the `code` of a JSON error body ("not_found").
std::string_view code_string(errc e) noexcept;

/// The errc for a `code` string of a JSON error body, if it is one of ours.
std::optional<errc> errc_from_code_string(std::string_view code) noexcept;

/// The errc that best describes an HTTP status >= 400, if there is one.
std::optional<errc> errc_from_http_status(unsigned status) noexcept;

} // namespace udshttp

template <> struct boost::system::is_error_code_enum<udshttp::errc> : std::true_type {};

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

#include <string>

namespace udshttp {

/// An error with the one-line sentence that explains it: what failed, and the path, limit or
/// errno meaning ("connect to unix:/run/app.sock: no such socket file (is the server running?)").
struct error {
    boost::system::error_code code{}; ///< usually a udshttp::errc
    std::string message{};            ///< complete, one line, for people

    /// Builds an error whose message is `context: <meaning of e>`.
    static error from(errc e, std::string_view context);
};

/// Lets boost::system::result<T, error>::value() throw boost::system::system_error.
[[noreturn]] void throw_exception_from_error(const error& e, const boost::source_location& loc);

/// The result type of every fallible udshttp function that is not an I/O completion.
template <class T> using result = boost::system::result<T, error>;

} // namespace udshttp
