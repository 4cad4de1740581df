// udshttpd as a gateway: normalisation and rules as pure functions, then real gateways (our
// own udshttpd processes) in front of real upstreams - udshttpd, a Docker-API-like server,
// aiohttp and nginx - called over real sockets, by curl, by raw bytes, and as other uids.

#include "support/support.hpp"

#include <udshttp/service/gateway.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <regex>
#include <thread>

using namespace udshttp;
using namespace udshttp::test;
using service::gateway_rules;
using service::normalize_path;
using service::path_matches;

namespace {

constexpr uid_t nobody = 65534;

// The Docker-like upstream (tests/peers/docker_like.py) on `path`, ready once it says so.
std::unique_ptr<child> docker_like(const temp_dir& dir, const std::string& path,
                                   std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{"/usr/bin/python3", peers_dir() + "/docker_like.py", path};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto c = std::make_unique<child>(argv, dir);
    REQUIRE_MESSAGE(c->wait_for_output("ready"), "docker_like.py did not start: " << c->err());
    return c;
}

// A gateway (udshttpd) on its own socket in `dir`, with `args`.
std::unique_ptr<child> gateway(const temp_dir& dir, std::vector<std::string> args) {
    std::vector<std::string> argv{udshttpd_path(), "--listen", dir.file("gw.sock")};
    argv.insert(argv.end(), args.begin(), args.end());
    auto c = std::make_unique<child>(argv, dir);
    REQUIRE_MESSAGE(c->wait_for_output("listening on unix:"),
                    "gateway did not start: " << c->err());
    return c;
}

proto::endpoint gw_endpoint(const temp_dir& dir) {
    return proto::endpoint::unix_path(dir.file("gw.sock"));
}

// curl through the gateway: "-w" gives the status after the body.
run_result curl(const temp_dir& dir, std::vector<std::string> args,
                std::optional<uid_t> as = std::nullopt, std::vector<gid_t> groups = {}) {
    std::vector<std::string> argv{"curl", "-sS", "--unix-socket", dir.file("gw.sock")};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, dir, {.uid = as, .env = {}, .stdin_file = {}, .groups = std::move(groups)});
}

// Only the status code of a request through the gateway (curl -w %{http_code}).
std::string http_code(const temp_dir& dir, std::vector<std::string> args,
                      std::optional<uid_t> as = std::nullopt, std::vector<gid_t> groups = {}) {
    args.insert(args.begin(), {"-o", "/dev/null", "-w", "%{http_code}"});
    return curl(dir, std::move(args), as, std::move(groups)).out;
}

unsigned status_of(const std::string& raw) {
    const auto line = status_line(raw);
    return line.size() >= 12 ? static_cast<unsigned>(std::stoi(line.substr(9, 3))) : 0;
}

// What the Docker-like upstream says it was sent.
nlohmann::json seen(const std::string& raw) {
    return nlohmann::json::parse(body_of(raw), nullptr, false);
}

std::string head_field(const nlohmann::json& seen, const std::string& name) {
    for (const auto& h : seen["headers"])
        if (h[0].get<std::string>() == name)
            return h[1].get<std::string>();
    return {};
}

// Makes the socket's directory reachable for other uids (nobody), when this runs as root.
void open_dir(const temp_dir& dir) {
    ::chmod(dir.path().c_str(), 0755);
}

} // namespace

TEST_SUITE("gateway") {
    TEST_CASE("normalize_path: unreserved escapes decoded - dot-segments and // removed - "
              "encoded slashes and dots refused") {
        const auto ok = [](std::string_view in) {
            auto r = normalize_path(in);
            REQUIRE_MESSAGE(r, in << ": " << r.error().message);
            return r->target();
        };
        CHECK(ok("/") == "/");
        CHECK(ok("/v%31.24/containers/json") == "/v1.24/containers/json");
        CHECK(ok("/a/./b/../c") == "/a/c");
        CHECK(ok("//metrics") == "/metrics");
        CHECK(ok("/containers//json") == "/containers/json");
        CHECK(ok("/a/b/") == "/a/b/");
        CHECK(ok("/a/..") == "/");
        CHECK(ok("/x%7e%5fy") == "/x~_y");
        CHECK(ok("/x%2a?all=1&f=%2F") == "/x%2A?all=1&f=%2F"); // reserved stays encoded
        CHECK(ok("/v1%2e24/x") == "/v1.24/x");                 // a dot inside a segment is fine
        for (const char* bad : {"/a/%2e%2e/metrics", "/a/%2E./b", "/%2e", "/containers%2Fjson",
                                "/a%5cb", "/a\\b", "/a%00", "/..", "/a/../..", "/%zz",
                                "http://localhost/metrics", "*", "metrics", "/x?%4"}) {
            CAPTURE(bad);
            const auto r = normalize_path(bad);
            CHECK_FALSE(r);
            if (!r)
                CHECK(r.error().code == errc::bad_request);
        }
    }

    TEST_CASE("path patterns: * within a segment - ** across them - /x/** covers /x") {
        CHECK(path_matches("/v*/containers/json", "/v1.43/containers/json"));
        CHECK_FALSE(path_matches("/v*/containers/json", "/v1/x/containers/json"));
        CHECK(path_matches("/containers/*/json", "/containers/abc/json"));
        CHECK_FALSE(path_matches("/containers/*/json", "/containers/a/b/json"));
        CHECK(path_matches("/metrics/**", "/metrics"));
        CHECK(path_matches("/metrics/**", "/metrics/x/y"));
        CHECK_FALSE(path_matches("/metrics/**", "/metricsx"));
        CHECK(path_matches("/**", "/anything/at/all"));
        CHECK(path_matches("/exact", "/exact"));
        CHECK_FALSE(path_matches("/exact", "/exact/"));
        // A hostile path against many stars stays linear (no backtracking blow-up).
        CHECK_FALSE(path_matches("/*a*a*a*a*a*a*a*a*b", "/" + std::string(10000, 'a')));
        CHECK_FALSE(path_matches("/**a**a**a**a**b", "/" + std::string(10000, 'a')));
    }

    TEST_CASE("rules: first match decides - default deny - conditions by uid, group, method, "
              "path, query and body size") {
        auto rules = gateway_rules::parse(R"({"rules": [
            {"name": "root", "uid": [0]},
            {"name": "no-secrets", "action": "deny", "paths": ["/secrets/**"]},
            {"name": "group-write", "gid": [4242], "methods": ["POST"], "paths": ["/jobs"],
             "max_body_bytes": 100},
            {"name": "list-running", "methods": ["GET"], "paths": ["/containers/json"],
             "query": {"all": "0"}},
            {"name": "read", "transport": "unix", "methods": ["GET", "HEAD"]}
        ]})",
                                          "test.json");
        REQUIRE_MESSAGE(rules, rules.error().message);
        const auto t = [](std::string_view target) { return normalize_path(target).value(); };
        service::caller_identity root;
        root.peer.transport = "unix";
        root.peer.uid = root.peer.gid = 0;
        service::caller_identity user = root;
        user.peer.uid = user.peer.gid = 1000;
        service::caller_identity member = user;
        member.groups = {4242};
        service::caller_identity tcp;
        tcp.peer.transport = "tcp";
        tcp.peer.address = "127.0.0.1";

        CHECK(rules->decide(root, "DELETE", t("/secrets/x"), false, {}).rule == "root");
        auto v = rules->decide(user, "GET", t("/secrets/x"), false, {});
        CHECK_FALSE(v.allow);
        CHECK(v.rule == "no-secrets");
        CHECK(rules->decide(user, "GET", t("/hello"), false, {}).rule == "read");
        CHECK_FALSE(rules->decide(tcp, "GET", t("/hello"), false, {}).allow); // transport
        v = rules->decide(user, "POST", t("/jobs"), true, 10);
        CHECK_FALSE(v.allow); // not a member
        CHECK(v.rule.empty());
        CHECK(rules->decide(member, "POST", t("/jobs"), true, 10).allow);
        CHECK_FALSE(rules->decide(member, "POST", t("/jobs"), true, 101).allow); // too large
        v = rules->decide(member, "POST", t("/jobs"), true, std::nullopt);       // chunked: inspect
        CHECK(v.allow);
        CHECK(v.inspect_body == 100);
        CHECK(rules->decide(user, "GET", t("/containers/json?all=0"), false, {}).rule ==
              "list-running");
        CHECK(rules->decide(user, "GET", t("/containers/json?all=1"), false, {}).rule == "read");
        CHECK(rules->decide(user, "GET", t("/containers/json?all=0&all=1"), false, {}).rule ==
              "read"); // every occurrence must match

        // Errors name the file, the rule and what is wrong; unknown keys are refused.
        const auto error_of = [](std::string_view text) {
            auto r = gateway_rules::parse(text, "r.json");
            return r ? std::string() : r.error().message;
        };
        CHECK(error_of(R"({"rules":[{"pathz":["/"]}]})") ==
              "r.json: rule 1: unknown key \"pathz\"");
        CHECK(error_of(R"({"rules":[{"uid":["no-such-user-x"]}]})") ==
              "r.json: rule 1: no such user 'no-such-user-x'");
        CHECK(error_of(R"({"rules":[{},{"methods":["get"]}]})") ==
              "r.json: rule 2: method 'get' is not an upper-case method name");
        CHECK(error_of(R"({"rules":[{"paths":["x"]}]})") ==
              "r.json: rule 1: path pattern 'x' does not start with '/'");
        CHECK(error_of(R"({"rule":[]})").starts_with("r.json: expected an object"));
        CHECK(error_of("{").starts_with("r.json: not JSON"));
        CHECK(error_of(R"({"rules":[{"action":"maybe"}]})") ==
              "r.json: rule 1: \"action\" is \"allow\" or \"deny\"");
    }

    TEST_CASE("udshttpd: gateway flags - usage errors name the flag") {
        temp_dir dir;
        const auto usage = [&](std::vector<std::string> args) {
            args.insert(args.begin(), udshttpd_path());
            auto r = run(args, dir);
            CHECK(r.code == 2);
            return r.err;
        };
        CHECK(usage({"--upstream", "nonsense"}) ==
              "udshttpd: --upstream: 'nonsense' is not NAME=ENDPOINT (see udshttpd --help)\n");
        CHECK(usage({"--upstream", "a=./a.sock", "--route", "/x=b"}) ==
              "udshttpd: --route /x=b: no --upstream b=ENDPOINT (see udshttpd --help)\n");
        CHECK(usage({"--upstream", "a=./a.sock", "--upstream", "b=./b.sock"})
                  .find("give --route /PREFIX=NAME") != std::string::npos);
        CHECK(usage({"--rules", dir.file("none.json")}).find("cannot read rules file") !=
              std::string::npos);
        write_file(dir.file("bad.json"), R"({"rules":[{"uid":"0"}]})");
        CHECK(usage({"--upstream", "a=./a.sock", "--rules", dir.file("bad.json")}) ==
              "udshttpd: --rules: " + dir.file("bad.json") +
                  ": rule 1: uid must be a list (see udshttpd --help)\n");
        CHECK(usage({"--learn", "--upstream", "a=./a.sock"}).find("--learn needs --rules") !=
              std::string::npos);
        CHECK(usage({"--audit-log", "x.log"}).find("applies to the gateway") != std::string::npos);
        // A bad upstream name is a start-up error (exit 1) naming it.
        auto named = run(
            {udshttpd_path(), "--listen", dir.file("g.sock"), "--upstream", "a b=./a.sock"}, dir);
        CHECK(named.code == 1);
        CHECK(named.err.find("upstream name 'a b'") != std::string::npos);
    }

    TEST_CASE("gateway in front of udshttpd: bodies both ways sized and chunked - HEAD - "
              "upstream connections reused") {
        daemon_fixture up;
        temp_dir dir;
        auto gw = gateway(dir, {"--upstream", "api=" + up.socket_path()});
        auto hello = curl(dir, {"-w", " %{http_code}", "http://localhost/hello/ada"});
        CHECK(hello.out == "Hello ada 200");

        std::string big(3 << 20, '\0');
        for (std::size_t i = 0; i < big.size(); ++i)
            big[i] = static_cast<char>(i * 7 % 251);
        write_file(dir.file("big"), big);
        for (const bool chunked : {false, true}) {
            CAPTURE(chunked);
            std::vector<std::string> args{"--data-binary", "@" + dir.file("big"), "-o",
                                          dir.file("out"), "http://localhost/echo"};
            if (chunked)
                args.insert(args.begin(), {"-H", "Transfer-Encoding: chunked"});
            const auto r = curl(dir, args);
            CHECK(r.code == 0);
            CHECK(read_file(dir.file("out")) == big);
        }
        auto head = curl(dir, {"-I", "http://localhost/hello"});
        CHECK(head.out.starts_with("HTTP/1.1 200 OK\r\n"));
        CHECK(head.out.find("Content-Length: 15") != std::string::npos);

        // Sequential callers share one pooled upstream connection.
        for (int i = 0; i < 5; ++i)
            CHECK(curl(dir, {"http://localhost/hello"}).out == "Hello Anonymous");
        const auto metrics =
            run({"curl", "-sS", "--unix-socket", up.socket_path(), "http://localhost/metrics"},
                up.dir)
                .out;
        std::smatch m;
        REQUIRE(
            std::regex_search(metrics, m, std::regex("udshttp_connections_accepted_total (\\d+)")));
        CHECK(std::stoi(m[1]) <= 3); // the gateway's (1, or a few) and this metrics call
    }

    TEST_CASE("gateway bypass attempts: encodings - dot-segments - // - absolute-form - "
              "CL with TE - bodies past the inspection bound - pipelining - all refused") {
        temp_dir dir;
        auto up = docker_like(dir, dir.file("docker.sock"));
        write_file(dir.file("rules.json"), R"({"rules": [
            {"name": "list", "methods": ["GET"],
             "paths": ["/containers/json", "/v*/containers/json"]},
            {"name": "create-small", "methods": ["POST"], "paths": ["/containers/create"],
             "max_body_bytes": 1024}
        ]})");
        auto gw = gateway(dir, {"--upstream", "docker=" + dir.file("docker.sock"), "--rules",
                                dir.file("rules.json")});
        const auto ask = [&](const std::string& bytes) {
            return roundtrip(gw_endpoint(dir), bytes);
        };
        const auto get = [&](const std::string& target) {
            return ask("GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        };
        // Allowed, and the upstream sees the normalised path that was checked.
        auto r = get("/v%31.24/containers/json");
        CHECK(status_of(r) == 200);
        CHECK(seen(r)["path"] == "/v1.24/containers/json");
        r = get("/containers//json");
        CHECK(status_of(r) == 200);
        CHECK(seen(r)["path"] == "/containers/json");
        // Refused.
        for (const char* target : {"/containers/json/../../secrets", "//secrets",
                                   "/containers/json/..%2f..%2fsecrets", "/v1.24/secrets"}) {
            CAPTURE(target);
            const auto s = status_of(get(target));
            CHECK((s == 403 || s == 400));
        }
        CHECK(status_of(get("/containers/%2e%2e/secrets")) == 400);
        CHECK(status_of(get("/containers%2Fjson")) == 400);
        CHECK(status_of(get("http://localhost/containers/json")) == 400); // absolute-form
        CHECK(status_of(get("/containers/json/../../secrets")) == 403);
        // CVE-2024-41110: Content-Length: 0 with a chunked body.
        r = ask("POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
        CHECK(status_of(r) == 400);
        // A chunked body within the rule's bound is inspected, then forwarded with its length.
        r = ask("POST /containers/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                "Connection: close\r\n\r\n64\r\n" +
                std::string(100, 'a') + "\r\n0\r\n\r\n");
        CHECK(status_of(r) == 200);
        CHECK(seen(r)["body_bytes"] == 100);
        CHECK(head_field(seen(r), "Content-Length") == "100");
        // Past the bound (CVE-2026-34040's large body): refused, never forwarded.
        r = ask("POST /containers/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                "\r\n7d0\r\n" +
                std::string(2000, 'a') + "\r\n0\r\n\r\n");
        CHECK(status_of(r) == 403);
        CHECK(r.find("cannot be inspected") != std::string::npos);
        r = ask("POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n" +
                std::string(2000, 'a'));
        CHECK(status_of(r) == 403);
        // Pipelined: the first is answered, the second refused.
        r = ask("GET /containers/json HTTP/1.1\r\nHost: x\r\n\r\nGET /secrets HTTP/1.1\r\n"
                "Host: x\r\n\r\n");
        CHECK(status_of(r) == 200);
        const auto second = r.find("HTTP/1.1 403");
        CHECK(second != std::string::npos);
        CHECK(r.find("/secrets") != std::string::npos);              // named in the 403's message
        CHECK(r.find("\"path\":\"/secrets\"") == std::string::npos); // never reached upstream
        // Smuggling: CL and TE together, a request hidden in the body.
        r = ask(
            "POST /containers/json HTTP/1.1\r\nHost: x\r\nContent-Length: 44\r\n"
            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /secrets HTTP/1.1\r\nHost: x\r\n\r\n");
        CHECK(status_of(r) == 400);
        CHECK(count_responses(r) == 1);
    }

    TEST_CASE("gateway identity: X-Udshttp-Peer-* from the caller are dropped - the gateway's "
              "own are sent with --peer-headers") {
        temp_dir dir;
        auto up = docker_like(dir, dir.file("docker.sock"));
        for (const bool identity : {false, true}) {
            CAPTURE(identity);
            std::vector<std::string> args{"--upstream", "docker=" + dir.file("docker.sock")};
            if (identity)
                args.push_back("--peer-headers");
            auto gw = gateway(dir, args);
            auto r =
                roundtrip(gw_endpoint(dir), "GET /x HTTP/1.1\r\nHost: x\r\n"
                                            "X-Udshttp-Peer-Uid: 0\r\nx-udshttp-peer-gid: 0\r\n"
                                            "Connection: close\r\n\r\n");
            const auto s = seen(r);
            REQUIRE(s.is_object());
            int uids = 0;
            for (const auto& h : s["headers"])
                if (h[0] == "X-Udshttp-Peer-Uid")
                    ++uids;
            CHECK(uids == (identity ? 1 : 0));
            CHECK(head_field(s, "x-udshttp-peer-gid").empty());
            if (identity) {
                CHECK(head_field(s, "X-Udshttp-Peer-Uid") == std::to_string(::getuid()));
                CHECK(head_field(s, "X-Udshttp-Peer-Gid") == std::to_string(::getgid()));
                CHECK(!head_field(s, "X-Udshttp-Peer-Pid").empty());
            }
            gw->signal(SIGTERM);
            CHECK(gw->wait() == 0);
        }
    }

    TEST_CASE("gateway rules per caller: uid - supplementary group - executable") {
        if (::geteuid() != 0) {
            MESSAGE("skipped: needs root to run callers as nobody with chosen groups");
            return;
        }
        temp_dir dir;
        open_dir(dir);
        auto up = docker_like(dir, dir.file("docker.sock"));
        const auto udshttp = std::filesystem::canonical(udshttp_path()).string();
        // The cgroup v2 path callers started from here share ("0::/path" in /proc/self/cgroup).
        std::string own_cgroup;
        for (const auto& line : lines_of(read_file("/proc/self/cgroup")))
            if (line.starts_with("0::"))
                own_cgroup = line.substr(3);
        write_file(dir.file("rules.json"), R"({"rules": [
            {"name": "nobody reads", "uid": [65534], "methods": ["GET"], "paths": ["/read"]},
            {"name": "group 4242 writes", "gid": [4242], "methods": ["POST"]},
            {"name": "our CLI only", "exe": [")" +
                                               udshttp + R"("], "paths": ["/cli"]},
            {"name": "this cgroup", "cgroup": [")" +
                                               own_cgroup + R"("], "paths": ["/cg"]},
            {"name": "another cgroup", "cgroup": ["/no/such.slice/**"], "paths": ["/cg2"]}
        ]})");
        auto gw = gateway(dir, {"--upstream", "docker=" + dir.file("docker.sock"), "--rules",
                                dir.file("rules.json"), "--socket-mode", "0666"});
        CHECK(http_code(dir, {"http://localhost/read"}, nobody) == "200");
        CHECK(http_code(dir, {"http://localhost/read"}, 0) == "403");
        CHECK(http_code(dir, {"-X", "POST", "http://localhost/read"}, nobody) == "403");
        CHECK(http_code(dir, {"-d", "x", "http://localhost/write"}, nobody, {4242}) == "200");
        CHECK(http_code(dir, {"-d", "x", "http://localhost/write"}, nobody, {4243}) == "403");
        // The executable rule: our CLI is let through, curl is not.
        CHECK(http_code(dir, {"http://localhost/cli"}, 0) == "403");
        auto ours = run({udshttp_path(), "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                         "--unix-socket", dir.file("gw.sock"), "http://localhost/cli"},
                        dir);
        CHECK(ours.out == "200");
        if (own_cgroup.empty()) {
            MESSAGE("skipped the cgroup rule: no cgroup v2 line in /proc/self/cgroup");
            return;
        }
        CHECK(http_code(dir, {"http://localhost/cg"}, 0) == "200");
        CHECK(http_code(dir, {"http://localhost/cg2"}, 0) == "403");
    }

    TEST_CASE("gateway streams: a quiet /events outlives --idle-timeout - logs follow - an "
              "Upgrade: tcp exec gets 101 and both half-closes arrive") {
        temp_dir dir;
        auto up = docker_like(dir, dir.file("docker.sock"), {"--quiet", "2.5"});
        auto gw = gateway(
            dir, {"--upstream", "docker=" + dir.file("docker.sock"), "--idle-timeout", "1s"});
        {
            raw_socket s(gw_endpoint(dir), 8s);
            REQUIRE(s.send("GET /events HTTP/1.1\r\nHost: x\r\n\r\n"));
            std::string got;
            CHECK(read_until(s, got, "\"start\"", 3s));
            CHECK(got.find("Transfer-Encoding: chunked") != std::string::npos);
            CHECK(read_until(s, got, "\"die\"", 6s)); // 2.5 s of silence: not cut at 1 s
        }
        auto logs = curl(dir, {"-N", "http://localhost/containers/abc/logs?follow=1"});
        CHECK(logs.out == "log line 0\nlog line 1\nlog line 2\n");

        raw_socket s(gw_endpoint(dir), 5s);
        const std::string start = R"({"Detach":false,"Tty":false})";
        REQUIRE(s.send("POST /exec/abc/start HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                       "Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: " +
                       std::to_string(start.size()) + "\r\n\r\n" + start));
        std::string got;
        REQUIRE(read_until(s, got, "\r\n\r\n"));
        CHECK(got.starts_with("HTTP/1.1 101 UPGRADED\r\n"));
        CHECK(got.find("Upgrade: tcp") != std::string::npos);
        REQUIRE(s.send("hello"));
        CHECK(read_until(s, got, "HELLO"));
        s.shutdown_write(); // our EOF reaches the upstream, which answers and half-closes
        got += s.read_all();
        CHECK(got.ends_with("HELLOexit 0\n"));
    }

    TEST_CASE("gateway upstream failures: down is 502 naming it - restarted is served - slow is "
              "504") {
        temp_dir dir;
        const auto path = dir.file("up.sock");
        auto gw = gateway(dir, {"--upstream", "api=" + path, "--upstream-timeout", "700ms"});
        auto down = curl(dir, {"-w", " %{http_code}", "http://localhost/hello"});
        CHECK(down.out.ends_with(" 502"));
        CHECK(down.out.find("\"code\":\"bad_gateway\"") != std::string::npos);
        CHECK(down.out.find("upstream api (unix:" + path + ") is unavailable: connect") !=
              std::string::npos);
        {
            child up({udshttpd_path(), "--listen", path}, dir);
            REQUIRE(up.wait_for_output("listening on"));
            CHECK(curl(dir, {"http://localhost/hello"}).out == "Hello Anonymous");
            up.signal(SIGTERM);
            CHECK(up.wait() == 0);
        }
        CHECK(curl(dir, {"-w", " %{http_code}", "http://localhost/hello"}).out.ends_with(" 502"));
        {
            child up({udshttpd_path(), "--listen", path}, dir);
            REQUIRE(up.wait_for_output("listening on"));
            CHECK(curl(dir, {"http://localhost/hello"}).out == "Hello Anonymous");
        }
        std::filesystem::remove(path);
        auto slow_up = docker_like(dir, path);
        auto slow = curl(dir, {"-w", " %{http_code}", "http://localhost/slow"});
        CHECK(slow.out.ends_with(" 504"));
        CHECK(slow.out.find("sent no answer within 700 ms") != std::string::npos);
    }

    TEST_CASE("gateway: a burst against an upstream whose backlog is full is retried, not "
              "failed with EAGAIN") {
        temp_dir dir;
        // Backlog 1, and nothing accepted for 1 s: connects beyond it fail with EAGAIN.
        auto up =
            docker_like(dir, dir.file("docker.sock"), {"--backlog", "1", "--accept-after", "1"});
        auto gw = gateway(dir, {"--upstream", "docker=" + dir.file("docker.sock")});
        std::vector<std::unique_ptr<child>> callers;
        for (int i = 0; i < 16; ++i)
            callers.push_back(std::make_unique<child>(
                std::vector<std::string>{"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                                         "--unix-socket", dir.file("gw.sock"),
                                         "http://localhost/burst"},
                dir));
        int ok = 0;
        for (auto& c : callers) {
            CHECK(c->wait(20s) == 0);
            ok += c->out() == "200";
        }
        CHECK(ok == 16);
    }

    TEST_CASE("gateway drain: SIGTERM ends a stream passing through within --drain-timeout") {
        temp_dir dir;
        auto up = docker_like(dir, dir.file("docker.sock"), {"--quiet", "60"});
        auto gw = gateway(
            dir, {"--upstream", "docker=" + dir.file("docker.sock"), "--drain-timeout", "2s"});
        raw_socket s(gw_endpoint(dir), 8s);
        REQUIRE(s.send("GET /events HTTP/1.1\r\nHost: x\r\n\r\n"));
        std::string got;
        REQUIRE(read_until(s, got, "\"start\""));
        // And a tunnel (an exec that has sent nothing yet).
        raw_socket exec(gw_endpoint(dir), 8s);
        REQUIRE(exec.send("POST /exec/x/start HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                          "Upgrade: tcp\r\nContent-Length: 0\r\n\r\n"));
        std::string upgraded;
        REQUIRE(read_until(exec, upgraded, "\r\n\r\n"));
        CHECK(upgraded.starts_with("HTTP/1.1 101"));
        const auto t0 = std::chrono::steady_clock::now();
        gw->signal(SIGTERM);
        CHECK(gw->wait(5s) == 0);
        CHECK(std::chrono::steady_clock::now() - t0 < 2500ms);
        got += s.read_all(); // the stream ended (EOF) rather than hanging
        CHECK(got.find("\"die\"") == std::string::npos);
        CHECK(exec.read_all().empty()); // the tunnel ended too
        CHECK(std::chrono::steady_clock::now() - t0 < 4s);
    }

    TEST_CASE("gateway audit: a JSON line per decision - --learn allows and says what the rules "
              "would refuse - udshttp rules suggest allows exactly what was seen") {
        temp_dir dir;
        auto up = docker_like(dir, dir.file("docker.sock"));
        write_file(dir.file("rules.json"), R"({"rules": [{"name": "ping", "paths": ["/_ping"]}]})");
        {
            auto gw = gateway(dir, {"--upstream", "docker=" + dir.file("docker.sock"), "--rules",
                                    dir.file("rules.json"), "--learn", "--audit-log",
                                    dir.file("audit.log")});
            CHECK(http_code(dir, {"http://localhost/_ping"}) == "200");
            CHECK(http_code(dir, {"http://localhost/v1.43/containers/json"}) == "200");
            CHECK(http_code(dir, {"-X", "DELETE", "http://localhost/containers/abc"}) == "200");
            gw->signal(SIGTERM);
            CHECK(gw->wait() == 0);
        }
        const auto lines = lines_of(read_file(dir.file("audit.log")));
        REQUIRE(lines.size() == 3);
        const auto first = nlohmann::json::parse(lines[0]);
        CHECK(first["verdict"] == "allow");
        CHECK(first["rule"] == "ping");
        CHECK(first["method"] == "GET");
        CHECK(first["path"] == "/_ping");
        CHECK(first["upstream"] == "docker");
        CHECK(first["caller"]["uid"] == ::getuid());
        const auto second = nlohmann::json::parse(lines[1]);
        CHECK(second["verdict"] == "learn");
        CHECK(second["rule"].is_null());

        auto suggested = run({udshttp_path(), "rules", "suggest", dir.file("audit.log")}, dir);
        REQUIRE(suggested.code == 0);
        write_file(dir.file("suggested.json"), suggested.out);
        REQUIRE(gateway_rules::parse(suggested.out, "suggested"));
        auto gw = gateway(dir, {"--upstream", "docker=" + dir.file("docker.sock"), "--rules",
                                dir.file("suggested.json")});
        CHECK(http_code(dir, {"http://localhost/_ping"}) == "200");
        CHECK(http_code(dir, {"http://localhost/v1.43/containers/json"}) == "200");
        CHECK(http_code(dir, {"-X", "DELETE", "http://localhost/containers/abc"}) == "200");
        CHECK(http_code(dir, {"-X", "DELETE", "http://localhost/v1.43/containers/json"}) == "403");
        CHECK(http_code(dir, {"http://localhost/containers/abc"}) == "403");
        auto usage = run({udshttp_path(), "rules", "suggest"}, dir);
        CHECK(usage.code == 2);
    }

    TEST_CASE("gateway /metrics: requests by upstream - verdicts - upstream errors") {
        temp_dir dir;
        auto up = docker_like(dir, dir.file("docker.sock"));
        write_file(dir.file("rules.json"), R"({"rules": [{"paths": ["/api/ok"]}]})");
        auto gw = gateway(dir, {"--upstream", "docker=" + dir.file("docker.sock"), "--upstream",
                                "gone=" + dir.file("nothing.sock"), "--route", "/api=docker",
                                "--route", "/gone=gone", "--rules", dir.file("rules.json")});
        curl(dir, {"http://localhost/api/ok"});
        curl(dir, {"http://localhost/api/no"});
        curl(dir, {"http://localhost/gone"});
        const auto m = curl(dir, {"http://localhost/metrics"}).out; // the gateway's own
        CHECK(m.find("udshttp_gateway_requests_total{upstream=\"docker\"} 2\n") !=
              std::string::npos);
        CHECK(m.find("udshttp_gateway_requests_total{upstream=\"gone\"} 1\n") != std::string::npos);
        CHECK(m.find("udshttp_gateway_verdicts_total{verdict=\"allow\"} 1\n") != std::string::npos);
        CHECK(m.find("udshttp_gateway_verdicts_total{verdict=\"deny\"} 2\n") != std::string::npos);
        CHECK(m.find("udshttp_rejected_total{reason=\"gateway_denied\"} 2\n") != std::string::npos);
        CHECK(m.find("udshttp_gateway_upstream_errors_total{upstream=\"docker\",kind=\"connect\"} "
                     "0\n") != std::string::npos);
        // /gone is denied by the rules before any connect: no upstream error for it.
        CHECK(
            m.find(
                "udshttp_gateway_upstream_errors_total{upstream=\"gone\",kind=\"connect\"} 0\n") !=
            std::string::npos);
    }

    TEST_CASE("gateway in front of aiohttp and nginx on Unix sockets") {
        temp_dir dir;
        if (require_python_module("aiohttp", "python3-aiohttp")) {
            child up({"/usr/bin/python3", peers_dir() + "/aiohttp_server.py", dir.file("aio.sock")},
                     dir);
            REQUIRE(eventually([&] { return std::filesystem::exists(dir.file("aio.sock")); }));
            auto gw = gateway(dir, {"--upstream", "aio=" + dir.file("aio.sock")});
            CHECK(curl(dir, {"http://localhost/hello"}).out == "Hello from aiohttp");
            auto stream = curl(dir, {"http://localhost/stream?n=300000"});
            CHECK(stream.out.size() == 300000);
            CHECK(curl(dir, {"-H", "Transfer-Encoding: chunked", "-d", "chunky",
                             "http://localhost/echo"})
                      .out == "chunky");
            gw->signal(SIGTERM);
            CHECK(gw->wait() == 0);
            up.signal(SIGTERM);
            up.wait();
        }
        if (require_peer("nginx", "nginx-light")) {
            write_file(dir.file("nginx.conf"),
                       "daemon off; master_process off; pid " + dir.file("nginx.pid") +
                           "; error_log stderr;\nevents {}\nhttp { access_log off; "
                           "client_body_temp_path " +
                           dir.path() + "; server { listen unix:" + dir.file("nginx.sock") +
                           "; location / { return 200 \"nginx here $request_uri\\n\"; } } }\n");
            child nginx({"nginx", "-p", dir.path(), "-c", dir.file("nginx.conf")}, dir);
            REQUIRE(eventually([&] { return std::filesystem::exists(dir.file("nginx.sock")); }));
            auto gw = gateway(dir, {"--upstream", "nginx=" + dir.file("nginx.sock")});
            CHECK(curl(dir, {"http://localhost/a//b/../c"}).out == "nginx here /a/c\n");
            nginx.signal(SIGTERM);
            nginx.wait();
        }
    }

    TEST_CASE("examples/gateway/read-only/start: everyone may read but /metrics - only root "
              "writes") {
        daemon_fixture up;
        temp_dir dir;
        open_dir(dir);
        child gw({source_dir() + "/examples/gateway/read-only/start", up.socket_path(),
                  dir.file("gw.sock"), "--idle-timeout", "2s"},
                 dir, {.uid = {}, .env = {"UDSHTTPD=" + udshttpd_path()}});
        REQUIRE_MESSAGE(gw.wait_for_output("listening on unix:"), gw.err());
        struct stat st {};
        REQUIRE(::stat(dir.file("gw.sock").c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0666);
        CHECK(http_code(dir, {"http://localhost/hello"}, std::nullopt) == "200");
        CHECK(http_code(dir, {"-I", "http://localhost/hello"}, std::nullopt) == "200");
        CHECK(http_code(dir, {"-d", "x", "http://localhost/echo"}, 0) ==
              (::geteuid() == 0 ? "200" : "403"));
        if (::geteuid() != 0) {
            MESSAGE("skipped the other-uid half: needs root to call as nobody");
            return;
        }
        CHECK(http_code(dir, {"http://localhost/metrics"}, 0) == "200");
        CHECK(http_code(dir, {"http://localhost/hello"}, nobody) == "200");
        CHECK(http_code(dir, {"http://localhost/metrics"}, nobody) == "403");
        CHECK(http_code(dir, {"http://localhost/metrics/x"}, nobody) == "403");
        CHECK(http_code(dir, {"http://localhost//metrics"}, nobody) == "403");
        CHECK(http_code(dir, {"http://localhost/%6detrics"}, nobody) == "403");
        CHECK(http_code(dir, {"-d", "x", "http://localhost/echo"}, nobody) == "403");
        CHECK(http_code(dir, {"-X", "DELETE", "http://localhost/hello"}, nobody) == "403");
        auto usage = run({source_dir() + "/examples/gateway/read-only/start"}, dir);
        CHECK(usage.code == 2);
    }

    TEST_CASE("README recipes: docker.sock read-only for one uid - a TCP app behind a socket") {
        if (::geteuid() != 0) {
            MESSAGE("skipped: needs root to run callers as other uids");
            return;
        }
        temp_dir dir;
        open_dir(dir);
        // The Docker recipe's rules with uid 1000 as the CI user.
        auto up = docker_like(dir, dir.file("docker.sock"));
        auto gw = gateway(dir, {"--upstream", "docker=" + dir.file("docker.sock"), "--rules",
                                source_dir() + "/examples/gateway/docker-read-only.json",
                                "--socket-mode", "0666"});
        CHECK(http_code(dir, {"http://localhost/v1.43/containers/json"}, 1000) == "200");
        CHECK(http_code(dir, {"http://localhost/containers/abc/json"}, 1000) == "200");
        CHECK(http_code(dir, {"-X", "POST", "http://localhost/containers/create"}, 1000) == "403");
        CHECK(http_code(dir, {"http://localhost/v1.43/containers/json"}, nobody) == "403");
        gw->signal(SIGTERM);
        gw->wait();

        // A TCP-only app (udshttpd on loopback TCP) behind a permissioned socket.
        daemon_fixture app(true);
        auto gw2 = gateway(dir, {"--upstream", "app=127.0.0.1:" + std::to_string(app.tcp_port),
                                 "--rules", source_dir() + "/examples/gateway/tcp-app.json",
                                 "--socket-mode", "0666"});
        CHECK(http_code(dir, {"http://localhost/hello"}, nobody, {100}) == "200"); // group users
        CHECK(http_code(dir, {"http://localhost/hello"}, nobody) == "403");
        CHECK(http_code(dir, {"http://localhost/hello"}, 0) == "200");
    }
}

TEST_SUITE("gateway") {
    TEST_CASE("gateway: WebSocket through it with python websockets - over a Unix socket and "
              "from loopback TCP to a Unix-socket upstream") {
        if (!require_python_module("websockets", "python3-websockets"))
            return;
        daemon_fixture up(false, {"--max-body-bytes", "128KiB"});
        daemon_fixture gw(true, {"--upstream", "api=" + up.socket_path()});
        const auto r =
            run({"/usr/bin/python3", peers_dir() + "/websockets_client.py", gw.socket_path(),
                 std::to_string(gw.tcp_port), std::to_string(128 * 1024)},
                gw.dir);
        check_peer(r, "websockets");
    }

    TEST_CASE("gateway: TCP callers get Forwarded and X-Forwarded-For - an abstract-socket "
              "upstream") {
        temp_dir dir;
        const auto name = "udshttp-gw-test-" + std::to_string(::getpid());
        child up({udshttpd_path(), "--listen", "@" + name}, dir);
        REQUIRE(up.wait_for_output("listening on"));
        daemon_fixture gw(true, {"--upstream", "api=@" + name, "--peer-headers"});
        auto r = run({"curl", "-sS", "-H", "X-Forwarded-For: 10.9.9.9", "-H",
                      "Forwarded: for=10.9.9.9", gw.tcp_url("/echo")},
                     dir);
        const auto echo = nlohmann::json::parse(r.out, nullptr, false);
        REQUIRE_MESSAGE(echo.is_object(), r.out << r.err);
        std::vector<std::string> forwarded, xff;
        for (const auto& h : echo["headers"]) {
            if (h[0] == "Forwarded")
                forwarded.push_back(h[1]);
            if (h[0] == "X-Forwarded-For")
                xff.push_back(h[1]);
        }
        REQUIRE(forwarded.size() == 1);
        CHECK(forwarded[0].starts_with("for=\"127.0.0.1:"));
        CHECK(xff == std::vector<std::string>{"127.0.0.1"});
        CHECK(echo["target"] == "/echo");
    }

    TEST_CASE("gateway from the library: server_options::gateway in an embedding program") {
        temp_dir dir;
        daemon_fixture up;
        service::server_options o;
        o.listen = {dir.file("lib.sock")};
        o.gateway.upstreams = {{"api", proto::endpoint::unix_path(up.socket_path())}};
        o.gateway.routes = {{"/api", "api"}, {"/hello", "api"}};
        o.gateway.rules = gateway_rules::parse(
                              R"({"rules":[{"methods":["GET"],"paths":["/hello/**"]}]})", "inline")
                              .value();
        service::server srv(o);
        srv.routes().get("/own", [](const service::request&, service::response& res) {
            service::set_text(res, "mine");
        });
        srv.start();
        const auto url = [&](const std::string& t) { return srv.url(t); };
        CHECK(run({udshttp_path(), "-sS", url("/hello/lib")}, dir).out == "Hello lib");
        CHECK(run({udshttp_path(), "-sS", "-o", "/dev/null", "-w", "%{http_code}", url("/api/x")},
                  dir)
                  .out == "403");
        CHECK(run({udshttp_path(), "-sS", url("/own")}, dir).out == "mine"); // not routed
        srv.stop();
    }

    TEST_CASE("gateway bounds: a caller that does not read a large answer holds the gateway to "
              "its copy buffers - and is cut after --idle-timeout") {
        if (!require_python_module("aiohttp", "python3-aiohttp"))
            return;
        temp_dir dir;
        child up({"/usr/bin/python3", peers_dir() + "/aiohttp_server.py", dir.file("aio.sock")},
                 dir);
        REQUIRE(eventually([&] { return std::filesystem::exists(dir.file("aio.sock")); }));
        auto gw =
            gateway(dir, {"--upstream", "aio=" + dir.file("aio.sock"), "--idle-timeout", "1s"});
        const auto before = vm_hwm_kb(gw->pid());
        std::vector<std::unique_ptr<raw_socket>> readers;
        for (int i = 0; i < 8; ++i) {
            readers.push_back(std::make_unique<raw_socket>(gw_endpoint(dir), 10s));
            // 256 MiB each, never read.
            REQUIRE(readers.back()->send("GET /stream?n=268435456 HTTP/1.1\r\nHost: x\r\n\r\n"));
        }
        std::this_thread::sleep_for(600ms);
        const auto during = vm_hwm_kb(gw->pid());
        MESSAGE("gateway peak RSS " << before << " KiB before, " << during
                                    << " KiB with 8 stalled 256 MiB answers");
        if (std::string_view(UDSHTTP_TEST_SANITIZE).empty())
            CHECK(during < before + 16 * 1024); // copy buffers, not the answers
        else
            MESSAGE("the RSS bound is not checked under sanitizers (shadow memory, quarantine)");
        // The write-stall deadline: a caller that takes nothing for the idle timeout is cut.
        std::this_thread::sleep_for(1500ms);
        std::string got = readers.front()->read_all();
        CHECK(got.starts_with("HTTP/1.1 200"));
        CHECK(got.size() < (64u << 20));
        CHECK(curl(dir, {"http://localhost/hello"}).out == "Hello from aiohttp");
    }
}

TEST_SUITE("gateway") {
    TEST_CASE("gateway: two upstreams interleaved - each request answered by its own upstream "
              "- pools are per upstream") {
        temp_dir dir;
        daemon_fixture a;
        auto b = docker_like(dir, dir.file("docker.sock"));
        auto gw = gateway(dir, {"--upstream", "a=" + a.socket_path(), "--upstream",
                                "b=" + dir.file("docker.sock"), "--route", "/hello=a", "--route",
                                "/containers=b"});
        // One caller connection, alternating upstreams: a pooled connection to one upstream
        // must never carry a request for the other.
        std::string bytes;
        for (int i = 0; i < 4; ++i)
            bytes += "GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /containers/json HTTP/1.1\r\n"
                     "Host: x\r\n\r\n";
        raw_socket s(gw_endpoint(dir));
        REQUIRE(s.send(bytes));
        const auto got = s.read_responses(8);
        std::size_t hellos = 0, jsons = 0;
        for (std::size_t at = 0; (at = got.find("Hello Anonymous", at)) != std::string::npos; ++at)
            ++hellos;
        for (std::size_t at = 0;
             (at = got.find("\"path\": \"/containers/json\"", at)) != std::string::npos; ++at)
            ++jsons;
        CHECK(hellos == 4);
        CHECK(jsons == 4);
        CHECK(count_responses(got) == 8);
    }
}
