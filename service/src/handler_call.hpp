#pragma once

// One call of a coroutine handler (async_route.cpp, upgrade_route.cpp): the handler runs as a
// coroutine of its own on the connection's worker; the connection's side waits for it and,
// meanwhile, may watch the peer and cancel the handler when the peer goes away.

#include "connection.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>

#include <poll.h>

#include <exception>
#include <string>

namespace udshttp::service::detail {

// Waits until `t` is cancelled (the notify of a condition on one thread: the waiter checks
// its condition, then waits, with no suspension in between) or `until` passes.
inline awaitable<> wait_for(timer_type& t, clock::time_point until = clock::time_point::max()) {
    t.expires_at(until);
    co_await t.async_wait();
}

// One call of a coroutine handler: the handler runs as its own coroutine; this side watches
// the peer meanwhile and cancels the handler when the peer goes away.
class handler_call {
public:
    explicit handler_call(connection& conn) : c(conn), wake(conn.socket.get_executor()) {}
    handler_call(const handler_call&) = delete;
    handler_call& operator=(const handler_call&) = delete;

    // Starts `make()`'s coroutine on the worker, cancellable through cancel(). A throw from
    // make() itself counts as the handler's.
    template <class Make> void spawn(Make&& make) {
        try {
            asio::co_spawn(
                asio::any_io_executor(c.socket.get_executor()), make(),
                asio::bind_cancellation_slot(cancel_.slot(), [this](std::exception_ptr e) {
                    handler_done = true;
                    thrown = std::move(e);
                    wake.cancel();
                }));
        } catch (...) {
            handler_done = true;
            thrown = std::current_exception();
        }
    }

    // Watches the peer until settle(): when it goes away, peer_gone is set, the handler is
    // cancelled and `wake` notified.
    void watch() {
        if (stop_ || peer_gone)
            return;
        if (peer_went_away()) {
            on_gone();
            return;
        }
        // A wait, not a read: bytes of a pipelined request stay in the socket for the session.
        // Asio waits are edge-triggered here, so the look above comes first.
        watching_ = true;
        c.socket.async_wait(asio::socket_base::wait_read,
                            asio::bind_cancellation_slot(
                                unwatch_.slot(), [this](const boost::system::error_code& ec) {
                                    watching_ = false;
                                    if (stop_)
                                        wake.cancel();
                                    else if (ec && c.slot.timed_out)
                                        on_gone(); // the write-stall deadline cut it
                                    else
                                        watch();
                                }));
    }

    // Terminal cancellation of what the handler awaits (once).
    void cancel() {
        if (cancelled_ || handler_done)
            return;
        cancelled_ = true;
        cancel_.emit(asio::cancellation_type::terminal);
    }
    bool cancelled() const noexcept { return cancelled_; }

    // Waits until the handler has returned, then stops watching.
    awaitable<> settle() {
        while (!handler_done)
            co_await wait_for(wake);
        stop_ = true;
        unwatch_.emit(asio::cancellation_type::terminal);
        while (watching_)
            co_await wait_for(wake);
    }

    // The handler's throw as text for the log; empty if it did not throw.
    std::string failure() const {
        if (!thrown)
            return {};
        try {
            std::rethrow_exception(thrown);
        } catch (const std::exception& e) {
            return e.what();
        } catch (...) {
            return "an exception that is not a std::exception";
        }
    }

    connection& c;
    timer_type wake; // notifies the connection's side (cancel() is the notify)
    bool handler_done = false;
    std::exception_ptr thrown;
    bool peer_gone = false;

private:
    // Looks at the socket without reading. Gone: closed or reset. Over a Unix socket a peer
    // that shut only its write side is still there (POLLRDHUP without POLLHUP) and gets its
    // answer; TCP cannot tell that from a close (both are a FIN), so there it counts as gone.
    bool peer_went_away() const noexcept {
        pollfd p{c.socket.native_handle(), POLLIN | POLLRDHUP, 0};
        if (::poll(&p, 1, 0) <= 0)
            return false;
        if (p.revents & (POLLHUP | POLLERR | POLLNVAL))
            return true;
        return (p.revents & POLLRDHUP) && c.peer.transport != "unix";
    }
    void on_gone() {
        peer_gone = true;
        cancel();
        wake.cancel();
    }

    asio::cancellation_signal cancel_;
    asio::cancellation_signal unwatch_;
    bool watching_ = false;
    bool stop_ = false;
    bool cancelled_ = false;
};

} // namespace udshttp::service::detail
