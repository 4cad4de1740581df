#include "daemon_cli.hpp"

#include <udshttp/proto/units.hpp>

#include <grp.h>
#include <pwd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <stdexcept>
#include <vector>

namespace udshttp::service::daemon {
namespace {

template <class T> using parsed = boost::system::result<T, usage_error>;

template <class T> parsed<T> checked(udshttp::result<T> r, std::string_view flag) {
    if (!r)
        return usage_error{std::string(flag) + ": " + r.error().message};
    return *r;
}
template <class T> parsed<T> checked(parsed<T> r, std::string_view) {
    return r;
}

parsed<std::uint64_t> parse_count(std::string_view flag, const std::string& text,
                                  std::uint64_t max) {
    char* end = nullptr;
    errno = 0;
    const auto v = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno != 0 || v > max || text.front() == '-')
        return usage_error{std::string(flag) + ": '" + text + "' is not a number from 0 to " +
                           std::to_string(max)};
    return v;
}

// A user name or a number; an unknown name is a usage error naming it.
parsed<uid_t> parse_user(std::string_view flag, const std::string& text) {
    if (const passwd* pw = ::getpwnam(text.c_str()))
        return pw->pw_uid;
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
        return usage_error{std::string(flag) + ": no such user '" + text + "'"};
    auto n = parse_count(flag, text, UINT32_MAX - 1);
    if (!n)
        return n.error();
    return static_cast<uid_t>(*n);
}

parsed<gid_t> parse_group(std::string_view flag, const std::string& text) {
    if (const group* gr = ::getgrnam(text.c_str()))
        return gr->gr_gid;
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
        return usage_error{std::string(flag) + ": no such group '" + text + "'"};
    auto n = parse_count(flag, text, UINT32_MAX - 1);
    if (!n)
        return n.error();
    return static_cast<gid_t>(*n);
}

// "alice,1000,bob" -> ids, each through parse (a user or group lookup).
template <class Id, class Parse>
std::optional<usage_error> append_ids(std::vector<Id>& out, std::string_view flag,
                                      const std::string& list, Parse parse) {
    std::size_t from = 0;
    while (from <= list.size()) {
        const auto comma = std::min(list.find(',', from), list.size());
        auto id = parse(flag, list.substr(from, comma - from));
        if (!id)
            return id.error();
        out.push_back(*id);
        from = comma + 1;
    }
    return std::nullopt;
}

// The options that can come from the environment: --name <-> UDSHTTP_NAME.
struct env_option {
    std::string_view flag;
    bool repeatable = false;
    bool boolean = false;
};
constexpr env_option env_options[] = {
    {"--listen", true},
    {"--threads"},
    {"--socket-mode"},
    {"--socket-owner"},
    {"--socket-group"},
    {"--max-header-bytes"},
    {"--max-body-bytes"},
    {"--header-timeout"},
    {"--idle-timeout"},
    {"--max-connections"},
    {"--drain-timeout"},
    {"--allow-uid", true},
    {"--allow-gid", true},
    {"--allow-remote", false, true},
    {"--access-log"},
    {"--log-level"},
    {"--log-format"},
    {"--topics"},
    {"--topic-subscribers"},
    {"--topic-message-bytes"},
    {"--topic-replay"},
    {"--topic-queue-bytes"},
    {"--heartbeat"},
    {"--upstream", true},
    {"--route", true},
    {"--rules"},
    {"--peer-headers", false, true},
    {"--learn", false, true},
    {"--audit-log"},
    {"--upstream-timeout"},
};

std::string env_name(std::string_view flag) {
    std::string name = "UDSHTTP_";
    for (char c : flag.substr(2))
        name += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return name;
}

// One option to parse, and what to call it in an error ("--threads" or "UDSHTTP_THREADS").
struct arg {
    std::string text;
    std::string source;
};

// The options the environment sets, as "--flag=value" arguments.
parsed<std::vector<arg>> args_from_env(const environment& env) {
    std::vector<arg> out;
    for (const auto& option : env_options) {
        const auto name = env_name(option.flag);
        const auto found = env.find(name);
        if (found == env.end())
            continue;
        const std::string& text = found->second;
        if (option.boolean) {
            if (text == "1" || text == "true" || text == "yes")
                out.push_back({std::string(option.flag), name});
            else if (text != "0" && text != "false" && text != "no" && !text.empty())
                return usage_error{name + ": '" + text + "' is not 1, true, yes, 0, false or no"};
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
        if (option.flag == flag)
            return option.repeatable;
    return false;
}

} // namespace

void throw_exception_from_error(const usage_error& e, const boost::source_location&) {
    throw std::invalid_argument(e.message);
}

environment process_environment() {
    environment out;
    for (char** e = environ; e && *e; ++e) {
        const std::string_view entry(*e);
        const auto eq = entry.find('=');
        if (entry.starts_with("UDSHTTP_") && eq != std::string_view::npos)
            out.emplace(entry.substr(0, eq), entry.substr(eq + 1));
    }
    return out;
}

boost::system::result<command, usage_error> parse_daemon_args(std::span<const std::string> argv,
                                                              const environment& env) {
    command cmd;
    for (const auto& [name, value] : env) {
        const bool known =
            name == "UDSHTTP_SANITIZE" || name == "UDSHTTP_FUZZ_SECONDS" ||
            std::any_of(std::begin(env_options), std::end(env_options),
                        [&](const env_option& o) { return env_name(o.flag) == name; });
        if (!known && name.starts_with("UDSHTTP_"))
            cmd.warnings.push_back(name +
                                   " names no udshttpd option; ignored (see udshttpd --help)");
    }
    auto& o = cmd.options;
    o.builtin_routes = true;             // udshttpd is its built-in routes
    std::vector<proto::endpoint> listen; // as parsed, for the checks at the end
    std::string file_option;             // the last of --socket-mode/-owner/-group given, if any
    std::string text_format;             // where --log-format text was given, if it was
    // The environment first, then the command line; a repeatable option given on the command
    // line replaces the environment's list rather than adding to it.
    auto env_args = args_from_env(env);
    if (!env_args)
        return env_args.error();
    std::vector<arg> args = std::move(*env_args);
    const auto from_env = args.size();
    for (const auto& a : argv)
        args.push_back({a, {}});
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
        if (flag == "-l")
            flag = "--listen"; // one option: -l and --listen add to the same list
        if (i >= from_env && is_repeatable(flag) &&
            std::find(replaced.begin(), replaced.end(), flag) == replaced.end()) {
            replaced.push_back(flag);
            if (flag == "--listen")
                listen.clear();
            else if (flag == "--allow-uid")
                o.allow_uids.clear();
            else if (flag == "--allow-gid")
                o.allow_gids.clear();
            else if (flag == "--upstream")
                o.gateway.upstreams.clear();
            else if (flag == "--route")
                o.gateway.routes.clear();
        }
        const bool no_value = flag == "-h" || flag == "--help" || flag == "-V" ||
                              flag == "--version" || flag == "--allow-remote" ||
                              flag == "--peer-headers" || flag == "--learn";
        const bool known =
            no_value || std::any_of(std::begin(env_options), std::end(env_options),
                                    [&](const env_option& e) { return e.flag == flag; });
        if (!known)
            return usage_error{"unknown option '" + args[i].text + "'"};
        if (!no_value && !has_value) {
            if (i + 1 >= args.size())
                return usage_error{flag + " needs a value"};
            value = args[++i].text;
        }
        std::optional<usage_error> bad;
        const auto count = [&](auto& out, std::uint64_t max) {
            auto n = parse_count(name, value, max);
            if (!n)
                bad = n.error();
            else
                out = static_cast<std::remove_reference_t<decltype(out)>>(*n);
        };
        const auto assign = [&](auto& out, auto r) {
            auto v = checked(std::move(r), name);
            if (!v)
                bad = v.error();
            else
                out = *v;
        };
        if (flag == "-h" || flag == "--help") {
            cmd.action = action::help;
            return cmd;
        } else if (flag == "-V" || flag == "--version") {
            cmd.action = action::version;
            return cmd;
        } else if (flag == "--listen") {
            auto e = checked(proto::endpoint::parse(value), name);
            if (!e)
                return e.error();
            listen.push_back(*e);
        } else if (flag == "--threads") {
            count(o.threads, 1024);
            if (!bad && o.threads == 0)
                return usage_error{name + ": must be at least 1"};
        } else if (flag == "--socket-mode") {
            char* end = nullptr;
            const auto mode = std::strtoul(value.c_str(), &end, 8);
            if (value.empty() || *end != '\0' || mode > 07777)
                return usage_error{name + ": '" + value + "' is not an octal mode such as 0660"};
            o.socket_mode = static_cast<unsigned>(mode);
            file_option = name;
        } else if (flag == "--socket-owner") {
            assign(o.socket_owner, parse_user(name, value));
            file_option = name;
        } else if (flag == "--socket-group") {
            assign(o.socket_group, parse_group(name, value));
            file_option = name;
        } else if (flag == "--allow-uid") {
            bad = append_ids(o.allow_uids, name, value, parse_user);
        } else if (flag == "--allow-gid") {
            bad = append_ids(o.allow_gids, name, value, parse_group);
        } else if (flag == "--allow-remote") {
            if (has_value)
                return usage_error{"--allow-remote takes no value"};
            o.allow_remote = true;
        } else if (flag == "--peer-headers" || flag == "--learn") {
            if (has_value)
                return usage_error{flag + " takes no value"};
            (flag == "--learn" ? o.gateway.learn : o.gateway.peer_headers) = true;
        } else if (flag == "--upstream") {
            const auto eq = value.find('=');
            if (eq == std::string::npos || eq == 0)
                return usage_error{name + ": '" + value + "' is not NAME=ENDPOINT"};
            auto e = checked(proto::endpoint::parse(value.substr(eq + 1)), name);
            if (!e)
                return e.error();
            if (!e->is_unix() && e->kind != proto::transport::tcp)
                return usage_error{name + ": an upstream is a socket path, @name or host:port"};
            o.gateway.upstreams.push_back({value.substr(0, eq), *e});
        } else if (flag == "--route") {
            const auto eq = value.rfind('=');
            if (eq == std::string::npos || eq == 0 || !value.starts_with('/'))
                return usage_error{name + ": '" + value + "' is not /PREFIX=UPSTREAM"};
            o.gateway.routes.push_back({value.substr(0, eq), value.substr(eq + 1)});
        } else if (flag == "--rules") {
            auto rules = gateway_rules::load(value);
            if (!rules)
                return usage_error{name + ": " + rules.error().message};
            o.gateway.rules = std::move(*rules);
        } else if (flag == "--audit-log") {
            o.gateway.audit_log = value;
            if (value.empty())
                return usage_error{name + ": needs a file path or -"};
        } else if (flag == "--upstream-timeout") {
            assign(o.gateway.upstream_timeout, proto::parse_duration(value));
            if (!bad && o.gateway.upstream_timeout.count() == 0)
                return usage_error{name + ": must be more than 0"};
        } else if (flag == "--drain-timeout") {
            assign(o.drain_timeout, proto::parse_duration(value));
        } else if (flag == "--access-log") {
            o.access_log = value;
            if (o.access_log.empty())
                return usage_error{name + ": needs a file path or -"};
        } else if (flag == "--log-level") {
            const auto level = parse_log_level(value);
            if (!level)
                return usage_error{name + ": '" + value +
                                   "' is not one of debug, info, warn, error, off"};
            o.log_level = *level;
        } else if (flag == "--log-format") {
            if (value != "text" && value != "json")
                return usage_error{name + ": '" + value + "' is not text or json"};
            o.log_format = value == "json" ? log_format::json : log_format::text;
            text_format = value == "text" ? name : std::string();
        } else if (flag == "--max-header-bytes") {
            assign(o.max_header_bytes, proto::parse_size(value));
        } else if (flag == "--max-body-bytes") {
            assign(o.max_body_bytes, proto::parse_size(value));
        } else if (flag == "--header-timeout") {
            assign(o.header_timeout, proto::parse_duration(value));
            if (!bad && o.header_timeout.count() == 0)
                return usage_error{name + ": must be more than 0 (a request needs time to arrive)"};
        } else if (flag == "--idle-timeout") {
            assign(o.idle_timeout, proto::parse_duration(value));
            if (!bad && o.idle_timeout.count() == 0)
                return usage_error{name + ": must be more than 0 (it also bounds every pause "
                                          "while reading a body or writing an answer)"};
        } else if (flag == "--max-connections") {
            count(o.max_connections, 10'000'000);
            if (!bad && o.max_connections == 0)
                return usage_error{name + ": must be at least 1"};
        } else if (flag == "--topics") {
            count(o.hub.topics, 1'000'000);
        } else if (flag == "--topic-subscribers") {
            count(o.hub.subscribers, 10'000'000);
        } else if (flag == "--topic-message-bytes") {
            assign(o.hub.message_bytes, proto::parse_size(value));
        } else if (flag == "--topic-replay") {
            count(o.hub.replay, 1'000'000);
        } else if (flag == "--topic-queue-bytes") {
            assign(o.hub.queue_bytes, proto::parse_size(value));
            if (!bad && o.hub.queue_bytes == 0)
                return usage_error{name + ": must be more than 0"};
        } else if (flag == "--heartbeat") {
            assign(o.hub.heartbeat, proto::parse_duration(value));
            if (!bad && o.hub.heartbeat.count() == 0)
                return usage_error{name + ": must be more than 0"};
        } else {
            return usage_error{"unknown option '" + args[i].text + "'"};
        }
        if (bad)
            return *bad;
    }
    // The access log on stderr shares it with the diagnostics: they are JSON lines too, so a
    // pipeline reading stderr parses every line. Text diagnostics would break that, so asking
    // for them as well is refused rather than silently mixed in.
    if (o.access_log == "-") {
        if (!text_format.empty())
            return usage_error{text_format + " text with --access-log - would mix text lines into "
                                             "the JSON on stderr; give --access-log a file"};
        o.log_format = log_format::json;
    }
    // The gateway: one upstream and no route forwards everything to it; every route names an
    // upstream given; rules, audit and learn need something to route.
    auto& gw = o.gateway;
    if (gw.routes.empty() && gw.upstreams.size() == 1)
        gw.routes.push_back({"/", gw.upstreams.front().name});
    for (const auto& r : gw.routes)
        if (std::none_of(gw.upstreams.begin(), gw.upstreams.end(),
                         [&](const auto& u) { return u.name == r.upstream; }))
            return usage_error{"--route " + r.prefix + "=" + r.upstream + ": no --upstream " +
                               r.upstream + "=ENDPOINT"};
    if (gw.routes.empty() && !gw.upstreams.empty())
        return usage_error{"--upstream: with several upstreams, give --route /PREFIX=NAME"};
    if (gw.routes.empty() && (gw.rules || gw.learn || !gw.audit_log.empty()))
        return usage_error{std::string(gw.rules   ? "--rules"
                                       : gw.learn ? "--learn"
                                                  : "--audit-log") +
                           " applies to the gateway: give --upstream NAME=ENDPOINT"};
    if (gw.learn && !gw.rules)
        return usage_error{"--learn needs --rules (it logs what the rules would refuse)"};
    // An abstract socket has no file: a mode, owner or group would protect nothing, and a
    // user who set one would believe it does.
    o.listen.assign(listen.begin(), listen.end());
    for (const auto& e : listen)
        if (e.kind == proto::transport::unix_abstract && !file_option.empty())
            return usage_error{file_option + " does not apply to abstract socket " + e.to_string() +
                               ": it has no file and no permissions, so any local user can "
                               "connect; restrict callers with --allow-uid/--allow-gid"};
    return cmd;
}

std::string_view help_text() noexcept {
    return R"(Usage: udshttpd [OPTIONS]

Serve HTTP/1.1 on Unix sockets and TCP: hello, echo, healthz, metrics and a topic hub.

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
      --access-log FILE|-      one JSON line per request to FILE, or - for stderr (off);
                               with -, diagnostics are JSON lines too
      --log-level LEVEL        debug, info, warn, error or off (default info)
      --log-format FORMAT      diagnostics on stderr as text or json lines (default text;
                               json: {"time","level","program","message"})
      --topics N               topics the hub holds at once, beyond it 503 (default 256)
      --topic-subscribers N    subscribers at once over all topics (default 1024)
      --topic-message-bytes SIZE  largest message, else 413 (default 256KiB)
      --topic-replay N         messages each topic keeps for late subscribers (default 64;
                               at most 1MiB of them)
      --topic-queue-bytes SIZE bytes waiting for one subscriber; beyond it the subscriber
                               gets one error event and is closed (default 1MiB)
      --heartbeat DUR          heartbeat of a quiet /topics or /events stream (default 15s)
  -h, --help                   this text
  -V, --version                print the version

Gateway (forward requests to another local API; see "udshttpd as a gateway" in the README):
      --upstream NAME=ENDPOINT an upstream: socket path, @name or host:port (repeatable)
      --route /PREFIX=NAME     requests under PREFIX go to upstream NAME (repeatable;
                               longest prefix wins; one upstream and no route: all of them)
      --rules FILE             JSON rules by caller uid/gid/exe/cgroup, method, path, query
                               and body size; first match decides, no match is 403. Without
                               it every routed request is forwarded
      --peer-headers           tell the upstream who called: X-Udshttp-Peer-Uid/-Gid/-Pid
                               (Unix), Forwarded and X-Forwarded-For (TCP)
      --audit-log FILE|-       one JSON line per decision: caller, method, path, rule, verdict
      --learn                  forward everything; audit what the rules would refuse
      --upstream-timeout DUR   connect and response-head deadline, else 504 (default 30s)

SIZE is bytes, or a number with KiB, MiB or GiB (64KiB; KB, MB and GB mean the same);
DUR is seconds, or a number with ms, s, m or h (500ms, 10s, 2m). --max-connections,
--header-timeout and --idle-timeout must be more than 0; --drain-timeout 0 cuts at once.

Environment: every option above can also be set as UDSHTTP_ and its long name in capitals,
dashes as underscores: UDSHTTP_LISTEN=/run/app/app.sock, UDSHTTP_MAX_BODY_BYTES=1MiB,
UDSHTTP_ALLOW_REMOTE=1. Repeatable options take a comma-separated list there
(UDSHTTP_LISTEN=/run/a.sock,tcp://127.0.0.1:8080). An option on the command line wins over
its variable.
SIGTERM or SIGINT: stop accepting, close idle connections, let requests in flight finish
(answered with Connection: close; open streams end with a shutdown event) for up to
--drain-timeout, remove the socket files this process created, exit 0. With --allow-uid/--allow-gid set, TCP peers get 403 (no identity).
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
  POST /topics/{name}             publish the body to a topic; answers {"topic","id"}
  GET  /topics/{name}             subscribe: SSE (Accept: text/event-stream) or NDJSON
                                  (Accept: application/x-ndjson), from Last-Event-ID or
                                  ?after=ID; else long-poll ?after=ID&timeout=30s (JSON)
  GET  /events                    every request answered, live (NDJSON, or SSE)

Exit status: 0 after a clean stop, 1 if an endpoint cannot be served, 2 on a usage error.

Example:
  udshttpd --listen ./app.sock --listen tcp://127.0.0.1:8080
  curl --unix-socket ./app.sock http://localhost/hello
)";
}

} // namespace udshttp::service::daemon
