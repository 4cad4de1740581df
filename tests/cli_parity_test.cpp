// The CLI's parity with curl: each invocation in the table runs through curl and through
// udshttp, against the same servers (udshttpd, and tests/peers/curl_peer.py for redirects,
// encodings and HTTP/1.0), and must give the same stdout, exit code and created files.

#include "support/support.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <signal.h>

#include <sstream>

using namespace udshttp;
using namespace udshttp::test;
using namespace std::chrono_literals;

namespace {

// {P}: the program on udshttpd's socket; {Q}: on the peer's. Each line is run by sh in a work
// directory of its own that holds in.txt, in.bin, hdrs.txt and cfg.txt.
const char* const cases[] = {
    "{P} http://localhost/hello",
    "{P} http://localhost/hello/Ada",
    "{P} -H 'Accept: application/json' http://localhost/hello/Ada",
    "{P} -i http://localhost/hello",
    "{P} -I http://localhost/hello",
    "{P} -s -o out.txt http://localhost/hello",
    "{P} -f http://localhost/nope",
    "{P} --fail-with-body http://localhost/nope",
    "{P} http://localhost/nope",
    "{P} -w '%{http_code}\\n' -o /dev/null http://localhost/nope",
    "{P} -s -w '%{http_code} %{size_download} %{content_type}\\n' http://localhost/hello",
    "{P} -d a=1 http://localhost/echo",
    "{P} -d a=1 -d b=2 http://localhost/echo",
    "{P} --data-binary @in.bin http://localhost/echo",
    "{P} -d @in.txt http://localhost/echo",
    "{P} --data-raw @x http://localhost/echo",
    "{P} --data-urlencode 'q=a b&c' http://localhost/echo",
    "{P} --data-urlencode name@in.txt http://localhost/echo",
    "{P} -G -d q=1 -d r=2 http://localhost/echo",
    "{P} -G --data-urlencode 'q=x y' http://localhost/echo",
    "{P} --json '{\"a\":1}' http://localhost/echo",
    "{P} -X PUT -d x http://localhost/echo",
    "{P} -X PATCH -d x http://localhost/echo",
    "{P} -X DELETE http://localhost/hello",
    "{P} -X POST http://localhost/echo",
    "{P} -T in.txt http://localhost/echo",
    "printf piped | {P} -T - http://localhost/echo",
    "printf piped | {P} --data-binary @- http://localhost/echo",
    "{P} -H 'X-One: 1' http://localhost/echo",
    "{P} -H 'X-Empty;' http://localhost/echo",
    "{P} -H 'User-Agent:' http://localhost/echo",
    "{P} -H @hdrs.txt http://localhost/echo",
    "{P} -e http://ref/ http://localhost/echo",
    "{P} -b 'a=1; b=2' http://localhost/echo",
    "{P} -u user:pass http://localhost/echo",
    "{P} -r 0-9 http://localhost/echo",
    "{P} -O http://localhost/hello/Ada",
    "{P} --output-dir d --create-dirs -O http://localhost/hello/Bo",
    "{P} --create-dirs -o a/b/c.txt http://localhost/hello",
    "{P} -D h.txt -o /dev/null http://localhost/hello",
    "{P} -D - http://localhost/hello",
    "{P} http://localhost/hello http://localhost/hello/Ada",
    "{P} -o one.txt -o two.txt http://localhost/hello http://localhost/hello/Ada",
    "{P} -w '%{url_effective}\\n' -o /dev/null http://localhost/hello",
    "{P} -w '%{method} %{http_version}\\n' -o /dev/null http://localhost/hello",
    "{P} -f -w '%{exitcode}\\n' -o /dev/null http://localhost/nope",
    "{P} -w '%{size_upload}\\n' -o /dev/null -d hello http://localhost/echo",
    "{P} --path-as-is http://localhost/a/../hello",
    "{P} http://localhost/a/../hello",
    "{P} http://localhost/./hello",
    "{P} -K cfg.txt",
    "{P} --http1.0 http://localhost/echo",
    "{P} --http1.0 -i http://localhost/hello",
    "{P} -F name=Ada http://localhost/echo",
    "{P} -F file=@in.txt http://localhost/echo",
    "{P} -F 'file=@in.txt;type=text/x-custom' http://localhost/echo",
    "{P} -F 'file=@in.bin;filename=data.bin' -F note=hi http://localhost/echo",
    "{P} -F 'text=<in.txt' http://localhost/echo",
    "{P} -sS http://localhost/hello",
    "{P} -m 5 http://localhost/hello",
    "{P} --retry 2 http://localhost/hello",
    "{P} -N http://localhost/hello",
    "{P} -v http://localhost/hello",
    "{P} --url http://localhost/hello",
    "{P} -s -o /dev/null -w '%{http_code}' http://localhost/echo -d x",
    "{Q} -L http://localhost/redirect/3",
    "{Q} http://localhost/redirect/3",
    "{Q} -L --max-redirs 1 http://localhost/redirect/3",
    "{Q} -L http://localhost/absolute",
    "{Q} -L http://localhost/relative/a/b",
    "{Q} -L -d x=1 http://localhost/see-other",
    "{Q} -L -d x=1 http://localhost/temporary",
    "{Q} -L -i http://localhost/redirect/1",
    "{Q} -L -D h.txt -o /dev/null http://localhost/redirect/2",
    "{Q} -L -D - http://localhost/redirect/1",
    "{Q} -L -w '%{num_redirects} %{url_effective}\\n' -o /dev/null http://localhost/redirect/2",
    "{Q} --compressed http://localhost/gzip",
    "{Q} --compressed http://localhost/deflate",
    "{Q} --compressed http://localhost/raw-deflate",
    "{Q} --compressed http://localhost/bad-gzip",
    "{Q} http://localhost/gzip",
    "{Q} --compressed -o z.txt http://localhost/gzip",
    "{Q} --http1.0 http://localhost/version",
};

// What may differ between two correct runs: Date fields, multipart boundaries, pids, and the
// order of the request's fields in GET /echo's description.
std::string normalize(std::string text) {
    text = std::regex_replace(text, std::regex("(^|\\n)[Dd]ate: [^\\r\\n]*\\r?\\n"), "$1");
    text = std::regex_replace(text, std::regex("-{24}[0-9a-f]{16}"), "BOUNDARY");
    std::istringstream lines(text);
    std::string out;
    for (std::string line; std::getline(lines, line);) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_object() && j.contains("headers") && j.contains("peer")) {
            j["peer"].erase("pid");
            std::sort(j["headers"].begin(), j["headers"].end());
            line = j.dump();
        }
        out += line + '\n';
    }
    return out;
}

// The files a run left in its work directory (but the inputs), each normalized.
std::map<std::string, std::string> files_in(const std::string& dir) {
    std::map<std::string, std::string> out;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
        const auto rel = std::filesystem::relative(e.path(), dir).string();
        if (rel == "in.txt" || rel == "in.bin" || rel == "hdrs.txt" || rel == "cfg.txt")
            continue;
        out[rel] = e.is_regular_file() ? normalize(read_file(e.path().string())) : "(dir)";
    }
    return out;
}

void make_inputs(const std::string& dir) {
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/in.txt") << "line one\nline two\n";
    std::string bin;
    for (int i = 0; i < 512; ++i)
        bin += static_cast<char>(i * 7);
    std::ofstream(dir + "/in.bin", std::ios::binary) << bin;
    std::ofstream(dir + "/hdrs.txt") << "X-From-File: yes\nX-Second: 2\n";
    std::ofstream(dir + "/cfg.txt") << "# a curl config file\nurl = \"http://localhost/hello\"\n"
                                       "  silent\nheader = \"X-Cfg: on\"\n";
}

std::string substitute(std::string line, const std::string& program, const std::string& p_sock,
                       const std::string& q_sock) {
    const auto put = [&](const std::string& key, const std::string& sock) {
        for (auto at = line.find(key); at != std::string::npos; at = line.find(key))
            line.replace(at, key.size(), program + " --unix-socket " + sock + " -A parity");
    };
    put("{P}", p_sock);
    put("{Q}", q_sock);
    return line;
}

} // namespace

TEST_SUITE("e2e") {
    TEST_CASE("udshttp CLI: the same stdout - exit code and files as curl - for every case in "
              "the table") {
        if (!require_peer("/usr/bin/curl", "curl") || !require_peer("/usr/bin/python3", "python3"))
            return;
        daemon_fixture d;
        const auto peer_sock = d.dir.file("peer.sock");
        child peer({"/usr/bin/python3", peers_dir() + "/curl_peer.py", peer_sock}, d.dir);
        REQUIRE(peer.wait_for_output("ready"));
        static_assert(std::size(cases) >= 70);
        int same = 0;
        int n = 0;
        for (const char* c : cases) {
            ++n;
            std::map<std::string, run_result> got;
            std::map<std::string, std::map<std::string, std::string>> files;
            for (const auto& [name, program] :
                 {std::pair<std::string, std::string>{"curl", "/usr/bin/curl"},
                  {"udshttp", udshttp_path()}}) {
                const auto work = d.dir.file("case" + std::to_string(n) + "-" + name);
                make_inputs(work);
                const auto line = substitute(c, program, d.socket_path(), peer_sock);
                got[name] = run({"/bin/sh", "-c", "cd '" + work + "' && " + line}, d.dir, {}, 30s);
                files[name] = files_in(work);
            }
            INFO("case " << n << ": " << std::string(c) << "\ncurl stderr: " << got["curl"].err
                         << "\nudshttp stderr: " << got["udshttp"].err);
            CHECK(got["udshttp"].code == got["curl"].code);
            CHECK(normalize(got["udshttp"].out) == normalize(got["curl"].out));
            CHECK(files["udshttp"] == files["curl"]);
            same += got["udshttp"].code == got["curl"].code &&
                    normalize(got["udshttp"].out) == normalize(got["curl"].out) &&
                    files["udshttp"] == files["curl"];
        }
        MESSAGE("curl parity: " << same << " of " << n << " cases the same");
        peer.signal(SIGTERM);
    }
}
