// GET /metrics: the Prometheus text format (version 0.0.4), summed over the workers' counters.

#include "metrics.hpp"

#include <udshttp/proto/version.hpp>

#include <sstream>
#include <utility>
#include <vector>

namespace udshttp::service::detail {
namespace {

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
    // One row per route, in the order added, then the row of answers no route gave.
    std::vector<std::pair<std::string, std::string>> rows; // method, pattern
    s.routes.for_each([&rows](const route_view& r) {
        rows.emplace_back(std::string(http::to_string(r.method)), label(r.pattern));
    });
    rows.emplace_back("(none)", "(none)");
    for (std::size_t route = 0; route < rows.size(); ++route) {
        const auto& [method, pattern] = rows[route];
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

} // namespace

double uptime_seconds(const server_state& state) {
    return std::chrono::duration<double>(clock::now() - state.started).count();
}

std::string metrics_text(const server_state& s) {
    std::ostringstream out;
    requests_by_route(out, s);
    latency_histogram(out, s);
    metric(out, "udshttp_rejected_total", "counter",
           "Connections and requests turned away before reaching a route, by reason.");
    for (std::size_t r = 0; r < std::size(rejections); ++r) {
        std::uint64_t n = 0;
        for (const auto& w : s.workers)
            n += w->stats.rejected[r].get();
        out << "udshttp_rejected_total{reason=\"" << rejections[r].metric << "\"} " << n << '\n';
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
    if (s.hub) {
        // Topic names are 1 to 64 of [A-Za-z0-9._-] ("$events" is /events): safe as labels.
        const auto topics = s.hub->stats();
        metric(out, "udshttp_topic_messages_total", "counter", "Messages published, by topic.");
        for (const auto& t : topics)
            out << "udshttp_topic_messages_total{topic=\"" << t.name << "\"} " << t.published
                << '\n';
        metric(out, "udshttp_topic_subscribers", "gauge", "Subscribers now, by topic.");
        for (const auto& t : topics)
            out << "udshttp_topic_subscribers{topic=\"" << t.name << "\"} " << t.subscribers
                << '\n';
        metric(out, "udshttp_topic_subscribers_cut_total", "counter",
               "Subscribers cut for falling behind (their queue overflowed), by topic.");
        for (const auto& t : topics)
            out << "udshttp_topic_subscribers_cut_total{topic=\"" << t.name << "\"} " << t.cut
                << '\n';
    }
    if (s.gateway) {
        // Upstream names are [A-Za-z0-9._-] (gateway_state checks): safe as labels.
        const auto sum = [&](std::size_t column) {
            std::uint64_t n = 0;
            for (const auto& w : s.workers)
                n += w->stats.gateway[column].get();
            return n;
        };
        const auto& ups = s.gateway->upstreams;
        constexpr auto cols = worker_stats::upstream_columns;
        metric(out, "udshttp_gateway_requests_total", "counter",
               "Requests the gateway routed, by upstream.");
        for (std::size_t u = 0; u < ups.size(); ++u)
            out << "udshttp_gateway_requests_total{upstream=\"" << ups[u].name << "\"} "
                << sum(u * cols) << '\n';
        metric(out, "udshttp_gateway_upstream_errors_total", "counter",
               "Upstream failures (connect, timeout, bad_answer), by upstream.");
        static constexpr const char* kinds[] = {"connect", "timeout", "bad_answer"};
        for (std::size_t u = 0; u < ups.size(); ++u)
            for (std::size_t k = 0; k < 3; ++k)
                out << "udshttp_gateway_upstream_errors_total{upstream=\"" << ups[u].name
                    << "\",kind=\"" << kinds[k] << "\"} " << sum(u * cols + 1 + k) << '\n';
        metric(out, "udshttp_gateway_verdicts_total", "counter",
               "Rule decisions: allow, deny, learn (denied by the rules, allowed by --learn).");
        static constexpr const char* verdicts[] = {"allow", "deny", "learn"};
        for (std::size_t v = 0; v < 3; ++v)
            out << "udshttp_gateway_verdicts_total{verdict=\"" << verdicts[v] << "\"} "
                << sum(ups.size() * cols + v) << '\n';
    }
    metric(out, "udshttp_uptime_seconds", "gauge", "Seconds since the server started.");
    out << "udshttp_uptime_seconds " << uptime_seconds(s) << '\n';
    metric(out, "udshttp_info", "gauge", "Version of the server.");
    out << "udshttp_info{version=\"" << UDSHTTP_VERSION_STRING << "\"} 1\n";
    return out.str();
}

} // namespace udshttp::service::detail
