// echo_servers: the plain echo servers this project grew from, done on Asio coroutines in one
// program. Each endpoint sends back what it receives: byte streams over TCP and Unix sockets,
// datagrams over UDP and Unix datagram sockets. Any number of endpoints, all on one thread.
//
//   echo_servers --tcp 127.0.0.1:9000 --unix ./echo.sock --udp 127.0.0.1:9001
//                --unix-dgram ./echo-dgram.sock      (all on one line)
//   socat - TCP:127.0.0.1:9000            socat - UNIX-CONNECT:./echo.sock
//   socat - UDP:127.0.0.1:9001            socat - UNIX-SENDTO:./echo-dgram.sock,bind=./me.sock
//
// Port 0 asks for a free port; the line printed per endpoint says which one was bound. Socket
// files are created at start (a stale file from a dead run is replaced) and removed on
// SIGINT/SIGTERM.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/local/datagram_protocol.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

// One connection of a stream endpoint: read what comes, write it back, until the peer closes.
template <class Socket> awaitable<void> echo_stream(Socket socket) {
    std::array<char, 16 * 1024> buf;
    try {
        for (;;) {
            const auto n = co_await socket.async_read_some(asio::buffer(buf), use_awaitable);
            co_await asio::async_write(socket, asio::buffer(buf.data(), n), use_awaitable);
        }
    } catch (const boost::system::system_error&) {
        // end of file or a reset: the connection is over
    }
}

template <class Acceptor> awaitable<void> accept_loop(Acceptor acceptor) {
    for (;;) {
        auto socket = co_await acceptor.async_accept(use_awaitable);
        asio::co_spawn(acceptor.get_executor(), echo_stream(std::move(socket)), asio::detached);
    }
}

// A datagram endpoint: each datagram goes back to its sender, whole.
template <class Socket> awaitable<void> echo_datagrams(Socket socket) {
    std::array<char, 64 * 1024> buf;
    typename Socket::endpoint_type sender;
    for (;;) {
        const auto n = co_await socket.async_receive_from(asio::buffer(buf), sender, use_awaitable);
        boost::system::error_code ec; // a sender without an address (unbound) cannot be answered
        co_await socket.async_send_to(asio::buffer(buf.data(), n), sender,
                                      asio::redirect_error(use_awaitable, ec));
    }
}

// "127.0.0.1:9000" or "[::1]:9000".
template <class Endpoint> Endpoint ip_endpoint(const std::string& text) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos)
        throw std::invalid_argument("'" + text + "' is not HOST:PORT");
    auto host = text.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    return {asio::ip::make_address(host),
            static_cast<unsigned short>(std::stoi(text.substr(colon + 1)))};
}

// Replaces a stale socket file (a dead run's); refuses to touch anything that is not a socket.
void clear_socket_file(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            throw std::invalid_argument(path + " exists and is not a socket");
        ::unlink(path.c_str());
    }
}

} // namespace

int main(int argc, char** argv) {
    asio::io_context ctx(1);
    std::vector<std::string> files; // to remove at exit
    try {
        for (int i = 1; i < argc; ++i) {
            const std::string_view flag = argv[i];
            if (flag == "-h" || flag == "--help") {
                std::cout << "usage: echo_servers [--tcp HOST:PORT] [--unix PATH] [--udp HOST:PORT]"
                             " [--unix-dgram PATH]...\n";
                return 0;
            }
            if (i + 1 >= argc)
                throw std::invalid_argument(std::string(flag) + " needs a value");
            const std::string value = argv[++i];
            if (flag == "--tcp") {
                asio::ip::tcp::acceptor acceptor(ctx, ip_endpoint<asio::ip::tcp::endpoint>(value));
                std::cout << "tcp echo on " << acceptor.local_endpoint() << std::endl;
                asio::co_spawn(ctx, accept_loop(std::move(acceptor)), asio::detached);
            } else if (flag == "--unix") {
                clear_socket_file(value);
                asio::local::stream_protocol::acceptor acceptor(ctx, {value});
                files.push_back(value);
                std::cout << "unix echo on " << value << std::endl;
                asio::co_spawn(ctx, accept_loop(std::move(acceptor)), asio::detached);
            } else if (flag == "--udp") {
                asio::ip::udp::socket socket(ctx, ip_endpoint<asio::ip::udp::endpoint>(value));
                std::cout << "udp echo on " << socket.local_endpoint() << std::endl;
                asio::co_spawn(ctx, echo_datagrams(std::move(socket)), asio::detached);
            } else if (flag == "--unix-dgram") {
                clear_socket_file(value);
                asio::local::datagram_protocol::socket socket(ctx, {value});
                files.push_back(value);
                std::cout << "unix-dgram echo on " << value << std::endl;
                asio::co_spawn(ctx, echo_datagrams(std::move(socket)), asio::detached);
            } else {
                throw std::invalid_argument("unknown option " + std::string(flag));
            }
        }
    } catch (const std::exception& e) {
        std::cerr << "echo_servers: " << e.what() << '\n';
        for (const auto& f : files)
            ::unlink(f.c_str());
        return 2;
    }
    if (argc < 2) {
        std::cerr << "echo_servers: give at least one endpoint (see --help)\n";
        return 2;
    }
    asio::signal_set stop(ctx, SIGINT, SIGTERM);
    stop.async_wait([&](const boost::system::error_code&, int) { ctx.stop(); });
    ctx.run();
    for (const auto& f : files)
        ::unlink(f.c_str());
    return 0;
}
