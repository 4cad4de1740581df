// asio_user: a program with Asio code of its own - the io_service spelling and its post(),
// which Boost 1.81 still offers - that also runs udshttp's async client on that io_service.
// udshttp must not change how the program's own Asio compiles or behaves.
//
//   asio_user http+unix://%2Frun%2Fapp.sock/hello

#include <udshttp/client/async_client.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_service.hpp>

#include <iostream>
#include <optional>
#include <string>

namespace {

using udshttp::client::async_client;
using udshttp::client::response;

boost::asio::awaitable<void> call(async_client& client, std::string url,
                                  std::optional<udshttp::result<response>>& out) {
    udshttp::client::request req{.url = std::move(url)};
    out = co_await client.async_send(std::move(req));
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: asio_user URL\n";
        return 2;
    }
    boost::asio::io_service io;
    int posted = 0;
    io.post([&posted] { ++posted; });
    async_client client(io.get_executor());
    std::optional<udshttp::result<response>> answer;
    boost::asio::co_spawn(io, call(client, argv[1], answer), boost::asio::detached);
    io.run();
    if (!answer || !*answer) {
        std::cerr << "asio_user: " << (answer ? (*answer).error().message : "no answer") << '\n';
        return 1;
    }
    std::cout << "posted " << posted << ", " << (*answer)->status << ' ' << (*answer)->body << '\n';
    return posted == 1 && (*answer)->status == 200 ? 0 : 1;
}
