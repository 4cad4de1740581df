#pragma once

// The Asio types the client and the service both build on, for the executor each uses (the
// service: its worker's io_context; the client: any_io_executor). Every wait reads
// `auto [ec, n] = co_await ...;` (Asio's echo_server_with_as_tuple_default example), so no
// error is an exception. Private to udshttp's own targets: not installed.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>

namespace udshttp::detail {

namespace asio = boost::asio;
using clock = std::chrono::steady_clock;

template <class Executor> struct asio_types {
    using executor = Executor;
    using use_tuple = asio::as_tuple_t<asio::use_awaitable_t<Executor>>;
    using socket = typename use_tuple::template as_default_on_t<
        asio::basic_stream_socket<asio::generic::stream_protocol, Executor>>;
    using acceptor = typename use_tuple::template as_default_on_t<
        asio::basic_socket_acceptor<asio::generic::stream_protocol, Executor>>;
    using timer = typename use_tuple::template as_default_on_t<
        asio::basic_waitable_timer<clock, asio::wait_traits<clock>, Executor>>;
    template <class T = void> using awaitable = asio::awaitable<T, Executor>;
};

} // namespace udshttp::detail
