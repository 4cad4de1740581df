// The built-in routes: hello, echo, healthz, metrics, and the OpenAPI document of all routes.

#include "server_state.hpp"

#include <udshttp/proto/version.hpp>

#include <boost/beast/http/field.hpp>

#include <nlohmann/json.hpp>

#include <charconv>
#include <memory>
#include <set>
#include <sstream>

namespace udshttp::service::detail {
namespace {

void hello(const request& req, response& res) {
    const auto param = req.param("name");
    const std::string name(param.empty() ? proto::anonymous : param);
    if (req.wants_json())
        set_json(res, proto::hello_message{.message = proto::hello_text(name), .name = name});
    else
        set_text(res, proto::hello_text(name));
}

// POST/PUT/PATCH /echo: the body goes back as it arrives, so its size is bounded by
// --max-body-bytes, not by memory. With a Content-Length the answer has the same one; a
// chunked upload is answered chunked.
class echo_stream final : public stream_handler {
public:
    std::optional<std::uint64_t> begin(const request& req, response& res) override {
        const auto type = req.message()[http::field::content_type];
        res.set(http::field::content_type, type.empty() ? "application/octet-stream" : type);
        const auto length = req.message()[http::field::content_length];
        std::uint64_t n = 0;
        if (length.empty() ||
            std::from_chars(length.data(), length.data() + length.size(), n).ec != std::errc{})
            return std::nullopt;
        return n;
    }
    void data(std::string_view in, std::string& out) override { out.append(in); }
    bool whole(std::string&) override { return true; } // the body is the answer as it is
};

void echo_describe(const request& req, response& res) {
    proto::echo_info info{.method = std::string(req.message().method_string()),
                          .target = std::string(req.message().target()),
                          .version = req.message().version() == 10 ? "HTTP/1.0" : "HTTP/1.1",
                          .headers = {},
                          .peer = req.peer()};
    for (const auto& field : req.message())
        info.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    set_json(res, info);
}

double uptime_seconds(const server_state& state) {
    return std::chrono::duration<double>(clock::now() - state.started).count();
}

void metric(std::ostringstream& out, std::string_view name, std::string_view type,
            std::string_view help) {
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
}

// A label value as the text format wants it: backslash, double quote and newline escaped.
std::string label(std::string_view v) {
    std::string out;
    for (const char c : v) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

void requests_by_route(std::ostringstream& out, const server_state& s) {
    metric(out, "udshttp_requests_total", "counter",
           "Requests answered, by route pattern, method and status code.");
    const std::size_t rows = s.routes.size() + 1;
    for (std::size_t route = 0; route < rows; ++route) {
        std::string method = "(none)";
        std::string pattern = "(none)";
        if (route < s.routes.size()) {
            const auto r = s.routes.at(route);
            method = std::string(http::to_string(r.method));
            pattern = label(r.pattern);
        }
        for (unsigned col = 0; col < status_columns; ++col) {
            std::uint64_t n = 0;
            for (const auto& w : s.workers)
                n += w->stats.by_route_status[route * status_columns + col].get();
            if (n != 0)
                out << "udshttp_requests_total{route=\"" << pattern << "\",method=\"" << method
                    << "\",code=\"" << first_status + col << "\"} " << n << '\n';
        }
    }
}

void latency_histogram(std::ostringstream& out, const server_state& s) {
    metric(out, "udshttp_request_duration_seconds", "histogram",
           "From a request's first byte to its response written.");
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < latency_buckets; ++b) {
        for (const auto& w : s.workers)
            cumulative += w->stats.latency[b].get();
        out << "udshttp_request_duration_seconds_bucket{le=\"";
        if (b < std::size(latency_bounds))
            out << latency_bounds[b];
        else
            out << "+Inf";
        out << "\"} " << cumulative << '\n';
    }
    // The count is the +Inf bucket as read, so the two always agree.
    out << "udshttp_request_duration_seconds_sum "
        << static_cast<double>(s.total(&worker_stats::latency_sum_ns)) / 1e9 << '\n';
    out << "udshttp_request_duration_seconds_count " << cumulative << '\n';
}

std::string metrics_text(const server_state& s) {
    std::ostringstream out;
    requests_by_route(out, s);
    latency_histogram(out, s);
    metric(out, "udshttp_rejected_total", "counter",
           "Connections and requests turned away before reaching a route, by reason.");
    for (std::size_t r = 0; r < std::size(reject_reason_names); ++r) {
        std::uint64_t n = 0;
        for (const auto& w : s.workers)
            n += w->stats.rejected[r].get();
        out << "udshttp_rejected_total{reason=\"" << reject_reason_names[r] << "\"} " << n << '\n';
    }
    metric(out, "udshttp_connections_open", "gauge", "Connections open now.");
    out << "udshttp_connections_open " << s.total(&worker_stats::connections_open) << '\n';
    metric(out, "udshttp_connections_accepted_total", "counter", "Connections accepted.");
    out << "udshttp_connections_accepted_total " << s.total(&worker_stats::connections_accepted)
        << '\n';
    metric(out, "udshttp_connection_timeouts_total", "counter",
           "Connections closed by a header, idle or write deadline.");
    out << "udshttp_connection_timeouts_total " << s.total(&worker_stats::timeouts) << '\n';
    metric(out, "udshttp_received_bytes_total", "counter", "Bytes read from connections.");
    out << "udshttp_received_bytes_total " << s.total(&worker_stats::bytes_received) << '\n';
    metric(out, "udshttp_sent_bytes_total", "counter", "Bytes written to connections.");
    out << "udshttp_sent_bytes_total " << s.total(&worker_stats::bytes_sent) << '\n';
    metric(out, "udshttp_log_lines_dropped_total", "counter",
           "Log lines dropped because the log was not read fast enough.");
    out << "udshttp_log_lines_dropped_total " << s.log.dropped() << '\n';
    metric(out, "udshttp_log_lines_suppressed_total", "counter",
           "Diagnostics a peer caused beyond the budget of 20 lines a second.");
    out << "udshttp_log_lines_suppressed_total " << s.log.suppressed() << '\n';
    metric(out, "udshttp_uptime_seconds", "gauge", "Seconds since the server started.");
    out << "udshttp_uptime_seconds " << uptime_seconds(s) << '\n';
    metric(out, "udshttp_info", "gauge", "Version of the server.");
    out << "udshttp_info{version=\"" << UDSHTTP_VERSION_STRING << "\"} 1\n";
    return out.str();
}

// A schema for a body of this media type: any JSON value, or a string of bytes.
nlohmann::json schema_for(std::string_view media_type) {
    if (media_type.starts_with("application/json"))
        return nlohmann::json::object();
    return {{"type", "string"}};
}

// The OpenAPI 3.1 document of every route in r, in the order they were added. HEAD is not
// listed: GET routes answer it.
std::string openapi_document(const router& r) {
    using json = nlohmann::json;
    json paths = json::object();
    std::set<std::string> ids;
    for (std::size_t i = 0; i < r.size(); ++i) {
        const auto route = r.at(i);
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
    }
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

} // namespace

void add_builtin_routes(server_state& state) {
    auto& r = state.routes;
    // An embedder's own route for the same method and pattern wins; the built-in one steps aside.
    auto add = [&r](http::verb method, std::string_view pattern, handler h, route_doc doc) {
        if (!r.contains(method, pattern))
            r.add(method, pattern, std::move(h)).describe(std::move(doc));
    };
    const route_doc greeting{.summary = "Greets the caller",
                             .description = "Hello NAME as text, or as JSON "
                                            "{\"message\",\"name\"} with Accept: "
                                            "application/json. NAME is Anonymous by default.",
                             .response_type = "text/plain"};
    add(http::verb::get, proto::paths::root, hello, greeting);
    add(http::verb::get, proto::paths::hello, hello, greeting);
    add(http::verb::get, proto::paths::hello_name, hello,
        {.summary = "Greets NAME",
         .description = greeting.description,
         .response_type = "text/plain"});
    add(http::verb::get, proto::paths::echo, echo_describe,
        {.summary = "Describes the request",
         .description = "Method, target, version, headers and the peer (pid/uid/gid over a Unix "
                        "socket, address and port over TCP).",
         .response_type = "application/json"});
    for (const auto method : {http::verb::post, http::verb::put, http::verb::patch})
        if (!r.contains(method, proto::paths::echo))
            r.add_stream(method, proto::paths::echo, [] { return std::make_unique<echo_stream>(); })
                .describe({.summary = "Echoes the body",
                           .description = "The request body back, byte for byte, with its "
                                          "Content-Type; streamed as it arrives, up to "
                                          "--max-body-bytes.",
                           .request_type = "*/*",
                           .response_type = "*/*"});
    add(http::verb::get, proto::paths::healthz,
        [&state](const request&, response& res) {
            set_json(res, proto::health_info{.status = "ok",
                                             .version = UDSHTTP_VERSION_STRING,
                                             .uptime_seconds = uptime_seconds(state),
                                             .connections =
                                                 state.total(&worker_stats::connections_open)});
        },
        {.summary = "Health",
         .description = "Status, version, uptime and open connections.",
         .response_type = "application/json"});
    add(http::verb::get, proto::paths::metrics,
        [&state](const request&, response& res) {
            res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
            res.body() = metrics_text(state);
        },
        {.summary = "Prometheus metrics",
         .description = "Requests by route, method and status; latency histogram; rejections "
                        "by reason; connections and bytes.",
         .response_type = "text/plain"});
    // Written once, here, when every route (the embedder's too) is in the table.
    auto document = std::make_shared<std::string>();
    add(http::verb::get, proto::paths::openapi,
        [document](const request&, response& res) {
            res.set(http::field::content_type, "application/json");
            res.body() = *document;
        },
        {.summary = "This API, as an OpenAPI 3.1 document",
         .description = "Generated from the routing table: the built-in routes and every route "
                        "the embedding program added (with router::describe() for a summary).",
         .response_type = "application/json"});
    *document = openapi_document(r);
}

} // namespace udshttp::service::detail
