// udshttpd as an attacker sees it: every input a local peer controls has a bound, and every
// bound is shown here over real sockets against a real udshttpd process (whose peak resident
// size is read from /proc) or an in-process server. Label "adversarial".

#include "support/support.hpp"

#include <udshttp/client/client.hpp>
#include <udshttp/proto/url.hpp>
#include <udshttp/service/server.hpp>

#include <doctest/doctest.h>

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>

#include <atomic>
#include <filesystem>
#include <regex>
#include <thread>

using namespace udshttp;
using namespace udshttp::test;
using namespace std::chrono_literals;

namespace {

constexpr uid_t nobody = 65534;

// The most a peer may make udshttpd hold here: its own size (about 4 MiB) plus read buffers.
// Measured on the build before these bounds: 132 MiB for a 64 MiB chunk extension, 31 MiB for
// a 10 MiB header of tiny fields, 344 MiB for six 60 MB bodies to an unknown route.
constexpr std::size_t resident_bound_kb = 24 * 1024;

bool resident_checked() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return false;
#else
    return true;
#endif
}

void check_resident(pid_t pid) {
    const auto kb = vm_hwm_kb(pid);
    MESSAGE("udshttpd peak resident size: " << kb / 1024 << " MiB");
    CHECK(kb > 0);
    if (resident_checked())
        CHECK(kb < resident_bound_kb);
    else
        MESSAGE("resident bound not checked: sanitizer shadow memory dominates in this build");
}

void send_timeout(int fd, std::chrono::milliseconds t) {
    timeval tv{.tv_sec = static_cast<time_t>(t.count() / 1000),
               .tv_usec = static_cast<suseconds_t>(t.count() % 1000 * 1000)};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// Sends `prefix`, then `filler` over and over until `limit` bytes went out or the server stops
// taking them; then half-closes and returns everything the server answered.
std::string flood(const proto::endpoint& ep, const std::string& prefix, const std::string& filler,
                  std::size_t limit) {
    raw_socket s(ep, 10s);
    REQUIRE(s.connected());
    send_timeout(s.fd(), 10s);
    std::string block;
    while (block.size() < 64 * 1024)
        block += filler;
    bool ok = s.send(prefix);
    for (std::size_t sent = 0; ok && sent < limit; sent += block.size())
        ok = s.send(block);
    s.shutdown_write();
    return s.read_all();
}

std::string chunked_head(const std::string& target) {
    return "POST " + target + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
}

std::string metrics_of(const proto::endpoint& ep) {
    return body_of(roundtrip(ep, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
}

mode_t mode_of(const std::string& path) {
    struct stat st {};
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

// udshttpd as a child with stderr on a pipe (the read end is returned); ready once it prints
// where it listens.
struct piped_daemon {
    temp_dir dir;
    int read_fd = -1;
    std::unique_ptr<child> proc;
    proto::endpoint ep = proto::endpoint::unix_path(dir.file("p.sock"));

    explicit piped_daemon(std::vector<std::string> extra) {
        int fds[2];
        REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
        read_fd = fds[0];
        std::vector<std::string> argv{udshttpd_path(), "--listen", ep.address};
        argv.insert(argv.end(), extra.begin(), extra.end());
        proc = std::make_unique<child>(
            argv, dir,
            child::spawn_options{
                .uid = {}, .env = {}, .stdin_file = {}, .groups = {}, .stderr_fd = fds[1]});
        ::close(fds[1]);
        REQUIRE(eventually([&] { return raw_socket(ep).connected(); }));
    }
    ~piped_daemon() {
        proc.reset();
        ::close(read_fd);
    }
};

std::string get(const proto::endpoint& ep, const std::string& target) {
    return roundtrip(ep, "GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
}

// A hostile server: on each connection it reads the request head, sends `head`, then `filler`
// again and again (pausing `pause` between pieces) until the client hangs up or `limit` bytes
// went out.
class hostile_server {
public:
    hostile_server(std::string head, std::string filler, std::size_t limit,
                   std::chrono::milliseconds pause = 0ms)
        : path_(dir_.file("h.sock")), fd_(bind_unix_socket(path_, 8)) {
        thread_ = std::thread([=, this] {
            for (;;) {
                const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
                if (c < 0)
                    return;
                send_timeout(c, 5s);
                std::string got;
                char buf[4096];
                while (got.find("\r\n\r\n") == std::string::npos) {
                    const auto n = ::recv(c, buf, sizeof buf, 0);
                    if (n <= 0)
                        break;
                    got.append(buf, static_cast<std::size_t>(n));
                }
                std::string block;
                while (block.size() < (pause > 0ms ? 1 : 64 * 1024) * filler.size())
                    block += filler;
                bool ok = ::send(c, head.data(), head.size(), MSG_NOSIGNAL) > 0;
                for (std::size_t sent = 0; ok && sent < limit && !stop_; sent += block.size()) {
                    ok = ::send(c, block.data(), block.size(), MSG_NOSIGNAL) > 0;
                    if (pause > 0ms)
                        std::this_thread::sleep_for(pause);
                }
                ::close(c);
            }
        });
    }
    ~hostile_server() {
        stop_ = true;
        ::shutdown(fd_, SHUT_RDWR);
        thread_.join();
        ::close(fd_);
    }
    std::string url(const std::string& target = "/") const {
        return proto::make_url(proto::endpoint::unix_path(path_), target);
    }

private:
    temp_dir dir_;
    std::string path_;
    int fd_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

std::size_t resident_now_kb() {
    const auto status = read_file("/proc/self/status");
    const auto at = status.find("VmRSS:");
    return at == std::string::npos ? 0 : std::strtoul(status.c_str() + at + 6, nullptr, 10);
}

} // namespace

TEST_SUITE("adversarial") {

    TEST_CASE("endless chunk extensions - chunk-size lines - trailers: 400 in bounded memory") {
        daemon_fixture d;
        const auto ep = proto::endpoint::unix_path(d.socket_path());
        constexpr std::size_t flood_bytes = 32u << 20;
        SUBCASE("chunk extension") {
            CHECK(status_line(flood(ep, chunked_head("/echo") + "1;", "a", flood_bytes)) ==
                  "HTTP/1.1 400 Bad Request");
        }
        SUBCASE("chunk-size line") {
            CHECK(status_line(flood(ep, chunked_head("/echo"), "0", flood_bytes)) ==
                  "HTTP/1.1 400 Bad Request");
        }
        SUBCASE("trailer section") {
            const auto raw = flood(ep, chunked_head("/echo") + "0\r\n", "a:b\r\n", flood_bytes);
            CHECK(status_line(raw) == "HTTP/1.1 400 Bad Request");
            CHECK(raw.find("trailer section does not fit the read buffer") != std::string::npos);
        }
        check_resident(d.proc->pid());
        CHECK(
            body_of(roundtrip(ep, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) ==
            "Hello Anonymous");
    }

    TEST_CASE("a header block of tiny fields is counted whole against --max-header-bytes") {
        daemon_fixture d(false, {"--max-header-bytes", "4096"});
        const auto ep = proto::endpoint::unix_path(d.socket_path());
        // 10 MiB of "a:b" fields: 431, not 200 (Beast's own limit counts only unconsumed bytes).
        const auto raw = flood(ep, "GET /hello HTTP/1.1\r\nHost: x\r\n", "a:b\r\n", 10u << 20);
        CHECK(status_line(raw) == "HTTP/1.1 431 Request Header Fields Too Large");
        check_resident(d.proc->pid());

        // The limit is exact: a head of 4096 bytes is served, 4097 is not.
        const auto head_of = [](std::size_t size) {
            std::string head = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
            const std::string field = "a:b\r\n";
            while (head.size() + field.size() + 6 <= size)
                head += field;
            head += "X:" + std::string(size - head.size() - 6, 'y') + "\r\n\r\n";
            REQUIRE(head.size() == size);
            return head;
        };
        CHECK(status_line(roundtrip(ep, head_of(4096))) == "HTTP/1.1 200 OK");
        CHECK(status_line(roundtrip(ep, head_of(4097))) ==
              "HTTP/1.1 431 Request Header Fields Too Large");
    }

    TEST_CASE("refused peers get 403 before they send a byte and take no allowed peer's place") {
        if (::geteuid() != 0) {
            MESSAGE("skipped: needs root, to call as both an allowed and a refused uid");
            return;
        }
        daemon_fixture d(false, {"--allow-uid", "nobody", "--socket-mode", "0666",
                                 "--max-connections", "4", "--header-timeout", "30s"});
        ::chmod(d.dir.path().c_str(), 0755);
        const auto ep = proto::endpoint::unix_path(d.socket_path());
        // 40 refused peers (this process is root, not nobody) that never send anything.
        std::vector<std::unique_ptr<raw_socket>> refused;
        for (int i = 0; i < 40; ++i)
            refused.push_back(std::make_unique<raw_socket>(ep, 5s));
        const auto t0 = std::chrono::steady_clock::now();
        const auto first = refused.front()->read_all(); // answered, then closed
        const auto waited = std::chrono::steady_clock::now() - t0;
        CHECK(status_line(first) == "HTTP/1.1 403 Forbidden");
        CHECK(first.find("is not in --allow-uid/--allow-gid") != std::string::npos);
        CHECK(waited < 3s); // the short linger, not the 30 s header timeout
        // An allowed peer is served while the refused ones are still connected.
        auto allowed = run({udshttp_path(), "-sS", d.unix_url("/hello")}, d.dir,
                           {.uid = nobody, .env = {}, .stdin_file = {}});
        INFO(allowed.err);
        CHECK(allowed.out == "Hello Anonymous");
        for (std::size_t i = 1; i < refused.size(); ++i)
            CHECK(status_line(refused[i]->read_all()) == "HTTP/1.1 403 Forbidden");
    }

    TEST_CASE("bodies no handler reads: 404 and 405 answer before the body and drop it") {
        daemon_fixture d;
        const auto ep = proto::endpoint::unix_path(d.socket_path());
        for (const std::string target : {"/nope", "/healthz"}) {
            raw_socket s(ep, 10s);
            REQUIRE(s.send("POST " + target +
                           " HTTP/1.1\r\nHost: x\r\nContent-Length: 60000000\r\n\r\n"));
            // No body byte sent: the answer comes anyway, and the connection closes after a
            // quiet linger.
            const auto raw = s.read_all();
            CHECK(status_line(raw) == (target == "/nope" ? "HTTP/1.1 404 Not Found"
                                                         : "HTTP/1.1 405 Method Not Allowed"));
            CHECK(raw.find("Connection: close\r\n") != std::string::npos);
        }
        // Six uploads of 60 MB to routes that do not read them cost no memory.
        std::vector<std::thread> uploads;
        std::atomic<int> answered{0};
        for (int i = 0; i < 6; ++i)
            uploads.emplace_back([&, i] {
                const auto raw =
                    flood(ep,
                          "POST /nope/" + std::to_string(i) +
                              " HTTP/1.1\r\nHost: x\r\nContent-Length: 60000000\r\n\r\n",
                          "z", 60'000'000);
                if (status_line(raw) == "HTTP/1.1 404 Not Found")
                    ++answered;
            });
        for (auto& t : uploads)
            t.join();
        CHECK(answered == 6);
        check_resident(d.proc->pid());
        // Without a body, the connection stays open for the next request.
        raw_socket s(ep);
        REQUIRE(s.send("GET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n"
                       "Connection: close\r\n\r\n"));
        const auto both = s.read_all();
        CHECK(count_responses(both) == 2);
        CHECK(both.ends_with("Hello Anonymous"));
    }

    TEST_CASE("a chunked upload over the limit to a stream route is cut - logged and counted") {
        daemon_fixture d(false, {"--max-body-bytes", "1MiB"});
        const auto ep = proto::endpoint::unix_path(d.socket_path());
        raw_socket s(ep, 10s);
        send_timeout(s.fd(), 10s);
        std::string answer;
        std::thread reader([&] { answer = s.read_all(); });
        std::string chunk = "10000\r\n" + std::string(0x10000, 'c') + "\r\n";
        bool ok = s.send(chunked_head("/echo"));
        for (int i = 0; ok && i < 32; ++i) // 2 MiB
            ok = s.send(chunk);
        if (ok)
            s.send("0\r\n\r\n");
        s.shutdown_write();
        reader.join();
        CHECK(status_line(answer) == "HTTP/1.1 200 OK"); // the echo began before the limit
        CHECK_FALSE(answer.ends_with("0\r\n\r\n"));      // and ends without its last chunk
        CHECK(metrics_of(ep).find("udshttp_rejected_total{reason=\"body_too_large\"} 1") !=
              std::string::npos);
        CHECK(eventually([&] {
            return d.proc->err().find("warn: cut the answer to /echo after ") != std::string::npos;
        }));
    }

    TEST_CASE("a huge Content-Length neither throws nor stops the server") {
        server_fixture srv(true, {.max_body_bytes = 100ULL << 30}, [](service::router& r) {
            r.post("/sink", [](const service::request& req, service::response& res) {
                service::set_text(res, std::to_string(req.message().body().size()));
            });
        });
        // 100 GB declared: nothing is reserved for it up front; the peer goes away early.
        {
            raw_socket s(srv.endpoint());
            REQUIRE(
                s.send("POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n\r\n" +
                       std::string(1 << 20, 'b')));
        }
        CHECK(body_of(roundtrip(srv.endpoint(), "POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: "
                                                "3\r\nConnection: close\r\n\r\nabc")) == "3");
        // A route that reads its body whole parses chunks with the same bounds as a stream.
        CHECK(status_line(flood(srv.endpoint(), chunked_head("/sink") + "1;", "e", 8u << 20)) ==
              "HTTP/1.1 400 Bad Request");
    }

    TEST_CASE("an exception that escapes a connection closes it - the server serves on") {
        // A plain handler's throw of any kind is the router's 500. A stream handler's throw
        // that is not a std::exception passes its catch and reaches the session's boundary:
        // once that was std::terminate for the whole process.
        struct odd_stream : service::stream_handler {
            std::optional<std::uint64_t> begin(const service::request&,
                                               service::response&) override {
                throw 42;
            }
            void data(std::string_view, std::string&) override {}
        };
        server_fixture srv(true, {}, [](service::router& r) {
            r.get("/odd", [](const service::request&, service::response&) { throw 42; });
            r.add_stream(service::http::verb::post, "/odd",
                         [] { return std::make_unique<odd_stream>(); });
        });
        for (int i = 0; i < 3; ++i) {
            CHECK(status_line(get(srv.endpoint(), "/odd")) == "HTTP/1.1 500 Internal Server Error");
            CHECK(roundtrip(srv.endpoint(), "POST /odd HTTP/1.1\r\nHost: x\r\n"
                                            "Content-Length: 0\r\n\r\n")
                      .empty()); // closed without an answer
            CHECK(body_of(get(srv.endpoint(), "/hello")) == "Hello Anonymous");
        }
    }

    TEST_CASE_TEMPLATE("RFC 9112 framing and Host rules", T, unix_transport, tcp_transport) {
        transport_fixture<T> srv({.idle_timeout = 2s});
        const auto& ep = srv.endpoint();
        const auto answer = [&](const std::string& head) { return roundtrip(ep, head); };
        // Connection: close in a second field line closes (read_all returns well before 2 s).
        const auto closed = answer("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n"
                                   "Connection: close\r\n\r\n");
        CHECK(closed.find("Connection: close\r\n") != std::string::npos);
        CHECK(count_responses(closed) == 1);
        // Host: more than one line, or not uri-host[:port], is 400.
        CHECK(status_line(answer("GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")) ==
              "HTTP/1.1 400 Bad Request");
        CHECK(status_line(answer("GET /hello HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n")) ==
              "HTTP/1.1 400 Bad Request");
        for (const std::string bad : {"a b", "a/b", "x:8o", "[::1", "a@b"})
            CHECK(status_line(answer("GET /hello HTTP/1.1\r\nHost: " + bad + "\r\n\r\n")) ==
                  "HTTP/1.1 400 Bad Request");
        for (const std::string good : {"localhost", "[::1]:80", "127.0.0.1:8080", "a-b.c_d~"})
            CHECK(status_line(answer("GET /hello HTTP/1.1\r\nHost: " + good +
                                     "\r\nConnection: close\r\n\r\n")) == "HTTP/1.1 200 OK");
        // Absolute-form is served as its path.
        CHECK(body_of(answer("GET http://localhost/hello/ada?x=1 HTTP/1.1\r\nHost: localhost\r\n"
                             "Connection: close\r\n\r\n")) == "Hello ada");
        CHECK(body_of(answer("GET HTTP://localhost HTTP/1.1\r\nHost: localhost\r\n"
                             "Connection: close\r\n\r\n")) == "Hello Anonymous");
        // Transfer-Encoding in HTTP/1.0 is faulty framing.
        CHECK(status_line(answer("POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 "3\r\nabc\r\n0\r\n\r\n")) == "HTTP/1.0 400 Bad Request");
        // A fragment is never part of a request target.
        CHECK(status_line(answer("GET /hello#frag HTTP/1.1\r\nHost: x\r\n\r\n")) ==
              "HTTP/1.1 400 Bad Request");
    }

    TEST_CASE("abstract names longer than sockaddr_un holds are refused - never thrown") {
        const std::string name(proto::max_abstract_name_length + 1, 'n');
        const auto parsed = proto::endpoint::parse("@" + name);
        REQUIRE_FALSE(parsed);
        CHECK(parsed.error().code == make_error_code(errc::socket_path_too_long));
        CHECK(proto::endpoint::parse("@" + name.substr(1)));
        // Built by hand, past the grammar: the client answers an error, the server refuses.
        client::client c;
        const auto r = c.get(proto::make_url(proto::endpoint::abstract(name), "/hello"));
        REQUIRE_FALSE(r);
        CHECK(r.error().code == make_error_code(errc::socket_path_too_long));
        service::server srv({.listen = {proto::endpoint::abstract(name)}});
        CHECK_THROWS_AS(srv.start(), service::startup_error);
        temp_dir dir;
        const auto cli = run({udshttpd_path(), "--listen", "@" + name}, dir);
        CHECK(cli.code == 2);
        CHECK(cli.err.find("the limit is 106") != std::string::npos);
    }

    TEST_CASE("PATH.lock: one that was there is never removed - a FIFO or symlink is refused") {
        temp_dir dir;
        const auto path = dir.file("s.sock");
        const auto lock = path + ".lock";
        const auto start = [&] {
            service::server srv({.listen = {proto::endpoint::unix_path(path)}});
            try {
                srv.start();
            } catch (const service::startup_error& e) {
                return std::string(e.what());
            }
            srv.stop();
            return std::string();
        };
        write_file(lock, "another program's lock");
        CHECK(start().empty());
        CHECK(read_file(lock) == "another program's lock");
        // Refusing to start (PATH is a regular file) leaves the lock file too.
        write_file(path, "data");
        CHECK(start().find("not a socket; it was left untouched") != std::string::npos);
        CHECK(read_file(lock) == "another program's lock");
        std::filesystem::remove(path);
        std::filesystem::remove(lock);

        REQUIRE(::mkfifo(lock.c_str(), 0600) == 0); // opening it must not block either
        CHECK(start() == "refusing to listen on " + path + ": its lock file " + lock +
                             " is a FIFO, not a regular file; it was left untouched");
        CHECK(std::filesystem::is_fifo(lock));
        std::filesystem::remove(lock);

        write_file(dir.file("target"), "x");
        std::filesystem::create_symlink(dir.file("target"), lock);
        CHECK(start().find("refusing the symbolic link " + lock) != std::string::npos);
        CHECK(std::filesystem::is_symlink(lock));
        CHECK(read_file(dir.file("target")) == "x");
    }

    TEST_CASE("the stale-socket probe never waits: a full listen queue means 'already serving'") {
        temp_dir dir;
        const auto path = dir.file("busy.sock");
        const int listening = bind_unix_socket(path, 0);
        REQUIRE(listening >= 0);
        // Fill its queue: the next connect would block (or here: fail with EAGAIN).
        std::vector<int> queued;
        for (int i = 0; i < 64; ++i) {
            const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
            sockaddr_un addr{};
            addr.sun_family = AF_UNIX;
            std::memcpy(addr.sun_path, path.data(), path.size());
            const bool full = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 &&
                              errno == EAGAIN;
            queued.push_back(fd);
            if (full)
                break;
        }
        const auto r = run({udshttpd_path(), "--listen", path}, dir, {}, 10s);
        CHECK(r.code == 1);
        CHECK(r.err.find("already serving on " + path) != std::string::npos);
        for (const int fd : queued)
            ::close(fd);
        ::close(listening);
    }

    TEST_CASE("a failed --socket-owner leaves no socket behind") {
        temp_dir dir;
        ::chmod(dir.path().c_str(), 0777);
        const auto path = dir.file("o.sock");
        // Only root may give a file away: as anyone else (nobody, when this runs as root) the
        // chown fails after bind.
        child::spawn_options as;
        if (::geteuid() == 0)
            as.uid = nobody;
        const auto r =
            run({udshttpd_path(), "--listen", path, "--socket-owner", "0", "--socket-group", "0"},
                dir, as, 10s);
        CHECK(r.code == 1);
        CHECK(r.err.find("cannot set owner/group of socket " + path) != std::string::npos);
        CHECK_FALSE(std::filesystem::exists(path));
        CHECK_FALSE(std::filesystem::exists(path + ".lock"));
    }

    TEST_CASE("the mode is exact whatever the umask - and never set through a swapped symlink") {
        temp_dir dir;
        const auto path = dir.file("m.sock");
        const auto old_mask = ::umask(077);
        {
            service::server srv(
                {.listen = {proto::endpoint::unix_path(path)}, .socket_mode = 0666});
            srv.start();
            CHECK(mode_of(path) == 0666);
        }
        ::umask(old_mask);

        // A local user who can write in the directory swaps a symlink to root's 0600 file in
        // right after bind() (the shim does it at exactly that moment): the server refuses to
        // go on, and the file keeps its mode.
        const auto victim = dir.file("victim");
        write_file(victim, "secret");
        ::chmod(victim.c_str(), 0600);
        const auto link = dir.file("swap");
        std::filesystem::create_symlink(victim, link);
        const auto r =
            run({udshttpd_path(), "--listen", path, "--socket-mode", "0666"}, dir,
                {.uid = {},
                 .env = {"LD_PRELOAD=" UDSHTTP_TEST_SWAP_AFTER_BIND, "SWAP_AFTER_BIND_LINK=" + link,
                         "ASAN_OPTIONS=verify_asan_link_order=0"},
                 .stdin_file = {}},
                10s);
        CHECK(std::filesystem::is_symlink(path)); // the swap happened
        CHECK(mode_of(victim) == 0600);
        CHECK(r.code == 1);
        CHECK(r.err.find("refusing to listen on " + path +
                         ": it was replaced by a symbolic link right after bind") !=
              std::string::npos);
        CHECK(read_file(victim) == "secret");
    }

    TEST_CASE("abstract sockets refuse --socket-mode - --socket-owner - --socket-group") {
        temp_dir dir;
        for (const std::vector<std::string>& opt :
             {std::vector<std::string>{"--socket-mode", "0600"},
              {"--socket-owner", "0"},
              {"--socket-group", "0"}}) {
            auto argv = std::vector<std::string>{udshttpd_path(), "--listen", "@udshttp-adv"};
            argv.insert(argv.end(), opt.begin(), opt.end());
            const auto r = run(argv, dir, {}, 10s);
            CHECK(r.code == 2);
            CHECK(r.err.find(opt[0] + " does not apply to abstract socket unix:@udshttp-adv") !=
                  std::string::npos);
            CHECK(r.err.find("--allow-uid/--allow-gid") != std::string::npos);
        }
        const auto help = run({udshttpd_path(), "--help"}, dir);
        CHECK(help.out.find("An abstract socket (@name) has no file") != std::string::npos);
    }

    TEST_CASE("peer-caused diagnostics share a budget - the suppressed are counted") {
        daemon_fixture d(false, {"--allow-uid", "12345", "--allow-gid", "12345"});
        const auto ep = proto::endpoint::unix_path(d.socket_path());
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < 300; ++i)
            raw_socket(ep).read_all();
        std::this_thread::sleep_for(1100ms); // a new window: the next line carries the count
        raw_socket(ep).read_all();
        const auto seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const auto err = [&] { return d.proc->err(); };
        CHECK(eventually(
            [&] { return err().find("suppressed before this one") != std::string::npos; }));
        std::size_t lines = 0;
        for (std::size_t at = 0; (at = err().find("refused a connection", at)) != std::string::npos;
             ++at)
            ++lines;
        MESSAGE(lines << " refusal lines for 301 refusals in " << seconds << " s");
        CHECK(lines <= 20 * (static_cast<std::size_t>(seconds) + 2));
        // Every refusal is either a line or in a line's suppressed count (this server refuses
        // this process, so its /metrics, which shows the same count, is out of reach here).
        std::smatch m;
        const auto text = err();
        REQUIRE(std::regex_search(text, m, std::regex(R"(\((\d+) similar line\(s\) suppressed)")));
        CHECK(std::stoul(m[1]) + lines >= 301);
    }

    TEST_CASE("a log pipe nobody reads never stalls the server") {
        piped_daemon d({"--access-log", "-"});
        // 4 KiB targets, 2,000 requests: ~8 MiB of access log against a 64 KiB pipe.
        const std::string target = "/hello/" + std::string(4000, 'x');
        int answered = 0;
        for (int i = 0; i < 2000; ++i)
            if (status_line(get(d.ep, target)) == "HTTP/1.1 200 OK")
                ++answered;
        CHECK(answered == 2000);
        // What did not fit was dropped and will be counted once the pipe is read.
        char buf[65536];
        std::string seen;
        for (int i = 0; i < 400 && seen.find("line(s) dropped") == std::string::npos; ++i) {
            const auto n = ::read(d.read_fd, buf, sizeof buf);
            if (n <= 0)
                break;
            seen.append(buf, static_cast<std::size_t>(n));
        }
        CHECK(seen.find("access or audit log line(s) dropped: the log was not read fast enough") !=
              std::string::npos);
        const auto metrics = body_of(get(d.ep, "/metrics"));
        std::smatch m;
        REQUIRE(
            std::regex_search(metrics, m, std::regex(R"(udshttp_log_lines_dropped_total (\d+))")));
        CHECK(std::stoul(m[1]) > 0);
    }

    TEST_CASE("--threads 2 with the access log on a pipe: every line is one JSON object") {
        piped_daemon d({"--threads", "2", "--access-log", "-", "--log-level", "error"});
        std::string log;
        std::thread reader([&] {
            char buf[65536];
            for (;;) {
                const auto n = ::read(d.read_fd, buf, sizeof buf);
                if (n <= 0)
                    return;
                log.append(buf, static_cast<std::size_t>(n));
            }
        });
        // Lines longer than PIPE_BUF (4096), from two workers at once.
        std::vector<std::thread> clients;
        for (int c = 0; c < 4; ++c)
            clients.emplace_back([&, c] {
                const auto target = "/hello/" + std::string(6000, static_cast<char>('a' + c));
                for (int i = 0; i < 150; ++i)
                    get(d.ep, target);
            });
        for (auto& t : clients)
            t.join();
        d.proc->signal(SIGTERM);
        CHECK(d.proc->wait(10s) == 0);
        reader.join();
        std::size_t lines = 0, bad = 0;
        std::istringstream in(log);
        for (std::string line; std::getline(in, line); ++lines)
            if (!nlohmann::json::accept(line))
                ++bad;
        CHECK(lines == 600);
        CHECK(bad == 0);
    }

    TEST_CASE("SIGHUP reopens the access log and the server keeps serving") {
        temp_dir logs;
        const auto file = logs.file("access.log");
        daemon_fixture d(false, {"--access-log", file});
        const auto ep = proto::endpoint::unix_path(d.socket_path());
        CHECK(body_of(get(ep, "/hello/before")) == "Hello before");
        CHECK(
            eventually([&] { return read_file(file).find("/hello/before") != std::string::npos; }));
        std::filesystem::rename(file, file + ".1"); // what logrotate does
        d.proc->signal(SIGHUP);
        CHECK(eventually([&] { return std::filesystem::exists(file); }));
        CHECK(body_of(get(ep, "/hello/after")) == "Hello after");
        CHECK(
            eventually([&] { return read_file(file).find("/hello/after") != std::string::npos; }));
        CHECK(read_file(file + ".1").find("/hello/after") == std::string::npos);
        d.proc->signal(SIGTERM);
        CHECK(d.proc->wait(10s) == 0);
    }

    TEST_CASE("RLIMIT_NOFILE below --max-connections: the limit is lowered and said") {
        temp_dir dir;
        const auto path = dir.file("f.sock");
        child d({"prlimit", "--nofile=256:256", udshttpd_path(), "--listen", path}, dir);
        REQUIRE(d.wait_for_output("listening on"));
        // (Logged through the writer thread: it may come a moment after the banner.)
        CHECK(eventually([&] {
            return d.err().find("max-connections lowered from 10000 to 128: the open-files limit "
                                "(RLIMIT_NOFILE) is 256 descriptors") != std::string::npos;
        }));
        // 160 connections that send nothing: 128 are taken in and wait for a request; the
        // other 32 get 503 at once instead of waiting unanswered while accept() fails.
        const auto ep = proto::endpoint::unix_path(path);
        std::vector<std::unique_ptr<raw_socket>> open;
        for (int i = 0; i < 160; ++i)
            open.push_back(std::make_unique<raw_socket>(ep, 5s));
        const auto answered = [&] {
            std::vector<pollfd> fds;
            for (auto& s : open)
                fds.push_back({.fd = s->fd(), .events = POLLIN, .revents = 0});
            ::poll(fds.data(), fds.size(), 0);
            return std::count_if(fds.begin(), fds.end(),
                                 [](const pollfd& p) { return p.revents != 0; });
        };
        CHECK(eventually([&] { return answered() == 32; }));
        std::this_thread::sleep_for(200ms); // and no more than 32
        CHECK(answered() == 32);
        int unavailable = 0;
        for (auto& s : open) {
            pollfd p{.fd = s->fd(), .events = POLLIN, .revents = 0};
            if (::poll(&p, 1, 0) == 1)
                unavailable += status_line(s->read_all()) == "HTTP/1.1 503 Service Unavailable";
        }
        CHECK(unavailable == 32);
        open.clear();
        CHECK(status_line(get(ep, "/hello")) == "HTTP/1.1 200 OK");
    }

    TEST_CASE("client: endless chunk extensions - trailers - header fields are refused in bounded "
              "memory") {
        const std::string chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        struct attack {
            std::string name;
            std::string head, filler;
        };
        for (const auto& a : {attack{"chunk extension", chunked + "1;", "x"},
                              attack{"chunk-size line", chunked, "0"},
                              attack{"trailer", chunked + "0\r\n", "a:b\r\n"},
                              attack{"header fields", "HTTP/1.1 200 OK\r\n", "a:b\r\n"}}) {
            CAPTURE(a.name);
            hostile_server evil(a.head, a.filler, 256u << 20);
            const auto before = resident_now_kb();
            client::client c;
            const auto r = c.get(evil.url());
            REQUIRE_FALSE(r);
            CHECK(r.error().code == make_error_code(errc::protocol_error));
            CHECK(r.error().message.find(a.name == "header fields"
                                             ? "header block exceeds"
                                             : "does not fit the read buffer") !=
                  std::string::npos);
            const auto grew = resident_now_kb() - std::min(before, resident_now_kb());
            MESSAGE(a.name << ": " << r.error().message << " (resident +" << grew << " KiB)");
            if (resident_checked())
                CHECK(grew < 16 * 1024);
        }
    }

    TEST_CASE("client: the deadline fires while a server trickles an endless trailer") {
        // 5 bytes every 20 ms would take minutes to fill the read buffer: -m 1s must end it.
        hostile_server evil("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", "a:b\r\n",
                            1u << 20, 20ms);
        temp_dir dir;
        const auto t0 = std::chrono::steady_clock::now();
        const auto r = run({udshttp_path(), "-sS", "-m", "1s", evil.url()}, dir, {}, 20s);
        const auto took = std::chrono::steady_clock::now() - t0;
        CHECK(r.code == 28);
        CHECK(r.err.find("deadline") != std::string::npos);
        CHECK(took < 4s);
    }

    TEST_CASE("client: a method or header with CR or LF is refused - never sent") {
        server_fixture srv(true, {.access_log = {}});
        client::client c;
        const auto url = srv.url("/echo");
        const auto injected =
            c.send({.method = "GET", .url = url, .headers = {{"X", "a\r\nInjected: 1"}}});
        REQUIRE_FALSE(injected);
        CHECK(injected.error().code == make_error_code(errc::invalid_request));
        CHECK(injected.error().message.find("the value of header 'X' holds a control byte") !=
              std::string::npos);
        for (const std::string method : {"GET /x HTTP/1.1\r\nHost: y\r\n\r\nGET", "GE T", ""}) {
            const auto r = c.send({.method = method, .url = url});
            REQUIRE_FALSE(r);
            CHECK(r.error().code == make_error_code(errc::invalid_request));
        }
        for (const std::string name : {"X\r\nY", "A B", "A:B", ""}) {
            const auto r = c.send({.method = "GET", .url = url, .headers = {{name, "v"}}});
            REQUIRE_FALSE(r);
            CHECK(r.error().code == make_error_code(errc::invalid_request));
        }
        // A tab and obs-text are fine in a value.
        CHECK(c.send({.method = "GET", .url = url, .headers = {{"X", "a\tb\xC3\xA9"}}}));

        temp_dir dir;
        const auto cli = run({udshttp_path(), "-sS", "-H", "X: a\r\nInjected: 1", url}, dir);
        CHECK(cli.code == 43);
        CHECK(cli.err.find("holds a control byte") != std::string::npos);
        const auto method = run({udshttp_path(), "-sS", "-X", "GET\r\nX:", url}, dir);
        CHECK(method.code == 43);
    }

    TEST_CASE("client: an empty --unix-socket path is an error - never a fallback to TCP") {
        temp_dir dir;
        for (const std::string flag : {"--unix-socket", "--abstract-unix-socket"}) {
            const auto r = run({udshttp_path(), flag, "", "http://localhost/"}, dir);
            CHECK(r.code == 2);
            CHECK(r.err.find(flag + ": the socket") != std::string::npos);
            CHECK(r.err.find("is empty") != std::string::npos);
        }
    }
}
