#pragma once

/// @file
/// The udshttp server as a library: listeners on Unix sockets and TCP, worker threads with one
/// io_context each, a router with the built-in routes, limits and deadlines on every wait.
///
///     udshttp::service::server srv({.listen = {"./app.sock"}});
///     srv.routes().get("/items/{id}", [](const auto& req, auto& res) {
///         udshttp::service::set_text(res, std::string(req.param("id")));
///     });
///     srv.start();   // binds every endpoint or throws startup_error, then serves on threads
///     std::cout << srv.url("/items/7") << '\n';   // http+unix://%2F...%2Fapp.sock/items/7
///     srv.wait();    // until stop() (for example from a signal handler thread)

#include <udshttp/proto/endpoint.hpp>
#include <udshttp/service/gateway.hpp>
#include <udshttp/service/router.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace udshttp::service {

/// Why start() could not bind: what() is one line naming the endpoint and the reason.
class startup_error : public std::runtime_error {
public:
    startup_error(boost::system::error_code code, const std::string& message)
        : std::runtime_error(message), code_(code) {}
    /// The underlying errno or udshttp::errc.
    boost::system::error_code code() const noexcept { return code_; }

private:
    boost::system::error_code code_;
};

/// How much the server says on stderr.
enum class log_level { debug, info, warn, error, off };
/// How a diagnostic line is written: "udshttpd: warn: message", or one JSON object per line
/// ({"time","level","program","message"}) for log pipelines that parse everything on stderr.
enum class log_format { text, json };

/// Parses "debug", "info", "warn", "error" or "off".
std::optional<log_level> parse_log_level(std::string_view text) noexcept;

/// Where to listen: an endpoint, or its text in proto::endpoint::parse()'s grammar
/// ("./app.sock", "@name", "127.0.0.1:8080", "systemd"). server::start() parses text, and
/// throws startup_error naming it when it does not parse.
class listen_address {
public:
    listen_address(proto::endpoint where) : where_(std::move(where)) {}
    listen_address(std::string text) : text_(std::move(text)) {}
    listen_address(const char* text) : text_(text) {}
    /// The endpoint as given, or parsed from the text.
    result<proto::endpoint> endpoint() const;

private:
    std::optional<proto::endpoint> where_;
    std::string text_;
};

/// Limits of udshttpd's built-in topic hub (POST and GET /topics/{name}, GET /events),
/// served with server_options::builtin_routes. What the hub can hold is bounded by them:
/// topics x replay_bytes for the replay buffers, and queue_bytes per subscriber.
struct hub_limits {
    std::size_t topics = 256;               ///< topics at once
    std::size_t subscribers = 1024;         ///< subscribers at once, over all topics
    std::size_t message_bytes = 256 * 1024; ///< the largest message, else 413
    std::size_t replay = 64;                ///< messages a topic keeps for late subscribers...
    std::size_t replay_bytes = 1 << 20;     ///< ...and at most this many bytes of them
    /// Bytes waiting for one subscriber; beyond it the subscriber is cut as too slow.
    std::size_t queue_bytes = 1 << 20;
    /// The heartbeat of a quiet subscription stream.
    std::chrono::milliseconds heartbeat{15'000};
    /// The longest long-poll (?timeout=) a subscriber may ask for.
    std::chrono::milliseconds max_poll{60'000};
};

/// Server configuration, a plain aggregate: server_options{.threads = 2}.
struct server_options {
    /// Where to listen. Empty means ./udshttp.sock.
    std::vector<listen_address> listen{};
    /// Worker threads, each with its own io_context.
    unsigned threads = 1;
    /// Largest request header block; beyond it: 431.
    std::size_t max_header_bytes = 16 * 1024;
    /// Largest request body; beyond it: 413, checked against Content-Length before reading.
    std::uint64_t max_body_bytes = 64 * 1024 * 1024;
    /// From a request's first byte to the end of its header block; beyond it: 408.
    std::chrono::milliseconds header_timeout{10'000};
    /// Waiting for the next request on a kept-alive connection, and the longest pause while
    /// reading a body or writing a response; beyond it the connection is closed.
    std::chrono::milliseconds idle_timeout{60'000};
    /// Open connections across all listeners; beyond it new ones get 503 and are closed.
    /// start() lowers it, with a warning, to what RLIMIT_NOFILE leaves room for.
    std::size_t max_connections = 10'000;
    /// Mode of socket files this server creates, applied before listen() so the socket is
    /// never reachable with looser permissions.
    unsigned socket_mode = 0660;
    /// Owner and group of socket files, when set (needs the privilege to chown).
    std::optional<uid_t> socket_owner{};
    std::optional<gid_t> socket_group{};
    /// Peers allowed on Unix sockets, by uid or by gid (primary or supplementary). When either
    /// list is non-empty, any other peer gets 403, and so does every TCP peer, whose identity
    /// is unknown. Both empty: the socket file's mode decides alone.
    std::vector<uid_t> allow_uids{};
    std::vector<gid_t> allow_gids{};
    /// Allow TCP listeners on addresses other than loopback. Without it start() refuses them.
    bool allow_remote = false;
    /// On stop(): how long in-flight requests may take to finish before connections are cut.
    std::chrono::milliseconds drain_timeout{10'000};
    /// Access log, one JSON line per request: empty = off, "-" = stderr, else a file path
    /// (opened for append, created with mode 0640).
    std::string access_log{};
    /// Diagnostics on stderr at or above this level.
    service::log_level log_level = service::log_level::info;
    /// Diagnostics as text or as JSON lines.
    service::log_format log_format = service::log_format::text;
    /// Serve the built-in routes too: /, /hello, /hello/{name}, /echo, /healthz, /metrics and
    /// /openapi.json (udshttpd does). Off for an embedding program, whose API is its own; a
    /// route it adds for the same method and pattern wins over a built-in one.
    bool builtin_routes = false;
    /// The topic hub's limits (with builtin_routes).
    hub_limits hub{};
    /// Forward requests under route prefixes to upstreams, filtered by rules (gateway.hpp).
    gateway_options gateway{};
};

/// The server.
/// @par Thread safety
/// routes() and start() from one thread before serving; stop() and endpoints() from any thread.
class server {
public:
    explicit server(server_options options = {});
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    /// The routing table; add routes before start().
    router& routes() noexcept;

    /// Binds every endpoint and starts the worker threads. Throws startup_error, whose what()
    /// names the endpoint and the reason; nothing stays bound then.
    void start();

    /// Blocks until the server has stopped.
    void wait();

    /// Graceful stop: stops accepting at once, closes idle keep-alive connections, lets requests
    /// in flight finish (their responses carry Connection: close) for up to
    /// options().drain_timeout, then closes what is left, joins the workers and removes the
    /// socket files this process created. Idempotent; callable from any thread but not from a
    /// handler.
    void stop();

    /// Opens the access log file again, for logrotate (udshttpd does it on SIGHUP). On failure
    /// it logs why and keeps writing to the file it had. Callable from any thread.
    void reopen_logs();

    /// The endpoints actually bound, in the order given (TCP port 0 replaced by the real port,
    /// relative socket paths made absolute). Valid after start().
    std::vector<proto::endpoint> endpoints() const;

    /// A URL for `target` on the first endpoint bound, ready for the client or curl:
    /// "http+unix://%2Frun%2Fapp.sock/hello" or "http://127.0.0.1:8080/hello". Throws
    /// std::logic_error before start().
    std::string url(std::string_view target = "/") const;

    /// The options in force.
    const server_options& options() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace udshttp::service
