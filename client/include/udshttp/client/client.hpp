#pragma once

/// @file
/// The udshttp client: HTTP/1.1 over Unix sockets and TCP, addressed by URL.
///
///     udshttp::client::client c;
///     auto r = c.get("http+unix://%2Frun%2Fapp.sock/hello");
///     if (r) std::cout << r->status << ' ' << r->body << '\n';
///     else   std::cerr << r.error().message << '\n';   // names the endpoint and the reason
///
/// Expected failures (no server, timeouts, malformed answers) come back as udshttp::error in
/// the result; nothing throws for them. An HTTP error status is a response, not an error,
/// as with curl; get_json()/post_json() turn it into an error carrying the server's code.

#include <udshttp/proto/api.hpp>
#include <udshttp/proto/error.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace udshttp::client {

/// Header fields in order; names compare case-insensitively.
using fields = std::vector<std::pair<std::string, std::string>>;

/// Supplies a request body piece by piece: fills `buf`, returns how many bytes it wrote, 0 at
/// the end. An error aborts the request with that error. It runs on the client's executor, so
/// it must not block: a source that reads a pipe, socket or terminal names its descriptor in
/// streamed_body::wait_fd, and is called only once that is readable.
using body_source = std::function<result<std::size_t>(std::span<char> buf)>;
/// Receives a response body piece by piece. An error aborts the request with that error.
using body_sink = std::function<result<void>(std::string_view piece)>;

/// The first value of field `name` in `f`, case-insensitively; empty if absent.
std::string_view find_header(const fields& f, std::string_view name) noexcept;

/// A request body that comes from a source a piece at a time, never whole in memory.
struct streamed_body {
    body_source source{};
    /// The exact length, sent as Content-Length; unset sends the body chunked.
    std::optional<std::uint64_t> length{};
    /// A descriptor the source reads from, or -1. When set, the client waits for it to be
    /// readable before each call (within the request's deadline, without blocking its
    /// executor), so a pipe that stays quiet cannot stall the event loop or outlast the
    /// deadline. file_source() sets it for anything but a regular file. The client never
    /// closes it, reads it or changes its flags.
    int wait_fd = -1;
};

/// A request to send.
struct request {
    std::string method = "GET";
    /// http+unix://%2Fpath%2Fto.sock/target, http://host:port/target, or a target alone
    /// ("/hello?x=1") on client_options::base_url.
    std::string url{};
    fields headers{}; ///< sent as given; Host, Content-Length and User-Agent are added if absent
    /// Bytes in memory, or a streamed_body. A streamed request is never retried (a source
    /// cannot be replayed).
    std::variant<std::string, streamed_body> body{};
    /// 11 for HTTP/1.1, 10 for HTTP/1.0 (whose body needs a known length: no chunked source).
    unsigned version = 11;
    /// This request's deadlines, overriding client_options::timeout / connect_timeout.
    std::optional<std::chrono::milliseconds> timeout{};
    std::optional<std::chrono::milliseconds> connect_timeout{};
};

struct response;

/// How far a transfer has come, for progress meters.
struct progress {
    std::uint64_t sent = 0;                     ///< request body bytes sent
    std::uint64_t received = 0;                 ///< response body bytes received
    std::optional<std::uint64_t> send_total;    ///< the request body's length, if known
    std::optional<std::uint64_t> receive_total; ///< the response's Content-Length, if any
};
using progress_callback = std::function<void(const progress&)>;

/// Streams a response body: where it goes and who watches. Both optional.
struct download {
    body_sink sink{};             ///< the body goes here; response::body stays empty
    progress_callback progress{}; ///< called after every piece in either direction
    /// Called once the status and header fields have arrived, before the first body piece.
    std::function<void(const response&)> head{};
};

/// A body read from the file at `path` ("-" for stdin) in pieces, with its length when it is a
/// regular file. Errors name the path.
result<streamed_body> file_source(const std::string& path);
/// A sink writing to the file at `path` (created or truncated; "-" for stdout). Errors name it.
result<body_sink> file_sink(const std::string& path);

/// A complete response.
struct response {
    unsigned status = 0;
    std::string reason{};
    unsigned version = 11; ///< 10 or 11
    fields headers{};
    std::string body;

    /// The first value of a header field, case-insensitively; empty if absent.
    std::string_view header(std::string_view name) const noexcept;
    /// True for 2xx.
    bool ok() const noexcept { return status >= 200 && status < 300; }
    /// The server's JSON error body ({"error":{...}}), if the body is one.
    std::optional<proto::error_body> error_body() const;
};

/// Client configuration.
struct client_options {
    /// Longest wait for a connection to be established (per request); 0 means no limit
    /// but the request's.
    std::chrono::milliseconds connect_timeout{5'000};
    /// Longest time for a whole request, connect included; 0 means none. (The udshttp CLI
    /// sets none unless -m is given, as curl.)
    std::chrono::milliseconds timeout{30'000};
    /// Idle keep-alive connections kept per endpoint (socket path, abstract name, host:port).
    std::size_t max_idle_per_endpoint = 8;
    /// Largest response body read into memory (a download sink has no limit).
    std::uint64_t max_response_bytes = std::uint64_t{1} << 30;
    /// Largest response header block, counted from its first byte. It also bounds a chunk-size
    /// line with its extensions and the trailer section: the read buffer holds at most this
    /// plus 64 KiB, so a server that sends one without end is a protocol_error, not growth.
    std::size_t max_header_bytes = 64 * 1024;
    /// A pooled connection idle for longer is closed instead of reused (servers close idle
    /// connections too; udshttpd after 60 s).
    std::chrono::milliseconds idle_timeout{30'000};
    /// The User-Agent field; empty sends none.
    std::string user_agent = "udshttp";
    /// Where a request whose url is a target alone ("/hello") goes: a URL without a target,
    /// "http+unix://%2Frun%2Fapp.sock" or "http://127.0.0.1:8080" (a trailing '/' is fine).
    std::string base_url{};
};

/// A blocking client with a keep-alive connection pool keyed by endpoint. It runs the same
/// code as async_client (<udshttp/client/async_client.hpp>) on a private io_context.
/// @par Thread safety
/// One client per thread: a client's calls must not overlap. Separate clients are independent.
class client {
public:
    explicit client(client_options options = {});
    ~client();
    client(client&&) noexcept;
    client& operator=(client&&) noexcept;

    /// Sends a request and reads the whole response.
    result<response> send(const request& req);
    /// Sends a request and streams the response body to dl.sink (full duplex: the response is
    /// read while the body is still being sent, so an echo of any size runs in bounded memory).
    result<response> send(const request& req, const download& dl);

    /// GET url.
    result<response> get(std::string_view url, fields headers = {});
    /// POST body to url with the given Content-Type.
    result<response> post(std::string_view url, std::string body,
                          std::string_view content_type = "application/octet-stream",
                          fields headers = {});

    /// GET url with Accept: application/json; a non-2xx status becomes an error carrying the
    /// server's error code and message.
    result<nlohmann::json> get_json(std::string_view url);
    /// POST a JSON body; answers as get_json().
    result<nlohmann::json> post_json(std::string_view url, const nlohmann::json& body);

    /// Connections this client has opened so far (pool reuse shows as a small number).
    std::uint64_t connections_opened() const noexcept;
    /// Idle pooled connections right now, over all endpoints.
    std::size_t idle_connections() const noexcept;

    /// The options in force.
    const client_options& options() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace udshttp::client
