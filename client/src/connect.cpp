#include "connect.hpp"

#include <sys/stat.h>

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>

namespace udshttp::client::detail {
namespace {

using resolver_type =
    io::use_tuple::as_default_on_t<asio::ip::basic_resolver<asio::ip::tcp, executor>>;

error connect_error(const boost::system::error_code& ec, const proto::endpoint& where) {
    const std::string context = "connect to " + where.to_string();
    if (ec == boost::system::errc::no_such_file_or_directory)
        return error::from(errc::no_such_socket, context);
    if (ec == boost::system::errc::connection_refused) {
        if (!where.is_unix())
            return {make_error_code(errc::connection_refused),
                    context + ": connection refused (no server listening)"};
        // connect() says "refused" for any file that is not a socket: say what it is.
        struct stat st {};
        if (where.kind == proto::transport::unix_path && ::stat(where.address.c_str(), &st) == 0 &&
            !S_ISSOCK(st.st_mode)) {
            const char* what = S_ISDIR(st.st_mode)   ? "a directory"
                               : S_ISREG(st.st_mode) ? "a regular file"
                                                     : "a file of another kind";
            return {make_error_code(errc::connection_refused),
                    context + ": " + where.address + " is " + what + ", not a socket"};
        }
        return error::from(errc::connection_refused, context);
    }
    if (ec == boost::system::errc::permission_denied ||
        ec == boost::system::errc::operation_not_permitted)
        return error::from(errc::permission_denied, context);
    return {make_error_code(errc::connect_failed), context + ": " + ec.message()};
}

// One connect attempt; a named coroutine, not a capturing lambda (GCC 12 miscompiles those).
awaitable<boost::system::error_code>
try_connect(connection& c, const asio::generic::stream_protocol::endpoint& ep) {
    boost::system::error_code ec;
    if (c.socket.is_open())
        c.socket.close(ec);
    c.socket.open(ep.protocol(), ec);
    if (ec)
        co_return ec;
    auto [cec] = co_await c.socket.async_connect(ep);
    co_return cec;
}

} // namespace

void watchdog::watch(connection* c, clock::time_point when, kind k) {
    conn_ = c;
    timer_.expires_at(when);
    timer_.async_wait([this, k](boost::system::error_code ec) {
        if (ec)
            return; // re-armed or finished
        fired_ = k;
        if (conn_) {
            boost::system::error_code ignored;
            conn_->socket.close(ignored);
        }
    });
}

void watchdog::cancel() {
    conn_ = nullptr;
    timer_.cancel();
}

std::string ms(std::chrono::milliseconds d) {
    return std::to_string(d.count()) + " ms";
}

awaitable<result<connection_ptr>> connect(executor ex, const proto::endpoint& where, watchdog& wd,
                                          connect_limits limits, std::size_t max_header_bytes) {
    auto c = std::make_unique<connection>(ex, max_header_bytes);
    const auto connect_deadline = clock::now() + limits.connect;
    if (limits.connect.count() > 0 && connect_deadline < wd.total())
        wd.watch(c.get(), connect_deadline, watchdog::kind::connect);
    else
        wd.watch_total(c.get());

    boost::system::error_code ec;
    // An endpoint built by hand (not parsed) may not fit sockaddr_un: Asio would throw.
    if (!where.fits_sockaddr())
        co_return error{make_error_code(errc::socket_path_too_long),
                        "cannot connect to " + where.to_string() + ": the name is " +
                            std::to_string(where.address.size()) +
                            " bytes, longer than a Unix socket address holds"};
    switch (where.kind) {
    case proto::transport::unix_path:
        ec = co_await try_connect(*c, asio::local::stream_protocol::endpoint(where.address));
        break;
    case proto::transport::unix_abstract:
        ec = co_await try_connect(
            *c, asio::local::stream_protocol::endpoint(std::string(1, '\0') + where.address));
        break;
    case proto::transport::tcp: {
        boost::system::error_code addr_ec;
        const auto address = asio::ip::make_address(where.address, addr_ec);
        if (!addr_ec) {
            ec = co_await try_connect(*c, asio::ip::tcp::endpoint(address, where.port));
            break;
        }
        resolver_type resolver(ex);
        auto [rec, results] =
            co_await resolver.async_resolve(where.address, std::to_string(where.port));
        if (rec) {
            co_return error{make_error_code(errc::connect_failed),
                            "connect to " + where.to_string() +
                                ": cannot resolve host: " + rec.message()};
        }
        ec = asio::error::host_not_found;
        for (const auto& r : results) {
            ec = co_await try_connect(*c, r.endpoint());
            if (!ec || wd.fired() != watchdog::kind::none)
                break;
        }
        break;
    }
    default:
        co_return error{make_error_code(errc::invalid_endpoint),
                        "cannot connect to " + where.to_string() +
                            ": only socket paths, abstract names and host:port"};
    }
    if (wd.fired() == watchdog::kind::connect)
        co_return error{make_error_code(errc::connect_timeout),
                        "connect to " + where.to_string() + ": no connection within " +
                            ms(limits.connect) + " (connect timeout)"};
    if (wd.fired() == watchdog::kind::total)
        co_return error{make_error_code(errc::timeout),
                        "connect to " + where.to_string() + ": request deadline of " +
                            ms(limits.total) + " exceeded while connecting"};
    if (ec)
        co_return connect_error(ec, where);
    co_return std::move(c);
}

} // namespace udshttp::client::detail
