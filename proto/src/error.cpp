#include <udshttp/proto/error.hpp>

#include <algorithm>
#include <array>
#include <string>

namespace udshttp {
namespace {

struct error_info {
    errc value;
    std::string_view code;
    unsigned status;
    std::string_view message;
};

// The one table: enum <-> stable code string <-> HTTP status <-> human message.
constexpr std::array<error_info, 26> table{{
    {errc::invalid_endpoint, "invalid_endpoint", 400, "invalid endpoint"},
    {errc::invalid_url, "invalid_url", 400, "invalid URL"},
    {errc::unsupported_scheme, "unsupported_scheme", 400, "unsupported URL scheme"},
    {errc::socket_path_too_long, "socket_path_too_long", 400, "Unix socket path too long"},
    {errc::invalid_json, "invalid_json", 400, "invalid JSON"},
    {errc::bad_request, "bad_request", 400, "bad request"},
    {errc::forbidden, "forbidden", 403, "forbidden"},
    {errc::not_found, "not_found", 404, "not found"},
    {errc::method_not_allowed, "method_not_allowed", 405, "method not allowed"},
    {errc::request_timeout, "request_timeout", 408, "request timeout"},
    {errc::payload_too_large, "payload_too_large", 413, "payload too large"},
    {errc::header_fields_too_large, "header_fields_too_large", 431,
     "request header fields too large"},
    {errc::internal_error, "internal_error", 500, "internal server error"},
    {errc::service_unavailable, "service_unavailable", 503, "service unavailable"},
    {errc::no_such_socket, "no_such_socket", 500, "no such socket file (is the server running?)"},
    {errc::connection_refused, "connection_refused", 500,
     "connection refused (stale socket or no server listening)"},
    {errc::permission_denied, "permission_denied", 500, "permission denied"},
    {errc::connect_failed, "connect_failed", 500, "connect failed"},
    {errc::connect_timeout, "connect_timeout", 500, "connect timeout"},
    {errc::timeout, "timeout", 500, "request deadline exceeded"},
    {errc::connection_closed, "connection_closed", 500,
     "connection closed before a complete response"},
    {errc::protocol_error, "protocol_error", 500, "malformed HTTP response"},
    {errc::io_error, "io_error", 500, "I/O error"},
    {errc::invalid_request, "invalid_request", 400,
     "invalid request (a control byte in the method or a header)"},
    {errc::bad_gateway, "bad_gateway", 502, "bad gateway"},
    {errc::gateway_timeout, "gateway_timeout", 504, "gateway timeout"},
}};

const error_info* find(errc e) noexcept {
    auto it = std::find_if(table.begin(), table.end(), [e](const auto& i) { return i.value == e; });
    return it == table.end() ? nullptr : &*it;
}

class category final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "udshttp"; }
    std::string message(int ev) const override {
        const auto* info = find(static_cast<errc>(ev));
        return info ? std::string(info->message) : "unknown udshttp error";
    }
};

} // namespace

const boost::system::error_category& error_category() noexcept {
    static const category instance;
    return instance;
}

unsigned http_status(errc e) noexcept {
    const auto* info = find(e);
    return info ? info->status : 500;
}

std::string_view code_string(errc e) noexcept {
    const auto* info = find(e);
    return info ? info->code : "unknown";
}

std::optional<errc> errc_from_code_string(std::string_view code) noexcept {
    for (const auto& info : table)
        if (info.code == code)
            return info.value;
    return std::nullopt;
}

std::optional<errc> errc_from_http_status(unsigned status) noexcept {
    // Only the answers the server gives map back; 400 is the generic bad_request.
    for (const auto& info : table)
        if (info.status == status &&
            ((info.value >= errc::bad_request && info.value <= errc::service_unavailable) ||
             info.value >= errc::bad_gateway))
            return info.value;
    return std::nullopt;
}

} // namespace udshttp

#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>

namespace udshttp {

error error::from(errc e, std::string_view context) {
    std::string message(context);
    if (!message.empty())
        message += ": ";
    message += make_error_code(e).message();
    return {make_error_code(e), std::move(message)};
}

void throw_exception_from_error(const error& e, const boost::source_location& loc) {
    boost::throw_exception(boost::system::system_error(e.code, e.message), loc);
}

} // namespace udshttp
