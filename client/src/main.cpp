// udshttp: a curl-compatible command line over the udshttp client library.

#include "cli.hpp"

#include <udshttp/client/client.hpp>
#include <udshttp/client/stream.hpp>
#include <udshttp/client/websocket.hpp>
#include <udshttp/proto/units.hpp>
#include <udshttp/proto/url.hpp>
#include <udshttp/proto/version.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

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
    for (const auto& [k, v] : c.headers)
        if (k.size() == name.size() &&
            std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
                return std::tolower(static_cast<unsigned char>(a)) ==
                       std::tolower(static_cast<unsigned char>(b));
            }))
            return true;
    return false;
}

// The URL the client library gets: --unix-socket/--abstract-unix-socket move the target of an
// http:// URL onto the socket, keeping its Host.
std::string effective_url(cli& c) {
    std::string url = c.url;
    if (url.find("://") == std::string::npos)
        url = "http://" + url; // as curl: a bare host/path means http
    if (c.unix_socket.empty() && c.abstract_socket.empty())
        return url;
    auto parsed = udshttp::proto::url::parse(url);
    if (!parsed)
        die(c, bad_url, parsed.error().message);
    auto where = c.unix_socket.empty() ? udshttp::proto::endpoint::parse("@" + c.abstract_socket)
                                       : udshttp::proto::endpoint::parse("unix:" + c.unix_socket);
    if (!where)
        die(c, bad_url, where.error().message);
    if (!has_header(c, "Host"))
        c.headers.emplace_back("Host", parsed->host);
    return udshttp::proto::make_url(*where, parsed->target);
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
        return http_error; // an error status (udshttp events), as curl -f says it
    default:
        return recv_error;
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

std::string expand_write_out(const std::string& format, const udshttp::client::response& r,
                             double seconds, const std::string& url, std::uint64_t downloaded) {
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
            if (var == "http_code" || var == "response_code") {
                char buf[8];
                std::snprintf(buf, sizeof buf, "%03u", r.status);
                out += buf;
            } else if (var == "size_download") {
                out += std::to_string(downloaded);
            } else if (var == "time_total") {
                char buf[32];
                std::snprintf(buf, sizeof buf, "%.6f", seconds);
                out += buf;
            } else if (var == "content_type") {
                out += r.header("Content-Type");
            } else if (var == "url_effective") {
                out += url;
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
// on a terminal and only once a transfer passes 4 MiB.
class progress_meter {
public:
    explicit progress_meter(bool enabled) : enabled_(enabled) {}

    void update(const udshttp::client::progress& p) {
        if (!enabled_ || std::max(p.sent, p.received) < threshold)
            return;
        const auto now = std::chrono::steady_clock::now();
        if (shown_ && now - last_ < std::chrono::milliseconds(200))
            return;
        last_ = now;
        shown_ = true;
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
    void finish() {
        if (shown_)
            std::cerr << '\n';
    }

private:
    static constexpr std::uint64_t threshold = 4 * 1024 * 1024;
    static std::string total(const std::optional<std::uint64_t>& t) {
        if (!t)
            return "";
        char buf[32];
        std::snprintf(buf, sizeof buf, " of %.1f", static_cast<double>(*t) / (1024.0 * 1024.0));
        return buf;
    }
    bool enabled_;
    bool shown_ = false;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point last_;
};

} // namespace

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

int main(int argc, char** argv) {
    const std::vector<std::string> args(argv + 1, argv + argc);
    auto command = parse_cli(args);
    if (!command) {
        std::cerr << "udshttp: " << command.error().message << " (see udshttp --help)\n";
        return usage;
    }
    switch (command->action) {
    case action::help:
        std::cout << help_text();
        return ok;
    case action::version:
        std::cout << "udshttp " << udshttp::version << '\n';
        return ok;
    case action::routes:
        return list_routes(command->options.url);
    case action::events:
        return print_events(command->options);
    case action::ws:
        return relay_websocket(command->options);
    case action::request:
        break;
    }
    cli& c = command->options;
    udshttp::client::request req;
    req.url = effective_url(c);
    req.headers = c.headers;
    if (c.json) {
        if (!has_header(c, "Content-Type"))
            req.headers.emplace_back("Content-Type", "application/json");
        if (!has_header(c, "Accept"))
            req.headers.emplace_back("Accept", "application/json");
    } else if (c.form_data && !has_header(c, "Content-Type")) {
        req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    }
    std::string data;
    if (!c.data.empty()) {
        auto body = load_data(c.data);
        if (!body)
            die(c, read_error, body.error().message);
        data = std::move(*body);
    }
    req.method = c.effective_method();

    if (c.verbose) {
        auto parsed = udshttp::proto::url::parse(req.url);
        if (parsed) {
            std::cerr << "* connecting to " << parsed->where.to_string() << '\n';
            std::cerr << "> " << req.method << ' ' << parsed->target << " HTTP/1.1\n";
            if (!has_header(c, "Host"))
                std::cerr << "> Host: " << parsed->host << '\n';
        }
        for (const auto& [k, v] : req.headers)
            std::cerr << "> " << k << ": " << v << '\n';
        if (!data.empty())
            std::cerr << "> Content-Length: " << data.size() << '\n';
        std::cerr << ">\n";
    }

    req.body = std::move(data);
    bool source_failed = false;
    if (!c.upload_file.empty()) {
        auto src = udshttp::client::file_source(c.upload_file);
        if (!src)
            die(c, read_error, src.error().message);
        src->source = [inner = std::move(src->source),
                       &source_failed](std::span<char> buf) -> udshttp::result<std::size_t> {
            auto n = inner(buf);
            source_failed = !n;
            return n;
        };
        req.body = std::move(*src);
        if (c.verbose)
            std::cerr << "> (body streamed from " << c.upload_file << ")\n";
    }

    // The body goes out as it arrives. Output opens at the first piece (or at the end for an
    // empty body), so -f on an error status leaves no file behind.
    std::optional<udshttp::client::body_sink> out;
    bool sink_failed = false;
    std::string error_text; // with -f, an error answer's body, for the message
    std::uint64_t downloaded = 0;
    unsigned status = 0; // of the response whose head has arrived
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
    progress_meter meter(!c.silent && ::isatty(STDERR_FILENO));
    udshttp::client::download dl;
    dl.head = [&](const udshttp::client::response& r) {
        status = r.status;
        if ((c.include || c.head) && !(c.fail && r.status >= 400) && open_output()) {
            const auto text = status_and_headers(r);
            if (!(*out)(text))
                sink_failed = true;
        }
    };
    dl.sink = [&](std::string_view piece) -> udshttp::result<void> {
        downloaded += piece.size();
        if (c.fail && status >= 400) {
            if (error_text.size() < 64 * 1024)
                error_text.append(piece);
            return {};
        }
        if (!open_output())
            return udshttp::error{make_error_code(udshttp::errc::io_error), error_text};
        auto r = (*out)(piece);
        sink_failed = !r;
        return r;
    };
    dl.progress = [&](const udshttp::client::progress& p) { meter.update(p); };

    udshttp::client::client client(c.options);
    const auto started = std::chrono::steady_clock::now();
    auto r = client.send(req, dl);
    meter.finish();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (!r)
        die(c,
            source_failed ? read_error
            : sink_failed ? write_error
                          : exit_code_for(r.error()),
            r.error().message);

    if (c.verbose) {
        std::istringstream head_text(status_and_headers(*r));
        for (std::string line; std::getline(head_text, line);) {
            if (!line.empty() && line.back() == '\r')
                line.pop_back();
            std::cerr << "< " << line << '\n';
        }
    }
    if (c.fail && r->status >= 400) {
        std::string message = req.method + " " + req.url + ": the server answered " +
                              std::to_string(r->status) + " " + r->reason;
        r->body = error_text;
        if (auto body = r->error_body(); body && !body->message.empty())
            message += ": " + body->message;
        die(c, http_error, message);
    }
    if (!open_output() || sink_failed)
        die(c, write_error, error_text.empty() ? "cannot write the output" : error_text);
    std::cout.flush();
    if (!c.write_out.empty())
        std::cout << expand_write_out(c.write_out, *r, seconds, req.url, downloaded) << std::flush;
    return ok;
}
