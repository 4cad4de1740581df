// Handlers that wait, stream and upgrade, in your own program: a coroutine route that awaits
// a timer without holding the worker, an NDJSON feed with backpressure and a heartbeat, and a
// WebSocket that shouts back.
//
//   live_server ./live.sock
//   curl --unix-socket ./live.sock 'http://localhost/slow?ms=500'
//   curl -N --unix-socket ./live.sock http://localhost/ticks
//   python3 -c 'import asyncio, websockets.client as w
//   async def m():
//       async with w.unix_connect("./live.sock", "ws://localhost/shout") as ws:
//           await ws.send("hi"); print(await ws.recv())
//   asyncio.run(m())'

#include <udshttp/service/server.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <nlohmann/json.hpp>

#include <signal.h>

#include <cctype>
#include <iostream>

namespace asio = boost::asio;
namespace svc = udshttp::service;
using namespace std::chrono_literals;

namespace {

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
    asio::steady_timer timer(co_await asio::this_coro::executor, d);
    co_await timer.async_wait(asio::use_awaitable); // cancelled if the caller hangs up
}

} // namespace

int main(int argc, char** argv) {
    auto where = udshttp::proto::endpoint::parse(argc > 1 ? argv[1] : "./live.sock");
    if (!where) {
        std::cerr << "live_server: " << where.error().message << '\n';
        return 2;
    }
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);

    svc::server server({.listen = {*where}, .drain_timeout = 5s});
    server
        .routes()
        // Answers when it returns; the worker serves others meanwhile.
        .get("/slow",
             [](const svc::request& req, svc::response& res) -> asio::awaitable<void> {
                 const auto ms = std::stoi(req.query_param("ms").value_or("100"));
                 co_await sleep_for(std::chrono::milliseconds(ms));
                 svc::set_text(res, "waited " + std::to_string(ms) + " ms\n");
             })
        // One JSON line every 200 ms until the caller leaves or the server stops (then the
        // caller's last line is {"type":"shutdown"}).
        .get("/ticks",
             [](const svc::request&, svc::response_stream& out) -> asio::awaitable<void> {
                 for (int n = 1;; ++n) {
                     const nlohmann::json tick{{"type", "tick"}, {"n", n}};
                     co_await out.write_json(tick); // waits while the caller is not reading
                     co_await sleep_for(200ms);
                 }
             })
        .heartbeat(15s)
        // A WebSocket: every text message comes back in capitals.
        .get("/shout", [](const svc::request&, svc::websocket& ws) -> asio::awaitable<void> {
            for (;;) {
                auto message = co_await ws.read();
                if (!message)
                    co_return; // closed
                for (auto& ch : message->data)
                    ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
                co_await ws.write(message->data);
            }
        });

    try {
        server.start();
    } catch (const svc::startup_error& e) {
        std::cerr << "live_server: " << e.what() << '\n';
        return 1;
    }
    for (const auto& e : server.endpoints())
        std::cout << "live_server listening on " << e.to_string() << std::endl;
    int sig = 0;
    sigwait(&stop, &sig);
    server.stop(); // open streams get their last words, then the socket file goes
    return 0;
}
