// consumer: built against an installed udshttp (find_package(udshttp CONFIG)), with -Wall
// -Wextra -Werror. It is the README's library snippets as a program: a server with a route of
// its own on a socket in /tmp, the client calling it by target on base_url, then the URL given.
//
//   consumer http+unix://%2Frun%2Fapp.sock/hello

#include <udshttp/client/client.hpp>
#include <udshttp/service/server.hpp>

#include <unistd.h>

#include <chrono>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
    namespace svc = udshttp::service;
    if (argc != 2) {
        std::cerr << "usage: consumer URL\n";
        return 2;
    }
    const auto path = "/tmp/udshttp-consumer-" + std::to_string(::getpid()) + ".sock";
    svc::server srv({.listen = {path}});
    srv.routes()
        .get("/square/{n}",
             [](const svc::request& req, svc::response& res) {
                 const auto n = std::stol(std::string(req.param("n")));
                 svc::set_json(res, {{"square", n * n}, {"uid", req.peer().uid.value_or(-1)}});
             })
        .describe({.summary = "N squared", .response_type = "application/json"});
    try {
        srv.start(); // binds every endpoint or throws startup_error naming it, then serves
    } catch (const svc::startup_error& e) {
        std::cerr << "consumer: " << e.what() << '\n';
        return 1;
    }

    udshttp::client::client c({.connect_timeout = std::chrono::seconds(2),
                               .timeout = std::chrono::seconds(10),
                               .base_url = srv.url("/")});
    auto own = c.get_json("/square/12"); // a target alone goes to base_url
    auto other = c.get(argv[1]);         // an absolute URL goes where it says
    srv.stop();
    if (!own || !other) {
        std::cerr << "consumer: " << (!own ? own.error().message : other.error().message) << '\n';
        return 1;
    }
    std::cout << "own route: {\"square\":" << (*own)["square"] << "}\n";
    std::cout << argv[1] << ": " << other->status << ' ' << other->body << '\n';
    return other->status == 200 ? 0 : 1;
}
