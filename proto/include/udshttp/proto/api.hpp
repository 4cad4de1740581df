#pragma once

/// @file
/// The built-in routes and the JSON messages both ends agree on. Every message has
/// to_json/from_json for nlohmann::json, and decode<T>() turns a body into a message or an error.

#include <udshttp/proto/error.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace udshttp::proto {

/// Route paths of the built-in routes.
namespace paths {
inline constexpr std::string_view root = "/";
inline constexpr std::string_view hello = "/hello";
inline constexpr std::string_view hello_name = "/hello/{name}";
inline constexpr std::string_view echo = "/echo";
inline constexpr std::string_view healthz = "/healthz";
inline constexpr std::string_view metrics = "/metrics";
inline constexpr std::string_view openapi = "/openapi.json";
inline constexpr std::string_view topic = "/topics/{name}";
inline constexpr std::string_view events = "/events";
inline constexpr std::string_view ws_echo = "/ws/echo";
} // namespace paths

/// The name hello uses when none is given.
inline constexpr std::string_view anonymous = "Anonymous";

/// The text of a hello answer: "Hello Ada".
std::string hello_text(std::string_view name);

/// Who is on the other end of a connection.
struct peer_info {
    std::string transport{}; ///< "unix" or "tcp"
    /// Unix sockets: the peer's credentials at connect time (SO_PEERCRED).
    std::optional<std::int64_t> pid, uid, gid;
    /// TCP: the peer's address and port.
    std::string address{};
    std::uint16_t port = 0;

    friend bool operator==(const peer_info&, const peer_info&) = default;
};

/// `GET /hello/{name}` with Accept: application/json.
struct hello_message {
    std::string message{}; ///< "Hello Ada"
    std::string name{};    ///< "Ada"
    friend bool operator==(const hello_message&, const hello_message&) = default;
};

/// `GET /echo`: a description of the request as the server saw it.
struct echo_info {
    std::string method{};
    std::string target{};
    std::string version{}; ///< "HTTP/1.1"
    /// Header fields in arrival order; names as sent.
    std::vector<std::pair<std::string, std::string>> headers{};
    peer_info peer{};
    friend bool operator==(const echo_info&, const echo_info&) = default;
};

/// `GET /healthz`.
struct health_info {
    std::string status = "ok";
    std::string version{};
    double uptime_seconds = 0;
    std::uint64_t connections = 0; ///< open connections now
    friend bool operator==(const health_info&, const health_info&) = default;
};

/// The body of every error answer: {"error":{"status":404,"reason":"Not Found",...}}.
struct error_body {
    unsigned status = 500;
    std::string reason{};  ///< the status's reason phrase
    std::string code{};    ///< stable code from the error table ("not_found")
    std::string message{}; ///< one line for people
    friend bool operator==(const error_body&, const error_body&) = default;
};

void to_json(nlohmann::json& j, const peer_info& v);
void from_json(const nlohmann::json& j, peer_info& v);
void to_json(nlohmann::json& j, const hello_message& v);
void from_json(const nlohmann::json& j, hello_message& v);
void to_json(nlohmann::json& j, const echo_info& v);
void from_json(const nlohmann::json& j, echo_info& v);
void to_json(nlohmann::json& j, const health_info& v);
void from_json(const nlohmann::json& j, health_info& v);
void to_json(nlohmann::json& j, const error_body& v);
void from_json(const nlohmann::json& j, error_body& v);

/// Parses `body` as JSON; the error names the parse failure and its byte offset.
result<nlohmann::json> parse_json(std::string_view body);

/// Parses `body` as the message T; errors are errc::invalid_json with the reason.
template <class T> result<T> decode(std::string_view body) {
    auto j = parse_json(body);
    if (!j)
        return j.error();
    try {
        return j->template get<T>();
    } catch (const nlohmann::json::exception& e) {
        return error{make_error_code(errc::invalid_json), e.what()};
    }
}

/// The error body for an errc, with the given message (the table's text when empty).
error_body make_error_body(errc e, std::string message = {});

/// RFC 9110's reason phrase for `status` ("Content Too Large" for 413), the one table both the
/// server and the error bodies use; empty for a status RFC 9110 does not name.
std::string_view reason_phrase(unsigned status) noexcept;

} // namespace udshttp::proto
