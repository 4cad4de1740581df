// The built-in routes: hello, echo, healthz, metrics.

#include "server_state.hpp"

#include <udshttp/proto/version.hpp>

#include <boost/beast/http/field.hpp>

#include <charconv>
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
    metric(out, "udshttp_uptime_seconds", "gauge", "Seconds since the server started.");
    out << "udshttp_uptime_seconds " << uptime_seconds(s) << '\n';
    metric(out, "udshttp_info", "gauge", "Version of the server.");
    out << "udshttp_info{version=\"" << UDSHTTP_VERSION_STRING << "\"} 1\n";
    return out.str();
}

} // namespace

void add_builtin_routes(server_state& state) {
    auto& r = state.routes;
    // An embedder's own route for the same method and pattern wins; the built-in one steps aside.
    auto add = [&r](http::verb method, std::string_view pattern, handler h) {
        if (!r.contains(method, pattern))
            r.add(method, pattern, std::move(h));
    };
    add(http::verb::get, proto::paths::root, hello);
    add(http::verb::get, proto::paths::hello, hello);
    add(http::verb::get, proto::paths::hello_name, hello);
    add(http::verb::get, proto::paths::echo, echo_describe);
    for (const auto method : {http::verb::post, http::verb::put, http::verb::patch})
        if (!r.contains(method, proto::paths::echo))
            r.add_stream(method, proto::paths::echo,
                         [] { return std::make_unique<echo_stream>(); });
    add(http::verb::get, proto::paths::healthz, [&state](const request&, response& res) {
        set_json(res,
                 proto::health_info{.status = "ok",
                                    .version = UDSHTTP_VERSION_STRING,
                                    .uptime_seconds = uptime_seconds(state),
                                    .connections = state.total(&worker_stats::connections_open)});
    });
    add(http::verb::get, proto::paths::metrics, [&state](const request&, response& res) {
        res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
        res.body() = metrics_text(state);
    });
}

} // namespace udshttp::service::detail
