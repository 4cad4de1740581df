#include "openapi.hpp"

#include <udshttp/proto/version.hpp>

#include <nlohmann/json.hpp>

#include <set>

namespace udshttp::service::detail {
namespace {

// A schema for a body of this media type: any JSON value, or a string of bytes.
nlohmann::json schema_for(std::string_view media_type) {
    if (media_type.starts_with("application/json"))
        return nlohmann::json::object();
    return {{"type", "string"}};
}

} // namespace

std::string openapi_document(const router& r) {
    using json = nlohmann::json;
    json paths = json::object();
    std::set<std::string> ids;
    r.for_each([&](const route_view& route) {
        auto& path = paths[std::string(route.pattern)];
        if (!path.contains("parameters")) {
            json params = json::array();
            for (std::size_t open = route.pattern.find('{'); open != std::string_view::npos;
                 open = route.pattern.find('{', open + 1)) {
                const auto close = route.pattern.find('}', open);
                params.push_back({{"name", route.pattern.substr(open + 1, close - open - 1)},
                                  {"in", "path"},
                                  {"required", true},
                                  {"schema", {{"type", "string"}}}});
            }
            if (!params.empty())
                path["parameters"] = std::move(params);
        }
        std::string method(http::to_string(route.method));
        for (auto& c : method)
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        // operationId: method and path, made an identifier, and unique.
        std::string id = method;
        for (char c : route.pattern)
            id += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
        while (id.ends_with('_'))
            id.pop_back();
        if (id == method)
            id += "_root";
        while (!ids.insert(id).second)
            id += '_';
        json op{{"operationId", id}};
        const auto& doc = route.doc;
        if (!doc.summary.empty())
            op["summary"] = doc.summary;
        if (!doc.description.empty())
            op["description"] = doc.description;
        if (!doc.request_type.empty())
            op["requestBody"] = {
                {"required", true},
                {"content", {{doc.request_type, {{"schema", schema_for(doc.request_type)}}}}}};
        op["responses"] = {
            {"200",
             {{"description", "Success"},
              {"content", {{doc.response_type, {{"schema", schema_for(doc.response_type)}}}}}}},
            {"default",
             {{"description", "An error: its status, reason, stable code and a sentence"},
              {"content",
               {{"application/json", {{"schema", {{"$ref", "#/components/schemas/Error"}}}}}}}}}};
        path[method] = std::move(op);
    });
    const json error_schema{{"type", "object"},
                            {"required", {"error"}},
                            {"properties",
                             {{"error",
                               {{"type", "object"},
                                {"required", {"status", "reason", "code", "message"}},
                                {"properties",
                                 {{"status", {{"type", "integer"}}},
                                  {"reason", {{"type", "string"}}},
                                  {"code", {{"type", "string"}}},
                                  {"message", {{"type", "string"}}}}}}}}}};
    const json document{
        {"openapi", "3.1.0"},
        {"info",
         {{"title", "udshttp"},
          {"version", UDSHTTP_VERSION_STRING},
          {"description", "HTTP/1.1 over Unix sockets and TCP. Address a Unix socket as "
                          "http+unix://%2Frun%2Fapp.sock/path, or with curl --unix-socket."}}},
        {"paths", std::move(paths)},
        {"components", {{"schemas", {{"Error", error_schema}}}}}};
    return document.dump(2) + "\n";
}

} // namespace udshttp::service::detail
