// pkg_config: the client alone, built with pkg-config instead of CMake:
//   g++ -std=c++20 pkg_config.cpp $(pkg-config --cflags --libs udshttp) -o pkg_config
//   ./pkg_config http+unix://%2Frun%2Fapp.sock/hello

#include <udshttp/client/client.hpp>

#include <iostream>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: pkg_config URL\n";
        return 2;
    }
    udshttp::client::client client;
    auto r = client.get(argv[1]);
    if (!r) {
        std::cerr << "pkg_config: " << r.error().message << '\n';
        return 1;
    }
    std::cout << r->status << ' ' << r->body << '\n';
    return r->status == 200 ? 0 : 1;
}
