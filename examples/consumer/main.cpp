// consumer: built against an installed udshttp (find_package(udshttp CONFIG)). It serves a
// route of its own on a socket in /tmp, calls it with the client, then calls the URL given,
// and prints both answers.
//
//   consumer http+unix://%2Frun%2Fapp.sock/hello

#include <udshttp/client/client.hpp>
#include <udshttp/proto/url.hpp>
#include <udshttp/service/server.hpp>

#include <unistd.h>

#include <iostream>
#include <string>

int main(int argc, char** argv) {
    namespace svc = udshttp::service;
    if (argc != 2) {
        std::cerr << "usage: consumer URL\n";
        return 2;
    }
    const auto path = "/tmp/udshttp-consumer-" + std::to_string(::getpid()) + ".sock";
    svc::server server({.listen = {udshttp::proto::endpoint::unix_path(path)}});
    server.routes().get("/square/{n}", [](const svc::request& req, svc::response& res) {
        const auto n = std::stol(std::string(req.param("n")));
        svc::set_json(res, {{"square", n * n}});
    });
    try {
        server.start();
    } catch (const svc::startup_error& e) {
        std::cerr << "consumer: " << e.what() << '\n';
        return 1;
    }

    udshttp::client::client client;
    auto own = client.get_json(udshttp::proto::make_url(server.endpoints().front(), "/square/12"));
    auto other = client.get(argv[1]);
    server.stop();
    if (!own || !other) {
        std::cerr << "consumer: " << (!own ? own.error().message : other.error().message) << '\n';
        return 1;
    }
    std::cout << "own route: " << own->dump() << '\n';
    std::cout << argv[1] << ": " << other->status << ' ' << other->body << '\n';
    return other->status == 200 ? 0 : 1;
}
