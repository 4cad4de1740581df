// The examples do what their comments say.

#include "support/support.hpp"

#include <udshttp/client/client.hpp>
#include <udshttp/proto/url.hpp>

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <regex>
#include <thread>
#include <vector>

using namespace udshttp;
using namespace udshttp::test;

#ifdef UDSHTTP_TEST_EXAMPLES

TEST_SUITE("e2e") {

    TEST_CASE("example echo_servers: TCP - Unix - UDP - Unix datagram with socat and nc and 100 "
              "clients each") {
        temp_dir dir;
        const auto stream_path = dir.file("echo.sock");
        const auto dgram_path = dir.file("echo-dgram.sock");
        std::optional<child> server;
        server.emplace(
            std::vector<std::string>{std::string(UDSHTTP_TEST_EXAMPLES) + "/echo_servers", "--tcp",
                                     "127.0.0.1:0", "--unix", stream_path, "--udp", "127.0.0.1:0",
                                     "--unix-dgram", dgram_path},
            dir);
        REQUIRE_MESSAGE(server->wait_for_output("unix-dgram echo on"), server->err());
        std::smatch m;
        const auto out = server->out();
        REQUIRE(std::regex_search(out, m, std::regex("tcp echo on 127.0.0.1:(\\d+)")));
        const auto tcp_port = static_cast<std::uint16_t>(std::stoi(m[1]));
        REQUIRE(std::regex_search(out, m, std::regex("udp echo on 127.0.0.1:(\\d+)")));
        const auto udp_port = static_cast<std::uint16_t>(std::stoi(m[1]));

        // Tools nobody here wrote.
        if (require_peer("socat", "socat") && require_peer("nc", "netcat-openbsd")) {
            write_file(dir.file("in.txt"), "hello, echo\n");
            const auto tool = [&](std::vector<std::string> argv) {
                return run(std::move(argv), dir,
                           {.uid = {}, .env = {}, .stdin_file = dir.file("in.txt")})
                    .out;
            };
            const auto tcp = "127.0.0.1:" + std::to_string(tcp_port);
            const auto udp = "127.0.0.1:" + std::to_string(udp_port);
            CHECK(tool({"socat", "-", "TCP:" + tcp}) == "hello, echo\n");
            CHECK(tool({"socat", "-", "UNIX-CONNECT:" + stream_path}) == "hello, echo\n");
            CHECK(tool({"socat", "-t1", "-", "UDP:" + udp}) == "hello, echo\n");
            CHECK(tool({"socat", "-t1", "-",
                        "UNIX-SENDTO:" + dgram_path + ",bind=" + dir.file("me.sock")}) ==
                  "hello, echo\n");
            CHECK(tool({"nc", "-N", "127.0.0.1", std::to_string(tcp_port)}) == "hello, echo\n");
            CHECK(tool({"nc", "-N", "-U", stream_path}) == "hello, echo\n");
        }

        // 100 clients at once on each endpoint, 20 messages each, every byte checked.
        const auto clients = [&](auto&& one) {
            std::atomic<int> good{0};
            std::vector<std::thread> threads;
            for (int i = 0; i < 100; ++i)
                threads.emplace_back([&, i] { good += one(i) ? 1 : 0; });
            for (auto& t : threads)
                t.join();
            return good.load();
        };
        const auto converse = [](int fd, int i, bool datagram) {
            timeval tv{.tv_sec = 5, .tv_usec = 0};
            ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            for (int j = 0; j < 20; ++j) {
                const auto msg = "client " + std::to_string(i) + " message " + std::to_string(j);
                if (::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL) !=
                    static_cast<ssize_t>(msg.size()))
                    return false;
                std::string back;
                while (back.size() < msg.size()) {
                    char buf[256];
                    const auto n = ::recv(fd, buf, sizeof buf, 0);
                    if (n <= 0)
                        return false;
                    back.append(buf, static_cast<std::size_t>(n));
                    if (datagram)
                        break; // one datagram is one whole answer
                }
                if (back != msg)
                    return false;
            }
            return true;
        };
        const auto connected = [](int type, const sockaddr* addr, socklen_t len,
                                  const sockaddr* bind_to = nullptr, socklen_t bind_len = 0) {
            const int fd = ::socket(addr->sa_family, type | SOCK_CLOEXEC, 0);
            if (fd >= 0 && bind_to && ::bind(fd, bind_to, bind_len) != 0) {
                ::close(fd);
                return -1;
            }
            if (fd >= 0 && ::connect(fd, addr, len) != 0) {
                ::close(fd);
                return -1;
            }
            return fd;
        };
        const auto inet = [](std::uint16_t port) {
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_port = htons(port);
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            return a;
        };
        const auto local = [](const std::string& path) {
            sockaddr_un a{};
            a.sun_family = AF_UNIX;
            std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
            return a;
        };
        const auto run_client = [&](int type, auto addr, bool datagram, std::string bind_path,
                                    int i) {
            int fd;
            if (bind_path.empty()) {
                fd = connected(type, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
            } else {
                const auto me = local(bind_path);
                fd = connected(type, reinterpret_cast<const sockaddr*>(&addr), sizeof addr,
                               reinterpret_cast<const sockaddr*>(&me), sizeof me);
            }
            if (fd < 0)
                return false;
            const bool ok = converse(fd, i, datagram);
            ::close(fd);
            return ok;
        };
        CHECK(clients([&](int i) {
                  return run_client(SOCK_STREAM, inet(tcp_port), false, "", i);
              }) == 100);
        CHECK(clients([&](int i) {
                  return run_client(SOCK_STREAM, local(stream_path), false, "", i);
              }) == 100);
        CHECK(clients([&](int i) { return run_client(SOCK_DGRAM, inet(udp_port), true, "", i); }) ==
              100);
        CHECK(clients([&](int i) {
                  return run_client(SOCK_DGRAM, local(dgram_path), true,
                                    dir.file("c" + std::to_string(i) + ".sock"), i);
              }) == 100);

        server->signal(SIGTERM);
        CHECK(server->wait(10s) == 0);
        CHECK_FALSE(std::filesystem::exists(stream_path)); // its socket files are removed
        CHECK_FALSE(std::filesystem::exists(dgram_path));
    }

    TEST_CASE("examples/clients: Python aiohttp - http.client - Node - Go and curl call udshttpd") {
        daemon_fixture d;
        const std::string dir = std::string(UDSHTTP_TEST_EXAMPLES_SRC) + "/clients/";
        const std::string expected = "hello: Hello Anonymous\njson: Hello Ada L\necho: ping\n"
                                     "error: 404 not_found\n";
        struct client_program {
            std::string name;
            std::vector<std::string> argv;
            bool available;
        };
        const std::vector<client_program> programs{
            {"aiohttp",
             {"/usr/bin/python3", dir + "python_aiohttp.py"},
             require_python_module("aiohttp", "python3-aiohttp")},
            {"http.client", {"/usr/bin/python3", dir + "python_http_client.py"}, true},
            {"node", {"node", dir + "node_client.js"}, require_peer("node", "nodejs")},
            {"go", {"go", "run", dir + "go_client.go"}, require_peer("go", "golang-go")},
            {"curl", {"sh", dir + "curl.sh"}, require_peer("curl", "curl")},
        };
        for (const auto& p : programs) {
            if (!p.available)
                continue;
            auto argv = p.argv;
            argv.push_back(d.socket_path());
            // Go builds into a cache of its own, inside the test's directory.
            auto r = run(argv, d.dir,
                         {.uid = {},
                          .env = {"GOCACHE=" + d.dir.file("gocache"),
                                  "GOPATH=" + d.dir.file("gopath"), "GOFLAGS=-modcacherw"}},
                         100s);
            CHECK_MESSAGE(r.code == 0, p.name << ": " << r.err);
            CHECK_MESSAGE(r.out == expected, p.name << " printed:\n" << r.out << r.err);
        }
    }

    TEST_CASE("example embed_server: its own routes beside the built-in ones") {
        temp_dir dir;
        const auto sock = dir.file("app.sock");
        child app({std::string(UDSHTTP_TEST_EXAMPLES) + "/embed_server", sock}, dir);
        REQUIRE_MESSAGE(app.wait_for_output("listening on"), app.err());
        client::client c;
        const auto url = [&](const std::string& t) {
            return proto::make_url(proto::endpoint::unix_path(sock), t);
        };
        CHECK(response_of(c.get(url("/greet/Ada"))).body == "Greetings, Ada!\n");
        CHECK((*c.post_json(url("/counter"), nullptr))["counter"] == 1);
        CHECK((*c.post_json(url("/counter"), nullptr))["counter"] == 2);
        CHECK((*c.get_json(url("/whoami")))["pid"] == ::getpid());
        CHECK(response_of(c.get(url("/hello"))).body == "Hello Anonymous");
        app.signal(SIGTERM);
        CHECK(app.wait(10s) == 0);
        CHECK_FALSE(std::filesystem::exists(sock));
    }

    TEST_CASE("examples live_server and watch_topic: a waiting route - a stream - a "
              "WebSocket - a follower") {
        temp_dir dir;
        const auto sock = dir.file("live.sock");
        child app({std::string(UDSHTTP_TEST_EXAMPLES) + "/live_server", sock}, dir);
        REQUIRE_MESSAGE(app.wait_for_output("listening on"), app.err());
        const auto url = [&](const std::string& t) {
            return proto::make_url(proto::endpoint::unix_path(sock), t);
        };
        client::client c;
        CHECK(response_of(c.get(url("/slow?ms=50"))).body == "waited 50 ms\n");
        {
            raw_socket ticks(proto::endpoint::unix_path(sock));
            REQUIRE(ticks.send("GET /ticks HTTP/1.1\r\nHost: x\r\n\r\n"));
            std::string got;
            CHECK(read_until(ticks, got, "{\"n\":2,\"type\":\"tick\"}\n"));
        }
        if (require_python_module("websockets", "python3-websockets")) {
            auto py = run({"/usr/bin/python3", "-c",
                           "import asyncio, sys, websockets.client as w\n"
                           "async def m():\n"
                           "    async with w.unix_connect(sys.argv[1], 'ws://x/shout') as ws:\n"
                           "        await ws.send('hi there'); print(await ws.recv())\n"
                           "asyncio.run(m())\n",
                           sock},
                          dir);
            CHECK(py.out == "HI THERE\n");
        }
        app.signal(SIGTERM);
        CHECK(app.wait(10s) == 0);

        // watch_topic follows a udshttpd topic and stops after the count.
        const auto dsock = dir.file("d.sock");
        child d({udshttpd_path(), "--listen", dsock}, dir);
        REQUIRE_MESSAGE(d.wait_for_output("listening on"), d.err());
        const auto topic = proto::make_url(proto::endpoint::unix_path(dsock), "/topics/jobs");
        child watch({std::string(UDSHTTP_TEST_EXAMPLES) + "/watch_topic", topic, "2"}, dir);
        REQUIRE(eventually([&] {
            auto m = c.get(proto::make_url(proto::endpoint::unix_path(dsock), "/metrics"));
            return m &&
                   m->body.find("udshttp_topic_subscribers{topic=\"jobs\"} 1") != std::string::npos;
        }));
        REQUIRE(response_of(c.post(topic, "job 1 done", "text/plain")).status == 200);
        REQUIRE(response_of(c.post(topic, "job 2 done", "text/plain")).status == 200);
        CHECK(watch.wait(10s) == 0);
        CHECK(watch.out() == "1 job 1 done\n2 job 2 done\n");
    }

    TEST_CASE("example call_service and curl_calls.sh against udshttpd") {
        temp_dir dir;
        const auto sock = dir.file("d.sock");
        child d({udshttpd_path(), "--listen", sock}, dir);
        REQUIRE_MESSAGE(d.wait_for_output("listening on"), d.err());

        auto base = proto::make_url(proto::endpoint::unix_path(sock), "");
        base.pop_back(); // the example appends "/hello/Ada" and so on
        auto call = run({std::string(UDSHTTP_TEST_EXAMPLES) + "/call_service", base}, dir);
        CHECK(call.code == 0);
        CHECK(call.out.find("200 Hello Ada\nstatus: ok\necho: ping\n") == 0);
        CHECK(call.out.find("expected error: GET ") != std::string::npos);
        CHECK(call.out.find("404 Not Found") != std::string::npos);
        CHECK(call.out.find("connections opened: 1") != std::string::npos);

        if (!have_program("curl")) {
            MESSAGE("skipped curl_calls.sh: curl not found (apt-get install curl)");
            return;
        }
        auto script =
            run({"bash", std::string(UDSHTTP_TEST_EXAMPLES_SRC) + "/curl_calls.sh", sock}, dir);
        INFO(script.err);
        CHECK(script.code == 0);
        CHECK(script.out.find("Hello Ada\n") != std::string::npos);
        CHECK(script.out.find(R"({"message":"Hello Ada","name":"Ada"})") != std::string::npos);
        CHECK(script.out.find("udshttp_requests_total") != std::string::npos);
    }

} // TEST_SUITE

#endif
