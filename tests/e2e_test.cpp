// End to end: udshttpd as its own process, driven by curl, the udshttp CLI, Python aiohttp
// and many concurrent clients of our library.

#include "support/support.hpp"

#include <udshttp/client/client.hpp>
#include <udshttp/proto/url.hpp>
#include <udshttp/proto/version.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

using namespace udshttp;
using namespace udshttp::test;

TEST_SUITE("e2e") {

    TEST_CASE("udshttpd: prints where it listens and a curl line - removes its socket on SIGTERM") {
        daemon_fixture d(true);
        const auto out = d.proc->out();
        CHECK(out.find("listening on unix:" + d.socket_path()) != std::string::npos);
        CHECK(out.find("try: curl --unix-socket " + d.socket_path() + " http://localhost/hello") !=
              std::string::npos);
        CHECK(out.find("try: curl 'http://127.0.0.1:" + std::to_string(d.tcp_port) + "/hello'") !=
              std::string::npos);
        CHECK(std::filesystem::exists(d.socket_path()));
        d.proc->signal(SIGTERM);
        CHECK(d.proc->wait(10s) == 0);
        CHECK_FALSE(std::filesystem::exists(d.socket_path()));
        CHECK_FALSE(std::filesystem::exists(d.socket_path() + ".lock"));
    }

    TEST_CASE("udshttpd: SIGINT stops it too and a second server on the same path is refused") {
        daemon_fixture d;
        auto second = run({udshttpd_path(), "--listen", d.socket_path()}, d.dir);
        CHECK(second.code == 1);
        CHECK(second.err.find("already serving on " + d.socket_path()) != std::string::npos);
        d.proc->signal(SIGINT);
        CHECK(d.proc->wait(10s) == 0);
        CHECK_FALSE(std::filesystem::exists(d.socket_path()));
    }

    TEST_CASE("udshttpd: --help - --version and bad options") {
        temp_dir dir;
        auto help = run({udshttpd_path(), "--help"}, dir);
        CHECK(help.code == 0);
        CHECK(help.out.find("--listen ENDPOINT") != std::string::npos);
        auto version = run({udshttpd_path(), "--version"}, dir);
        // The version, the Boost it was built with, and the build type.
        CHECK(version.out == "udshttpd " + udshttp::version_line() + "\n");
        CHECK(version.out.find(" (Boost 1.") != std::string::npos);
        CHECK(version.out.find(" build)\n") != std::string::npos);
        auto cli_version = run({udshttp_path(), "--version"}, dir);
        CHECK(cli_version.code == 0);
        CHECK(cli_version.out == "udshttp " + udshttp::version_line() + "\n");
        auto bad = run({udshttpd_path(), "--frobnicate"}, dir);
        CHECK(bad.code == 2);
        CHECK(bad.err == "udshttpd: unknown option '--frobnicate' (see udshttpd --help)\n");
        auto bad_ep = run({udshttpd_path(), "--listen", "8080"}, dir);
        CHECK(bad_ep.code == 2);
        CHECK(bad_ep.err.find("tcp://127.0.0.1:8080") != std::string::npos);
        auto long_path = run({udshttpd_path(), "--listen", "/" + std::string(120, 'x')}, dir);
        CHECK(long_path.code == 2);
        CHECK(long_path.err.find("121 bytes; the limit on this platform is 107") !=
              std::string::npos);
        auto bad_size = run({udshttpd_path(), "--max-body-bytes", "lots"}, dir);
        CHECK(bad_size.code == 2);
        CHECK(bad_size.err.find("invalid size 'lots'") != std::string::npos);
        write_file(dir.file("file"), "x");
        auto not_socket = run({udshttpd_path(), "--listen", dir.file("file")}, dir);
        CHECK(not_socket.code == 1);
        CHECK(not_socket.err.find("is a regular file, not a socket") != std::string::npos);
    }

    TEST_CASE("udshttpd: every option can come from a UDSHTTP_ variable - the command line wins") {
        temp_dir dir;
        // Every long option --help lists (but --help and --version) is read from its variable:
        // a bad value there is a usage error that names the variable.
        const auto help = run({udshttpd_path(), "--help"}, dir).out;
        std::regex option_re("\\n  (?:-[a-zA-Z], |    )(--[a-z-]+)");
        std::vector<std::string> options;
        for (auto it = std::sregex_iterator(help.begin(), help.end(), option_re);
             it != std::sregex_iterator(); ++it)
            if ((*it)[1] != "--help" && (*it)[1] != "--version")
                options.push_back((*it)[1]);
        CHECK(options.size() == 30);
        for (const auto& option : options) {
            std::string var = "UDSHTTP_";
            for (char c : option.substr(2))
                var +=
                    c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            // A value every option refuses: not a number, size, user, mode, level or endpoint.
            const bool path = option == "--access-log" || option == "--audit-log";
            const std::string bad = path ? "" : "tcp://[";
            auto r = run({udshttpd_path()}, dir, {.uid = {}, .env = {var + "=" + bad}});
            if (path) {
                CHECK_MESSAGE(r.code == 2, var);
                CHECK_MESSAGE(r.err.find(var + ": needs a file path") != std::string::npos, r.err);
                continue;
            }
            CHECK_MESSAGE(r.code == 2, var << " gave " << r.code << ": " << r.err);
            CHECK_MESSAGE(r.err.starts_with("udshttpd: " + var + ": "), r.err);
        }

        // Good values take effect: two sockets from one list, a body limit, an access log.
        const auto a = dir.file("a.sock"), b = dir.file("b.sock"), log = dir.file("access.log");
        {
            child d({udshttpd_path()}, dir,
                    {.uid = {},
                     .env = {"UDSHTTP_LISTEN=" + a + "," + b, "UDSHTTP_MAX_BODY_BYTES=4B",
                             "UDSHTTP_ACCESS_LOG=" + log, "UDSHTTP_LOG_LEVEL=warn"}});
            for (int i = 0; i < 200 && !raw_socket(proto::endpoint::unix_path(b)).connected(); ++i)
                std::this_thread::sleep_for(10ms);
            client::client c;
            auto small = c.post(proto::make_url(proto::endpoint::unix_path(a), "/echo"), "1234");
            REQUIRE(small);
            CHECK(small->body == "1234");
            auto big = c.post(proto::make_url(proto::endpoint::unix_path(b), "/echo"), "12345");
            REQUIRE(big);
            CHECK(big->status == 413);
            CHECK(d.out().empty()); // UDSHTTP_LOG_LEVEL=warn hides the banner
            d.signal(SIGTERM);
            CHECK(d.wait(10s) == 0);
        }
        CHECK(read_file(log).find("\"status\":413") != std::string::npos);
        // --listen on the command line replaces UDSHTTP_LISTEN's list; other flags win too.
        const auto c_sock = dir.file("c.sock");
        child d({udshttpd_path(), "--listen", c_sock, "--max-body-bytes=1KiB"}, dir,
                {.uid = {}, .env = {"UDSHTTP_LISTEN=" + a, "UDSHTTP_MAX_BODY_BYTES=4B"}});
        REQUIRE(d.wait_for_output("listening on unix:" + c_sock));
        CHECK(d.out().find(a) == std::string::npos);
        client::client c;
        auto r = c.post(proto::make_url(proto::endpoint::unix_path(c_sock), "/echo"), "12345");
        REQUIRE(r);
        CHECK(r->status == 200);
    }

    TEST_CASE("curl --unix-socket: hello - JSON - echo of a file - echo JSON - errors") {
        if (!require_peer("curl", "curl"))
            return;
        daemon_fixture d(true);
        const auto sock = d.socket_path();
        auto curl = [&](std::vector<std::string> args) {
            std::vector<std::string> argv{"curl", "-sS", "--unix-socket", sock};
            argv.insert(argv.end(), args.begin(), args.end());
            return run(argv, d.dir);
        };
        CHECK(curl({"http://localhost/hello"}).out == "Hello Anonymous");
        CHECK(curl({"http://localhost/hello/Ada"}).out == "Hello Ada");
        CHECK(curl({"-H", "Accept: application/json", "http://localhost/hello/Ada"}).out ==
              R"({"message":"Hello Ada","name":"Ada"})");

        std::string blob(3 << 20, '\0'); // 3 MiB: curl sends Expect: 100-continue
        for (std::size_t i = 0; i < blob.size(); ++i)
            blob[i] = static_cast<char>(i * 131 + (i >> 11));
        write_file(d.dir.file("blob"), blob);
        auto echo = curl({"--data-binary", "@" + d.dir.file("blob"), "-H",
                          "Content-Type: image/x-test", "-D", d.dir.file("headers"), "-o",
                          d.dir.file("blob.out"), "http://localhost/echo"});
        CHECK(echo.code == 0);
        CHECK(read_file(d.dir.file("blob.out")) == blob);
        CHECK(read_file(d.dir.file("headers")).find("Content-Type: image/x-test") !=
              std::string::npos);

        auto chunked = curl({"-H", "Transfer-Encoding: chunked", "--data-binary", "chunky",
                             "http://localhost/echo"});
        CHECK(chunked.out == "chunky");

        auto info = nlohmann::json::parse(curl({"http://localhost/echo"}).out);
        CHECK(info["method"] == "GET");
        CHECK(info["target"] == "/echo");
        CHECK(info["peer"]["transport"] == "unix");
        CHECK(info["peer"]["uid"] == ::getuid());
        CHECK(info["peer"]["pid"].get<int>() > 0);
        CHECK(info["peer"]["pid"].get<int>() != ::getpid()); // it was curl

        auto http10 = curl({"-0", "-i", "http://localhost/hello"});
        CHECK(http10.out.starts_with("HTTP/1.0 200 OK"));

        auto nf = curl({"-w", "%{http_code}", "http://localhost/nope"});
        CHECK(nf.out.ends_with("404"));
        CHECK(nf.out.find(R"("code":"not_found")") != std::string::npos);

        auto tcp =
            run({"curl", "-sS", "http://127.0.0.1:" + std::to_string(d.tcp_port) + "/hello/tcp"},
                d.dir);
        CHECK(tcp.out == "Hello tcp");
        auto tcp_info = nlohmann::json::parse(
            run({"curl", "-sS", "http://127.0.0.1:" + std::to_string(d.tcp_port) + "/echo"}, d.dir)
                .out);
        CHECK(tcp_info["peer"]["address"] == "127.0.0.1");
        CHECK(tcp_info["peer"]["port"].get<int>() > 0);
    }

    TEST_CASE("curl over IPv6 and abstract sockets - several --listen at once") {
        if (!require_peer("curl", "curl"))
            return;
        temp_dir dir;
        const auto name = "udshttp-e2e-" + std::to_string(::getpid());
        child d({udshttpd_path(), "--listen", dir.file("a.sock"), "--listen", "@" + name,
                 "--listen", "[::1]:0"},
                dir);
        if (!d.wait_for_output("listening on tcp://[::1]:")) {
            if (d.err().find("Cannot assign requested address") != std::string::npos) {
                MESSAGE("skipped: no IPv6 loopback here: " << d.err());
                return;
            }
            FAIL("udshttpd did not start: " << d.err());
        }
        std::smatch m;
        const auto out = d.out();
        REQUIRE(std::regex_search(out, m, std::regex("tcp://\\[::1\\]:(\\d+)")));
        CHECK(run({"curl", "-sS", "-g", "http://[::1]:" + std::string(m[1]) + "/hello/six"}, dir)
                  .out == "Hello six");
        CHECK(
            run({"curl", "-sS", "--abstract-unix-socket", name, "http://localhost/hello/abs"}, dir)
                .out == "Hello abs");
        CHECK(run({"curl", "-sS", "--unix-socket", dir.file("a.sock"), "http://localhost/hello/p"},
                  dir)
                  .out == "Hello p");
    }

    TEST_CASE("udshttp CLI: curl's flags and exit codes") {
        daemon_fixture d(true);
        const auto url = d.unix_url("/hello/Ada");
        auto cli = [&](std::vector<std::string> args, child::spawn_options o = {}) {
            args.insert(args.begin(), udshttp_path());
            return run(args, d.dir, std::move(o));
        };
        auto hello = cli({url});
        CHECK(hello.code == 0);
        CHECK(hello.out == "Hello Ada");

        CHECK(cli({"http://127.0.0.1:" + std::to_string(d.tcp_port) + "/hello"}).out ==
              "Hello Anonymous");
        CHECK(cli({"--unix-socket", d.socket_path(), "http://localhost/hello/u"}).out == "Hello u");
        CHECK(cli({"-H", "Accept: application/json", url}).out ==
              R"({"message":"Hello Ada","name":"Ada"})");

        auto included = cli({"-i", url});
        CHECK(included.out.starts_with("HTTP/1.1 200 OK\r\n"));
        CHECK(included.out.find("Content-Length: 9\r\n") != std::string::npos);
        CHECK(included.out.ends_with("\r\n\r\nHello Ada"));

        std::string blob(1 << 20, '\0');
        for (std::size_t i = 0; i < blob.size(); ++i)
            blob[i] = static_cast<char>(i ^ (i >> 8));
        write_file(d.dir.file("blob"), blob);
        auto echo = cli({"--data-binary", "@" + d.dir.file("blob"), "-o", d.dir.file("out"),
                         d.unix_url("/echo")});
        CHECK(echo.code == 0);
        CHECK(read_file(d.dir.file("out")) == blob);

        auto from_stdin = cli({"-X", "PUT", "--data-binary", "@-", d.unix_url("/echo")},
                              {.uid = {}, .env = {}, .stdin_file = d.dir.file("blob")});
        CHECK(from_stdin.out == blob);

        write_file(d.dir.file("lines"), "a=1\nb=2\n");
        auto form = cli({"-d", "@" + d.dir.file("lines"), "-d", "c=3", "-w", " %{content_type}",
                         d.unix_url("/echo")});
        CHECK(form.out == "a=1b=2&c=3 application/x-www-form-urlencoded");

        auto json = cli({"--json", R"({"k":1})", d.unix_url("/echo")});
        CHECK(json.out == R"({"k":1})");

        auto verbose = cli({"-v", url});
        CHECK(verbose.err.find("> GET /hello/Ada HTTP/1.1") != std::string::npos);
        CHECK(verbose.err.find("< HTTP/1.1 200 OK") != std::string::npos);

        auto head = cli({"-I", url});
        CHECK(head.out.starts_with("HTTP/1.1 200 OK"));
        CHECK(head.out.ends_with("\r\n\r\n"));

        auto code = cli({"-s", "-o", "/dev/null", "-w", "%{http_code}\\n", d.unix_url("/nope")});
        CHECK(code.code == 0);
        CHECK(code.out == "404\n");

        auto fail = cli({"--fail", d.unix_url("/nope")});
        CHECK(fail.code == 22);
        CHECK(fail.out.empty());
        CHECK(fail.err == "udshttp: GET " + d.unix_url("/nope") +
                              ": the server answered 404 Not Found: no route for GET /nope\n");
        CHECK(cli({"-sf", d.unix_url("/nope")}).err.empty());
        CHECK(cli({"-sSf", d.unix_url("/nope")}).err.find("404") != std::string::npos);

        auto method = cli({"-X", "DELETE", "-f", d.unix_url("/echo")});
        CHECK(method.code == 22);
        CHECK(method.err.find("405 Method Not Allowed") != std::string::npos);

        auto no_server =
            cli({proto::make_url(proto::endpoint::unix_path(d.dir.file("none.sock")), "/x")});
        CHECK(no_server.code == 7);
        CHECK(no_server.err == "udshttp: connect to unix:" + d.dir.file("none.sock") +
                                   ": no such socket file (is the server running?)\n");

        auto bad_url = cli({"http+unix://%zz/"});
        CHECK(bad_url.code == 3);
        CHECK(bad_url.err.starts_with("udshttp: invalid URL 'http+unix://%zz/'"));

        auto missing_file = cli({"--data-binary", "@" + d.dir.file("nope"), url});
        CHECK(missing_file.code == 26);
        CHECK(missing_file.err ==
              "udshttp: cannot read '" + d.dir.file("nope") + "': No such file or directory\n");

        CHECK(cli({"--bogus", url}).code == 2);
        CHECK(cli({}).code == 2);
        auto help = cli({"--help"});
        CHECK(help.code == 0);
        CHECK(help.out.find("--unix-socket PATH") != std::string::npos);
    }

    TEST_CASE("udshttp routes URL: the routes of a running server - errors exit as curl would") {
        daemon_fixture d;
        auto r = run({udshttp_path(), "routes", d.unix_url("/")}, d.dir);
        CHECK(r.code == 0);
        CHECK(r.out.find("GET     /hello/{name}   Greets NAME\n") != std::string::npos);
        CHECK(r.out.find("POST    /echo           Echoes the body\n") != std::string::npos);
        CHECK(r.out.find("GET     /openapi.json   This API") != std::string::npos);
        CHECK(r.out.find("POST    /topics/{name}  Publishes to a topic\n") != std::string::npos);
        CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 14);
        auto none = run({udshttp_path(), "routes", "http+unix://%2Fno%2Fsuch.sock/"}, d.dir);
        CHECK(none.code == 7);
        CHECK(none.err.find("no such socket file") != std::string::npos);
        auto usage = run({udshttp_path(), "routes"}, d.dir);
        CHECK(usage.code == 2);
        // A server that is not udshttp: 404 for /openapi.json is exit 22, as curl -f.
        temp_dir other;
        server_fixture bare(true, {}, nullptr, false);
        auto not_ours = run({udshttp_path(), "routes", bare.url("/")}, other);
        CHECK(not_ours.code == 22);
        CHECK(not_ours.err.find("answered 404") != std::string::npos);
    }

    TEST_CASE("udshttp CLI: -m 0 means no deadline - udshttpd warns of a UDSHTTP_ typo") {
        server_fixture srv(true);
        temp_dir dir;
        auto r = run({udshttp_path(), "-m", "0", srv.url("/hello/none")}, dir);
        CHECK(r.code == 0);
        CHECK(r.out == "Hello none");
        auto v = run({udshttpd_path(), "--version"}, dir, {.env = {"UDSHTTP_LISTNE=/x.sock"}});
        CHECK(v.code == 0);
        CHECK(v.err == "udshttpd: warning: UDSHTTP_LISTNE names no udshttpd option; ignored "
                       "(see udshttpd --help)\n");
    }

    TEST_CASE("udshttp CLI: --retry-connrefused waits for a sidecar's socket to appear") {
        temp_dir dir;
        const auto sock = dir.file("late.sock");
        const auto url = proto::make_url(proto::endpoint::unix_path(sock), "/hello");
        // Without --retry-connrefused a missing socket file is not retried: exit 7 at once.
        auto refused = run({udshttp_path(), "--retry", "3", "--retry-delay", "100ms", url}, dir);
        CHECK(refused.code == 7);
        CHECK(refused.err.find("trying again") == std::string::npos);
        // With it, the call waits until the server is up.
        child cli(
            {udshttp_path(), "--retry", "30", "--retry-connrefused", "--retry-delay", "100ms", url},
            dir);
        std::this_thread::sleep_for(500ms);
        child server({udshttpd_path(), "--listen", sock}, dir);
        const auto code = cli.wait(20s);
        CHECK(code == 0);
        CHECK(cli.out() == "Hello Anonymous");
        CHECK(cli.err().find("no such socket file") != std::string::npos);
        CHECK(cli.err().find("trying again in 100ms") != std::string::npos);
        // --retry-max-time bounds the whole: no try starts after it.
        const auto t0 = std::chrono::steady_clock::now();
        auto bounded =
            run({udshttp_path(), "--retry", "100", "--retry-connrefused", "--retry-delay", "100ms",
                 "--retry-max-time", "500ms",
                 proto::make_url(proto::endpoint::unix_path(dir.file("never.sock")), "/")},
                dir);
        CHECK(bounded.code == 7);
        CHECK(std::chrono::steady_clock::now() - t0 < 3s);
    }

    TEST_CASE("udshttp CLI: --retry tries a 503 again - honours Retry-After - prints only the "
              "answer that counts") {
        if (!have_program("/usr/bin/python3")) {
            MESSAGE("skipped: /usr/bin/python3 is missing");
            return;
        }
        temp_dir dir;
        const auto sock = dir.file("flaky.sock");
        child server({"/usr/bin/python3", peers_dir() + "/flaky_server.py", sock, "2", "503", "0"},
                     dir);
        REQUIRE(eventually([&] { return std::filesystem::exists(sock); }));
        const auto url = proto::make_url(proto::endpoint::unix_path(sock), "/x");
        const auto header_file = dir.file("head.txt");
        auto r = run({udshttp_path(), "--retry", "3", "-D", header_file, url}, dir);
        CHECK(r.code == 0);
        CHECK(r.out == "ok"); // the two 503 bodies are not printed
        CHECK(r.err.find("the server answered 503") != std::string::npos);
        CHECK(r.err.find("trying again in 0s (3 retries left)") != std::string::npos);
        CHECK(read_file(header_file).starts_with("HTTP/1.0 200 OK\r\n")); // -D: the last head
        // Retries run out: the last answer is the result (with -f: exit 22, no body).
        child again({"/usr/bin/python3", peers_dir() + "/flaky_server.py", dir.file("f2.sock"), "5",
                     "503", "0"},
                    dir);
        REQUIRE(eventually([&] { return std::filesystem::exists(dir.file("f2.sock")); }));
        auto out_of_tries =
            run({udshttp_path(), "-f", "--retry", "1",
                 proto::make_url(proto::endpoint::unix_path(dir.file("f2.sock")), "/x")},
                dir);
        CHECK(out_of_tries.code == 22);
        CHECK(out_of_tries.out.empty());
        // Not a transient status: a 404 is not retried.
        child not_found(
            {"/usr/bin/python3", peers_dir() + "/flaky_server.py", dir.file("f3.sock"), "5", "404"},
            dir);
        REQUIRE(eventually([&] { return std::filesystem::exists(dir.file("f3.sock")); }));
        auto once = run({udshttp_path(), "--fail-with-body", "--retry", "3",
                         proto::make_url(proto::endpoint::unix_path(dir.file("f3.sock")), "/x")},
                        dir);
        CHECK(once.code == 22);
        CHECK(once.out == "failure 1"); // --fail-with-body: the body, and exit 22
        CHECK(once.err.find("trying again") == std::string::npos);
    }

    TEST_CASE("udshttp CLI: -A -e -u -b send their fields - a -H of the same name wins - "
              "UDSHTTP_SOCKET gives the socket") {
        server_fixture srv(true);
        temp_dir dir;
        auto r = run({udshttp_path(), "-A", "agent/1", "-e", "http://from", "-u", "ada:pw", "-b",
                      "k=v", "-H", "User-Agent: mine", srv.url("/echo")},
                     dir);
        REQUIRE(r.code == 0);
        const auto headers = nlohmann::json::parse(r.out)["headers"].dump();
        CHECK(headers.find("[\"User-Agent\",\"mine\"]") != std::string::npos);
        CHECK(headers.find("agent/1") == std::string::npos);
        CHECK(headers.find("[\"Referer\",\"http://from\"]") != std::string::npos);
        CHECK(headers.find("[\"Authorization\",\"Basic YWRhOnB3\"]") != std::string::npos);
        CHECK(headers.find("[\"Cookie\",\"k=v\"]") != std::string::npos);
        // -H @FILE, -H 'X;' and -H 'User-Agent:' (the default one is not sent).
        write_file(dir.file("fields"), "X-From-File: 1\r\nX-Empty;\n");
        auto forms = run(
            {udshttp_path(), "-H", "@" + dir.file("fields"), "-H", "User-Agent:", srv.url("/echo")},
            dir);
        REQUIRE(forms.code == 0);
        const auto sent = nlohmann::json::parse(forms.out)["headers"].dump();
        CHECK(sent.find("[\"X-From-File\",\"1\"]") != std::string::npos);
        CHECK(sent.find("[\"X-Empty\",\"\"]") != std::string::npos);
        CHECK(sent.find("User-Agent") == std::string::npos);
        auto jar = run({udshttp_path(), "-b", "cookies.txt", srv.url("/echo")}, dir);
        CHECK(jar.code == 2);
        CHECK(jar.err.find("reading cookies from a file is not supported") != std::string::npos);
        const auto sock = srv.endpoint().address;
        auto env = run({udshttp_path(), "/hello/env"}, dir, {.env = {"UDSHTTP_SOCKET=" + sock}});
        CHECK(env.code == 0);
        CHECK(env.out == "Hello env");
        // An explicit socket wins over the environment.
        auto flag = run({udshttp_path(), "--unix-socket", sock, "/hello/flag"}, dir,
                        {.env = {"UDSHTTP_SOCKET=" + dir.file("nothing.sock")}});
        CHECK(flag.code == 0);
        CHECK(flag.out == "Hello flag");
    }

    TEST_CASE("udshttp CLI: a reader that closes the pipe early is exit 23 - not SIGPIPE") {
        daemon_fixture d(false, {"--max-body-bytes", "16MiB"});
        const auto big = d.dir.file("big.bin");
        {
            std::ofstream f(big, std::ios::binary);
            const std::string block(64 * 1024, 'b');
            for (int i = 0; i < 64; ++i) // 4 MiB: far more than the pipe holds
                f << block;
        }
        auto r =
            run({"/bin/bash", "-c",
                 "'" + udshttp_path() + "' --data-binary @'" + big + "' '" + d.unix_url("/echo") +
                     "' | head -c 10 > /dev/null; exit ${PIPESTATUS[0]}"},
                d.dir);
        CHECK(r.code == 23);
        CHECK(r.err.find("cannot write stdout") != std::string::npos);
    }

    TEST_CASE("udshttp CLI: -w prints on every exit - 000 without a response - @file - json - "
              "an unknown variable warns") {
        server_fixture srv(true);
        temp_dir dir;
        const auto sock = srv.endpoint().address;
        auto ok = run({udshttp_path(), "-d", "abc", "-o", "/dev/null", "-w",
                       "%{http_code} %{method} %{size_upload} %{num_headers} %{exitcode} "
                       "%{url_effective}",
                       "--unix-socket", sock, "http://localhost/echo"},
                      dir);
        CHECK(ok.code == 0);
        CHECK(ok.out == "200 POST 3 4 0 http://localhost/echo");
        auto failed = run({udshttp_path(), "-f", "-w", "%{http_code} %{exitcode}", "--unix-socket",
                           sock, "/nope"},
                          dir);
        CHECK(failed.code == 22);
        CHECK(failed.out == "404 22"); // -f: no body, but -w's line
        auto refused = run({udshttp_path(), "-s", "-w", "%{http_code} %{exitcode} %{errormsg}",
                            proto::make_url(proto::endpoint::unix_path(dir.file("no.sock")), "/")},
                           dir);
        CHECK(refused.code == 7);
        CHECK(refused.out.starts_with("000 7 connect to unix:"));
        CHECK(refused.err.empty()); // -s
        write_file(dir.file("format"), "%{json}");
        auto json = run({udshttp_path(), "-o", "/dev/null", "-w", "@" + dir.file("format"),
                         "--unix-socket", sock, "/hello"},
                        dir);
        REQUIRE(json.code == 0);
        const auto j = nlohmann::json::parse(json.out);
        CHECK(j["http_code"] == 200);
        CHECK(j["size_download"] == 15);
        CHECK(j["url_effective"] == "http://localhost/hello");
        CHECK(j["time_total"].get<double>() >= j["time_starttransfer"].get<double>());
        auto unknown = run({udshttp_path(), "-o", "/dev/null", "-w", "[%{bogus}]", "--unix-socket",
                            sock, "/hello"},
                           dir);
        CHECK(unknown.code == 0);
        CHECK(unknown.out == "[]");
        CHECK(unknown.err == "udshttp: warning: unknown --write-out variable: 'bogus'\n");
    }

    TEST_CASE("udshttp CLI: -v shows both heads before the body - the User-Agent sent - -f -i "
              "prints the error's head") {
        server_fixture srv(true);
        temp_dir dir;
        const auto sock = srv.endpoint().address;
        auto v = run({"/bin/bash", "-c",
                      "'" + udshttp_path() + "' -v --unix-socket '" + sock + "' /hello 2>&1"},
                     dir);
        REQUIRE(v.code == 0);
        const auto sent = v.out.find("> GET /hello HTTP/1.1\n");
        const auto agent = v.out.find("> User-Agent: udshttp\n");
        const auto got = v.out.find("< HTTP/1.1 200 OK\n");
        const auto body = v.out.find("Hello Anonymous");
        CHECK(sent != std::string::npos);
        CHECK(agent != std::string::npos);
        CHECK(got != std::string::npos);
        CHECK(body != std::string::npos);
        CHECK(sent < got);
        CHECK(got < body);
        auto fi = run({udshttp_path(), "-f", "-i", "--unix-socket", sock, "/nope"}, dir);
        CHECK(fi.code == 22);
        CHECK(fi.out.starts_with("HTTP/1.1 404 Not Found\r\n"));
        CHECK(fi.out.ends_with("\r\n\r\n")); // the head, not the body
    }

    TEST_CASE("udshttp CLI: messages about what was typed - a file or directory at the socket "
              "path is named as such") {
        temp_dir dir;
        const auto said = [&](std::vector<std::string> args) {
            args.insert(args.begin(), udshttp_path());
            return run(args, dir);
        };
        auto sock_as_url = said({"./x.sock"});
        CHECK(sock_as_url.code == 3);
        CHECK(sock_as_url.err == "udshttp: './x.sock' looks like a socket file, not a URL: "
                                 "udshttp --unix-socket ./x.sock /PATH\n");
        auto bare_path = said({"/hello"});
        CHECK(bare_path.code == 3);
        CHECK(bare_path.err.find("'/hello' is a path with no server") != std::string::npos);
        auto space = said({"http://localhost/a b"});
        CHECK(space.code == 3);
        CHECK(space.err.find("a space at byte 19; write it as %20") != std::string::npos);
        write_file(dir.file("plain"), "not a socket");
        auto regular = said({"--unix-socket", dir.file("plain"), "/x"});
        CHECK(regular.code == 7);
        CHECK(regular.err.find(dir.file("plain") + " is a regular file, not a socket") !=
              std::string::npos);
        std::filesystem::create_directory(dir.file("adir"));
        auto directory = said({"--unix-socket", dir.file("adir"), "/x"});
        CHECK(directory.code == 7);
        CHECK(directory.err.find(" is a directory, not a socket") != std::string::npos);
    }

    TEST_CASE("udshttp CLI: -G - --data-urlencode - dot segments - -r build the same request as "
              "curl's") {
        if (!require_peer("curl", "curl"))
            return;
        server_fixture srv(true);
        temp_dir dir;
        const auto sock = srv.endpoint().address;
        write_file(dir.file("v"), "from file&=");
        const std::vector<std::vector<std::string>> cases{
            {"-G", "-d", "a=1", "--data-urlencode", "q=hello world/\xc3\xbc", "--data-urlencode",
             "f@" + dir.file("v"), "--data-urlencode", "=x y", "http://localhost/echo?z=0"},
            {"--data-urlencode", "q=a b", "--data-urlencode", "plain text",
             "http://localhost/echo"},
            {"-G", "http://localhost/a/./b/../../echo?x=/../y"}, // the path's resolved
            {"-G", "-r", "0-4", "http://localhost/echo"},
        };
        for (const auto& args : cases) {
            std::vector<std::string> ours{udshttp_path(), "-s", "--unix-socket", sock};
            std::vector<std::string> theirs{"curl", "-s", "--unix-socket", sock};
            ours.insert(ours.end(), args.begin(), args.end());
            theirs.insert(theirs.end(), args.begin(), args.end());
            auto a = run(ours, dir);
            auto b = run(theirs, dir);
            INFO(args.front());
            REQUIRE(a.code == 0);
            REQUIRE(b.code == 0);
            if (args.front() == "-G") { // the echo of a GET describes the request
                CHECK(nlohmann::json::parse(a.out)["target"] ==
                      nlohmann::json::parse(b.out)["target"]);
                CHECK(nlohmann::json::parse(a.out)["method"] == "GET");
                const auto range = [](const std::string& out) {
                    const auto echoed = nlohmann::json::parse(out); // alive for the loop
                    for (const auto& f : echoed["headers"])
                        if (f[0] == "Range")
                            return f[1].get<std::string>();
                    return std::string();
                };
                CHECK(range(a.out) == range(b.out));
            } else { // the echo of a POST is its body
                CHECK(a.out == b.out);
                CHECK(a.out == "q=a+b&plain+text");
            }
        }
    }

    TEST_CASE("udshttp CLI: -O names the file after the URL - --output-dir - --create-dirs") {
        server_fixture srv(true);
        temp_dir dir;
        const auto sock = srv.endpoint().address;
        auto r = run({udshttp_path(), "-O", "--output-dir", dir.file("a/b"), "--create-dirs",
                      "--unix-socket", sock, "/hello/Ada?x=1"},
                     dir);
        CHECK(r.code == 0);
        CHECK(read_file(dir.file("a/b/Ada")) == "Hello Ada");
        auto none = run({udshttp_path(), "-O", "--unix-socket", sock, "/"}, dir);
        CHECK(none.code == 23); // as curl: no file name
        auto missing_dir =
            run({udshttp_path(), "-o", dir.file("x/y/out"), "--unix-socket", sock, "/hello"}, dir);
        CHECK(missing_dir.code == 23); // without --create-dirs
    }

    TEST_CASE("udshttp CLI: --path-as-is sends the dot segments as given") {
        server_fixture srv(true);
        temp_dir dir;
        auto r = run({udshttp_path(), "--path-as-is", "--unix-socket", srv.endpoint().address,
                      "http://localhost/a/../echo"},
                     dir);
        CHECK(r.code == 0);
        CHECK(r.out.find("no route for GET /a/../echo") != std::string::npos);
    }

    TEST_CASE("udshttp CLI: timeouts exit 28 and say which deadline fired") {
        temp_dir dir;
        // A listening socket nobody answers: a Python one-liner holds it open.
        if (!require_peer("/usr/bin/python3", "python3"))
            return;
        const auto path = dir.file("mute.sock");
        child holder({"/usr/bin/python3", "-c",
                      "import socket,sys,time\n"
                      "s=socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])\ns.listen(8)\n"
                      "print('ready',flush=True)\ntime.sleep(60)\n",
                      path},
                     dir);
        REQUIRE(holder.wait_for_output("ready"));
        auto r = run({udshttp_path(), "--max-time", "300ms",
                      proto::make_url(proto::endpoint::unix_path(path), "/")},
                     dir);
        CHECK(r.code == 28);
        CHECK(r.err.find("request deadline of 300 ms exceeded") != std::string::npos);
    }

    TEST_CASE("udshttp CLI: --max-time fires on time while a -T - pipe stays quiet - always 28") {
        // `sleep 3 | udshttp --max-time 1 -T - URL`: the body source used to be read on the I/O
        // thread, so the deadline waited for the pipe and the exit code was a race.
        daemon_fixture d;
        const auto fifo = d.dir.file("quiet.fifo");
        REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
        // Our end open for writing and never written: the child's reads would block.
        const int writer = ::open(fifo.c_str(), O_RDWR | O_CLOEXEC);
        REQUIRE(writer >= 0);
        for (int i = 0; i < 5; ++i) {
            const auto start = std::chrono::steady_clock::now();
            auto r = run({udshttp_path(), "--max-time", "300ms", "-T", "-", d.unix_url("/echo")},
                         d.dir, {.stdin_file = fifo});
            const auto took = std::chrono::steady_clock::now() - start;
            INFO("run " << i << ": " << r.err);
            CHECK(r.code == 28);
            CHECK(r.err.find("request deadline of 300 ms exceeded") != std::string::npos);
            CHECK(took < 2500ms); // loose: the point is that it does not wait for the pipe
        }
        // Data that trickles in within the deadline is sent whole.
        const std::string part = "piece\n";
        REQUIRE(::write(writer, part.data(), part.size()) == static_cast<ssize_t>(part.size()));
        std::thread closer([&] {
            std::this_thread::sleep_for(200ms);
            const std::string more = "more\n";
            (void)::write(writer, more.data(), more.size());
            ::close(writer);
        });
        auto ok = run({udshttp_path(), "--max-time", "5s", "-T", "-", d.unix_url("/echo")}, d.dir,
                      {.stdin_file = fifo});
        closer.join();
        CHECK(ok.code == 0);
        CHECK(ok.out == "piece\nmore\n");
    }

    TEST_CASE("udshttp CLI: permission denied on the socket - as another user") {
        if (::geteuid() != 0) {
            MESSAGE("skipped: needs root to run the CLI as nobody (the client suite covers this "
                    "case in-process when not root)");
            return;
        }
        daemon_fixture d(false, {"--socket-mode", "0660"});
        ::chmod(d.dir.path().c_str(), 0755); // nobody may traverse the dir, not use the socket
        auto r = run({udshttp_path(), d.unix_url("/hello")}, d.dir,
                     {.uid = 65534, .env = {}, .stdin_file = {}});
        CHECK(r.code == 7);
        CHECK(r.err.find("connect to unix:" + d.socket_path() + ": permission denied") !=
              std::string::npos);
    }

    TEST_CASE("Python aiohttp UnixConnector drives the server") {
        if (!require_python_module("aiohttp", "python3-aiohttp"))
            return;
        daemon_fixture d;
        auto r =
            run({"/usr/bin/python3", peers_dir() + "/aiohttp_client.py", d.socket_path()}, d.dir);
        INFO(r.out << r.err);
        CHECK(r.code == 0);
        CHECK(r.out.find("checks passed") != std::string::npos);
    }

    TEST_CASE("100 clients at once - 100 keep-alive requests each - all answered correctly") {
        daemon_fixture d(false, {"--threads", "2"});
        constexpr int clients = 100;
        constexpr int requests = 100;
        std::atomic<int> good{0};
        std::atomic<int> connections{0};
        std::atomic<bool> go{false};
        std::vector<std::thread> threads;
        for (int t = 0; t < clients; ++t)
            threads.emplace_back([&, t] {
                while (!go)
                    std::this_thread::yield();
                client::client c;
                for (int i = 0; i < requests; ++i) {
                    const auto name = std::to_string(t) + "-" + std::to_string(i);
                    if (i % 2 == 0) {
                        auto r = c.get(d.unix_url("/hello/" + name));
                        good += r && r->body == "Hello " + name;
                    } else {
                        auto r = c.post(d.unix_url("/echo"), name, "text/plain");
                        good += r && r->body == name;
                    }
                }
                connections += static_cast<int>(c.connections_opened());
            });
        go = true;
        for (auto& t : threads)
            t.join();
        CHECK(good == clients * requests);
        CHECK(connections == clients); // keep-alive held for every client
    }

} // TEST_SUITE
