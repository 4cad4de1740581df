// udshttp: a curl-compatible command line over the udshttp client library.

#include "cli.hpp"

#include <udshttp/client/client.hpp>
#include <udshttp/client/stream.hpp>
#include <udshttp/client/websocket.hpp>
#include <udshttp/proto/units.hpp>
#include <udshttp/proto/url.hpp>
#include <udshttp/proto/version.hpp>

#include "form_body.hpp"
#include "inflate.hpp"

#include <boost/beast/core/string.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <signal.h>
#include <unistd.h>

namespace {

using namespace udshttp::cli;
using cli = udshttp::cli::cli_options;

[[noreturn]] void die(const cli& c, int code, const std::string& message) {
    if (c.errors_shown())
        std::cerr << "udshttp: " << message << '\n';
    std::exit(code);
}

bool has_header(const cli& c, std::string_view name) {
    return std::any_of(c.headers.begin(), c.headers.end(),
                       [&](const auto& f) { return boost::beast::iequals(f.first, name); });
}

// -H 'Name:' named it: the CLI's own field of that name is not sent either.
bool removed_header(const cli& c, std::string_view name) {
    return std::any_of(c.removed_headers.begin(), c.removed_headers.end(),
                       [&](const std::string& n) { return boost::beast::iequals(n, name); });
}

// RFC 3986 5.2.4: the path with its "." and ".." segments resolved, as curl sends it.
std::string remove_dot_segments(std::string_view path) {
    std::vector<std::string_view> out;
    bool trailing = false;
    while (!path.empty()) {
        const auto slash = path.find('/', 1);
        auto seg = path.substr(0, slash); // "/name" (or "name" at the start)
        path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash);
        const auto name = seg.starts_with("/") ? seg.substr(1) : seg;
        trailing = false;
        if (name == ".") {
            trailing = true;
        } else if (name == "..") {
            if (!out.empty())
                out.pop_back();
            trailing = true;
        } else {
            out.push_back(seg);
        }
    }
    std::string result;
    for (auto seg : out) {
        if (!seg.starts_with("/"))
            result += '/';
        result += seg;
    }
    if (trailing || result.empty())
        result += '/';
    return result;
}

// The target with its path's dot segments resolved; the query as it is.
std::string squash_target(const std::string& target) {
    const auto q = target.find('?');
    const auto path = std::string_view(target).substr(0, q);
    const bool dotted = path.find("/./") != std::string_view::npos ||
                        path.find("/../") != std::string_view::npos || path.ends_with("/.") ||
                        path.ends_with("/..");
    if (!dotted)
        return target;
    return remove_dot_segments(path) + (q == std::string::npos ? "" : target.substr(q));
}

bool socket_given(const cli& c) {
    return !c.unix_socket.empty() || !c.abstract_socket.empty();
}

// The URL as the user meant it, as curl would print it (its url_effective): a path alone on a
// given socket is on localhost, and a URL without a scheme is http.
std::string typed_url(const cli& c) {
    std::string url = c.url;
    if (url.starts_with("/") && socket_given(c))
        url = "localhost" + url;
    if (url.find("://") == std::string::npos)
        url = "http://" + url;
    return url;
}

// The URL the client library gets: --unix-socket/--abstract-unix-socket move the target of an
// http:// URL onto the socket, keeping its Host; the path's dot segments are resolved unless
// --path-as-is.
std::string effective_url(cli& c) {
    if (!socket_given(c) && c.url.find("://") == std::string::npos) {
        // What the user typed, not the http://... it would have become.
        if (c.url.ends_with(".sock") || c.url.starts_with("./") || c.url.starts_with("../"))
            die(c, bad_url,
                "'" + c.url + "' looks like a socket file, not a URL: udshttp --unix-socket " +
                    c.url + " /PATH");
        if (c.url.starts_with("/"))
            die(c, bad_url,
                "'" + c.url +
                    "' is a path with no server: give --unix-socket SOCKET (or set "
                    "UDSHTTP_SOCKET), or a whole URL");
    }
    const auto url = typed_url(c);
    auto parsed = udshttp::proto::url::parse(url);
    if (!socket_given(c)) {
        if (!parsed)
            return url; // reported where it is sent
        const auto target = c.path_as_is ? parsed->target : squash_target(parsed->target);
        if (target == parsed->target)
            return url;
        if (!has_header(c, "Host"))
            c.headers.emplace_back("Host", parsed->host);
        return udshttp::proto::make_url(parsed->where, target);
    }
    if (!parsed)
        die(c, bad_url, parsed.error().message);
    auto where = c.unix_socket.empty() ? udshttp::proto::endpoint::parse("@" + c.abstract_socket)
                                       : udshttp::proto::endpoint::parse("unix:" + c.unix_socket);
    if (!where)
        die(c, bad_url, where.error().message);
    if (!has_header(c, "Host"))
        c.headers.emplace_back("Host", parsed->host);
    return udshttp::proto::make_url(*where,
                                    c.path_as_is ? parsed->target : squash_target(parsed->target));
}

int exit_code_for(const udshttp::error& e) {
    using udshttp::errc;
    if (e.code.category() != udshttp::error_category())
        return recv_error;
    switch (static_cast<errc>(e.code.value())) {
    case errc::invalid_url:
    case errc::invalid_endpoint:
    case errc::unsupported_scheme:
    case errc::socket_path_too_long:
        return bad_url;
    case errc::no_such_socket:
    case errc::connection_refused:
    case errc::permission_denied:
    case errc::connect_failed:
        return connect_failed;
    case errc::connect_timeout:
    case errc::timeout:
        return timed_out;
    case errc::connection_closed:
        return empty_reply;
    case errc::protocol_error:
        return weird_reply;
    case errc::invalid_request:
        return bad_argument;
    case errc::bad_request:
    case errc::forbidden:
    case errc::not_found:
    case errc::method_not_allowed:
    case errc::request_timeout:
    case errc::payload_too_large:
    case errc::header_fields_too_large:
    case errc::internal_error:
    case errc::service_unavailable:
    case errc::bad_gateway:
    case errc::gateway_timeout:
        return http_error; // an error status (udshttp events), as curl -f says it
    default:
        return recv_error;
    }
}

// 1.5s, 200ms: a wait as the user would write it.
std::string seconds_text(std::chrono::milliseconds d) {
    if (d.count() % 1000 != 0)
        return std::to_string(d.count()) + "ms";
    return std::to_string(d.count() / 1000) + "s";
}

// The statuses curl's --retry tries again.
bool transient_status(unsigned s) {
    return s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504 || s == 522 ||
           s == 524;
}

// The failures --retry tries again: a timeout; with --retry-connrefused a refused connect or
// a socket file that is not there (yet); with --retry-all-errors any.
bool transient_error(const cli& c, const udshttp::error& e) {
    if (c.retry_all_errors)
        return true;
    if (e.code.category() != udshttp::error_category())
        return false;
    switch (static_cast<udshttp::errc>(e.code.value())) {
    case udshttp::errc::timeout:
    case udshttp::errc::connect_timeout:
        return true;
    case udshttp::errc::connection_refused:
    case udshttp::errc::no_such_socket:
        return c.retry_connrefused;
    default:
        return false;
    }
}

std::string status_and_headers(const udshttp::client::response& r) {
    std::string out = r.version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    out += std::to_string(r.status) + " " + r.reason + "\r\n";
    for (const auto& [k, v] : r.headers)
        out += k + ": " + v + "\r\n";
    out += "\r\n";
    return out;
}

// What -w can print: curl's variables that apply to a request over a socket.
struct write_out_context {
    const udshttp::client::response* r = nullptr; // null: no response arrived
    std::string method{};
    std::string url{}; // as the user gave it (curl's url_effective)
    double seconds = 0;
    std::optional<double> starttransfer{}; // when the response head arrived
    std::uint64_t downloaded = 0;
    std::uint64_t uploaded = 0;
    int exitcode = 0;
    std::string errormsg{};
    unsigned redirects = 0; // -L: how many were followed
};

// One -w variable's value; nullopt for a name curl has that does not apply, or none at all.
std::optional<nlohmann::ordered_json> write_out_value(std::string_view var,
                                                      const write_out_context& x) {
    const auto* r = x.r;
    if (var == "http_code" || var == "response_code")
        return r ? r->status : 0u;
    if (var == "http_version")
        return r ? (r->version == 10 ? "1.0" : "1.1") : "0";
    if (var == "size_download")
        return x.downloaded;
    if (var == "size_upload")
        return x.uploaded;
    if (var == "size_header")
        return r ? status_and_headers(*r).size() : 0u;
    if (var == "num_headers")
        return r ? r->headers.size() : 0u;
    if (var == "content_type")
        return r ? r->header("Content-Type") : "";
    if (var == "method")
        return x.method;
    if (var == "url_effective" || var == "url")
        return x.url;
    if (var == "exitcode")
        return x.exitcode;
    if (var == "errormsg")
        return x.errormsg;
    if (var == "time_total")
        return x.seconds;
    if (var == "time_starttransfer")
        return x.starttransfer.value_or(0.0);
    // No name lookup, no TLS and no redirects over a socket here; the connect is part of
    // the time to the first byte, which is what a caller over a local socket waits on.
    if (var == "num_redirects")
        return x.redirects;
    if (var == "time_namelookup" || var == "time_appconnect" || var == "time_redirect")
        return 0;
    return std::nullopt;
}

constexpr std::string_view write_out_names[] = {
    "http_code",     "response_code", "http_version",    "size_download",   "size_upload",
    "size_header",   "num_headers",   "content_type",    "method",          "url_effective",
    "exitcode",      "errormsg",      "time_namelookup", "time_appconnect", "time_starttransfer",
    "time_redirect", "time_total",    "num_redirects"};

std::string expand_write_out(const std::string& format, const write_out_context& x, bool warn) {
    std::string out;
    for (std::size_t i = 0; i < format.size(); ++i) {
        if (format[i] == '\\' && i + 1 < format.size()) {
            const char e = format[++i];
            out += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
        } else if (format.compare(i, 2, "%{") == 0) {
            const auto close = format.find('}', i);
            if (close == std::string::npos) {
                out += format.substr(i);
                break;
            }
            const auto var = format.substr(i + 2, close - i - 2);
            if (var == "json") {
                nlohmann::ordered_json all;
                for (auto name : write_out_names)
                    all[std::string(name)] = *write_out_value(name, x);
                out += all.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            } else if (auto v = write_out_value(var, x)) {
                if (var == "http_code" || var == "response_code") {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "%03u", v->get<unsigned>());
                    out += buf;
                } else if (v->is_number_float()) {
                    char buf[32];
                    std::snprintf(buf, sizeof buf, "%.6f", v->get<double>());
                    out += buf;
                } else if (v->is_string()) {
                    out += v->get<std::string>();
                } else {
                    out += v->dump();
                }
            } else if (warn && (var == "time_connect" || var == "time_pretransfer")) {
                std::cerr << "udshttp: warning: --write-out variable '" << var
                          << "' is not measured (time_starttransfer is); printed as nothing\n";
            } else if (warn) {
                std::cerr << "udshttp: warning: unknown --write-out variable: '" << var << "'\n";
            }
            i = close;
        } else if (format.compare(i, 2, "%%") == 0) {
            out += '%';
            ++i;
        } else {
            out += format[i];
        }
    }
    return out;
}

// curl's meter, reduced: one line on stderr, redrawn at most five times a second, shown only
// on a terminal and only once a transfer passes 4 MiB; or, with -#, curl's bar, always.
class progress_meter {
public:
    explicit progress_meter(bool enabled, bool bar = false) : enabled_(enabled), bar_(bar) {}

    void update(const udshttp::client::progress& p) {
        last_p_ = p;
        if (!enabled_ || (!bar_ && std::max(p.sent, p.received) < threshold))
            return;
        const auto now = std::chrono::steady_clock::now();
        if (shown_ && now - last_ < std::chrono::milliseconds(200))
            return;
        draw(p, now);
    }
    // The last figures, drawn once more: a transfer shorter than the redraw interval would
    // otherwise end on its first sample.
    void finish() {
        if (!shown_)
            return;
        draw(last_p_, std::chrono::steady_clock::now());
        std::cerr << '\n';
    }

private:
    void draw(const udshttp::client::progress& p, std::chrono::steady_clock::time_point now) {
        last_ = now;
        shown_ = true;
        if (bar_) {
            draw_bar(p);
            return;
        }
        const double secs = std::chrono::duration<double>(now - start_).count();
        const double mib = 1024.0 * 1024.0;
        const double moved = static_cast<double>(p.sent + p.received);
        char line[160];
        std::snprintf(line, sizeof line,
                      "\r  sent %9.1f MiB%s   received %9.1f MiB%s   %8.1f MiB/s ",
                      static_cast<double>(p.sent) / mib, total(p.send_total).c_str(),
                      static_cast<double>(p.received) / mib, total(p.receive_total).c_str(),
                      secs > 0 ? moved / mib / secs : 0.0);
        std::cerr << line << std::flush;
    }
    // 72 columns of '#', and the share done; without a known length, the bytes moved.
    static void draw_bar(const udshttp::client::progress& p) {
        std::optional<double> share;
        if (p.receive_total && *p.receive_total > 0)
            share = static_cast<double>(p.received) / static_cast<double>(*p.receive_total);
        else if (p.send_total && *p.send_total > 0 && p.received == 0)
            share = static_cast<double>(p.sent) / static_cast<double>(*p.send_total);
        constexpr int width = 72;
        char line[128];
        if (share) {
            const int done = static_cast<int>(std::min(1.0, *share) * width);
            std::snprintf(line, sizeof line, "\r%s%s %5.1f%%",
                          std::string(static_cast<std::size_t>(done), '#').c_str(),
                          std::string(static_cast<std::size_t>(width - done), ' ').c_str(),
                          std::min(1.0, *share) * 100);
        } else {
            std::snprintf(line, sizeof line, "\r%-*s %.1f MiB", width, "#",
                          static_cast<double>(p.sent + p.received) / (1024.0 * 1024.0));
        }
        std::cerr << line << std::flush;
    }
    static constexpr std::uint64_t threshold = 4 * 1024 * 1024;
    static std::string total(const std::optional<std::uint64_t>& t) {
        if (!t)
            return "";
        char buf[32];
        std::snprintf(buf, sizeof buf, " of %.1f", static_cast<double>(*t) / (1024.0 * 1024.0));
        return buf;
    }
    bool enabled_;
    bool bar_;
    bool shown_ = false;
    udshttp::client::progress last_p_{};
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point last_;
};

} // namespace

// udshttp rules suggest AUDIT_LOG: one rule per caller and method set, listing the paths it
// was seen to use with exactly those methods, so the rules allow what was seen and no more.
int suggest_rules(const std::string& path) {
    std::ifstream file;
    if (path != "-") {
        file.open(path);
        if (!file) {
            std::cerr << "udshttp: cannot read audit log " << path << ": " << std::strerror(errno)
                      << '\n';
            return udshttp::cli::read_error;
        }
    }
    std::istream& in = path == "-" ? std::cin : file;
    // caller -> path -> methods; a caller is {"uid": N} or {"transport": "tcp"}.
    std::map<std::string, std::map<std::string, std::set<std::string>>> seen;
    std::size_t bad = 0, lineno = 0, skipped = 0;
    for (std::string line; std::getline(in, line);) {
        ++lineno;
        if (line.empty())
            continue;
        const auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.is_object() || !j.contains("caller") || !j.contains("path") ||
            !j.contains("method") || !j["path"].is_string() || !j["method"].is_string()) {
            ++bad;
            continue;
        }
        if (j.value("verdict", "") == "deny")
            continue;
        const auto p = j["path"].get<std::string>();
        if (p.find('*') != std::string::npos || !p.starts_with('/')) {
            ++skipped; // a '*' would be a pattern in a rule
            continue;
        }
        const auto& c = j["caller"];
        std::string key = c.contains("uid") && c["uid"].is_number_integer()
                              ? "uid:" + std::to_string(c["uid"].get<std::int64_t>())
                              : "tcp";
        seen[key][p].insert(j["method"].get<std::string>());
    }
    nlohmann::ordered_json rules = nlohmann::ordered_json::array();
    for (const auto& [caller, paths] : seen) {
        std::map<std::set<std::string>, std::vector<std::string>> by_methods;
        for (const auto& [p, methods] : paths)
            by_methods[methods].push_back(p);
        for (const auto& [methods, ps] : by_methods) {
            nlohmann::ordered_json r;
            r["name"] = "seen " + std::to_string(rules.size() + 1);
            if (caller == "tcp")
                r["transport"] = "tcp";
            else
                r["uid"] = {std::stoll(caller.substr(4))};
            r["methods"] = methods;
            r["paths"] = ps;
            rules.push_back(std::move(r));
        }
    }
    nlohmann::ordered_json out;
    out["rules"] = std::move(rules);
    std::cout << out.dump(2) << '\n';
    if (bad > 0)
        std::cerr << "udshttp: rules suggest: " << bad << " of " << lineno
                  << " lines were not audit records; ignored\n";
    if (skipped > 0)
        std::cerr << "udshttp: rules suggest: " << skipped
                  << " paths with '*' left out (a rule would read them as a pattern)\n";
    return udshttp::cli::ok;
}

// udshttp routes URL: the server's routes, from its OpenAPI document.
int list_routes(const std::string& url_text) {
    auto url = udshttp::proto::url::parse(url_text);
    if (!url) {
        std::cerr << "udshttp: " << url.error().message << '\n';
        return bad_url;
    }
    const auto doc_url = udshttp::proto::make_url(url->where, "/openapi.json");
    udshttp::client::client client;
    auto r = client.get(doc_url);
    if (!r) {
        std::cerr << "udshttp: " << r.error().message << '\n';
        return exit_code_for(r.error());
    }
    if (r->status != 200) {
        std::cerr << "udshttp: " << doc_url << " answered " << r->status
                  << " (not a udshttp server, or one without /openapi.json)\n";
        return http_error;
    }
    const auto doc = nlohmann::json::parse(r->body, nullptr, false);
    if (doc.is_discarded() || !doc.contains("paths") || !doc["paths"].is_object()) {
        std::cerr << "udshttp: " << doc_url << " is not an OpenAPI document\n";
        return weird_reply;
    }
    static constexpr std::string_view methods[] = {"get",     "put",  "post",  "delete",
                                                   "options", "head", "patch", "trace"};
    std::size_t width = 4;
    for (const auto& [path, item] : doc["paths"].items())
        width = std::max(width, path.size());
    for (const auto& [path, item] : doc["paths"].items()) {
        for (const auto method : methods) {
            if (!item.contains(method))
                continue;
            std::string upper(method);
            for (auto& ch : upper)
                ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
            const auto& op = item[std::string(method)];
            std::cout << upper << std::string(8 - upper.size(), ' ') << path
                      << std::string(width + 2 - path.size(), ' ')
                      << op.value("summary", std::string()) << '\n';
        }
    }
    return ok;
}

// udshttp events URL: each event's data as it arrives, one per line.
int print_events(cli& c) {
    udshttp::client::client client(c.options);
    const auto url = effective_url(c);
    auto r = udshttp::client::read_events(
        client, url,
        [&](const udshttp::client::sse_event& e) {
            if (c.events_json) {
                const nlohmann::ordered_json j{{"type", e.type}, {"id", e.id}, {"data", e.data}};
                std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            } else {
                if (e.type != "message")
                    std::cout << e.type << ": ";
                std::cout << e.data;
            }
            std::cout << '\n' << std::flush; // as it arrives, also into a pipe
            return static_cast<bool>(std::cout);
        },
        {.headers = c.headers, .reconnect = c.reconnect});
    if (!std::cout)
        return write_error;
    if (!r) {
        if (c.errors_shown())
            std::cerr << "udshttp: " << r.error().message << '\n';
        return exit_code_for(r.error());
    }
    return ok;
}

// udshttp ws URL: stdin lines out as messages, messages in as lines.
int relay_websocket(cli& c) {
    const auto url = effective_url(c);
    auto ws = udshttp::client::websocket::connect(url);
    if (!ws) {
        std::cerr << "udshttp: " << ws.error().message << '\n';
        return exit_code_for(ws.error());
    }
    auto r = ws->relay(STDIN_FILENO, std::cout, c.binary, c.linger);
    if (!std::cout)
        return write_error;
    if (!r) {
        std::cerr << "udshttp: " << r.error().message << '\n';
        return exit_code_for(r.error());
    }
    return ok;
}

namespace {

bool is_redirect(unsigned status) {
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// Where -L goes next: the client's URL and the URL as curl would show it (-w url_effective).
struct next_hop {
    std::string url;
    std::string shown;
};

boost::system::result<next_hop, usage_error>
redirect_url(const cli& c, udshttp::client::request& req, const std::string& location) {
    auto cur = udshttp::proto::url::parse(req.url);
    if (!cur)
        return usage_error{cur.error().message};
    auto t = udshttp::cli::resolve_redirect(cur->target, location);
    if (!t)
        return t.error();
    const auto set_host = [&](const std::string& host) {
        std::erase_if(req.headers,
                      [](const auto& f) { return boost::beast::iequals(f.first, "Host"); });
        if (socket_given(c))
            req.headers.emplace_back("Host", host);
    };
    if (t->absolute && !socket_given(c)) { // a URL of its own: http:// or http+unix://
        auto parsed = udshttp::proto::url::parse(location);
        if (!parsed)
            return usage_error{parsed.error().message};
        set_host(parsed->host);
        return next_hop{location, location};
    }
    if (t->absolute && !boost::beast::iequals(t->scheme, "http"))
        return usage_error{"through --unix-socket only http: redirects can be followed"};
    if (t->absolute)
        set_host(t->host);
    const auto host = t->absolute ? t->host : cur->host;
    auto url = udshttp::proto::make_url(cur->where, t->target);
    return next_hop{url, socket_given(c) ? "http://" + host + t->target : url};
}

// One URL's transfer: the request, its retries and redirects, the answer written out. Returns
// the exit code (curl's), having printed the message and -w's line.
int transfer(cli& c, udshttp::client::client& client, const std::string& given_data,
             std::optional<udshttp::cli::form_body> form) {
    udshttp::client::request req;
    req.url = effective_url(c);
    if (c.remote_name && c.output.empty()) { // -O: the URL's last path segment
        auto parsed = udshttp::proto::url::parse(req.url);
        std::string target = parsed ? parsed->target : "";
        target = target.substr(0, target.find('?'));
        auto name = target.substr(target.rfind('/') + 1);
        if (name.empty() || name == "." || name == "..")
            die(c, write_error,
                "-O: the URL's path has no file name to write to ('" + target + "')");
        c.output = std::move(name);
    }
    if (!c.output.empty() && c.output != "-") {
        if (!c.output_dir.empty() && !c.output.starts_with("/"))
            c.output = c.output_dir + "/" + c.output;
        if (c.create_dirs) {
            std::error_code ec;
            const auto parent = std::filesystem::path(c.output).parent_path();
            if (!parent.empty())
                std::filesystem::create_directories(parent, ec);
            if (ec)
                die(c, write_error,
                    "--create-dirs: cannot create " + parent.string() + ": " + ec.message());
        }
    }
    req.headers = c.headers;
    if (c.json) {
        if (!has_header(c, "Content-Type"))
            req.headers.emplace_back("Content-Type", "application/json");
        if (!has_header(c, "Accept"))
            req.headers.emplace_back("Accept", "application/json");
    } else if (c.form_data && !c.get && !has_header(c, "Content-Type") &&
               !removed_header(c, "Content-Type")) {
        req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    }
    // curl's default Accept, unless given or removed (--json has its own).
    if (!c.json && !has_header(c, "Accept") && !removed_header(c, "Accept"))
        req.headers.emplace_back("Accept", "*/*");
    std::string data = given_data;
    if (form && !has_header(c, "Content-Type") && !removed_header(c, "Content-Type"))
        req.headers.emplace_back("Content-Type", form->content_type);
    if (c.compressed && !has_header(c, "Accept-Encoding"))
        req.headers.emplace_back("Accept-Encoding", "deflate, gzip");
    if (c.get && !data.empty()) { // -G: the data is the query
        req.url += req.url.find('?') == std::string::npos ? '?' : '&';
        // curl's URL API writes the query's percent-escapes in lower case (the body keeps
        // --data-urlencode's upper case): the same bytes reach the server either way.
        for (std::size_t i = 0; i + 2 < data.size(); ++i)
            if (data[i] == '%')
                for (std::size_t k = i + 1; k <= i + 2; ++k)
                    data[k] = static_cast<char>(std::tolower(static_cast<unsigned char>(data[k])));
        req.url += data;
        data.clear();
    }
    req.method = c.effective_method();
    req.version = c.http10 ? 10 : 11;

    if (c.verbose) { // the head as it is sent, the fields the client adds included
        auto parsed = udshttp::proto::url::parse(req.url);
        if (parsed) {
            std::cerr << "* connecting to " << parsed->where.to_string() << '\n';
            std::cerr << "> " << req.method << ' ' << parsed->target
                      << (c.http10 ? " HTTP/1.0\n" : " HTTP/1.1\n");
            if (!has_header(c, "Host"))
                std::cerr << "> Host: " << parsed->host << '\n';
        }
        if (!has_header(c, "User-Agent") && !c.options.user_agent.empty())
            std::cerr << "> User-Agent: " << c.options.user_agent << '\n';
        for (const auto& [k, v] : req.headers)
            std::cerr << "> " << k << ": " << v << '\n';
        if (!data.empty())
            std::cerr << "> Content-Length: " << data.size() << '\n';
        std::cerr << ">\n";
    }

    const bool quiet_failure = c.fail; // -f: no body for an error status
    const bool fails_on_status = c.fail || c.fail_with_body;
    const auto started = std::chrono::steady_clock::now();
    // -w's figures, and the way out: every exit from here prints -w's line too, as curl's
    // (000 when no response arrived).
    write_out_context wo{.method = req.method, .url = typed_url(c)};
    const auto finish = [&](int code, const std::string& message) -> int {
        if (!message.empty() && c.errors_shown())
            std::cerr << "udshttp: " << message << '\n';
        std::cout.flush();
        if (!c.write_out.empty()) {
            wo.exitcode = code;
            wo.errormsg = message;
            wo.seconds =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
            std::cout << expand_write_out(c.write_out, wo, !c.silent) << std::flush;
        }
        return code;
    };
    std::optional<udshttp::client::body_sink> out;
    std::optional<udshttp::client::body_sink> dump;
    bool sink_failed = false;
    std::string error_text; // with -f, an error answer's body, for the message
    std::uint64_t downloaded = 0;
    auto open_output = [&]() -> bool {
        if (out)
            return true;
        auto s = udshttp::client::file_sink(c.output.empty() ? "-" : c.output);
        if (!s) {
            error_text = s.error().message;
            sink_failed = true;
            return false;
        }
        out = std::move(*s);
        return true;
    };

    const auto data_size = data.size();
    req.body = std::move(data); // send() only reads it, so each try sends it again
    unsigned redirects = 0;
    for (unsigned attempt = 0;;) {
        const unsigned retries_left = c.retries - attempt;
        bool source_failed = false;
        bool source_read = false; // a streamed body cannot be sent again once read from
        if (form) {
            req.body = form->make();
        } else if (!c.upload_file.empty()) {
            auto src = udshttp::client::file_source(c.upload_file);
            if (!src)
                return finish(read_error, src.error().message);
            src->source = [inner = std::move(src->source), &source_failed,
                           &source_read](std::span<char> buf) -> udshttp::result<std::size_t> {
                auto n = inner(buf);
                source_failed = !n;
                source_read = source_read || (n && *n > 0);
                return n;
            };
            req.body = std::move(*src);
            if (c.verbose && attempt == 0)
                std::cerr << "> (body streamed from " << c.upload_file << ")\n";
        }
        // The wait before the next try, if this one may be tried again: --retry-delay, else
        // the server's Retry-After, else 1 s doubling (as curl); none past --retry-max-time.
        const auto next_wait =
            [&](const udshttp::client::response* r) -> std::optional<std::chrono::milliseconds> {
            if (retries_left == 0 || (source_read && c.upload_file == "-"))
                return std::nullopt;
            std::chrono::milliseconds wait =
                std::chrono::seconds(1) * (1u << std::min(attempt, 9u));
            if (c.retry_delay) {
                wait = *c.retry_delay;
            } else if (r) {
                const auto after = r->header("Retry-After");
                unsigned long secs = 0;
                const auto [p, ec] =
                    std::from_chars(after.data(), after.data() + after.size(), secs);
                if (!after.empty() && ec == std::errc{} && p == after.data() + after.size())
                    wait = std::chrono::seconds(std::min(secs, 3600ul));
            }
            if (c.retry_max_time.count() > 0 &&
                std::chrono::steady_clock::now() + wait - started > c.retry_max_time)
                return std::nullopt;
            return wait;
        };

        // The body goes out as it arrives. Output opens at the first piece (or at the end for
        // an empty body), so -f on an error status leaves no file behind. An answer that will
        // be tried again writes nothing.
        unsigned status = 0;
        bool discard = false;
        bool decode_failed = false;
        bool wrote_body = false;
        std::optional<std::chrono::milliseconds> status_wait;
        progress_meter meter(c.progress_bar ? !c.silent : !c.silent && ::isatty(STDERR_FILENO),
                             c.progress_bar);
        std::string location; // -L: where a redirect sends us
        std::unique_ptr<udshttp::cli::inflater> decoder;
        udshttp::client::download dl;
        dl.head = [&](const udshttp::client::response& r) {
            status = r.status;
            wo.starttransfer =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
            const bool transient = transient_status(r.status) ||
                                   (c.retry_all_errors && fails_on_status && r.status >= 400);
            if (transient && (status_wait = next_wait(&r))) {
                discard = true;
                return;
            }
            if (c.follow && is_redirect(r.status) && !r.header("Location").empty()) {
                location = r.header("Location");
                discard = true; // its body is not the answer; its head is shown below
            }
            if (c.compressed && !discard && !c.head)
                decoder = udshttp::cli::inflater::for_encoding(r.header("Content-Encoding"));
            const auto text = status_and_headers(r);
            if (c.verbose) { // before the body, as curl's
                std::istringstream lines(text);
                for (std::string line; std::getline(lines, line);) {
                    if (!line.empty() && line.back() == '\r')
                        line.pop_back();
                    std::cerr << "< " << line << '\n';
                }
            }
            // Opened at the first answer and kept: with -L (or --retry) every head goes in, the
            // redirects' first, as curl writes them.
            if (!c.dump_header.empty() && !dump) {
                if (auto d = udshttp::client::file_sink(c.dump_header); !d) {
                    error_text = d.error().message;
                    sink_failed = true;
                } else {
                    dump = std::move(*d);
                }
            }
            if (dump && !(*dump)(text))
                sink_failed = true;
            // With -f too: curl writes the head of an error answer, then fails.
            if ((c.include || c.head) && open_output()) {
                if (!(*out)(text))
                    sink_failed = true;
            }
        };
        dl.sink = [&](std::string_view piece) -> udshttp::result<void> {
            if (discard)
                return {};
            downloaded += piece.size();
            if (quiet_failure && status >= 400) {
                if (error_text.size() < 64 * 1024)
                    error_text.append(piece);
                return {};
            }
            if (!open_output())
                return udshttp::error{make_error_code(udshttp::errc::io_error), error_text};
            wrote_body = true;
            if (decoder) {
                auto r = decoder->feed(piece, *out);
                if (!r)
                    decode_failed = true;
                return r;
            }
            auto r = (*out)(piece);
            sink_failed = !r;
            return r;
        };
        dl.progress = [&](const udshttp::client::progress& p) {
            wo.uploaded = p.sent;
            meter.update(p);
        };

        auto r = client.send(req, dl);
        meter.finish();
        if (r && decoder && !decode_failed)
            if (auto end = decoder->finish(); !end)
                return finish(bad_content_encoding,
                              req.method + " " + req.url + ": " + end.error().message);
        std::optional<std::chrono::milliseconds> wait;
        std::string why;
        if (!r && !source_failed && !sink_failed && !wrote_body && transient_error(c, r.error())) {
            wait = next_wait(nullptr);
            why = r.error().message;
        } else if (r && discard) {
            wait = status_wait;
            why = "the server answered " + std::to_string(r->status) + " " + r->reason;
        }
        if (wait) {
            if (c.errors_shown())
                std::cerr << "udshttp: " << why << "; trying again in " << seconds_text(*wait)
                          << " (" << retries_left << (retries_left == 1 ? " retry" : " retries")
                          << " left)\n";
            std::this_thread::sleep_for(*wait);
            ++attempt;
            continue;
        }
        if (r && !location.empty()) { // -L
            if (redirects == c.max_redirs)
                return finish(too_many_redirects,
                              "Maximum (" + std::to_string(c.max_redirs) + ") redirects followed");
            auto next = redirect_url(c, req, location);
            if (!next)
                return finish(bad_url, req.method + " " + req.url +
                                           ": cannot follow the redirect to '" + location +
                                           "': " + next.error().message);
            ++redirects;
            wo.redirects = redirects;
            // As curl's: 303 turns any method but HEAD into GET; 301 and 302 turn a POST
            // into a GET; the body goes with it. -X keeps the method named.
            const bool to_get = c.method.empty() &&
                                ((r->status == 303 && req.method != "HEAD") ||
                                 ((r->status == 301 || r->status == 302) && req.method == "POST"));
            if (to_get) {
                req.method = "GET";
                req.body = std::string();
                form.reset();
                c.upload_file.clear();
                std::erase_if(req.headers, [](const auto& f) {
                    return boost::beast::iequals(f.first, "Content-Type");
                });
            }
            req.url = next.value().url;
            wo.url = next.value().shown;
            wo.method = req.method;
            attempt = 0;
            continue;
        }
        if (!r && decode_failed)
            return finish(bad_content_encoding, r.error().message);
        if (!r)
            return finish(source_failed ? read_error
                          : sink_failed ? write_error
                                        : exit_code_for(r.error()),
                          r.error().message);
        wo.r = &*r;
        wo.downloaded = downloaded;
        if (c.upload_file.empty()) // a body from memory went out whole
            wo.uploaded = std::max<std::uint64_t>(wo.uploaded, data_size);

        if (fails_on_status && r->status >= 400) {
            if (c.fail_with_body && (!open_output() || sink_failed))
                return finish(write_error,
                              error_text.empty() ? "cannot write the output" : error_text);
            std::string message = req.method + " " + req.url + ": the server answered " +
                                  std::to_string(r->status) + " " + r->reason;
            r->body = error_text; // -f kept it aside; --fail-with-body printed it
            if (auto body = r->error_body(); body && !body->message.empty())
                message += ": " + body->message;
            return finish(http_error, message);
        }
        if (!open_output() || sink_failed)
            return finish(write_error, error_text.empty() ? "cannot write the output" : error_text);
        return finish(ok, "");
    }
}

} // namespace

int main(int argc, char** argv) {
    // A reader that closes the pipe early (udshttp URL | head) is a write error, exit 23 as
    // curl's, not death by SIGPIPE (141).
    ::signal(SIGPIPE, SIG_IGN);
    const std::vector<std::string> given(argv + 1, argv + argc);
    // -K FILE: curl's config file, its options in place of -K.
    auto args = udshttp::cli::expand_config(
        given, [](const std::string& file) -> boost::system::result<std::string, usage_error> {
            auto text = udshttp::cli::read_whole(file);
            if (!text)
                return usage_error{"-K: cannot read " + file + ": " + text.error().message()};
            return {boost::system::in_place_value, std::move(*text)};
        });
    if (!args) {
        std::cerr << "udshttp: " << args.error().message << " (see udshttp --help)\n";
        return usage;
    }
    auto command = parse_cli(*args);
    if (!command) {
        std::cerr << "udshttp: " << command.error().message << " (see udshttp --help)\n";
        return usage;
    }
    switch (command->action) {
    case action::help:
        std::cout << help_text();
        return ok;
    case action::version:
        std::cout << "udshttp " << udshttp::version_line() << '\n';
        return ok;
    case action::routes:
        return list_routes(command->options.url);
    case action::rules_suggest:
        return suggest_rules(command->options.url);
    case action::events:
        return print_events(command->options);
    case action::ws:
        return relay_websocket(command->options);
    case action::request:
        break;
    }
    cli& c = command->options;
    if (c.fail && c.fail_with_body) {
        std::cerr << "udshttp: choose --fail or --fail-with-body, not both (see udshttp --help)\n";
        return usage;
    }
    if (c.write_out.starts_with("@")) { // -w @FILE (@- stdin): the format from a file
        const auto name = c.write_out.substr(1);
        auto format = read_whole(name);
        if (!format)
            die(c, read_error,
                "cannot read the -w format from " + name + ": " + format.error().message());
        c.write_out = std::move(*format);
    }
    // A default socket from the environment, as DOCKER_HOST is docker's: it applies to a URL
    // without a scheme ("/hello", "localhost/hello"); --unix-socket and full URLs win.
    if (const char* env = std::getenv("UDSHTTP_SOCKET"); env && *env && c.unix_socket.empty() &&
                                                         c.abstract_socket.empty() &&
                                                         c.url.find("://") == std::string::npos) {
        if (env[0] == '@')
            c.abstract_socket = env + 1;
        else
            c.unix_socket = env;
    }
    for (const auto& file : c.header_files) { // -H @FILE: a field per line
        std::ifstream in(file);
        if (!in)
            die(c, read_error, "cannot read headers from " + file + ": " + std::strerror(errno));
        for (std::string line; std::getline(in, line);) {
            if (!line.empty() && line.back() == '\r')
                line.pop_back();
            if (line.empty())
                continue;
            if (auto e = add_header_arg(c, line))
                die(c, usage, file + ": " + e->message);
        }
    }
    if (removed_header(c, "User-Agent"))
        c.options.user_agent.clear();
    // The body is made once, for every URL (stdin is read once, as curl's).
    std::string data;
    if (!c.data.empty()) {
        auto body = load_data(c.data);
        if (!body)
            die(c, read_error, body.error().message);
        data = std::move(*body);
    }
    std::optional<udshttp::cli::form_body> form;
    if (!c.form.empty()) {
        auto made = udshttp::cli::make_form_body(c.form);
        if (!made)
            die(c, read_error, made.error().message);
        form = std::move(*made);
    }
    // One client for every URL: a second URL on the same socket reuses the connection.
    udshttp::client::client client(c.options);
    int code = ok;
    for (std::size_t i = 0; i < c.urls.size(); ++i) {
        cli each = c;
        each.url = c.urls[i];
        const auto target = i < c.outputs.size() ? c.outputs[i] : udshttp::cli::output_target{};
        each.output = target.file;
        each.remote_name = target.remote_name;
        code = transfer(each, client, data, form);
    }
    return code;
}
