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

namespace {
std::string_view reason_phrase(unsigned status) {
    switch (status) {
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return "Internal Server Error";
    }
}
} // namespace

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
