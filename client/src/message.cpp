#include "message.hpp"

#include <udshttp/proto/text.hpp>

#include <boost/beast/core/string.hpp>

#include <algorithm>
#include <cctype>

namespace udshttp::client::detail {

namespace beast = boost::beast;
namespace http = beast::http;

bool idempotent(std::string_view method) noexcept {
    return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" ||
           method == "OPTIONS" || method == "TRACE";
}

namespace {

// RFC 9110 5.6.2 token characters: what a method and a field name are made of.
bool is_token(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        return std::isalnum(c) ||
               std::string_view("!#$%&'*+-.^_`|~").find(ch) != std::string_view::npos;
    });
}

} // namespace

// Why the request must not go out as it is, or nullopt. A CR or LF in a method, name or value
// would end the line early and let the rest pass for fields or a second request (header
// injection, request smuggling); every caller of the library is protected here.
std::optional<std::string> refuse_to_send(const request& req) {
    if (req.version != 10 && req.version != 11)
        return "HTTP version " + std::to_string(req.version) + " is not 10 or 11";
    if (const auto* s = std::get_if<streamed_body>(&req.body); s && !s->length && req.version == 10)
        return "an HTTP/1.0 request cannot carry a body of unknown length (it has no chunked "
               "framing)";
    if (!is_token(req.method))
        return "the method '" + proto::quote(req.method) +
               "' is not an HTTP token (letters, digits and !#$%&'*+-.^_`|~)";
    for (const auto& [name, value] : req.headers) {
        if (!is_token(name))
            return "the header name '" + proto::quote(name) +
                   "' is not an HTTP token (no spaces, colons or control bytes)";
        // RFC 9110 5.5: field values may hold HTAB, visible bytes and obs-text, no other CTL.
        if (std::any_of(value.begin(), value.end(), [](char ch) {
                const auto c = static_cast<unsigned char>(ch);
                return (c < 0x20 && c != '\t') || c == 0x7f;
            }))
            return "the value of header '" + name + "' holds a control byte (CR, LF, NUL...): '" +
                   proto::quote(value) + "'";
    }
    return std::nullopt;
}

http::request<http::buffer_body> make_message(const request& req, const proto::url& u,
                                              const client_options& options) {
    http::request<http::buffer_body> msg;
    if (const auto verb = http::string_to_verb(req.method); verb != http::verb::unknown)
        msg.method(verb);
    else
        msg.method_string(req.method);
    msg.target(u.target);
    msg.version(req.version);
    bool has_host = false;
    bool has_agent = false;
    for (const auto& [name, value] : req.headers) {
        has_host |= beast::iequals(name, "host");
        has_agent |= beast::iequals(name, "user-agent");
        msg.insert(name, value);
    }
    if (!has_host)
        msg.set(http::field::host, u.host);
    if (!has_agent && !options.user_agent.empty())
        msg.set(http::field::user_agent, options.user_agent);
    if (const auto* streamed = std::get_if<streamed_body>(&req.body)) {
        if (streamed->length)
            msg.content_length(*streamed->length);
        else
            msg.chunked(true);
    } else if (const auto& body = std::get<std::string>(req.body);
               !body.empty() || msg.method() == http::verb::post ||
               msg.method() == http::verb::put || msg.method() == http::verb::patch) {
        msg.content_length(body.size());
    }

    return msg;
}

error answer_error(const std::string& what, const response& r) {
    const auto body = r.error_body();
    auto code = body ? errc_from_code_string(body->code) : std::nullopt;
    if (!code)
        code = errc_from_http_status(r.status);
    std::string message = what + ": " + std::to_string(r.status) + " " + r.reason;
    if (body && !body->message.empty())
        message += ": " + body->message;
    return error{make_error_code(code.value_or(errc::protocol_error)), std::move(message)};
}

} // namespace udshttp::client::detail
