#include "listener.hpp"

#include "peer.hpp"
#include "session.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

namespace udshttp::service::detail {
namespace {

using generic = asio::generic::stream_protocol;

[[noreturn]] void fail(const boost::system::error_code& ec, const proto::endpoint& where,
                       std::string_view what = {}) {
    std::string msg = "cannot listen on " + where.to_string();
    if (!what.empty())
        msg.append(": ").append(what);
    throw startup_error(ec, msg + ": " + ec.message());
}

asio::ip::address resolve_host(const proto::endpoint& where) {
    boost::system::error_code ec;
    auto address = asio::ip::make_address(where.address, ec);
    if (!ec)
        return address;
    if (where.address == "localhost")
        return asio::ip::address_v4::loopback();
    asio::io_context ctx;
    asio::ip::tcp::resolver resolver(ctx);
    auto results = resolver.resolve(where.address, std::to_string(where.port), ec);
    if (ec || results.empty())
        fail(ec ? ec : asio::error::host_not_found, where, "cannot resolve host");
    return results.begin()->endpoint().address();
}

} // namespace

listener::listener(worker& home, const proto::endpoint& where, const server_options& options)
    : home_(home), acceptor_(home.ctx.get_executor()), bound_(where) {
    boost::system::error_code ec;
    auto open_bind = [&](const generic::endpoint& ep) {
        acceptor_.open(ep.protocol(), ec);
        if (ec)
            fail(ec, where, "socket");
        // Linux gives a socket file the mode of the socket's inode, less the umask: set here,
        // the file is never created looser than --socket-mode (socket_file::bound() adds what
        // the umask took away).
        if (where.kind == proto::transport::unix_path)
            ::fchmod(acceptor_.native_handle(), static_cast<mode_t>(options.socket_mode & 0777));
        if (!is_unix_) {
            acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
            if (ep.protocol().family() == AF_INET6)
                acceptor_.set_option(asio::ip::v6_only(true), ec);
        }
        acceptor_.bind(ep, ec);
        if (ec)
            fail(ec, where, "bind");
    };

    if (!where.fits_sockaddr()) // built by hand, past the grammar: Asio would throw
        fail(asio::error::name_too_long, where);
    switch (where.kind) {
    case proto::transport::unix_path: {
        is_unix_ = true;
        file_ = std::make_unique<socket_file>(where.address);
        open_bind(generic::endpoint(asio::local::stream_protocol::endpoint(where.address)));
        file_->bound(options);
        std::error_code fs_ec;
        auto absolute = std::filesystem::absolute(where.address, fs_ec).lexically_normal().string();
        if (!fs_ec && absolute.size() <= proto::max_unix_path_length)
            bound_.address = absolute;
        break;
    }
    case proto::transport::unix_abstract: {
        is_unix_ = true;
        std::string name(1, '\0');
        name += where.address;
        open_bind(generic::endpoint(asio::local::stream_protocol::endpoint(name)));
        break;
    }
    case proto::transport::tcp: {
        const asio::ip::tcp::endpoint ep(resolve_host(where), where.port);
        if (!ep.address().is_loopback() && !options.allow_remote)
            throw startup_error(asio::error::access_denied,
                                "refusing to listen on " + where.to_string() + ": " +
                                    ep.address().to_string() +
                                    " is not a loopback address, so other hosts could call; "
                                    "pass --allow-remote if that is intended");
        open_bind(generic::endpoint(ep));
        const auto local = acceptor_.local_endpoint(ec);
        bound_ = proto::endpoint::from_sockaddr(local.data(), local.size()).value_or(where);
        break;
    }
    case proto::transport::inherited_fd: {
        int type = 0;
        int listening = 0;
        socklen_t len = sizeof type;
        sockaddr_storage ss{};
        socklen_t ss_len = sizeof ss;
        if (::getsockopt(where.fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
            ::getsockname(where.fd, reinterpret_cast<sockaddr*>(&ss), &ss_len) != 0)
            fail({errno, boost::system::system_category()}, where, "not an open socket descriptor");
        len = sizeof listening;
        ::getsockopt(where.fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len);
        if (type != SOCK_STREAM || !listening)
            fail(asio::error::invalid_argument, where, "not a listening stream socket");
        is_unix_ = ss.ss_family == AF_UNIX;
        const int protocol = is_unix_ ? 0 : IPPROTO_TCP;
        ::fcntl(where.fd, F_SETFD, FD_CLOEXEC); // not inherited by processes a handler starts
        acceptor_.assign(generic(ss.ss_family, protocol), where.fd, ec);
        if (ec)
            fail(ec, where, "assign");
        bound_ = proto::endpoint::from_sockaddr(&ss, ss_len).value_or(where);
        return; // already listening; systemd owns the socket file
    }
    case proto::transport::systemd:
        fail(asio::error::invalid_argument, where, "internal: systemd endpoint not expanded");
    }
    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        fail(ec, where, "listen");
}

awaitable<> listener::accept_loop(server_state& state) {
    std::size_t next = 0;
    timer_type backoff(home_.ctx.get_executor());
    for (;;) {
        worker& target = *state.workers[next];
        next = (next + 1) % state.workers.size();
        auto [ec, accepted] = co_await acceptor_.async_accept(target.ctx);
        if (ec == asio::error::operation_aborted || !acceptor_.is_open())
            co_return;
        if (ec) {
            // Out of descriptors or memory: say so and back off instead of spinning.
            state.log.log(log_level::error,
                          "accept on " + bound_.to_string() + ": " + ec.message());
            backoff.expires_after(std::chrono::milliseconds(50));
            auto [wait_ec] = co_await backoff.async_wait();
            if (wait_ec)
                co_return;
            continue;
        }
        socket_type socket(std::move(accepted));
        if (!is_unix_) {
            // Answers go out in whole writes, but a streamed one (head, then pieces) must not
            // wait for the peer's delayed ACK under Nagle's algorithm.
            boost::system::error_code ignored;
            socket.set_option(asio::ip::tcp::no_delay(true), ignored);
        }
        // Who it is and whether it may call, before a byte is read: a refused peer gets its
        // 403 from a budget of its own and never takes a place under max_connections.
        auto peer = read_peer(socket.native_handle(), is_unix_);
        if (auto why = why_refused(state.options, peer, socket.native_handle())) {
            if (state.refusing.fetch_add(1, std::memory_order_relaxed) < max_refusals) {
                asio::co_spawn(
                    target.ctx,
                    refuse_peer(std::move(socket), std::move(peer), std::move(*why), state, target),
                    [&state](std::exception_ptr e) {
                        log_exception(state, "a refused connection", e);
                    });
            } else {
                state.refusing.fetch_sub(1, std::memory_order_relaxed);
                home_.stats.count_reject(rejection::forbidden); // closed unanswered
            }
            continue;
        }
        const auto open = state.connections.fetch_add(1, std::memory_order_relaxed) + 1;
        const auto done = [&state](std::exception_ptr e) {
            log_exception(state, "a connection", e);
        };
        if (open > state.options.max_connections)
            asio::co_spawn(target.ctx,
                           reject_connection(std::move(socket), std::move(peer), state, target),
                           done);
        else
            asio::co_spawn(target.ctx,
                           run_session(std::move(socket), std::move(peer), state, target), done);
    }
}

void listener::start(server_state& state) {
    asio::co_spawn(home_.ctx, accept_loop(state), [this, &state](std::exception_ptr e) {
        if (!e || !acceptor_.is_open())
            return; // closed: the server is stopping
        // Never stop accepting silently: say why, and accept again.
        log_exception(state, "the accept loop on " + bound_.to_string(), e);
        start(state);
    });
}

void listener::close() noexcept {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
}

} // namespace udshttp::service::detail
