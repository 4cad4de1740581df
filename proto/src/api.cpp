#include <udshttp/proto/api.hpp>

namespace udshttp::proto {

std::string hello_text(std::string_view name) {
    std::string s = "Hello ";
    s.append(name);
    return s;
}

void to_json(nlohmann::json& j, const peer_info& v) {
    j = nlohmann::json{{"transport", v.transport}};
    if (v.pid)
        j["pid"] = *v.pid;
    if (v.uid)
        j["uid"] = *v.uid;
    if (v.gid)
        j["gid"] = *v.gid;
    if (!v.address.empty()) {
        j["address"] = v.address;
        j["port"] = v.port;
    }
}

void from_json(const nlohmann::json& j, peer_info& v) {
    j.at("transport").get_to(v.transport);
    auto optional_int = [&j](const char* key) -> std::optional<std::int64_t> {
        if (auto it = j.find(key); it != j.end())
            return it->get<std::int64_t>();
        return std::nullopt;
    };
    v.pid = optional_int("pid");
    v.uid = optional_int("uid");
    v.gid = optional_int("gid");
    v.address = j.value("address", std::string{});
    v.port = j.value("port", std::uint16_t{0});
}

void to_json(nlohmann::json& j, const hello_message& v) {
    j = nlohmann::json{{"message", v.message}, {"name", v.name}};
}

void from_json(const nlohmann::json& j, hello_message& v) {
    j.at("message").get_to(v.message);
    j.at("name").get_to(v.name);
}

void to_json(nlohmann::json& j, const echo_info& v) {
    // Headers as an array of [name, value] pairs: repeated fields and their order survive.
    auto headers = nlohmann::json::array();
    for (const auto& [name, value] : v.headers)
        headers.push_back({name, value});
    j = nlohmann::json{{"method", v.method},
                       {"target", v.target},
                       {"version", v.version},
                       {"headers", headers},
                       {"peer", v.peer}};
}

void from_json(const nlohmann::json& j, echo_info& v) {
    j.at("method").get_to(v.method);
    j.at("target").get_to(v.target);
    j.at("version").get_to(v.version);
    v.headers.clear();
    for (const auto& pair : j.at("headers"))
        v.headers.emplace_back(pair.at(0).get<std::string>(), pair.at(1).get<std::string>());
    j.at("peer").get_to(v.peer);
}

void to_json(nlohmann::json& j, const health_info& v) {
    j = nlohmann::json{{"status", v.status},
                       {"version", v.version},
                       {"uptime_seconds", v.uptime_seconds},
                       {"connections", v.connections}};
}

void from_json(const nlohmann::json& j, health_info& v) {
    j.at("status").get_to(v.status);
    v.version = j.value("version", std::string{});
    v.uptime_seconds = j.value("uptime_seconds", 0.0);
    v.connections = j.value("connections", std::uint64_t{0});
}

void to_json(nlohmann::json& j, const error_body& v) {
    j = nlohmann::json{
        {"error",
         {{"status", v.status}, {"reason", v.reason}, {"code", v.code}, {"message", v.message}}}};
}

void from_json(const nlohmann::json& j, error_body& v) {
    const auto& e = j.at("error");
    e.at("status").get_to(v.status);
    v.reason = e.value("reason", std::string{});
    v.code = e.value("code", std::string{});
    v.message = e.value("message", std::string{});
}

result<nlohmann::json> parse_json(std::string_view body) {
    auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
        // Parse again with exceptions only on the error path, for a message with the offset.
        try {
            [[maybe_unused]] auto again = nlohmann::json::parse(body);
        } catch (const nlohmann::json::exception& e) {
            return error{make_error_code(errc::invalid_json), e.what()};
        }
    }
    return j;
}

// One line per status: it reads as the table it is.
// clang-format off
std::string_view reason_phrase(unsigned status) noexcept {
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return {};
    }
}
// clang-format on

error_body make_error_body(errc e, std::string message) {
    const unsigned status = http_status(e);
    if (message.empty())
        message = make_error_code(e).message();
    return {.status = status,
            .reason = std::string(reason_phrase(status)),
            .code = std::string(code_string(e)),
            .message = std::move(message)};
}

} // namespace udshttp::proto
