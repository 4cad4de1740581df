#pragma once

/// @file
/// The awaitable client, for callers that run their own io_context:
///
///     boost::asio::awaitable<void> work(udshttp::client::async_client& c) {
///         udshttp::client::request req{.url = "http+unix://%2Frun%2Fapp.sock/hello"};
///         // A named request: GCC 12 mishandles temporaries inside co_await.
///         auto r = co_await c.async_send(std::move(req));
///         if (r) std::cout << r->body << '\n';
///     }
///     boost::asio::io_context ctx;
///     udshttp::client::async_client c(ctx.get_executor());
///     boost::asio::co_spawn(ctx, work(c), boost::asio::detached);
///     ctx.run();
///
/// Requests, responses, options and errors are those of <udshttp/client/client.hpp>; the
/// blocking client is this one run on a private io_context.

#include <udshttp/client/client.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <memory>

namespace udshttp::client {

namespace detail {
class core;
}

/// An HTTP client whose requests are coroutines on the caller's executor, sharing a keep-alive
/// pool keyed by endpoint.
/// @par Thread safety
/// All calls on the executor given at construction, which must not run handlers on several
/// threads at once (an io_context run by one thread, or a strand). Several async_send
/// coroutines may be in flight at once; each takes its own connection.
class async_client {
public:
    explicit async_client(boost::asio::any_io_executor ex, client_options options = {});
    ~async_client();
    async_client(const async_client&) = delete;
    async_client& operator=(const async_client&) = delete;

    /// Sends req and reads the whole response. Never throws for expected failures.
    boost::asio::awaitable<result<response>> async_send(request req);
    /// Sends req and streams the response body to dl.sink, full duplex.
    boost::asio::awaitable<result<response>> async_send(request req, download dl);

    std::uint64_t connections_opened() const noexcept;
    std::size_t idle_connections() const noexcept;
    const client_options& options() const noexcept;

private:
    std::unique_ptr<detail::core> core_;
};

} // namespace udshttp::client
