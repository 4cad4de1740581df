// own_asio: a program that compiles Asio itself (BOOST_ASIO_SEPARATE_COMPILATION, with
// own_asio_impl.cpp holding Asio's code), linked with udshttp's libraries: no symbol twice.
//
//   own_asio http+unix://%2Frun%2Fapp.sock/hello

#include <udshttp/client/client.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <iostream>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: own_asio URL\n";
        return 2;
    }
    boost::asio::io_context io;
    int posted = 0;
    boost::asio::post(io, [&posted] { ++posted; });
    io.run();
    udshttp::client::client client;
    auto r = client.get(argv[1]);
    if (!r) {
        std::cerr << "own_asio: " << r.error().message << '\n';
        return 1;
    }
    std::cout << "posted " << posted << ", " << r->status << ' ' << r->body << '\n';
    return posted == 1 && r->status == 200 ? 0 : 1;
}
