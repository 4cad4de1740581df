#pragma once

// The service's Asio types: every socket, acceptor and timer runs on its worker's io_context
// executor (not any_io_executor: no type erasure on the hot path).

#include <udshttp/detail/asio_types.hpp>

#include <boost/asio/io_context.hpp>

namespace udshttp::service::detail {

namespace asio = boost::asio;
using udshttp::detail::clock;
using executor = asio::io_context::executor_type;
using io = udshttp::detail::asio_types<executor>;
using socket_type = io::socket;
using acceptor_type = io::acceptor;
using timer_type = io::timer;
template <class T = void> using awaitable = io::awaitable<T>;

} // namespace udshttp::service::detail
