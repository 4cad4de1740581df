// Call a udshttp service (or any HTTP server on a Unix socket) with the client library.
//
//   call_service http+unix://%2Ftmp%2Fudshttp.sock
//   call_service http://127.0.0.1:8080

#include <udshttp/client/client.hpp>

#include <iostream>

int main(int argc, char** argv) {
    const std::string base = argc > 1 ? argv[1] : "http+unix://%2Ftmp%2Fudshttp.sock";
    udshttp::client::client client({.timeout = std::chrono::seconds(5)});

    // Plain text. Errors come back as values that say what went wrong and where.
    auto hello = client.get(base + "/hello/Ada");
    if (!hello) {
        std::cerr << "call_service: " << hello.error().message << '\n';
        return 1;
    }
    std::cout << hello->status << ' ' << hello->body << '\n';

    // JSON, on the same kept-alive connection.
    auto health = client.get_json(base + "/healthz");
    if (!health) {
        std::cerr << "call_service: " << health.error().message << '\n';
        return 1;
    }
    std::cout << "status: " << (*health)["status"].get<std::string>() << '\n';

    // A body goes out and comes back byte for byte.
    auto echo = client.post(base + "/echo", "ping", "text/plain");
    if (!echo) {
        std::cerr << "call_service: " << echo.error().message << '\n';
        return 1;
    }
    std::cout << "echo: " << echo->body << '\n';

    // An HTTP error is a response; get_json turns it into an error with the server's code.
    auto missing = client.get_json(base + "/no/such/route");
    if (!missing)
        std::cout << "expected error: " << missing.error().message << '\n';

    std::cout << "connections opened: " << client.connections_opened() << '\n';
    return 0;
}
