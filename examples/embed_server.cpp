// Embed the udshttp server in your own program and add routes next to the built-in ones.
//
//   embed_server ./app.sock
//   curl --unix-socket ./app.sock http://localhost/greet/Ada
//   curl --unix-socket ./app.sock -X POST http://localhost/counter
//   curl --unix-socket ./app.sock http://localhost/whoami

#include <udshttp/service/server.hpp>

#include <signal.h>

#include <atomic>
#include <iostream>

int main(int argc, char** argv) {
    namespace svc = udshttp::service;
    auto where = udshttp::proto::endpoint::parse(argc > 1 ? argv[1] : "./app.sock");
    if (!where) {
        std::cerr << "embed_server: " << where.error().message << '\n';
        return 2;
    }

    // Block the stop signals before the server starts its threads; main waits for them below.
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);

    svc::server server({.listen = {*where}, .threads = 1, .builtin_routes = true});
    std::atomic<long> counter{0};

    server.routes()
        .get("/greet/{name}",
             [](const svc::request& req, svc::response& res) {
                 svc::set_text(res, "Greetings, " + std::string(req.param("name")) + "!\n");
             })
        .post("/counter",
              [&counter](const svc::request&, svc::response& res) {
                  svc::set_json(res, {{"counter", ++counter}});
              })
        .get("/whoami", [](const svc::request& req, svc::response& res) {
            // Over a Unix socket the kernel tells us who is calling.
            svc::set_json(res, req.peer());
        });

    try {
        server.start();
    } catch (const svc::startup_error& e) {
        std::cerr << "embed_server: " << e.what() << '\n';
        return 1;
    }
    for (const auto& e : server.endpoints())
        std::cout << "embed_server listening on " << e.to_string() << std::endl;

    int sig = 0;
    sigwait(&stop, &sig);
    server.stop(); // removes the socket file
    return 0;
}
