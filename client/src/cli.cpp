#include "cli.hpp"

#include <udshttp/proto/units.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <stdexcept>

namespace udshttp::cli {
namespace {

// The short flags that take a value: "-XPOST" is "-X POST", "-sSfo f" is "-s -S -f -o f".
constexpr std::string_view takes_value = "XHdowmT";

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

data_part data_arg(const std::string& arg, bool strip_newlines, bool ampersand) {
    if (arg.size() > 1 && arg.front() == '@')
        return {arg.substr(1), true, strip_newlines, ampersand};
    return {arg, false, false, ampersand};
}

} // namespace

void throw_exception_from_error(const usage_error& e, const boost::source_location&) {
    throw std::invalid_argument(e.message);
}

std::string cli_options::effective_method() const {
    if (!method.empty())
        return method;
    return head ? "HEAD" : has_data() ? "POST" : "GET";
}

boost::system::result<command, usage_error> parse_cli(std::span<const std::string> args) {
    command cmd;
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
            const auto colon = h.find(':');
            if (!missing && (colon == std::string::npos || colon == 0))
                return usage_error{"-H: '" + h + "' is not 'Name: value'"};
            if (!missing) {
                auto value = h.substr(colon + 1);
                value.erase(0, value.find_first_not_of(" \t"));
                c.headers.emplace_back(h.substr(0, colon), value);
            }
        } else if (flag == "-d" || flag == "--data" || flag == "--data-ascii") {
            const auto arg = next();
            add_data(c, data_arg(arg, true, true));
            c.form_data = true;
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
            c.output = next();
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
            c.url = next();
        } else if (flag.size() > 1 && flag[0] == '-') {
            return usage_error{"unknown option '" + words[i] + "'"};
        } else if (c.url.empty()) {
            c.url = flag;
        } else {
            return usage_error{"more than one URL given ('" + c.url + "' and '" + flag + "')"};
        }
        if (missing)
            return *missing;
        if (bad)
            return *bad;
    }
    if (c.url.empty())
        return usage_error{"no URL given"};
    return cmd;
}

udshttp::result<std::string> load_data(const std::vector<data_part>& parts) {
    std::string body;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        const auto& part = parts[i];
        if (i > 0 && part.ampersand)
            body += '&';
        if (!part.from_file) {
            body += part.text;
            continue;
        }
        std::string content;
        if (part.text == "-") {
            content.assign(std::istreambuf_iterator<char>(std::cin), {});
        } else {
            std::ifstream in(part.text, std::ios::binary);
            if (in)
                content.assign(std::istreambuf_iterator<char>(in), {});
            if (!in && !in.eof())
                return udshttp::error{make_error_code(errc::io_error),
                                      "cannot read data file '" + part.text +
                                          "': " + std::strerror(errno)};
        }
        if (part.strip_newlines)
            std::erase_if(content, [](char ch) { return ch == '\r' || ch == '\n'; });
        body += content;
    }
    return body;
}

std::string_view help_text() noexcept {
    return R"(Usage: udshttp [OPTIONS] URL
       udshttp routes URL
       udshttp events [--json] [--reconnect] URL
       udshttp ws [--binary] [--linger DUR] URL

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

URLs:
  http+unix://%2Frun%2Fapp.sock/hello     socket path, percent-encoded (/ is %2F)
  http+unix://%40name/hello               Linux abstract socket @name
  http://127.0.0.1:8080/hello             TCP ([::1] for IPv6)
  --unix-socket PATH http://localhost/x   curl's form, same effect

Options (as curl's):
  -X, --request METHOD        request method (default GET, POST with data, HEAD with -I)
  -H, --header 'Name: value'  add a header field (repeatable)
  -d, --data DATA             send DATA (form type unless -H sets one); @FILE reads FILE
                              without CR/LF, @- reads stdin; repeated -d are joined with &
      --data-binary DATA      send DATA exactly; @FILE and @- read a file or stdin as is
                              (a lone --data-binary @FILE is streamed, never held whole)
  -T, --upload-file FILE      PUT FILE, streamed (- for stdin, sent chunked)
      --json DATA             send DATA as JSON (Content-Type and Accept application/json)
  -i, --include               print the status line and header fields before the body
  -I, --head                  send HEAD and print the header fields
  -o, --output FILE           write the body to FILE instead of stdout
  -f, --fail                  exit 22, printing no body, when the status is 400 or more
  -s, --silent                print no error messages
  -S, --show-error            print error messages even with -s
  -v, --verbose               print the request and response heads on stderr
  -N, --no-buffer             accepted for curl's scripts: bodies are never buffered
  (bodies stream to stdout or FILE as they arrive, a chunk at a time, so an NDJSON or SSE
   stream prints as it comes; with stderr on a terminal and no -s, a progress line is shown
   for transfers over 4 MiB)
  -w, --write-out FORMAT      print FORMAT after the transfer: %{http_code},
                              %{size_download}, %{time_total}, %{content_type}, \n
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
  52 empty reply   56 connection failed while receiving
  43 a method or header with a control byte (CR, LF, NUL): never sent

Examples:
  udshttp http+unix://%2Ftmp%2Fudshttp.sock/hello/Ada
  udshttp --unix-socket /tmp/udshttp.sock -H 'Accept: application/json' http://localhost/hello
  udshttp -X PUT --data-binary @photo.jpg http+unix://%2Ftmp%2Fudshttp.sock/echo -o copy.jpg
  udshttp --fail -sS -w '%{http_code}\n' -o /dev/null http://127.0.0.1:8080/healthz
)";
}

} // namespace udshttp::cli
