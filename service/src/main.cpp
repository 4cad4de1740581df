// udshttpd: the udshttp server as a daemon. Options, start-up report, signals.

#include <udshttp/proto/units.hpp>
#include <udshttp/proto/url.hpp>
#include <udshttp/proto/version.hpp>
#include <udshttp/service/server.hpp>

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using udshttp::service::server_options;

constexpr int exit_usage = 2;
constexpr int exit_failure = 1;

void print_help() {
    std::cout << R"(Usage: udshttpd [OPTIONS]

Serve HTTP/1.1 on Unix sockets and TCP: hello, echo, healthz and metrics.

Endpoints (--listen, repeatable; default ./udshttp.sock):
  unix:/run/app.sock  /run/app.sock  ./app.sock   Unix socket file
  unix:@name  @name                              Linux abstract socket
  tcp://127.0.0.1:8080  127.0.0.1:8080  [::1]:8080  localhost:8080
  fd:3  systemd  systemd:NAME                    inherited listening socket (LISTEN_FDS)

Options:
  -l, --listen ENDPOINT        listen on ENDPOINT (repeatable)
      --threads N              worker threads, one io_context each (default 1)
      --socket-mode MODE       mode of socket files, octal (default 0660)
      --socket-owner USER      owner of socket files (name or uid)
      --socket-group GROUP     group of socket files (name or gid)
      --max-header-bytes SIZE  largest request header block, else 431 (default 16KiB)
      --max-body-bytes SIZE    largest request body, else 413 (default 64MiB)
      --header-timeout DUR     first byte to end of headers, else 408 (default 10s)
      --idle-timeout DUR       keep-alive idle wait and longest I/O pause (default 60s)
      --max-connections N      open connections, beyond it 503 (default 10000)
      --drain-timeout DUR      on SIGTERM/SIGINT, time for requests in flight (default 10s)
      --allow-uid LIST         only these users may call over Unix sockets (names or
                               numbers, comma-separated, repeatable); others get 403
      --allow-gid LIST         only members of these groups (primary or supplementary)
      --allow-remote           allow TCP on non-loopback addresses (refused without it)
      --access-log FILE|-      one JSON line per request to FILE, or - for stderr (off)
      --log-level LEVEL        debug, info, warn, error or off (default info)
  -h, --help                   this text
  -V, --version                print the version

SIZE takes B, KiB, MiB, GiB (64KiB); DUR takes ms, s, m, h (500ms, 10s).

Environment: every option above can also be set as UDSHTTP_ and its long name in capitals,
dashes as underscores: UDSHTTP_LISTEN=/run/app/app.sock, UDSHTTP_MAX_BODY_BYTES=1MiB,
UDSHTTP_ALLOW_REMOTE=1. Repeatable options take a comma-separated list there
(UDSHTTP_LISTEN=/run/a.sock,tcp://127.0.0.1:8080). An option on the command line wins over
its variable.
SIGTERM or SIGINT: stop accepting, close idle connections, let requests in flight finish
(answered with Connection: close) for up to --drain-timeout, remove the socket files this
process created, exit 0. With --allow-uid/--allow-gid set, TCP peers get 403 (no identity).
SIGHUP: reopen the --access-log file (for logrotate) and keep serving.
An abstract socket (@name) has no file and so no permissions: any local user can connect.
Restrict it with --allow-uid/--allow-gid; --socket-mode/-owner/-group are refused for it.
The open-files limit is raised to its hard limit at start; --max-connections is lowered, with
a warning, to what that limit leaves room for.

Routes:
  GET  /  /hello  /hello/{name}   "Hello NAME" (JSON with Accept: application/json)
  POST|PUT|PATCH /echo            the request body, byte for byte, streamed as it arrives
  GET  /echo                      JSON: method, target, headers, peer (pid/uid/gid or address)
  GET  /healthz                   JSON status
  GET  /metrics                   Prometheus text format
  GET  /openapi.json              OpenAPI 3.1 document of these routes ("udshttp routes URL")

Exit status: 0 after a clean stop, 1 if an endpoint cannot be served, 2 on a usage error.

Example:
  udshttpd --listen ./app.sock --listen tcp://127.0.0.1:8080
  curl --unix-socket ./app.sock http://localhost/hello
)";
}

[[noreturn]] void usage_error(const std::string& message) {
    std::cerr << "udshttpd: " << message << " (see udshttpd --help)\n";
    std::exit(exit_usage);
}

template <class T> T value_or_die(udshttp::result<T> r, std::string_view flag) {
    if (!r)
        usage_error(std::string(flag) + ": " + r.error().message);
    return *r;
}

std::uint64_t parse_count(std::string_view flag, const std::string& text, std::uint64_t max) {
    char* end = nullptr;
    errno = 0;
    const auto v = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno != 0 || v > max || text.front() == '-')
        usage_error(std::string(flag) + ": '" + text + "' is not a number from 0 to " +
                    std::to_string(max));
    return v;
}

// A user name or a number; an unknown name is a usage error naming it.
uid_t parse_user(std::string_view flag, const std::string& text) {
    if (const passwd* pw = ::getpwnam(text.c_str()))
        return pw->pw_uid;
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
        usage_error(std::string(flag) + ": no such user '" + text + "'");
    return static_cast<uid_t>(parse_count(flag, text, UINT32_MAX - 1));
}

gid_t parse_group(std::string_view flag, const std::string& text) {
    if (const group* gr = ::getgrnam(text.c_str()))
        return gr->gr_gid;
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
        usage_error(std::string(flag) + ": no such group '" + text + "'");
    return static_cast<gid_t>(parse_count(flag, text, UINT32_MAX - 1));
}

// "alice,1000,bob" -> ids, each through parse (a user or group lookup).
template <class Id, class Parse>
void append_ids(std::vector<Id>& out, std::string_view flag, const std::string& list, Parse parse) {
    std::size_t from = 0;
    while (from <= list.size()) {
        const auto comma = std::min(list.find(',', from), list.size());
        out.push_back(parse(flag, list.substr(from, comma - from)));
        from = comma + 1;
    }
}

// The options that can come from the environment: --name <-> UDSHTTP_NAME.
struct env_option {
    std::string_view flag;
    bool repeatable = false;
    bool boolean = false;
};
constexpr env_option env_options[] = {
    {"--listen", true},    {"--threads"},
    {"--socket-mode"},     {"--socket-owner"},
    {"--socket-group"},    {"--max-header-bytes"},
    {"--max-body-bytes"},  {"--header-timeout"},
    {"--idle-timeout"},    {"--max-connections"},
    {"--drain-timeout"},   {"--allow-uid", true},
    {"--allow-gid", true}, {"--allow-remote", false, true},
    {"--access-log"},      {"--log-level"},
};

std::string env_name(std::string_view flag) {
    std::string name = "UDSHTTP_";
    for (char c : flag.substr(2))
        name += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return name;
}

// One option to parse: the flag, its value if it came attached, and what to call it in an
// error ("--threads" or "UDSHTTP_THREADS").
struct arg {
    std::string text;
    std::string source;
};

// The options the environment sets, as "--flag=value" arguments.
std::vector<arg> args_from_env() {
    std::vector<arg> out;
    for (const auto& option : env_options) {
        const auto name = env_name(option.flag);
        const char* value = std::getenv(name.c_str());
        if (!value)
            continue;
        const std::string text = value;
        if (option.boolean) {
            if (text == "1" || text == "true" || text == "yes")
                out.push_back({std::string(option.flag), name});
            else if (text != "0" && text != "false" && text != "no" && !text.empty())
                usage_error(name + ": '" + text + "' is not 1, true, yes, 0, false or no");
        } else if (option.repeatable && option.flag == "--listen") {
            std::size_t from = 0; // a list of endpoints (allow lists take commas themselves)
            while (from <= text.size()) {
                const auto comma = std::min(text.find(',', from), text.size());
                out.push_back({"--listen=" + text.substr(from, comma - from), name});
                from = comma + 1;
            }
        } else {
            out.push_back({std::string(option.flag) + "=" + text, name});
        }
    }
    return out;
}

bool is_repeatable(std::string_view flag) {
    for (const auto& option : env_options)
        if (option.flag == flag || (flag == "-l" && option.flag == "--listen"))
            return option.repeatable;
    return false;
}

server_options parse_args(int argc, char** argv) {
    server_options o;
    std::string file_option; // the last of --socket-mode/-owner/-group given, if any
    // The environment first, then the command line; a repeatable option given on the command
    // line replaces the environment's list rather than adding to it.
    std::vector<arg> args = args_from_env();
    const auto from_env = args.size();
    for (int i = 1; i < argc; ++i)
        args.push_back({argv[i], {}});
    std::vector<std::string> replaced;
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string flag = args[i].text;
        std::string value;
        bool has_value = false;
        if (auto eq = flag.find('='); flag.starts_with("--") && eq != std::string::npos) {
            value = flag.substr(eq + 1);
            flag = flag.substr(0, eq);
            has_value = true;
        }
        const std::string name = args[i].source.empty() ? flag : args[i].source;
        if (i >= from_env && is_repeatable(flag) &&
            std::find(replaced.begin(), replaced.end(), flag) == replaced.end()) {
            replaced.push_back(flag);
            if (flag == "-l" || flag == "--listen")
                o.listen.clear();
            else if (flag == "--allow-uid")
                o.allow_uids.clear();
            else if (flag == "--allow-gid")
                o.allow_gids.clear();
        }
        auto next = [&]() -> std::string {
            if (has_value)
                return value;
            if (i + 1 >= args.size())
                usage_error(flag + " needs a value");
            return args[++i].text;
        };
        if (flag == "-h" || flag == "--help") {
            print_help();
            std::exit(0);
        } else if (flag == "-V" || flag == "--version") {
            std::cout << "udshttpd " << udshttp::version << '\n';
            std::exit(0);
        } else if (flag == "-l" || flag == "--listen") {
            o.listen.push_back(value_or_die(udshttp::proto::endpoint::parse(next()), name));
        } else if (flag == "--threads") {
            o.threads = static_cast<unsigned>(parse_count(name, next(), 1024));
            if (o.threads == 0)
                usage_error(name + ": must be at least 1");
        } else if (flag == "--socket-mode") {
            const auto text = next();
            char* end = nullptr;
            const auto mode = std::strtoul(text.c_str(), &end, 8);
            if (text.empty() || *end != '\0' || mode > 07777)
                usage_error(name + ": '" + text + "' is not an octal mode such as 0660");
            o.socket_mode = static_cast<unsigned>(mode);
            file_option = name;
        } else if (flag == "--socket-owner") {
            o.socket_owner = parse_user(name, next());
            file_option = name;
        } else if (flag == "--socket-group") {
            o.socket_group = parse_group(name, next());
            file_option = name;
        } else if (flag == "--allow-uid") {
            append_ids(o.allow_uids, name, next(), parse_user);
        } else if (flag == "--allow-gid") {
            append_ids(o.allow_gids, name, next(), parse_group);
        } else if (flag == "--allow-remote") {
            if (has_value)
                usage_error("--allow-remote takes no value");
            o.allow_remote = true;
        } else if (flag == "--drain-timeout") {
            o.drain_timeout = value_or_die(udshttp::proto::parse_duration(next()), name);
        } else if (flag == "--access-log") {
            o.access_log = next();
            if (o.access_log.empty())
                usage_error(name + ": needs a file path or -");
        } else if (flag == "--log-level") {
            const auto text = next();
            const auto level = udshttp::service::parse_log_level(text);
            if (!level)
                usage_error(name + ": '" + text + "' is not one of debug, info, warn, error, off");
            o.log_level = *level;
        } else if (flag == "--max-header-bytes") {
            o.max_header_bytes = value_or_die(udshttp::proto::parse_size(next()), name);
        } else if (flag == "--max-body-bytes") {
            o.max_body_bytes = value_or_die(udshttp::proto::parse_size(next()), name);
        } else if (flag == "--header-timeout") {
            o.header_timeout = value_or_die(udshttp::proto::parse_duration(next()), name);
        } else if (flag == "--idle-timeout") {
            o.idle_timeout = value_or_die(udshttp::proto::parse_duration(next()), name);
        } else if (flag == "--max-connections") {
            o.max_connections = parse_count(name, next(), 10'000'000);
        } else {
            usage_error("unknown option '" + args[i].text + "'");
        }
    }
    // An abstract socket has no file: a mode, owner or group would protect nothing, and a
    // user who set one would believe it does.
    for (const auto& e : o.listen)
        if (e.kind == udshttp::proto::transport::unix_abstract && !file_option.empty())
            usage_error(file_option + " does not apply to abstract socket " + e.to_string() +
                        ": it has no file and no permissions, so any local user can connect; "
                        "restrict callers with --allow-uid/--allow-gid");
    return o;
}

// The start-up report: where we listen, and a command to paste.
void print_endpoint(const udshttp::proto::endpoint& e) {
    using udshttp::proto::transport;
    std::cout << "udshttpd " << udshttp::version << ": listening on " << e.to_string() << '\n';
    switch (e.kind) {
    case transport::unix_path:
        std::cout << "  try: curl --unix-socket " << e.address << " http://localhost/hello\n";
        break;
    case transport::unix_abstract:
        std::cout << "  try: curl --abstract-unix-socket " << e.address
                  << " http://localhost/hello\n";
        break;
    case transport::tcp:
        std::cout << "  try: curl '" << udshttp::proto::make_url(e, "/hello") << "'\n";
        break;
    default:
        break;
    }
}

} // namespace

int main(int argc, char** argv) {
    auto options = parse_args(argc, argv);

    // Signals are taken by sigwait() on this thread; block them before any worker starts so
    // every thread inherits the mask.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    // systemd's default soft limit is 1024 descriptors against 10,000 connections: take the
    // hard limit (server::start() lowers --max-connections to what that allows, and says so).
    if (rlimit lim{}; ::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &lim);
    }

    udshttp::service::server srv(std::move(options));
    try {
        srv.start();
    } catch (const udshttp::service::startup_error& e) {
        std::cerr << "udshttpd: " << e.what() << '\n';
        return exit_failure;
    }
    const bool quiet = srv.options().log_level > udshttp::service::log_level::info;
    if (!quiet)
        for (const auto& e : srv.endpoints())
            print_endpoint(e);
    std::cout << std::flush;

    int sig = 0;
    // SIGHUP: reopen the access log (logrotate's postrotate) and go on serving.
    while (sigwait(&signals, &sig) == 0 && sig == SIGHUP)
        srv.reopen_logs();
    if (!quiet)
        std::cerr << "udshttpd: " << (sig == SIGTERM ? "SIGTERM" : "SIGINT") << ", draining (up to "
                  << srv.options().drain_timeout.count() << " ms)\n";
    srv.stop();
    return 0;
}
