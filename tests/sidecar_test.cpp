// What makes udshttpd safe beside other applications: who may call (peer credentials, loopback
// only TCP), socket activation, graceful drain, access log, metrics, slow and hostile clients.
// Real processes and real sockets throughout.

#include "support/support.hpp"

#include <udshttp/client/client.hpp>
#include <udshttp/proto/url.hpp>
#include <udshttp/service/server.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

using namespace udshttp;
using namespace udshttp::test;
using namespace std::chrono_literals;

namespace {

constexpr uid_t nobody = 65534;

// A strict reading of the Prometheus text format 0.0.4: every line is a HELP, a TYPE or a
// sample; each sample belongs to a family whose TYPE and HELP came before it; histogram
// buckets are cumulative, end with le="+Inf", and that bucket equals _count.
struct exposition {
    std::map<std::string, double> samples; // "name{labels}" exactly as printed -> value
    std::vector<std::string> errors;
};

exposition read_exposition(const std::string& text) {
    static const std::string name = "[a-zA-Z_:][a-zA-Z0-9_:]*";
    static const std::string pair = "[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\\\\\n]|\\\\.)*\"";
    static const std::regex help_re("# HELP (" + name + ") .+");
    static const std::regex type_re("# TYPE (" + name +
                                    ") (counter|gauge|histogram|summary|untyped)");
    static const std::regex sample_re("(" + name + ")(\\{" + pair + "(?:," + pair +
                                      ")*\\})? ([-+]?(?:[0-9]*\\.?[0-9]+(?:[eE][-+]?[0-9]+)?|"
                                      "Inf|NaN))");
    exposition out;
    std::map<std::string, std::string> types;
    std::set<std::string> helped;
    std::map<std::string, std::vector<double>> buckets;
    std::map<std::string, std::string> last_le;
    std::istringstream in(text);
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
        ++n;
        std::smatch m;
        const auto where = "line " + std::to_string(n) + " '" + line + "': ";
        if (std::regex_match(line, m, help_re)) {
            helped.insert(m[1]);
        } else if (std::regex_match(line, m, type_re)) {
            if (!types.emplace(m[1], m[2]).second)
                out.errors.push_back(where + "second TYPE for the family");
        } else if (std::regex_match(line, m, sample_re)) {
            std::string family = m[1];
            if (!types.contains(family))
                for (const std::string suffix : {"_bucket", "_sum", "_count"})
                    if (family.ends_with(suffix) &&
                        types[family.substr(0, family.size() - suffix.size())] == "histogram")
                        family = family.substr(0, family.size() - suffix.size());
            if (!types.contains(family) || !helped.contains(family))
                out.errors.push_back(where + "sample before its family's HELP and TYPE");
            const double value = std::stod(m[3]);
            if (!out.samples.emplace(std::string(m[1]) + std::string(m[2]), value).second)
                out.errors.push_back(where + "duplicate sample");
            if (std::string(m[1]).ends_with("_bucket")) {
                auto& b = buckets[family];
                if (!b.empty() && value < b.back())
                    out.errors.push_back(where + "histogram buckets are not cumulative");
                b.push_back(value);
                std::smatch le;
                const std::string labels = m[2];
                if (std::regex_search(labels, le, std::regex("le=\"([^\"]*)\"")))
                    last_le[family] = le[1];
            }
        } else {
            out.errors.push_back(where + "neither HELP, TYPE nor a valid sample");
        }
    }
    for (const auto& [family, b] : buckets) {
        if (last_le[family] != "+Inf")
            out.errors.push_back(family + ": the last bucket is not le=\"+Inf\"");
        if (out.samples[family + "_count"] != b.back())
            out.errors.push_back(family + ": the +Inf bucket differs from _count");
    }
    return out;
}

// The udshttp CLI as uid `uid` (root only), exit code and output.
run_result cli_as(uid_t uid, const std::vector<std::string>& args, const temp_dir& dir) {
    std::vector<std::string> argv{udshttp_path()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, dir, {.uid = uid, .env = {}, .stdin_file = {}});
}

} // namespace

TEST_SUITE("sidecar") {
    TEST_CASE("pipelined answers go out in one write - and a request still arriving sends them "
              "first") {
        // Counted with strace, at the server's own system calls: 16 GETs sent in one write are
        // answered with one sendmsg, not 16. Then 3 GETs and the start of a fourth: the 3
        // answers must arrive while the fourth is still incomplete (held back, they would
        // wait for bytes the peer sends only after reading them).
        if (!require_peer("strace", "strace"))
            return;
        temp_dir dir;
        if (run({"strace", "-o", "/dev/null", "true"}, dir).code != 0) {
            MESSAGE("skipped: strace cannot trace here (ptrace is not permitted)");
            return;
        }
        const auto sock = dir.file("p.sock");
        const auto trace = dir.file("trace");
        child tracer({"strace", "-f", "-qq", "-e", "trace=sendmsg,sendto,write,writev", "-o", trace,
                      udshttpd_path(), "-l", sock},
                     dir);
        REQUIRE(tracer.wait_for_output("listening on unix:"));
        raw_socket s(proto::endpoint::unix_path(sock));
        REQUIRE(s.connected());
        ucred server{};
        socklen_t len = sizeof server;
        REQUIRE(::getsockopt(s.fd(), SOL_SOCKET, SO_PEERCRED, &server, &len) == 0);
        // strace does not take its tracee with it when killed: stop the server by its pid.
        struct stop_server {
            pid_t pid;
            ~stop_server() { ::kill(pid, SIGTERM); }
        } stop{server.pid};

        std::string batch;
        for (int i = 0; i < 16; ++i)
            batch += "GET /hello/" + std::to_string(i) + " HTTP/1.1\r\nHost: x\r\n\r\n";
        REQUIRE(s.send(batch));
        CHECK(count_responses(s.read_responses(16)) == 16);
        REQUIRE(s.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hel"));
        CHECK(count_responses(s.read_responses(3)) == 3);
        REQUIRE(s.send("lo/end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
        CHECK(body_of(s.read_all()) == "Hello end");

        ::kill(server.pid, SIGTERM);
        REQUIRE(tracer.wait(10s).has_value());
        const auto calls = read_file(trace);
        std::size_t sends = 0;
        for (auto at = calls.find("sendmsg("); at != std::string::npos;
             at = calls.find("sendmsg(", at + 1))
            ++sends;
        INFO(calls);
        CHECK(sends == 3); // the 16, the 3, the last one
    }

    TEST_CASE("systemd readiness: READY=1 once every listener is bound - STOPPING=1 on drain") {
        temp_dir dir;
        // systemd's side: a datagram socket at NOTIFY_SOCKET.
        const auto notify_path = dir.file("notify");
        const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, notify_path.c_str(), sizeof addr.sun_path - 1);
        REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
        timeval tv{.tv_sec = 10, .tv_usec = 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        const auto receive = [fd] {
            char buf[512];
            const auto n = ::recv(fd, buf, sizeof buf, 0);
            return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
        };
        const auto sock = dir.file("ready.sock");
        child server({udshttpd_path(), "--listen", sock, "--listen", "127.0.0.1:0"}, dir,
                     {.env = {"NOTIFY_SOCKET=" + notify_path}});
        const auto ready = receive();
        CHECK(ready == "READY=1\nMAINPID=" + std::to_string(server.pid()));
        // At READY=1 the listener already accepts: no retry loop needed by what depends on it.
        raw_socket probe(proto::endpoint::unix_path(sock));
        CHECK(probe.connected());
        server.signal(SIGTERM);
        CHECK(receive() == "STOPPING=1");
        CHECK(server.wait(10s) == 0);
        ::close(fd);
        // A NOTIFY_SOCKET nobody listens on is a warning, not a failure.
        child lonely({udshttpd_path(), "--listen", dir.file("lonely.sock")}, dir,
                     {.env = {"NOTIFY_SOCKET=" + dir.file("nobody")}});
        REQUIRE(eventually(
            [&] { return lonely.err().find("cannot tell systemd") != std::string::npos; }));
        lonely.signal(SIGTERM);
        CHECK(lonely.wait(10s) == 0);
    }

    TEST_CASE("metrics: the strict format check rejects what Prometheus would") {
        CHECK(read_exposition("# HELP a x\n# TYPE a counter\na 1\n").errors.empty());
        CHECK_FALSE(read_exposition("a 1\n").errors.empty()); // no TYPE
        CHECK_FALSE(read_exposition("# HELP a x\n# TYPE a counter\na{b=c} 1\n").errors.empty());
        CHECK_FALSE(read_exposition("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
                                    "h_bucket{le=\"+Inf\"} 1\nh_count 1\n")
                        .errors.empty()); // not cumulative
    }

    TEST_CASE("metrics: requests by route and status - latency histogram - rejections by reason") {
        server_fixture srv(true, {.max_header_bytes = 1024});
        client::client c;
        for (int i = 0; i < 3; ++i)
            REQUIRE(c.get(srv.url("/hello")));
        REQUIRE(c.get(srv.url("/hello/Ada")));
        REQUIRE(c.get(srv.url("/nope")));
        REQUIRE(c.post(srv.url("/echo"), "x"));
        REQUIRE(c.send({.method = "DELETE", .url = srv.url("/echo"), .headers = {}, .body = {}}));
        CHECK(status_line(roundtrip(srv.endpoint(), "GARBAGE\r\n\r\n")) ==
              "HTTP/1.1 400 Bad Request");
        CHECK(status_line(roundtrip(srv.endpoint(),
                                    "GET / HTTP/1.1\r\nX: " + std::string(2000, 'a') + "\r\n\r\n"))
                  .starts_with("HTTP/1.1 431"));

        auto m = c.get(srv.url("/metrics"));
        REQUIRE(m);
        const auto e = read_exposition(m->body);
        for (const auto& err : e.errors)
            FAIL_CHECK(err);
        const auto count = [&](const std::string& key) {
            const auto it = e.samples.find(key);
            return it == e.samples.end() ? -1.0 : it->second;
        };
        CHECK(count(R"(udshttp_requests_total{route="/hello",method="GET",code="200"})") == 3);
        CHECK(count(R"(udshttp_requests_total{route="/hello/{name}",method="GET",code="200"})") ==
              1);
        CHECK(count(R"(udshttp_requests_total{route="/echo",method="POST",code="200"})") == 1);
        for (const std::string code : {"400", "404", "405", "431"})
            CHECK_MESSAGE(
                count("udshttp_requests_total{route=\"(none)\",method=\"(none)\",code=\"" + code +
                      "\"}") == 1,
                code);
        CHECK(count("udshttp_request_duration_seconds_count") == 9);
        CHECK(count(R"(udshttp_request_duration_seconds_bucket{le="+Inf"})") == 9);
        CHECK(count("udshttp_request_duration_seconds_sum") > 0);
        CHECK(count(R"(udshttp_rejected_total{reason="malformed"})") == 1);
        CHECK(count(R"(udshttp_rejected_total{reason="header_too_large"})") == 1);
        CHECK(count(R"(udshttp_rejected_total{reason="max_connections"})") == 0);
        CHECK(count(R"(udshttp_rejected_total{reason="forbidden"})") == 0);
        CHECK(count("udshttp_connections_open") >= 1);
        CHECK(count("udshttp_received_bytes_total") > 0);

        // The reference parser agrees.
        if (!require_python_module("prometheus_client", "python3-prometheus-client"))
            return;
        write_file(srv.dir().file("metrics.txt"), m->body);
        auto parsed = run({"/usr/bin/python3", peers_dir() + "/parse_metrics.py"}, srv.dir(),
                          {.uid = {}, .env = {}, .stdin_file = srv.dir().file("metrics.txt")});
        INFO(parsed.err);
        REQUIRE(parsed.code == 0);
        std::map<std::string, std::string> types;
        for (const auto& f : nlohmann::json::parse(parsed.out))
            types[f["name"]] = f["type"];
        CHECK(types["udshttp_requests"] == "counter");
        CHECK(types["udshttp_request_duration_seconds"] == "histogram");
        CHECK(types["udshttp_connections_open"] == "gauge");
        CHECK(types["udshttp_rejected"] == "counter");
    }

    TEST_CASE("access log: one JSON line per request with the peer's identity") {
        temp_dir dir;
        const auto log_path = dir.file("access.log");
        service::server srv({.listen = {proto::endpoint::unix_path(dir.file("a.sock")),
                                        proto::endpoint::tcp("127.0.0.1", 0)},
                             .access_log = log_path,
                             .builtin_routes = true});
        srv.start();
        const auto unix_ep = srv.endpoints().at(0);
        const auto tcp_ep = srv.endpoints().at(1);
        {
            client::client c;
            REQUIRE(c.get(proto::make_url(unix_ep, "/hello/Ada?x=1")));
            REQUIRE(c.post(proto::make_url(tcp_ep, "/echo"), "12345"));
        }
        roundtrip(unix_ep, "GARBAGE\r\n\r\n");
        srv.stop();

        std::map<std::string, nlohmann::json> by_target;
        for (const auto& line : lines_of(read_file(log_path))) {
            const auto j = nlohmann::json::parse(line, nullptr, false);
            REQUIRE_MESSAGE(!j.is_discarded(), line);
            CHECK(std::regex_match(j["time"].get<std::string>(),
                                   std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
            CHECK(j["duration_ms"].get<double>() >= 0);
            by_target[j["target"]] = j;
        }
        REQUIRE(by_target.size() == 3);
        const auto& hello = by_target["/hello/Ada?x=1"];
        CHECK(hello["transport"] == "unix");
        CHECK(hello["pid"] == ::getpid());
        CHECK(hello["uid"] == ::getuid());
        CHECK(hello["gid"] == ::getgid());
        CHECK(hello["method"] == "GET");
        CHECK(hello["status"] == 200);
        CHECK(hello["bytes_out"].get<int>() > 100);
        const auto& echo = by_target["/echo"];
        CHECK(echo["transport"] == "tcp");
        CHECK(echo["address"] == "127.0.0.1");
        CHECK(echo["port"].get<int>() > 0);
        CHECK(echo["bytes_in"] == 5);
        CHECK(echo["method"] == "POST");
        const auto& bad = by_target["-"];
        CHECK(bad["status"] == 400);
        CHECK(bad["method"] == "-");
    }

    TEST_CASE("udshttpd: --access-log - writes to stderr - an unopenable log is refused") {
        daemon_fixture d(false, {"--access-log", "-"});
        CHECK(run({"curl", "-sS", "--unix-socket", d.socket_path(), "http://localhost/hello/log"},
                  d.dir)
                  .out == "Hello log");
        d.proc->signal(SIGTERM);
        CHECK(d.proc->wait(10s) == 0);
        CHECK(d.proc->err().find("\"target\":\"/hello/log\",\"status\":200") != std::string::npos);
        // The access log has stderr to itself: the diagnostics there (the drain line) are JSON
        // lines too, so every line parses.
        std::istringstream lines(d.proc->err());
        int diagnostics = 0;
        for (std::string line; std::getline(lines, line);) {
            CAPTURE(line);
            const auto j = nlohmann::json::parse(line, nullptr, false);
            REQUIRE_FALSE(j.is_discarded());
            if (j.contains("level")) {
                ++diagnostics;
                CHECK(j["program"] == "udshttpd");
                CHECK(j["time"].get<std::string>().ends_with("Z"));
            }
        }
        CHECK(diagnostics >= 1); // "SIGTERM, draining"

        auto bad = run({udshttpd_path(), "--listen", d.dir.file("b.sock"), "--access-log",
                        "/nonexistent/dir/access.log"},
                       d.dir);
        CHECK(bad.code == 1);
        CHECK(bad.err == "udshttpd: cannot open access log /nonexistent/dir/access.log: No such "
                         "file or directory\n");
        CHECK_FALSE(std::filesystem::exists(d.dir.file("b.sock")));
    }

    TEST_CASE("udshttpd: --log-format json - every diagnostic on stderr is one JSON object") {
        // A refused peer's diagnostic (from the logger's thread), the environment warning and the
        // drain line (from main) all come out as JSON.
        daemon_fixture d(false, {"--log-format", "json", "--allow-uid", "12345"});
        CHECK(run({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket",
                   d.socket_path(), "http://localhost/hello"},
                  d.dir)
                  .out == "403");
        d.proc->signal(SIGTERM);
        CHECK(d.proc->wait(10s) == 0);
        std::istringstream lines(d.proc->err());
        std::vector<std::string> levels, messages;
        for (std::string line; std::getline(lines, line);) {
            CAPTURE(line);
            const auto j = nlohmann::json::parse(line, nullptr, false);
            REQUIRE(j.is_object());
            CHECK(j["program"] == "udshttpd");
            levels.push_back(j["level"]);
            messages.push_back(j["message"]);
        }
        REQUIRE(messages.size() >= 2);
        CHECK(std::any_of(messages.begin(), messages.end(), [](const std::string& m) {
            return m.find("403") != std::string::npos || m.find("refused") != std::string::npos;
        }));
        CHECK(messages.back().starts_with("SIGTERM, draining"));

        // main's own lines: the environment warning and a start-up error.
        auto failed = run({udshttpd_path(), "--listen", d.dir.file("f.sock"), "--log-format",
                           "json", "--access-log", "/nonexistent/dir/a.log"},
                          d.dir, {.env = {"UDSHTTP_NO_SUCH_OPTION=1"}});
        CHECK(failed.code == 1);
        std::istringstream failed_lines(failed.err);
        std::vector<nlohmann::json> parsed;
        for (std::string line; std::getline(failed_lines, line);)
            parsed.push_back(nlohmann::json::parse(line, nullptr, false));
        REQUIRE(parsed.size() == 2);
        CHECK(parsed[0]["level"] == "warn");
        CHECK(parsed[0]["message"].get<std::string>().find("UDSHTTP_NO_SUCH_OPTION") !=
              std::string::npos);
        CHECK(parsed[1]["level"] == "error");
        CHECK(parsed[1]["message"] == "cannot open access log /nonexistent/dir/a.log: No such "
                                      "file or directory");

        // Text diagnostics into the JSON access log on stderr are refused, not mixed in.
        auto mixed = run({udshttpd_path(), "--listen", d.dir.file("m.sock"), "--access-log", "-",
                          "--log-format", "text"},
                         d.dir);
        CHECK(mixed.code == 2);
        CHECK(mixed.err.find("--log-format text with --access-log -") != std::string::npos);
        auto unknown = run({udshttpd_path(), "--log-format", "xml"}, d.dir);
        CHECK(unknown.code == 2);
        CHECK(unknown.err == "udshttpd: --log-format: 'xml' is not text or json (see udshttpd "
                             "--help)\n");
    }

    TEST_CASE("allow-uid: other peers get 403 with a JSON error and a log line") {
        // This process's own uid refused: works as any user.
        daemon_fixture d(false, {"--allow-uid", "12345", "--allow-gid", "12345"});
        auto refused = run({"curl", "-sS", "-w", "%{http_code}", "--unix-socket", d.socket_path(),
                            "http://localhost/hello"},
                           d.dir);
        CHECK(refused.out.ends_with("403"));
        const auto body = nlohmann::json::parse(refused.out.substr(0, refused.out.size() - 3));
        CHECK(body["error"]["code"] == "forbidden");
        CHECK(body["error"]["message"].get<std::string>().find(
                  "uid " + std::to_string(::getuid()) + " (gid " + std::to_string(::getgid()) +
                  ") is not in --allow-uid/--allow-gid") != std::string::npos);
        CHECK(eventually([&] {
            return d.proc->err().find("warn: refused a connection from pid ") != std::string::npos;
        }));

        // Names work as well as numbers; unknown names are usage errors.
        auto unknown = run({udshttpd_path(), "--allow-uid", "no-such-user-here"}, d.dir);
        CHECK(unknown.code == 2);
        CHECK(unknown.err.find("--allow-uid: no such user 'no-such-user-here'") !=
              std::string::npos);

        if (::geteuid() != 0) {
            MESSAGE("skipped the other-uid half: needs root to run a client as nobody");
            return;
        }
        // Only root may call: nobody is refused, root is served.
        daemon_fixture only_root(false, {"--allow-uid", "root", "--socket-mode", "0666"});
        ::chmod(only_root.dir.path().c_str(), 0755);
        auto as_nobody = cli_as(nobody, {"-sS", "-f", only_root.unix_url("/hello")}, only_root.dir);
        CHECK(as_nobody.code == 22);
        CHECK(as_nobody.err.find("403") != std::string::npos);
        CHECK(cli_as(0, {"-sS", only_root.unix_url("/hello")}, only_root.dir).out ==
              "Hello Anonymous");
        CHECK(eventually([&] {
            return only_root.proc->err().find("uid 65534 (gid 65534) is not in") !=
                   std::string::npos;
        }));

        // Only nobody, by uid or by group: nobody is served, root is refused.
        for (const std::vector<std::string>& allow :
             {std::vector<std::string>{"--allow-uid", "65534"}, {"--allow-gid", "65534"}}) {
            CAPTURE(allow[0]);
            auto args = allow;
            args.insert(args.end(), {"--socket-mode", "0666"});
            daemon_fixture only_nobody(false, args);
            ::chmod(only_nobody.dir.path().c_str(), 0755);
            CHECK(cli_as(nobody, {"-sS", only_nobody.unix_url("/hello")}, only_nobody.dir).out ==
                  "Hello Anonymous");
            CHECK(cli_as(0, {"-sS", "-f", only_nobody.unix_url("/hello")}, only_nobody.dir).code ==
                  22);
        }
    }

    TEST_CASE("allow-gid: a supplementary group is enough (SO_PEERGROUPS)") {
        if (::geteuid() != 0) {
            MESSAGE("skipped: needs root to run a client as nobody with chosen groups");
            return;
        }
        daemon_fixture d(false, {"--allow-gid", "12345", "--socket-mode", "0666"});
        ::chmod(d.dir.path().c_str(), 0755);
        const auto as_nobody = [&](std::vector<gid_t> groups) {
            return run({udshttp_path(), "-sS", "-f", d.unix_url("/hello")}, d.dir,
                       {.uid = nobody, .env = {}, .stdin_file = {}, .groups = std::move(groups)});
        };
        CHECK(as_nobody({}).code == 22); // primary group nogroup only: 403
        auto member = as_nobody({12345});
        CHECK(member.code == 0);
        CHECK(member.out == "Hello Anonymous");
    }

    TEST_CASE("allow lists refuse TCP peers - whose identity is unknown") {
        daemon_fixture d(true, {"--allow-uid", std::to_string(::getuid())});
        CHECK(
            run({"curl", "-sS", "--unix-socket", d.socket_path(), "http://localhost/hello"}, d.dir)
                .out == "Hello Anonymous");
        auto tcp = run({"curl", "-sS", "-w", "%{http_code}", d.tcp_url("/hello")}, d.dir);
        CHECK(tcp.out.ends_with("403"));
        CHECK(tcp.out.find("TCP peers have no credentials") != std::string::npos);
    }

    TEST_CASE("TCP on a non-loopback address needs --allow-remote") {
        try {
            service::server srv({.listen = {proto::endpoint::tcp("0.0.0.0", 0)}});
            srv.start();
            FAIL("started on 0.0.0.0 without allow_remote");
        } catch (const service::startup_error& e) {
            CHECK(std::string(e.what()) ==
                  "refusing to listen on tcp://0.0.0.0:0: 0.0.0.0 is not a loopback address, so "
                  "other hosts could call; pass --allow-remote if that is intended");
        }
        temp_dir dir;
        auto refused = run({udshttpd_path(), "--listen", "tcp://0.0.0.0:0"}, dir);
        CHECK(refused.code == 1);
        CHECK(refused.err.find("pass --allow-remote") != std::string::npos);

        // Loopback needs nothing; with the flag, any address. (Nothing connects from outside.)
        service::server loop({.listen = {proto::endpoint::tcp("127.0.0.1", 0)}});
        CHECK_NOTHROW(loop.start());
        service::server any({.listen = {proto::endpoint::tcp("0.0.0.0", 0)}, .allow_remote = true});
        CHECK_NOTHROW(any.start());
        CHECK(any.endpoints().at(0).port > 0);
    }

    TEST_CASE("SIGTERM drains: every request read gets a whole answer - then exit 0") {
        daemon_fixture d(false, {"--drain-timeout", "5s"});
        const auto ep = proto::endpoint::unix_path(d.socket_path());
        // An upload in flight when SIGTERM arrives: it must still be answered, with close.
        raw_socket slow(ep, 10s);
        REQUIRE(slow.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"));

        std::atomic<int> answered{0};
        std::atomic<int> closed_unread{0}; // connection closed before the server read the request
        std::atomic<int> broken{0};        // partial or wrong answers: must stay 0
        std::vector<std::thread> clients;
        const auto give_up = std::chrono::steady_clock::now() + 20s;
        for (int t = 0; t < 8; ++t)
            clients.emplace_back([&, t] {
                for (int conn = 0; std::chrono::steady_clock::now() < give_up; ++conn) {
                    raw_socket s(ep, 10s);
                    if (!s.connected())
                        return; // the listener is closed: the server stopped accepting
                    for (int i = 0;; ++i) {
                        std::string body = std::to_string(t) + "/" + std::to_string(conn) + "/" +
                                           std::to_string(i) + "/";
                        body.resize(1000, 'x');
                        if (!s.send(
                                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" +
                                body)) {
                            ++closed_unread;
                            break;
                        }
                        const auto raw = s.read_responses(1);
                        if (raw.empty()) {
                            ++closed_unread;
                            break;
                        }
                        if (count_responses(raw) != 1 || body_of(raw) != body ||
                            status_line(raw) != "HTTP/1.1 200 OK") {
                            ++broken;
                            return;
                        }
                        ++answered;
                        if (raw.find("Connection: close") != std::string::npos)
                            break;
                    }
                }
            });
        // (CHECK, not REQUIRE, until the clients are joined: they end once the server is gone.)
        CHECK(eventually([&] { return answered > 200; }));
        d.proc->signal(SIGTERM);
        std::this_thread::sleep_for(200ms);
        CHECK(slow.send("1234567890"));
        const auto slow_answer = slow.read_all();
        for (auto& c : clients)
            c.join();
        CHECK(d.proc->wait(10s) == 0);

        CHECK(broken == 0);
        MESSAGE("answered " << answered.load() << ", closed before being read "
                            << closed_unread.load());
        CHECK(status_line(slow_answer) == "HTTP/1.1 200 OK");
        CHECK(body_of(slow_answer) == "1234567890");
        CHECK(slow_answer.find("Connection: close") != std::string::npos);
        CHECK(d.proc->err().find("SIGTERM, draining (up to 5000 ms)") != std::string::npos);
        CHECK_FALSE(std::filesystem::exists(d.socket_path()));
    }

    TEST_CASE("the drain timeout cuts a request that does not finish") {
        daemon_fixture d(false, {"--drain-timeout", "300ms"});
        raw_socket stalled(proto::endpoint::unix_path(d.socket_path()), 10s);
        REQUIRE(stalled.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"));
        // Wait until the server has accepted it (a connection still in the listen backlog
        // would simply be refused by the drain): /healthz counts it and the asking one.
        REQUIRE(eventually([&] {
            client::client probe;
            auto h = probe.get_json(d.unix_url("/healthz"));
            return h && (*h)["connections"].get<int>() >= 2;
        }));
        const auto t0 = std::chrono::steady_clock::now();
        d.proc->signal(SIGTERM);
        CHECK(d.proc->wait(10s) == 0);
        const auto took = std::chrono::steady_clock::now() - t0;
        CHECK(took < 3s);
        CHECK(took >= 250ms);
        CHECK(d.proc->err().find("1 connection(s) still busy after the drain timeout of 300 ms") !=
              std::string::npos);
        CHECK(stalled.read_all().empty()); // cut, never half-answered
        CHECK_FALSE(std::filesystem::exists(d.socket_path()));
    }

    TEST_CASE("slowloris: one byte a second is cut off by the header deadline - others served") {
        server_fixture srv(true, {.header_timeout = 1500ms});
        std::vector<std::unique_ptr<raw_socket>> slow;
        for (int i = 0; i < 20; ++i)
            slow.push_back(std::make_unique<raw_socket>(srv.endpoint(), 10s));
        const std::string request = "GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaa\r\n";
        const auto t0 = std::chrono::steady_clock::now();
        std::atomic<bool> done{false};
        std::thread trickle([&] {
            for (std::size_t i = 0; i < request.size() && !done; ++i) {
                for (auto& s : slow)
                    s->send(std::string(1, request[i]));
                std::this_thread::sleep_for(1s);
            }
        });
        client::client c;
        for (int i = 0; i < 10; ++i) {
            CHECK(response_of(c.get(srv.url("/hello"))).body == "Hello Anonymous");
            std::this_thread::sleep_for(100ms);
        }
        for (auto& s : slow)
            CHECK(status_line(s->read_all()) == "HTTP/1.1 408 Request Timeout");
        const auto took = std::chrono::steady_clock::now() - t0;
        done = true;
        trickle.join();
        CHECK(took < 4s);
    }

    TEST_CASE("socket activation: the shipped units' flags - run by a systemd stand-in") {
        if (!require_peer("/usr/bin/python3", "python3"))
            return;
        // The name and the flags come from the unit files, so the test follows them.
        const auto socket_unit = read_file(source_dir() + "/examples/systemd/udshttpd.socket");
        const auto service_unit = read_file(source_dir() + "/examples/systemd/udshttpd.service");
        std::smatch m;
        REQUIRE(std::regex_search(socket_unit, m, std::regex("\nFileDescriptorName=(\\S+)")));
        const std::string name = m[1];
        REQUIRE(std::regex_search(service_unit, m, std::regex("\nExecStart=(\\S+)([^\n]*)")));
        std::istringstream flags(m[2]);
        temp_dir dir;
        const auto path = dir.file("activated.sock");
        std::vector<std::string> argv{"/usr/bin/python3",
                                      peers_dir() + "/socket_activate.py",
                                      "--unix",
                                      path + ":" + name,
                                      "--tcp",
                                      "api",
                                      "--",
                                      udshttpd_path()};
        for (std::string f; flags >> f;)
            argv.push_back(f);
        argv.insert(argv.end(), {"--listen", "systemd:api"});
        child server(argv, dir);
        REQUIRE_MESSAGE(server.wait_for_output("listening on unix:" + path), server.err());
        REQUIRE(server.wait_for_output("listening on tcp://127.0.0.1:"));
        const auto banner = server.out();
        REQUIRE(std::regex_search(banner, m, std::regex("tcp api (\\d+)")));
        const auto port = static_cast<std::uint16_t>(std::stoi(m[1]));

        client::client c;
        CHECK(
            response_of(c.get(proto::make_url(proto::endpoint::unix_path(path), "/hello"))).body ==
            "Hello Anonymous");
        CHECK(response_of(c.get(proto::make_url(proto::endpoint::tcp("127.0.0.1", port), "/hello")))
                  .status == 200);
        server.signal(SIGTERM);
        CHECK(server.wait(10s) == 0);
        CHECK(std::filesystem::exists(path)); // the activator owns the socket file
        CHECK(server.err().find("\"target\":\"/hello\"") != std::string::npos); // --access-log -

        // A name that was not passed is named in the error.
        std::filesystem::remove(path);
        auto wrong = run({"/usr/bin/python3", peers_dir() + "/socket_activate.py", "--unix",
                          path + ":web", "--", udshttpd_path(), "--listen", "systemd:nope"},
                         dir);
        CHECK(wrong.code == 1);
        CHECK(wrong.err.find("no passed socket is named 'nope' (LISTEN_FDNAMES=web)") !=
              std::string::npos);
    }

    TEST_CASE("socket activation with systemd-socket-activate") {
        if (!have_program("systemd-socket-activate")) {
            MESSAGE("skipped: systemd-socket-activate not installed (package systemd); the "
                    "stand-in test above covers activation");
            return;
        }
        temp_dir dir;
        const auto path = dir.file("sd.sock");
        child activator({"systemd-socket-activate", "-l", path, "--fdname=udshttp", udshttpd_path(),
                         "--listen", "systemd:udshttp"},
                        dir);
        REQUIRE(eventually([&] { return std::filesystem::exists(path); }));
        client::client c;
        auto r = c.get(proto::make_url(proto::endpoint::unix_path(path), "/hello/activated"));
        REQUIRE(r);
        CHECK(r->body == "Hello activated");
        activator.signal(SIGTERM);
        CHECK(activator.wait(10s) == 0);
        CHECK(std::filesystem::exists(path));
    }

    TEST_CASE("--log-level: warn hides the banner - error hides refusals - bad levels are named") {
        temp_dir dir;
        const auto ep = proto::endpoint::unix_path(dir.file("q.sock"));
        // udshttpd at `level`, refusing one request; its stdout and stderr once stopped.
        const auto refuse_one = [&](const std::string& level) {
            child d({udshttpd_path(), "--listen", ep.address, "--log-level", level, "--allow-uid",
                     "12345"},
                    dir);
            REQUIRE(eventually([&] { return raw_socket(ep).connected(); }));
            CHECK(status_line(roundtrip(ep, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")) ==
                  "HTTP/1.1 403 Forbidden");
            d.signal(SIGTERM);
            CHECK(d.wait(10s) == 0);
            return std::pair{d.out(), d.err()};
        };
        const auto [warn_out, warn_err] = refuse_one("warn");
        CHECK(warn_out.empty());
        CHECK(warn_err.find("warn: refused a connection from pid ") != std::string::npos);
        const auto [error_out, error_err] = refuse_one("error");
        CHECK(error_out.empty());
        CHECK(error_err.empty());

        auto bad = run({udshttpd_path(), "--log-level", "loud"}, dir);
        CHECK(bad.code == 2);
        CHECK(bad.err.find("--log-level: 'loud' is not one of debug, info, warn, error, off") !=
              std::string::npos);
    }

    TEST_CASE("examples/kubernetes: the pod manifest is valid and its permission story holds") {
        if (!require_python_module("yaml", "python3-yaml"))
            return;
        temp_dir dir;
        // Structure and cross-checks against udshttpd --help; then, as root, the kubelet's
        // setgid volume, udshttpd as the sidecar's uid and the probe as the app's uid.
        auto r =
            run({"/usr/bin/python3", peers_dir() + "/check_kubernetes.py",
                 source_dir() + "/examples/kubernetes/pod.yaml", udshttpd_path(), udshttp_path()},
                dir);
        INFO(r.out << r.err);
        CHECK(r.code == 0);
        CHECK(r.out.find("FAIL") == std::string::npos);
        CHECK(r.out.find("ok: --allow-gid is the pod's fsGroup") != std::string::npos);
        if (::geteuid() == 0)
            CHECK(r.out.find("cannot connect") != std::string::npos);
        else
            MESSAGE("the permission part needs root and was skipped: " << r.out);
    }
}
