// The fail_count matrix: the server's sessions and the client are driven over real Unix
// sockets while the 1st, 2nd, ... Nth socket call on their side fails (ECONNRESET, EMFILE,
// ECONNREFUSED) or moves a single byte, until a run completes without reaching N. At every N:
// no crash (the sanitizer builds run this too), no hang (every step is bounded), no leak (the
// server's connections and this process's descriptors go back to their baseline), and every
// answer that does arrive is right; a short transfer must change nothing at all.

#include "fault/inject.hpp"
#include "support/support.hpp"

#include <udshttp/client/client.hpp>
#include <udshttp/proto/url.hpp>

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

using namespace udshttp;
using namespace udshttp::test;

namespace {

constexpr long max_operations = 5000; // a guard: the scenarios take a few hundred calls

service::server_options quiet() {
    return {.log_level = service::log_level::off};
}

std::size_t open_descriptors() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd"))
        ++n;
    return n;
}

// The server's open connections, from /healthz, not counting the one asking.
long server_connections(const proto::endpoint& where) {
    const auto raw =
        roundtrip(where, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const auto doc = nlohmann::json::parse(body_of(raw), nullptr, false);
    return doc.is_object() && doc.contains("connections") ? doc["connections"].get<long>() - 1 : -1;
}

// After a faulted run: the server gets back to no connections and this process to its
// descriptors, within 5 s; and the server still answers.
void check_recovered(const proto::endpoint& where, std::size_t fds_before) {
    long open = -1;
    std::size_t fds = 0;
    for (int i = 0; i < 500; ++i) {
        open = server_connections(where);
        fds = open_descriptors();
        if (open == 0 && fds == fds_before)
            break;
        std::this_thread::sleep_for(10ms);
    }
    CHECK_MESSAGE(open == 0, "connections left open on the server: " << open);
    CHECK_MESSAGE(fds == fds_before, "descriptors: " << fds << " now, " << fds_before << " before");
    CHECK(
        body_of(roundtrip(where, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) ==
        "Hello Anonymous");
}

// One HTTP/1.1 response parsed from a byte stream: Content-Length or chunked framing.
struct parsed {
    std::string status; // "200"
    std::string body;
};

// Splits raw into the complete responses at its start; `rest` is what follows them (a
// response cut off mid-way, or nothing).
std::vector<parsed> parse_responses(const std::string& raw, std::string& rest) {
    std::vector<parsed> out;
    std::size_t pos = 0;
    for (;;) {
        rest = raw.substr(pos);
        const auto end = raw.find("\r\n\r\n", pos);
        if (end == std::string::npos || raw.compare(pos, 9, "HTTP/1.1 ") != 0)
            return out;
        const auto head = raw.substr(pos, end - pos);
        parsed p{head.substr(9, 3), {}};
        std::size_t at = end + 4;
        if (const auto cl = head.find("\r\nContent-Length: "); cl != std::string::npos) {
            const auto n = std::stoul(head.substr(cl + 18));
            if (raw.size() - at < n)
                return out;
            p.body = raw.substr(at, n);
            at += n;
        } else if (head.find("\r\nTransfer-Encoding: chunked") != std::string::npos) {
            for (;;) {
                const auto line = raw.find("\r\n", at);
                if (line == std::string::npos)
                    return out;
                const auto n = std::stoul(raw.substr(at, line - at), nullptr, 16);
                at = line + 2;
                if (n == 0) {
                    if (raw.compare(at, 2, "\r\n") != 0)
                        return out;
                    at += 2;
                    break;
                }
                if (raw.size() < at + n + 2)
                    return out;
                p.body += raw.substr(at, n);
                at += n + 2;
            }
        }
        out.push_back(std::move(p));
        pos = at;
    }
}

// The server scenario: four pipelined requests on one connection (a GET, a 64 KiB echo, a
// chunked echo, a GET that closes), written while the answers are read.
struct pipelined {
    std::string bytes;
    std::vector<std::string> bodies; // expected, in order

    pipelined() {
        std::string blob(64 * 1024, '\0');
        for (std::size_t i = 0; i < blob.size(); ++i)
            blob[i] = static_cast<char>('a' + i % 23);
        bytes = "GET /hello/one HTTP/1.1\r\nHost: x\r\n\r\n"
                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                std::to_string(blob.size()) + "\r\n\r\n" + blob +
                "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                "5\r\nfirst\r\n6\r\nsecond\r\n0\r\n\r\n"
                "GET /hello/last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        bodies = {"Hello one", blob, "firstsecond", "Hello last"};
    }
};

// Connects, writes `bytes` from a second thread while reading to EOF or a reset. 5 s without
// a byte is a hang: the server neither answered nor closed.
std::string drive(const proto::endpoint& where, const std::string& bytes) {
    raw_socket s(where, 5s);
    REQUIRE(s.connected());
    std::thread writer([&] { s.send(bytes); }); // gives up quietly once the server closes
    std::string got;
    char buf[65536];
    for (;;) {
        const auto n = ::recv(s.fd(), buf, sizeof buf, 0);
        if (n > 0) {
            got.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        CHECK_MESSAGE((n == 0 || errno != EAGAIN),
                      "hang: 5 s without progress after " << got.size() << " bytes");
        break;
    }
    ::shutdown(s.fd(), SHUT_RDWR); // unblocks the writer if the server stopped reading
    writer.join();
    return got;
}

} // namespace

TEST_SUITE("fault") {

    TEST_CASE("server sessions: the Nth socket call fails - for every N") {
        server_fixture srv(true, quiet());
        const auto path = srv.dir().file("s.sock");
        const pipelined p;
        std::string rest;
        REQUIRE(parse_responses(drive(srv.endpoint(), p.bytes), rest).size() == 4);
        const auto fds_before = open_descriptors();
        long n = 1;
        for (; n < max_operations; ++n) {
            CAPTURE(n);
            fault::arm(path, fault::side::server, fault::mode::error, n);
            const auto raw = drive(srv.endpoint(), p.bytes);
            fault::disarm();
            const auto answers = parse_responses(raw, rest);
            // Whatever arrived is a prefix of the right answers; a cut-off one may end it.
            REQUIRE(answers.size() <= 4);
            for (std::size_t i = 0; i < answers.size(); ++i) {
                CHECK(answers[i].status == "200");
                CHECK(answers[i].body == p.bodies[i]);
            }
            CHECK((rest.empty() || rest.starts_with("HTTP/1.1 200 ")));
            check_recovered(srv.endpoint(), fds_before);
            if (!fault::fired()) {
                CHECK(answers.size() == 4); // untouched: the whole exchange
                break;
            }
        }
        MESSAGE("server: " << n - 1 << " runs, each with its Nth socket call failed");
        CHECK(n > 10);
        CHECK(n < max_operations);
    }

    TEST_CASE("server sessions: the Nth socket call moves one byte - nothing changes") {
        server_fixture srv(true, quiet());
        const auto path = srv.dir().file("s.sock");
        const pipelined p;
        const auto fds_before = open_descriptors();
        long n = 1;
        for (; n < max_operations; ++n) {
            CAPTURE(n);
            fault::arm(path, fault::side::server, fault::mode::short_transfer, n);
            const auto raw = drive(srv.endpoint(), p.bytes);
            fault::disarm();
            std::string rest;
            const auto answers = parse_responses(raw, rest);
            REQUIRE(answers.size() == 4);
            for (std::size_t i = 0; i < answers.size(); ++i) {
                CHECK(answers[i].status == "200");
                CHECK(answers[i].body == p.bodies[i]);
            }
            CHECK(rest.empty());
            check_recovered(srv.endpoint(), fds_before);
            if (!fault::fired())
                break;
        }
        MESSAGE("server: " << n - 1 << " runs, each with its Nth socket call cut to one byte");
        CHECK(n > 10);
        CHECK(n < max_operations);
    }

    TEST_CASE("client: the Nth socket call fails or moves one byte - for every N") {
        server_fixture srv(true, quiet());
        const auto path = srv.dir().file("s.sock");
        std::string blob(64 * 1024, '\0');
        for (std::size_t i = 0; i < blob.size(); ++i)
            blob[i] = static_cast<char>(i * 13);
        const auto fds_before = open_descriptors();
        for (const auto m : {fault::mode::error, fault::mode::short_transfer}) {
            const bool must_succeed = m == fault::mode::short_transfer;
            long n = 1;
            for (; n < max_operations; ++n) {
                CAPTURE(n);
                CAPTURE(must_succeed);
                fault::arm(path, fault::side::client, m, n);
                int answered = 0;
                {
                    // Deadlines far beyond any step here: an error that is a timeout means
                    // the client waited for something that could not come (a hang).
                    client::client c({.connect_timeout = 60s, .timeout = 60s});
                    // Every result is the right answer or an error that says what happened.
                    auto check = [&](const result<client::response>& r, const std::string& want) {
                        if (r) {
                            CHECK(r->status == 200);
                            CHECK(r->body == want);
                            ++answered;
                        } else {
                            CHECK(!must_succeed);
                            CHECK_FALSE(r.error().message.empty());
                            CHECK_MESSAGE(r.error().code != make_error_code(errc::timeout),
                                          r.error().message);
                        }
                    };
                    check(c.get(srv.url("/hello/one")), "Hello one");
                    check(c.post(srv.url("/echo"), blob), blob);
                    std::size_t at = 0;
                    check(c.send({.method = "POST",
                                  .url = srv.url("/echo"),
                                  .body = client::streamed_body{[&](std::span<char> buf)
                                                                    -> result<std::size_t> {
                                      const auto k = std::min(
                                          {buf.size(), blob.size() - at, std::size_t{4096}});
                                      std::memcpy(buf.data(), blob.data() + at, k);
                                      at += k;
                                      return k;
                                  }}}),
                          blob);
                    check(c.get(srv.url("/hello/again")), "Hello again");
                }
                fault::disarm();
                check_recovered(srv.endpoint(), fds_before);
                if (!fault::fired()) {
                    CHECK(answered == 4);
                    break;
                }
            }
            MESSAGE("client: " << n - 1 << " runs with the Nth call "
                               << std::string(must_succeed ? "cut to one byte" : "failed"));
            CHECK(n > 10);
            CHECK(n < max_operations);
        }
    }

    TEST_CASE("accept failing with EMFILE: the listener backs off and keeps accepting") {
        server_fixture srv(true, quiet());
        const auto fds_before = open_descriptors();
        // The first call counted on the server's side is the listener's accept.
        fault::arm(srv.dir().file("s.sock"), fault::side::server, fault::mode::error, 1);
        const auto raw =
            drive(srv.endpoint(), "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        fault::disarm();
        CHECK(fault::fired());
        CHECK(body_of(raw) == "Hello Anonymous"); // accepted after the back-off
        check_recovered(srv.endpoint(), fds_before);
    }

} // TEST_SUITE
