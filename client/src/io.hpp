#pragma once

// The client's Asio types (on any_io_executor: an async_client runs on its caller's
// executor) and the connection they make.

#include <udshttp/detail/asio_types.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <cstddef>
#include <memory>

namespace udshttp::client::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
using udshttp::detail::clock;
using executor = asio::any_io_executor;
using io = udshttp::detail::asio_types<executor>;
using socket_type = io::socket;
using timer_type = io::timer;
template <class T = void> using awaitable = io::awaitable<T>;

// The most one read takes from the socket.
constexpr std::size_t read_piece = 64 * 1024;

struct connection {
    connection(executor ex, std::size_t max_header)
        : socket(std::move(ex)), buffer(max_header + read_piece) {}
    socket_type socket;
    beast::flat_buffer buffer; // capped: see client_options::max_header_bytes
    clock::time_point idle_since;
};
using connection_ptr = std::unique_ptr<connection>;

} // namespace udshttp::client::detail
