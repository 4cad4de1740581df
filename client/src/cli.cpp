#include "cli.hpp"

#include <udshttp/proto/units.hpp>

#include <boost/beast/core/detail/base64.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <iostream>
#include <iterator>
#include <stdexcept>
#include <unistd.h>

namespace udshttp::cli {
namespace {

// The short flags that take a value: "-XPOST" is "-X POST", "-sSfo f" is "-s -S -f -o f".
constexpr std::string_view takes_value = "XHdowmTDAeburFK";

// Expands bundled short flags and attached values into separate words.
std::vector<std::string> split_words(std::span<const std::string> args) {
    std::vector<std::string> words;
    for (const auto& a : args) {
        if (a.size() > 2 && a[0] == '-' && a[1] != '-') {
            for (std::size_t k = 1; k < a.size(); ++k) {
                words.push_back(std::string("-") + a[k]);
                if (takes_value.find(a[k]) != std::string_view::npos) {
                    if (k + 1 < a.size())
                        words.push_back(a.substr(k + 1));
                    break;
                }
            }
        } else {
            words.push_back(a);
        }
    }
    return words;
}

// A data part arrives. A lone --data-binary @FILE (or -T FILE) streams; once more data follows,
// the file joins the others in memory, in its place.
void add_data(cli_options& c, data_part part) {
    if (!c.upload_file.empty())
        c.data.push_back({std::exchange(c.upload_file, {}), true, false, true});
    c.data.push_back(std::move(part));
}

std::string percent_encode(std::string_view text) {
    static constexpr char hex[] = "0123456789ABCDEF"; // as curl 7.88 writes it
    std::string out;
    for (const char ch : text) {
        const auto u = static_cast<unsigned char>(ch);
        if (std::isalnum(u) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            out += ch;
        } else if (ch == ' ') {
            out += '+'; // a form's space, as curl's
        } else {
            out += '%';
            out += hex[u >> 4];
            out += hex[u & 15];
        }
    }
    return out;
}

// --data-urlencode's forms, as curl's: "content", "=content", "name=content", "@file",
// "name@file".
data_part urlencode_arg(const std::string& arg) {
    data_part p{.ampersand = true, .urlencode = true};
    const auto eq = arg.find('=');
    const auto at = arg.find('@');
    if (at != std::string::npos && (eq == std::string::npos || at < eq)) {
        p.name = arg.substr(0, at);
        p.text = arg.substr(at + 1);
        p.from_file = true;
    } else if (eq != std::string::npos) {
        p.name = arg.substr(0, eq);
        p.text = arg.substr(eq + 1);
    } else {
        p.text = arg;
    }
    return p;
}

data_part data_arg(const std::string& arg, bool strip_newlines, bool ampersand) {
    if (arg.size() > 1 && arg.front() == '@')
        return {arg.substr(1), true, strip_newlines, ampersand};
    return {arg, false, false, ampersand};
}

} // namespace

void throw_exception_from_error(const usage_error& e, const boost::source_location&) {
    throw std::invalid_argument(e.message);
}

// -F's argument: name=value, name=@file, name=<file, then ;type= and ;filename=.
boost::system::result<form_part, usage_error> form_arg(const std::string& arg) {
    const auto eq = arg.find('=');
    if (eq == std::string::npos || eq == 0)
        return usage_error{"-F: '" + arg + "' is not name=content"};
    form_part p{.name = arg.substr(0, eq)};
    std::string rest = arg.substr(eq + 1);
    if (rest.starts_with("@")) {
        p.how = form_part::kind::file;
        rest.erase(0, 1);
    } else if (rest.starts_with("<")) {
        p.how = form_part::kind::file_content;
        rest.erase(0, 1);
    }
    // Attributes at the end, as curl's: ;type=... and ;filename=...
    for (;;) {
        const auto semi = rest.rfind(';');
        if (semi == std::string::npos)
            break;
        const auto attr = std::string_view(rest).substr(semi + 1);
        if (attr.starts_with("type="))
            p.type = std::string(attr.substr(5));
        else if (attr.starts_with("filename="))
            p.filename = std::string(attr.substr(9));
        else
            break;
        rest.erase(semi);
    }
    if (p.how != form_part::kind::text && rest.empty())
        return usage_error{"-F: '" + arg + "' names no file"};
    p.value = std::move(rest);
    return p;
}

std::string cli_options::effective_method() const {
    if (!method.empty())
        return method;
    return head ? "HEAD" : has_data() && !get ? "POST" : "GET";
}

std::optional<usage_error> add_header_arg(cli_options& c, std::string_view h) {
    const auto colon = h.find(':');
    const auto semi = h.find(';');
    if (semi != std::string_view::npos && semi > 0 && colon == std::string_view::npos &&
        semi == h.size() - 1) { // "Name;": the field with an empty value
        c.headers.emplace_back(std::string(h.substr(0, semi)), "");
        return std::nullopt;
    }
    if (colon == std::string_view::npos || colon == 0)
        return usage_error{"-H: '" + std::string(h) + "' is not 'Name: value'"};
    const auto name = std::string(h.substr(0, colon));
    auto value = std::string(h.substr(colon + 1));
    value.erase(0, value.find_first_not_of(" \t"));
    if (value.empty()) { // "Name:": not sent
        c.removed_headers.push_back(name);
        std::erase_if(c.headers,
                      [&](const auto& f) { return boost::beast::iequals(f.first, name); });
        return std::nullopt;
    }
    c.headers.emplace_back(name, std::move(value));
    return std::nullopt;
}

boost::system::result<command, usage_error> parse_cli(std::span<const std::string> args) {
    command cmd;
    if (!args.empty() && args[0] == "rules") {
        if (args.size() != 3 || args[1] != "suggest")
            return usage_error{"usage: udshttp rules suggest AUDIT_LOG"};
        cmd.action = action::rules_suggest;
        cmd.options.url = args[2]; // the audit log's path
        return cmd;
    }
    if (!args.empty() && args[0] == "routes") {
        if (args.size() != 2)
            return usage_error{"usage: udshttp routes URL"};
        cmd.action = action::routes;
        cmd.options.url = args[1];
        return cmd;
    }
    auto& c = cmd.options;
    c.options.timeout = std::chrono::milliseconds(0); // as curl: no deadline unless -m
    if (!args.empty() && (args[0] == "events" || args[0] == "ws")) {
        const bool ws = args[0] == "ws";
        cmd.action = ws ? action::ws : action::events;
        for (std::size_t i = 1; i < args.size(); ++i) {
            const auto& a = args[i];
            if (!ws && a == "--json") {
                c.events_json = true;
            } else if (!ws && a == "--reconnect") {
                c.reconnect = true;
            } else if (ws && a == "--binary") {
                c.binary = true;
            } else if (ws && a == "--linger") {
                if (i + 1 >= args.size())
                    return usage_error{"option --linger needs a value"};
                auto d = proto::parse_duration(args[++i]);
                if (!d)
                    return usage_error{"--linger: " + d.error().message};
                c.linger = *d;
            } else if (a == "-s" || a == "--silent") {
                c.silent = true;
            } else if (a == "--unix-socket" || a == "--abstract-unix-socket") {
                if (i + 1 >= args.size() || args[i + 1].empty())
                    return usage_error{"option " + a + " needs a value"};
                (a == "--unix-socket" ? c.unix_socket : c.abstract_socket) = args[++i];
            } else if (a.size() > 1 && a[0] == '-') {
                return usage_error{args[0] + ": unknown option '" + a + "'"};
            } else if (c.url.empty()) {
                c.url = a;
            } else {
                return usage_error{args[0] + ": more than one URL given"};
            }
        }
        if (c.url.empty())
            return usage_error{ws ? "usage: udshttp ws [--binary] [--linger DUR] URL"
                                  : "usage: udshttp events [--json] [--reconnect] URL"};
        return cmd;
    }
    const auto words = split_words(args);
    client::fields extra; // from -A, -e, -b and -u: a -H of the same name wins, as in curl
    for (std::size_t i = 0; i < words.size(); ++i) {
        std::string flag = words[i];
        std::string inline_value;
        bool has_inline = false;
        if (auto eq = flag.find('='); flag.starts_with("--") && eq != std::string::npos) {
            inline_value = flag.substr(eq + 1);
            flag = flag.substr(0, eq);
            has_inline = true;
        }
        std::optional<usage_error> missing;
        auto next = [&]() -> std::string {
            if (has_inline)
                return inline_value;
            if (i + 1 >= words.size()) {
                missing = usage_error{"option " + flag + " needs a value"};
                return {};
            }
            return words[++i];
        };
        const auto duration = [&](std::chrono::milliseconds& out) -> std::optional<usage_error> {
            const auto text = next();
            if (missing)
                return missing;
            auto d = proto::parse_duration(text);
            if (!d)
                return usage_error{flag + ": " + d.error().message};
            out = *d;
            return std::nullopt;
        };
        std::optional<usage_error> bad;
        if (flag == "-h" || flag == "--help") {
            cmd.action = action::help;
            return cmd;
        } else if (flag == "-V" || flag == "--version") {
            cmd.action = action::version;
            return cmd;
        } else if (flag == "-X" || flag == "--request") {
            c.method = next();
        } else if (flag == "-H" || flag == "--header") {
            const auto h = next();
            if (!missing && h.size() > 1 && h.front() == '@')
                c.header_files.push_back(h.substr(1));
            else if (auto e = missing ? std::nullopt : add_header_arg(c, h))
                return *e;
        } else if (flag == "-d" || flag == "--data" || flag == "--data-ascii") {
            const auto arg = next();
            add_data(c, data_arg(arg, true, true));
            c.form_data = true;
        } else if (flag == "--data-urlencode") {
            add_data(c, urlencode_arg(next()));
            c.form_data = true;
        } else if (flag == "-O" || flag == "--remote-name") {
            c.outputs.push_back({.remote_name = true});
        } else if (flag == "-F" || flag == "--form") {
            const auto arg = next();
            if (!missing) {
                auto part = form_arg(arg);
                if (!part)
                    return part.error();
                c.form.push_back(std::move(*part));
            }
        } else if (flag == "-L" || flag == "--location") {
            c.follow = true;
        } else if (flag == "--max-redirs") {
            const auto text = next();
            long n = 0;
            const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
            if (!missing && (ec != std::errc{} || p != text.data() + text.size() || n < -1))
                return usage_error{"--max-redirs: '" + text + "' is not a number (-1: no limit)"};
            c.max_redirs = n < 0 ? UINT_MAX : static_cast<unsigned>(n);
        } else if (flag == "-0" || flag == "--http1.0") {
            c.http10 = true;
        } else if (flag == "--http1.1") {
            c.http10 = false;
        } else if (flag == "--compressed") {
            c.compressed = true;
        } else if (flag == "-#" || flag == "--progress-bar") {
            c.progress_bar = true;
        } else if (flag == "--output-dir") {
            c.output_dir = next();
        } else if (flag == "--create-dirs") {
            c.create_dirs = true;
        } else if (flag == "--path-as-is") {
            c.path_as_is = true;
        } else if (flag == "-r" || flag == "--range") {
            const auto range = next();
            if (!missing && range.find_first_not_of("0123456789-,") != std::string::npos)
                return usage_error{"-r: '" + range + "' is not a byte range such as 0-499"};
            extra.emplace_back("Range", "bytes=" + range);
        } else if (flag == "-G" || flag == "--get") {
            c.get = true;
        } else if (flag == "--data-binary") {
            const auto arg = next();
            if (arg.size() > 1 && arg.front() == '@' && !c.has_data())
                c.upload_file = arg.substr(1); // the only data so far: stream it
            else
                add_data(c, data_arg(arg, false, true));
        } else if (flag == "-T" || flag == "--upload-file") {
            if (c.has_data())
                return usage_error{"-T cannot be combined with -d/--data-binary/--json"};
            c.upload_file = next();
            if (c.method.empty())
                c.method = "PUT";
        } else if (flag == "--data-raw") {
            add_data(c, {next(), false, false, true});
        } else if (flag == "--json") {
            add_data(c, data_arg(next(), false, false));
            c.json = true;
        } else if (flag == "-i" || flag == "--include") {
            c.include = true;
        } else if (flag == "-I" || flag == "--head") {
            c.head = true;
        } else if (flag == "-o" || flag == "--output") {
            c.outputs.push_back({.file = next()});
        } else if (flag == "-f" || flag == "--fail") {
            c.fail = true;
        } else if (flag == "-s" || flag == "--silent") {
            c.silent = true;
        } else if (flag == "-S" || flag == "--show-error") {
            c.show_error = true;
        } else if (flag == "-v" || flag == "--verbose") {
            c.verbose = true;
        } else if (flag == "-N" || flag == "--no-buffer") {
            c.no_buffer = true;
        } else if (flag == "-w" || flag == "--write-out") {
            c.write_out = next();
        } else if (flag == "--unix-socket") {
            c.unix_socket = next();
            // An unset shell variable must not quietly send the request over TCP instead.
            if (!missing && c.unix_socket.empty())
                return usage_error{"--unix-socket: the socket path is empty"};
        } else if (flag == "--abstract-unix-socket") {
            c.abstract_socket = next();
            if (!missing && c.abstract_socket.empty())
                return usage_error{"--abstract-unix-socket: the socket name is empty"};
        } else if (flag == "-m" || flag == "--max-time") {
            bad = duration(c.options.timeout);
        } else if (flag == "--connect-timeout") {
            bad = duration(c.options.connect_timeout);
        } else if (flag == "--url") {
            c.urls.push_back(next());
        } else if (flag == "-D" || flag == "--dump-header") {
            c.dump_header = next();
        } else if (flag == "--fail-with-body") {
            c.fail_with_body = true;
        } else if (flag == "--retry") {
            const auto text = next();
            unsigned long n = 0;
            const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
            if (!missing && (ec != std::errc{} || p != text.data() + text.size() || n > 1000))
                return usage_error{"--retry: '" + text + "' is not a number from 0 to 1000"};
            c.retries = static_cast<unsigned>(n);
        } else if (flag == "--retry-connrefused") {
            c.retry_connrefused = true;
        } else if (flag == "--retry-all-errors") {
            c.retry_all_errors = true;
        } else if (flag == "--retry-delay") {
            std::chrono::milliseconds d{};
            bad = duration(d);
            c.retry_delay = d;
        } else if (flag == "--retry-max-time") {
            bad = duration(c.retry_max_time);
        } else if (flag == "-A" || flag == "--user-agent") {
            extra.emplace_back("User-Agent", next());
        } else if (flag == "-e" || flag == "--referer") {
            extra.emplace_back("Referer", next());
        } else if (flag == "-b" || flag == "--cookie") {
            const auto v = next();
            if (!missing && v.find('=') == std::string::npos)
                return usage_error{"-b: '" + v +
                                   "' is not name=value; reading cookies from a file is not "
                                   "supported"};
            extra.emplace_back("Cookie", v);
        } else if (flag == "-u" || flag == "--user") {
            const auto v = next();
            if (!missing && v.find(':') == std::string::npos)
                return usage_error{"-u: give user:password (there is no password prompt)"};
            std::string b64(boost::beast::detail::base64::encoded_size(v.size()), '\0');
            b64.resize(boost::beast::detail::base64::encode(b64.data(), v.data(), v.size()));
            extra.emplace_back("Authorization", "Basic " + b64);
        } else if (flag.size() > 1 && flag[0] == '-') {
            return usage_error{"unknown option '" + words[i] + "'"};
        } else {
            c.urls.push_back(flag);
        }
        if (missing)
            return *missing;
        if (bad)
            return *bad;
    }
    if (c.urls.empty())
        return usage_error{"no URL given"};
    c.url = c.urls.front();
    if (!c.outputs.empty()) {
        c.output = c.outputs.front().file;
        c.remote_name = c.outputs.front().remote_name;
    }
    if (!c.form.empty() && (!c.data.empty() || !c.upload_file.empty()))
        return usage_error{"-F cannot be combined with -d, --data-binary, --json or -T"};
    for (auto& [name, value] : extra) {
        const auto same = [&](std::string_view n) { return boost::beast::iequals(n, name); };
        const bool given = std::any_of(c.headers.begin(), c.headers.end(),
                                       [&](const auto& h) { return same(h.first); }) ||
                           std::any_of(c.removed_headers.begin(), c.removed_headers.end(), same);
        if (!given)
            c.headers.emplace_back(std::move(name), std::move(value));
    }
    return cmd;
}

boost::system::result<std::vector<std::string>, usage_error>
parse_config(std::string_view text, std::string_view file_name) {
    std::vector<std::string> out;
    std::size_t line_no = 0;
    while (!text.empty()) {
        const auto nl = text.find('\n');
        auto line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        ++line_no;
        const auto where = std::string(file_name) + ":" + std::to_string(line_no);
        const auto skip_blank = [&] {
            while (!line.empty() &&
                   (line.front() == ' ' || line.front() == '\t' || line.front() == '\r'))
                line.remove_prefix(1);
        };
        skip_blank();
        if (line.empty() || line.front() == '#')
            continue;
        // The option: up to whitespace, '=' or ':'.
        std::size_t end = 0;
        while (end < line.size() && line[end] != ' ' && line[end] != '\t' && line[end] != '=' &&
               line[end] != ':' && line[end] != '\r')
            ++end;
        std::string name(line.substr(0, end));
        line.remove_prefix(end);
        out.push_back(name.starts_with("-") ? name : "--" + name);
        skip_blank();
        if (!line.empty() && (line.front() == '=' || line.front() == ':')) {
            line.remove_prefix(1);
            skip_blank();
        }
        if (line.empty())
            continue; // a flag without a value
        std::string value;
        if (line.front() == '"') {
            line.remove_prefix(1);
            bool closed = false;
            while (!line.empty()) {
                char ch = line.front();
                line.remove_prefix(1);
                if (ch == '"') {
                    closed = true;
                    break;
                }
                if (ch == '\\' && !line.empty()) {
                    ch = line.front();
                    line.remove_prefix(1);
                    switch (ch) {
                    case 't':
                        ch = '\t';
                        break;
                    case 'n':
                        ch = '\n';
                        break;
                    case 'r':
                        ch = '\r';
                        break;
                    case 'v':
                        ch = '\v';
                        break;
                    default:
                        break; // \\ and \" and anything else: the character itself
                    }
                }
                value += ch;
            }
            if (!closed)
                return usage_error{where + ": a quoted value has no closing quote"};
        } else {
            auto stop = line.find_first_of(" \t\r");
            value = std::string(line.substr(0, stop));
        }
        out.push_back(std::move(value));
    }
    return out;
}

boost::system::result<std::vector<std::string>, usage_error>
expand_config(std::span<const std::string> args, const file_reader& read) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const auto& a = args[i];
        std::string file;
        if (a == "-K" || a == "--config") {
            if (i + 1 >= args.size())
                return usage_error{"option " + a + " needs a value"};
            file = args[++i];
        } else if (a.starts_with("--config=")) {
            file = a.substr(9);
        } else if (a.starts_with("-K") && a.size() > 2) {
            file = a.substr(2);
        } else {
            out.push_back(a);
            continue;
        }
        auto text = read(file);
        if (!text)
            return text.error();
        auto more = parse_config(*text, file == "-" ? "stdin" : file);
        if (!more)
            return more.error();
        for (auto& m : *more) {
            if (m == "-K" || m == "--config")
                return usage_error{file + ": a config file cannot name another (-K)"};
            out.push_back(std::move(m));
        }
    }
    return out;
}

boost::system::result<redirect_target, usage_error> resolve_redirect(std::string_view target,
                                                                     std::string_view location) {
    namespace urls = boost::urls;
    auto ref = urls::parse_uri_reference(location);
    if (!ref)
        return usage_error{"'" + std::string(location) + "' is not a URL"};
    const auto origin_form = [](const urls::url_view_base& u) {
        std::string t = u.encoded_path().empty() ? "/" : std::string(u.encoded_path());
        if (u.has_query())
            t += "?" + std::string(u.encoded_query());
        return t;
    };
    if (ref->has_scheme())
        return redirect_target{origin_form(*ref), true, std::string(ref->scheme()),
                               std::string(ref->encoded_host_and_port())};
    const std::string base_text = "http://h" + std::string(target); // the view points into it
    auto base = urls::parse_uri(base_text);
    if (!base)
        return usage_error{"the request target '" + std::string(target) + "' is not a path"};
    urls::url dest;
    if (auto r = urls::resolve(*base, *ref, dest); !r)
        return usage_error{"'" + std::string(location) + "': " + r.error().message()};
    return redirect_target{origin_form(dest)};
}

boost::system::result<std::string, std::error_code> read_whole(const std::string& file) {
    const int fd = file == "-" ? STDIN_FILENO : ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return std::error_code(errno, std::generic_category());
    std::string out;
    char buf[65536];
    int err = 0;
    for (;;) {
        const auto n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            err = n < 0 ? errno : 0;
            break;
        }
        out.append(buf, static_cast<std::size_t>(n));
    }
    if (fd != STDIN_FILENO)
        ::close(fd);
    if (err != 0)
        return std::error_code(err, std::generic_category());
    return out;
}

udshttp::result<std::string> load_data(const std::vector<data_part>& parts) {
    std::string body;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        const auto& part = parts[i];
        if (i > 0 && part.ampersand)
            body += '&';
        if (part.urlencode && !part.name.empty()) {
            body += part.name;
            body += '=';
        }
        if (!part.from_file) {
            body += part.urlencode ? percent_encode(part.text) : part.text;
            continue;
        }
        auto read = read_whole(part.text);
        if (!read)
            return udshttp::error{make_error_code(errc::io_error),
                                  "cannot read data file '" + part.text +
                                      "': " + read.error().message()};
        auto& content = *read;
        if (part.strip_newlines)
            std::erase_if(content, [](char ch) { return ch == '\r' || ch == '\n'; });
        body += part.urlencode ? percent_encode(content) : content;
    }
    return body;
}

std::string_view help_text() noexcept {
    return R"(Usage: udshttp [OPTIONS] URL
       udshttp routes URL
       udshttp events [--json] [--reconnect] URL
       udshttp ws [--binary] [--linger DUR] URL
       udshttp rules suggest AUDIT_LOG

Send one HTTP/1.1 request over a Unix socket or TCP and print the response body.
"udshttp routes URL" lists the routes of the udshttp server at URL's endpoint (from its
/openapi.json): method, path and summary, one per line.
"udshttp events URL" subscribes to the Server-Sent Events at URL (a udshttpd topic,
/topics/NAME, or any SSE endpoint) and prints each event's data as it arrives, one event per
line (a type other than "message" comes first, as "TYPE: DATA"); --json prints each event as
{"type","id","data"}; --reconnect resumes with Last-Event-ID when the stream ends or breaks.
It ends with the stream (exit 0), or on an error with the exit code a request would have.
"udshttp ws URL" opens a WebSocket (ws+unix://%2Frun%2Fapp.sock/path, ws://host:port/path,
or the http forms), sends each line of stdin as a message (--binary: as binary ones) and
prints each message it receives on its own line, as it arrives. When stdin ends it prints
the answers still coming until the server has been quiet for --linger (default 1s), then
closes; it ends earlier when the server closes.
"udshttp rules suggest AUDIT_LOG" reads a gateway's audit log (JSON lines; "-" is stdin)
and prints a rules file that allows exactly the method and path pairs each caller was seen
to make (verdicts allow and learn; denied requests stay denied). Queries are not constrained.

URLs:
  http+unix://%2Frun%2Fapp.sock/hello     socket path, percent-encoded (/ is %2F)
  http+unix://%40name/hello               Linux abstract socket @name
  http://127.0.0.1:8080/hello             TCP ([::1] for IPv6)
  --unix-socket PATH http://localhost/x   curl's form, same effect
  --unix-socket PATH /x                   with a socket given, a path alone will do
  UDSHTTP_SOCKET=/run/app.sock udshttp /x the socket from the environment, for URLs
                                          without a scheme (@name: abstract); flags win

Several URLs in one call are fetched in turn over the same connection; each -o or -O goes
with the URL in the same place, and the exit status is the last transfer's.

Options (as curl's):
  -X, --request METHOD        request method (default GET, POST with data, HEAD with -I)
  -F, --form NAME=CONTENT     a multipart/form-data part: NAME=text, NAME=@FILE (a file,
                              streamed), NAME=<FILE (its content as text); ;type=T and
                              ;filename=N after it; repeatable
  -L, --location              follow redirects (301, 302, 303, 307, 308), on the same
                              socket for relative ones; 303, and 301/302 after a POST,
                              become GET without the body, as curl does
      --max-redirs N          at most N redirects (default 50, -1: no limit), else exit 47
  -0, --http1.0               send HTTP/1.0 requests (--http1.1: the default)
      --compressed            ask for deflate or gzip and decode the body as it arrives
  -K, --config FILE           read options from FILE in curl's config syntax (- is stdin)
  -#, --progress-bar          draw a bar of #s on stderr as the transfer goes
  -H, --header 'Name: value'  add a header field (repeatable); 'Name;' sends it empty,
                              'Name:' does not send it (User-Agent: none at all); @FILE
                              reads one field per line
  -d, --data DATA             send DATA (form type unless -H sets one); @FILE reads FILE
                              without CR/LF, @- reads stdin; repeated -d are joined with &
      --data-urlencode DATA   send DATA percent-encoded, as curl's: content, =content,
                              name=content, @FILE, name@FILE
  -G, --get                   send the data as the URL's query, with GET
  -r, --range RANGE           send Range: bytes=RANGE (0-499, 500-, -500)
      --path-as-is            send /./ and /../ in the path as given (by default they are
                              resolved, as curl does)
      --data-binary DATA      send DATA exactly; @FILE and @- read a file or stdin as is
                              (a lone --data-binary @FILE is streamed, never held whole)
  -T, --upload-file FILE      PUT FILE, streamed (- for stdin, sent chunked)
      --json DATA             send DATA as JSON (Content-Type and Accept application/json)
  -i, --include               print the status line and header fields before the body
  -I, --head                  send HEAD and print the header fields
  -o, --output FILE           write the body to FILE instead of stdout
  -O, --remote-name           write the body to a file named as the URL's last segment
      --output-dir DIR        put -o and -O files in DIR
      --create-dirs           create the directories an output file needs
  -f, --fail                  exit 22, printing no body, when the status is 400 or more
      --fail-with-body        exit 22 when the status is 400 or more, printing the body
  -D, --dump-header FILE      write the response's status line and fields to FILE (- stdout)
  -A, --user-agent TEXT       send User-Agent: TEXT
  -e, --referer URL           send Referer: URL
  -b, --cookie NAME=VALUE     send Cookie: NAME=VALUE (cookie files are not read)
  -u, --user USER:PASSWORD    send HTTP Basic authorization (a -H of the same field wins)
      --retry N               try a transient failure again, up to N times: a timeout, or
                              408, 429, 500, 502, 503, 504, 522, 524 (their bodies are not
                              printed); waits 1 s, doubling, or the server's Retry-After
      --retry-connrefused     also retry a refused connect or a missing socket file (the way
                              to wait until a sidecar's socket is up)
      --retry-all-errors      retry every failure
      --retry-delay DUR       wait DUR between tries instead
      --retry-max-time DUR    start no try after DUR from the first (default: no limit)
  -s, --silent                print no error messages
  -S, --show-error            print error messages even with -s
  -v, --verbose               print the request and response heads on stderr
  -N, --no-buffer             accepted for curl's scripts: bodies are never buffered
  (bodies stream to stdout or FILE as they arrive, a chunk at a time, so an NDJSON or SSE
   stream prints as it comes; with stderr on a terminal and no -s, a progress line is shown
   for transfers over 4 MiB)
  -w, --write-out FORMAT      print FORMAT after the transfer, on every exit (@FILE: read
                              it from FILE): %{http_code} (000: no response), %{exitcode},
                              %{errormsg}, %{method}, %{url_effective}, %{size_download},
                              %{size_upload}, %{size_header}, %{num_headers},
                              %{content_type}, %{http_version}, %{time_starttransfer},
                              %{time_total}, %{json} (all of them), \n
      --unix-socket PATH      connect to the Unix socket PATH; the URL gives the target
      --abstract-unix-socket NAME   the same, for the abstract socket @NAME
  -m, --max-time DUR          whole-request deadline, seconds or 500ms/10s (default and
                              0: none, as curl)
      --connect-timeout DUR   connect deadline (default 5s; 0: only -m's)
  -h, --help                  this text
  -V, --version               print the version

Exit status (curl's numbers):
  0 success   2 usage error   3 bad URL   7 cannot connect (no socket file, refused,
  permission denied)   8 malformed reply   22 HTTP status >= 400 with --fail
  23 cannot write output   26 cannot read a data file   28 timeout
  47 more redirects than --max-redirs   52 empty reply
  56 connection failed while receiving   61 a --compressed body that does not decode
  43 a method or header with a control byte (CR, LF, NUL): never sent

Examples:
  udshttp http+unix://%2Ftmp%2Fudshttp.sock/hello/Ada
  udshttp --unix-socket /tmp/udshttp.sock -H 'Accept: application/json' http://localhost/hello
  udshttp -X PUT --data-binary @photo.jpg http+unix://%2Ftmp%2Fudshttp.sock/echo -o copy.jpg
  udshttp --fail -sS -w '%{http_code}\n' -o /dev/null http://127.0.0.1:8080/healthz
)";
}

} // namespace udshttp::cli
