// The built-in routes: hello, echo, healthz, metrics, and the OpenAPI document of all routes.

#include "metrics.hpp"
#include "openapi.hpp"
#include "server_state.hpp"

#include <udshttp/proto/version.hpp>

#include <boost/beast/http/field.hpp>

#include <nlohmann/json.hpp>

#include <charconv>
#include <memory>

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
    add_live_routes(state);
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
