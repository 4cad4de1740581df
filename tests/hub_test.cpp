// udshttpd's topic hub and /events, driven over real sockets: publish, subscribe as SSE and
// NDJSON, resume from Last-Event-ID and ?after=, long-poll, the slow-subscriber rule, the
// limits, and the drain's last words. The peers (curl, aiohttp, Node) are in peers_test.cpp.

#include "support/support.hpp"

#include <udshttp/client/client.hpp>

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <signal.h>

#include <thread>

using namespace udshttp;
using namespace udshttp::test;
using namespace std::chrono_literals;

namespace {

std::uint64_t publish(client::client& c, const daemon_fixture& d, const std::string& topic,
                      const std::string& body) {
    auto r = c.post(d.unix_url("/topics/" + topic), body, "text/plain");
    REQUIRE(response_of(r).status == 200);
    return nlohmann::json::parse(r->body)["id"].get<std::uint64_t>();
}

// A subscriber on a raw socket: sends the request and reads the stream as it comes.
struct subscriber {
    raw_socket s;
    std::string got;
    subscriber(const daemon_fixture& d, const std::string& target, const std::string& accept,
               const std::string& extra = {})
        : s(proto::endpoint::unix_path(d.socket_path()), 10s) {
        REQUIRE(s.send("GET " + target + " HTTP/1.1\r\nHost: x\r\nAccept: " + accept + "\r\n" +
                       extra + "\r\n"));
    }
    bool wait_for(std::string_view text, std::chrono::milliseconds limit = 5s) {
        return read_until(s, got, text, limit);
    }
    std::string body() const { return dechunk(got); }
};

std::string metric_line(client::client& c, const daemon_fixture& d, const std::string& name) {
    const auto body = response_of(c.get(d.unix_url("/metrics"))).body;
    const auto at = body.find("\n" + name + " ");
    if (at == std::string::npos)
        return {};
    return body.substr(at + 1, body.find('\n', at + 1) - at - 1);
}

} // namespace

TEST_SUITE("hub") {

    TEST_CASE("topics: published messages reach SSE and NDJSON subscribers in order") {
        daemon_fixture d;
        subscriber sse(d, "/topics/news", "text/event-stream");
        subscriber nd(d, "/topics/news", "application/x-ndjson");
        client::client c;
        // Subscribed once the hub counts them.
        REQUIRE(eventually([&] {
            return metric_line(c, d, "udshttp_topic_subscribers{topic=\"news\"}") ==
                   "udshttp_topic_subscribers{topic=\"news\"} 2";
        }));
        CHECK(publish(c, d, "news", "first") == 1);
        CHECK(publish(c, d, "news", "two\nlines") == 2);
        REQUIRE(sse.wait_for("data: lines\n\n"));
        CHECK(sse.got.find("Content-Type: text/event-stream") != std::string::npos);
        CHECK(sse.body() == "id: 1\ndata: first\n\nid: 2\ndata: two\ndata: lines\n\n");
        REQUIRE(nd.wait_for("lines\"}\n"));
        CHECK(nd.body() ==
              "{\"type\":\"message\",\"id\":1,\"content_type\":\"text/plain\",\"data\":\"first\"}\n"
              "{\"type\":\"message\",\"id\":2,\"content_type\":\"text/plain\",\"data\":\"two\\n"
              "lines\"}\n");
        // A body that is not UTF-8 arrives whole, in base64.
        auto bin = c.post(d.unix_url("/topics/news"), std::string("\xff\x00\xfe", 3),
                          "application/octet-stream");
        REQUIRE(response_of(bin).status == 200);
        REQUIRE(nd.wait_for("\"data_base64\":\"/wD+\"}\n"));
    }

    TEST_CASE("topics: resume from Last-Event-ID or after= while the replay buffer has it - a "
              "gap is announced") {
        daemon_fixture d(false, {"--topic-replay", "3"});
        client::client c;
        for (int i = 1; i <= 5; ++i)
            publish(c, d, "t", "m" + std::to_string(i));
        subscriber from3(d, "/topics/t", "text/event-stream", "Last-Event-ID: 3\r\n");
        REQUIRE(from3.wait_for("data: m5\n\n"));
        CHECK(from3.body() == "id: 4\ndata: m4\n\nid: 5\ndata: m5\n\n");
        subscriber from0(d, "/topics/t?after=0", "application/x-ndjson");
        REQUIRE(from0.wait_for("\"data\":\"m5\"}\n"));
        const auto body = from0.body();
        CHECK(body.starts_with("{\"type\":\"gap\",\"missed\":2}\n"));
        CHECK(body.find("\"data\":\"m3\"") != std::string::npos);
        CHECK(body.find("\"data\":\"m2\"") == std::string::npos);
    }

    TEST_CASE("topics: a long-poll answers at once - or when a message comes - or empty at its "
              "timeout") {
        daemon_fixture d;
        client::client c;
        publish(c, d, "lp", "one");
        auto now = c.get_json(d.unix_url("/topics/lp?after=0&timeout=5s"));
        REQUIRE(now);
        CHECK((*now)["messages"].size() == 1);
        CHECK((*now)["next"] == 1);

        const auto t0 = std::chrono::steady_clock::now();
        auto empty = c.get_json(d.unix_url("/topics/lp?after=1&timeout=300ms"));
        REQUIRE(empty);
        CHECK((*empty)["messages"].empty());
        CHECK((*empty)["next"] == 1); // the cursor stays
        CHECK(std::chrono::steady_clock::now() - t0 >= 300ms);

        std::thread later([&] {
            std::this_thread::sleep_for(200ms);
            client::client p;
            publish(p, d, "lp", "two");
        });
        auto waited = c.get_json(d.unix_url("/topics/lp?after=1&timeout=10s"));
        later.join();
        REQUIRE(waited);
        REQUIRE((*waited)["messages"].size() == 1);
        CHECK((*waited)["messages"][0]["data"] == "two");
        CHECK((*waited)["next"] == 2);

        auto bad = c.get(d.unix_url("/topics/lp?timeout=soon"));
        CHECK(response_of(bad).status == 400);
        CHECK(response_of(c.get(d.unix_url("/topics/lp?after=x"))).status == 400);
    }

    TEST_CASE("topics: limits - names, message size, topics and subscribers") {
        daemon_fixture d(
            false, {"--topics", "2", "--topic-subscribers", "1", "--topic-message-bytes", "10"});
        client::client c;
        CHECK(response_of(c.post(d.unix_url("/topics/a%2Fb"), "x", "text/plain")).status == 400);
        CHECK(response_of(c.post(d.unix_url("/topics/" + std::string(65, 'n')), "x", "text/plain"))
                  .status == 400);
        auto big = c.post(d.unix_url("/topics/a"), std::string(11, 'x'), "text/plain");
        CHECK(response_of(big).status == 413);
        CHECK(big->body.find("--topic-message-bytes") != std::string::npos);
        publish(c, d, "a", "x");
        publish(c, d, "b", "x");
        auto third = c.post(d.unix_url("/topics/c"), "x", "text/plain");
        CHECK(response_of(third).status == 503);
        CHECK(third->body.find("--topics") != std::string::npos);
        subscriber one(d, "/topics/a", "text/event-stream");
        REQUIRE(eventually([&] {
            return metric_line(c, d, "udshttp_topic_subscribers{topic=\"a\"}").ends_with(" 1");
        }));
        subscriber two(d, "/topics/a", "text/event-stream");
        REQUIRE(two.wait_for("\r\n\r\n"));
        CHECK(status_line(two.got) == "HTTP/1.1 503 Service Unavailable");
        CHECK(two.body().find("--topic-subscribers") != std::string::npos);
    }

    TEST_CASE("topics: a slow subscriber gets one error event and is closed - counted - a fast "
              "one gets everything") {
        daemon_fixture d(false, {"--topic-queue-bytes", "64KiB"});
        subscriber slow(d, "/topics/feed", "application/x-ndjson");
        subscriber fast(d, "/topics/feed", "application/x-ndjson");
        client::client c;
        REQUIRE(eventually([&] {
            return metric_line(c, d, "udshttp_topic_subscribers{topic=\"feed\"}").ends_with(" 2");
        }));
        const std::string piece(16 * 1024, 'p');
        std::uint64_t last = 0;
        std::string fast_got;
        // slow reads nothing; fast keeps up. The socket buffers and the stream's 64 KiB fill
        // first, then the hub's queue: well within 4 MiB.
        for (int i = 0; i < 256; ++i) {
            last = publish(c, d, "feed", piece);
            fast.wait_for("\"id\":" + std::to_string(last) + ",", 2s);
        }
        CHECK(metric_line(c, d, "udshttp_topic_subscribers_cut_total{topic=\"feed\"}") ==
              "udshttp_topic_subscribers_cut_total{topic=\"feed\"} 1");
        REQUIRE(fast.wait_for("\"id\":" + std::to_string(last) + ","));
        std::size_t lines = 0;
        const auto fast_body = fast.body();
        for (char ch : fast_body)
            lines += ch == '\n';
        CHECK(lines == last);
        // The slow one, reading at last, finds the error as its last line, then the end.
        REQUIRE(slow.wait_for("0\r\n\r\n", 10s));
        bool complete = false;
        const auto slow_body = dechunk(slow.got, &complete);
        CHECK(complete);
        CHECK(slow_body.find("{\"type\":\"error\",\"code\":\"too_slow\"") != std::string::npos);
        CHECK(slow_body.ends_with("\"}\n"));
    }

    TEST_CASE("topics: a WebSocket subscriber that sends but never reads is cut by the write-stall "
              "deadline") {
        // Its reads keep Beast's idle timer quiet, so only the deadline on our writes ends it.
        daemon_fixture d(false, {"--idle-timeout", "1s", "--topic-queue-bytes", "64MiB"});
        raw_socket s(proto::endpoint::unix_path(d.socket_path()), 10s);
        REQUIRE(s.send("GET /topics/stall HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n"));
        client::client c;
        REQUIRE(eventually([&] {
            return metric_line(c, d, "udshttp_topic_subscribers{topic=\"stall\"}").ends_with(" 1");
        }));
        // Far more than the socket buffers hold: the server's write stalls.
        const std::string piece(200 * 1024, 'm');
        for (int i = 0; i < 20; ++i)
            publish(c, d, "stall", piece);
        // A masked one-byte text frame every 50 ms, until the server has cut the connection.
        const std::string frame{'\x81', '\x81', 'k', 'e', 'y', 's', static_cast<char>('x' ^ 'k')};
        const auto t0 = std::chrono::steady_clock::now();
        bool cut = false;
        while (std::chrono::steady_clock::now() - t0 < 8s && !cut) {
            cut = !s.send(frame);
            std::this_thread::sleep_for(50ms);
        }
        CHECK(cut);
        CHECK(std::chrono::steady_clock::now() - t0 < 5s);
        REQUIRE(eventually([&] {
            return metric_line(c, d, "udshttp_topic_subscribers{topic=\"stall\"}").ends_with(" 0");
        }));
    }

    TEST_CASE("CLI: udshttp events and udshttp -N print each message as it is published") {
        daemon_fixture d;
        child events({udshttp_path(), "events", "--json", d.unix_url("/topics/cli")}, d.dir);
        child lines(
            {udshttp_path(), "-N", "-H", "Accept: application/x-ndjson", d.unix_url("/topics/cli")},
            d.dir);
        client::client c;
        REQUIRE(eventually([&] {
            return metric_line(c, d, "udshttp_topic_subscribers{topic=\"cli\"}").ends_with(" 2");
        }));
        publish(c, d, "cli", "first");
        CHECK(events.wait_for_output("{\"type\":\"message\",\"id\":\"1\",\"data\":\"first\"}\n"));
        CHECK(lines.wait_for_output(
            "\"id\":1,\"content_type\":\"text/plain\",\"data\":\"first\"}\n"));
        publish(c, d, "cli", "second");
        CHECK(events.wait_for_output("\"data\":\"second\"}\n"));
        CHECK(lines.wait_for_output("\"data\":\"second\"}\n"));
        CHECK_FALSE(events.wait(10ms)); // both still streaming
        events.signal(SIGTERM);
        lines.signal(SIGTERM);
        events.wait();
        lines.wait();
        auto missing = run({udshttp_path(), "events", d.unix_url("/nope")}, d.dir);
        CHECK(missing.code == 22);
        CHECK(missing.err.find("404 Not Found: no route for GET /nope") != std::string::npos);
    }

    TEST_CASE("CLI: udshttp ws sends stdin lines and prints what comes back - a topic over ws") {
        daemon_fixture d;
        const auto ws_url = [&](const std::string& target) {
            return "ws" + d.unix_url(target).substr(4);
        };
        write_file(d.dir.file("lines"), "hello\nworld");
        auto echo = run({udshttp_path(), "ws", ws_url("/ws/echo")}, d.dir,
                        {.stdin_file = d.dir.file("lines")});
        CHECK(echo.code == 0);
        CHECK(echo.out == "hello\nworld\n");
        // A subscription prints messages as they are published, until the server closes.
        child sub({udshttp_path(), "ws", ws_url("/topics/wscli")}, d.dir);
        client::client c;
        REQUIRE(eventually([&] {
            return metric_line(c, d, "udshttp_topic_subscribers{topic=\"wscli\"}").ends_with(" 1");
        }));
        publish(c, d, "wscli", "over ws");
        CHECK(sub.wait_for_output("\"data\":\"over ws\"}\n"));
        d.proc->signal(SIGTERM); // the drain closes it with 1001: the CLI ends cleanly
        CHECK(sub.wait(10s) == 0);
        auto missing =
            run({udshttp_path(), "ws", ws_url("/nope")}, d.dir, {.stdin_file = "/dev/null"});
        CHECK(missing.code == 7); // the server is gone by now: cannot connect
    }

    TEST_CASE("events: every request answered, live") {
        daemon_fixture d;
        subscriber ev(d, "/events", "application/x-ndjson");
        REQUIRE(ev.wait_for("\r\n\r\n")); // the head comes at once
        client::client c;
        REQUIRE(response_of(c.get(d.unix_url("/hello/events"))).status == 200);
        REQUIRE(ev.wait_for("/hello/events"));
        const auto line = ev.body().substr(0, ev.body().find('\n'));
        const auto j = nlohmann::json::parse(line);
        CHECK(j["method"] == "GET");
        CHECK(j["target"] == "/hello/events");
        CHECK(j["status"] == 200);
        CHECK(j["transport"] == "unix");
        CHECK(j["pid"] == ::getpid());
    }

    TEST_CASE("drain: open SSE - NDJSON and WebSocket subscriptions and a long-poll get their "
              "last words - exit 0 within the drain timeout") {
        daemon_fixture d(false, {"--drain-timeout", "5s"});
        subscriber sse(d, "/topics/x", "text/event-stream");
        subscriber nd(d, "/topics/x", "application/x-ndjson");
        subscriber poll(d, "/topics/x?timeout=60s", "application/json");
        client::client c;
        REQUIRE(eventually([&] {
            return metric_line(c, d, "udshttp_topic_subscribers{topic=\"x\"}").ends_with(" 3");
        }));
        // A WebSocket subscriber too, when python3-websockets is there.
        std::unique_ptr<child> ws;
        if (require_python_module("websockets", "python3-websockets")) {
            ws = std::make_unique<child>(
                std::vector<std::string>{"/usr/bin/python3", peers_dir() + "/websockets_client.py",
                                         "--wait-close", d.socket_path()},
                d.dir);
            REQUIRE(ws->wait_for_output("subscribed"));
        }
        c = client::client{};
        const auto t0 = std::chrono::steady_clock::now();
        d.proc->signal(SIGTERM);
        const auto code = d.proc->wait(10s);
        CHECK(std::chrono::steady_clock::now() - t0 < 3s);
        REQUIRE(code);
        CHECK(*code == 0);
        sse.wait_for("0\r\n\r\n");
        nd.wait_for("0\r\n\r\n");
        poll.wait_for("0\r\n\r\n");
        CHECK(sse.body() == "event: shutdown\ndata: the server is shutting down\n\n");
        CHECK(nd.body() == "{\"type\":\"shutdown\"}\n");
        CHECK(status_line(poll.got) == "HTTP/1.1 503 Service Unavailable");
        CHECK(d.proc->err().find("the drain ended " + std::to_string(ws ? 4 : 3) +
                                 " response stream(s)") != std::string::npos);
        if (ws) {
            CHECK(ws->wait_for_output("close code 1001")); // going away
            ws->wait();
        }
    }
}
