// The project as others get it: cmake --install into a temporary prefix, a separate project
// that finds it with find_package(udshttp CONFIG) and one built with pkg-config, both run
// against the installed udshttpd; and the .deb CPack makes, checked with dpkg-deb.

#include "support/support.hpp"

#include <udshttp/proto/url.hpp>
#include <udshttp/proto/version.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace udshttp;
using namespace udshttp::test;
using namespace std::chrono_literals;

namespace {

namespace fs = std::filesystem;

const std::string build_dir = UDSHTTP_TEST_BUILD_DIR;
const std::string sanitize = UDSHTTP_TEST_SANITIZE; // this build's sanitizers, for consumers

std::vector<std::string> split(const std::string& text) {
    std::istringstream in(text);
    std::vector<std::string> out;
    for (std::string word; in >> word;)
        out.push_back(word);
    return out;
}

// Runs a step that must succeed, with its output in the failure message.
run_result must(std::vector<std::string> argv, const temp_dir& dir,
                child::spawn_options options = {}) {
    auto r = run(argv, dir, std::move(options), 110s);
    REQUIRE_MESSAGE(r.code == 0, argv.front() << " failed (" << r.code << "):\n" << r.out << r.err);
    return r;
}

// The options a program's --help names: every --long one, and each short -X that opens an
// option line ("  -X, --long ..."). Lines that show a curl command are not ours.
std::set<std::string> help_options(const std::string& program, const temp_dir& dir) {
    std::string help;
    for (const auto& line : lines_of(must({program, "--help"}, dir).out))
        if (line.find("curl --") == std::string::npos)
            help += "\n" + line;
    std::set<std::string> out;
    const std::regex long_option("--[a-z0-9][a-z0-9.-]*[a-z0-9]");
    for (std::sregex_iterator i(help.begin(), help.end(), long_option), end; i != end; ++i)
        out.insert(i->str());
    const std::regex short_option("\n +(-[A-Za-z0-9#]), --");
    for (std::sregex_iterator i(help.begin(), help.end(), short_option), end; i != end; ++i)
        out.insert((*i)[1].str());
    return out;
}

// Whether TEXT names OPTION as a whole word (--retry is not found in --retry-delay alone).
bool names_option(const std::string& text, const std::string& option) {
    for (auto at = text.find(option); at != std::string::npos; at = text.find(option, at + 1)) {
        const auto next = at + option.size();
        const bool word_ends = next == text.size() || !(std::isalnum(uint8_t(text[next])) ||
                                                        text[next] == '-' || text[next] == '.');
        const bool word_starts = at == 0 || !std::isalnum(uint8_t(text[at - 1]));
        if (word_starts && word_ends)
            return true;
    }
    return false;
}

// The completions bash offers for WORDS (the last one being completed) with FILE sourced.
std::set<std::string> complete(const std::string& file, const std::string& function,
                               const std::vector<std::string>& words, const temp_dir& dir) {
    std::string script = "source '" + file + "'; COMP_WORDS=(";
    for (auto& w : words)
        script += "'" + w + "' ";
    script += "); COMP_CWORD=" + std::to_string(words.size() - 1) + "; " + function +
              "; printf '%s\\n' \"${COMPREPLY[@]}\"";
    const auto lines = lines_of(must({"/bin/bash", "-c", script}, dir).out);
    return {lines.begin(), lines.end()};
}

} // namespace

TEST_SUITE("package") {
    TEST_CASE("cmake --install: find_package(udshttp) and pkg-config consumers build and run") {
        // examples/consumer builds with -Wall -Wextra -Werror, so udshttp's headers and the
        // README's snippets stay warning-free in a user's strict build.
        if (!require_peer("pkg-config", "pkg-config"))
            return;
        temp_dir dir;
        const auto prefix = dir.file("prefix");
        must({"cmake", "--install", build_dir, "--prefix", prefix}, dir);
        for (const char* f :
             {"bin/udshttpd", "bin/udshttp", "include/udshttp/client/client.hpp",
              "include/udshttp/service/server.hpp", "include/udshttp/proto/version.hpp",
              "lib/cmake/udshttp/udshttpConfig.cmake",
              "lib/cmake/udshttp/udshttpConfigVersion.cmake", "lib/pkgconfig/udshttp.pc",
              "lib/libudshttp_client.a", "share/man/man8/udshttpd.8.gz",
              "share/man/man1/udshttp.1.gz", "share/bash-completion/completions/udshttp",
              "share/bash-completion/completions/udshttpd", "share/doc/udshttp/copyright",
              "share/doc/udshttp/changelog.gz", "lib/sysusers.d/udshttp.conf"})
            CHECK_MESSAGE(fs::exists(prefix + "/" + f), std::string(f));
        // The unit starts the binary this install put there, not /usr/bin's.
        const auto unit = read_file(prefix + "/lib/systemd/system/udshttpd.service");
        CHECK(unit.find("ExecStart=" + prefix + "/bin/udshttpd --listen systemd:udshttp") !=
              std::string::npos);
        CHECK(unit.find("/usr/bin/udshttpd") == std::string::npos);
        CHECK(fs::exists(prefix + "/lib/systemd/system/udshttpd.socket"));

        // The installed server, for both consumers to call.
        const auto sock = dir.file("live.sock");
        child server({prefix + "/bin/udshttpd", "--listen", sock}, dir);
        REQUIRE(server.wait_for_output("listening on unix:"));
        const auto url = proto::make_url(proto::endpoint::unix_path(sock), "/hello");

        std::vector<std::string> configure{"cmake",
                                           "-S",
                                           source_dir() + "/examples/consumer",
                                           "-B",
                                           dir.file("consumer"),
                                           "-DCMAKE_PREFIX_PATH=" + prefix,
                                           "-DCMAKE_CXX_COMPILER=" UDSHTTP_TEST_CXX};
        if (have_program("ccache"))
            configure.push_back("-DCMAKE_CXX_COMPILER_LAUNCHER=ccache");
        if (!sanitize.empty()) {
            // GCC's -Wtsan: ThreadSanitizer does not model the fences in Asio's headers, which
            // asio_user compiles itself (our own build compiles Asio once, in boost_impl).
            configure.push_back("-DCMAKE_CXX_FLAGS=-fsanitize=" + sanitize +
                                (sanitize == "thread" ? " -Wno-tsan" : ""));
            configure.push_back("-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=" + sanitize);
        }
        must(configure, dir);
        must({"cmake", "--build", dir.file("consumer")}, dir);
        auto consumer = must({dir.file("consumer/consumer"), url}, dir);
        CHECK(consumer.out.find("own route: {\"square\":144}") != std::string::npos);
        CHECK(consumer.out.find(": 200 Hello Anonymous") != std::string::npos);
        // Programs with Asio of their own: io_service::post() next to the async client, and
        // Asio compiled separately by the program itself. Both link, run and agree with ours.
        CHECK(must({dir.file("consumer/asio_user"), url}, dir).out ==
              "posted 1, 200 Hello Anonymous\n");
        CHECK(must({dir.file("consumer/own_asio"), url}, dir).out ==
              "posted 1, 200 Hello Anonymous\n");

        // pkg-config finds its prefix from where the .pc file lies.
        const std::vector<std::string> env{"PKG_CONFIG_PATH=" + prefix + "/lib/pkgconfig"};
        auto flags =
            must({"pkg-config", "--cflags", "--libs", "udshttp"}, dir, {.uid = {}, .env = env});
        CHECK(flags.out.find("-ludshttp_client") != std::string::npos);
        auto version =
            must({"pkg-config", "--modversion", "udshttp"}, dir, {.uid = {}, .env = env});
        CHECK(version.out == UDSHTTP_VERSION_STRING "\n");
        std::vector<std::string> compile{UDSHTTP_TEST_CXX, "-std=c++20",
                                         source_dir() + "/examples/consumer/pkg_config.cpp", "-o",
                                         dir.file("pkg_config")};
        for (auto& f : split(flags.out))
            compile.push_back(f);
        if (!sanitize.empty())
            compile.push_back("-fsanitize=" + sanitize);
        must(compile, dir);
        auto plain = must({dir.file("pkg_config"), url}, dir);
        CHECK(plain.out == "200 Hello Anonymous\n");

        // The version file refuses a version we are not.
        const auto wants = dir.file("wants-9");
        fs::create_directories(wants);
        write_file(wants + "/CMakeLists.txt", "cmake_minimum_required(VERSION 3.25)\n"
                                              "project(wants NONE)\n"
                                              "find_package(udshttp 9.0 CONFIG REQUIRED)\n");
        auto refused =
            run({"cmake", "-S", wants, "-B", wants + "/b", "-DCMAKE_PREFIX_PATH=" + prefix}, dir);
        CHECK(refused.code != 0);
        CHECK(refused.err.find("compatible with requested version \"9.0\"") != std::string::npos);
        CHECK(refused.err.find("version: " UDSHTTP_VERSION_STRING) != std::string::npos);
    }

    TEST_CASE("cpack makes a .deb of the binaries - headers - CMake package and systemd units") {
        if (!require_peer("dpkg-shlibdeps", "dpkg-dev"))
            return;
        temp_dir dir;
        must({"cpack", "-G", "DEB", "--config", build_dir + "/CPackConfig.cmake", "-B",
              dir.file("out")},
             dir);
        const auto deb = dir.file("out/udshttp_" UDSHTTP_VERSION_STRING "_amd64.deb");
        REQUIRE_MESSAGE(fs::exists(deb), deb);
        const auto contents = must({"dpkg-deb", "-c", deb}, dir).out;
        for (const char* f :
             {"./usr/bin/udshttpd", "./usr/bin/udshttp", "./usr/include/udshttp/client/client.hpp",
              "./usr/include/udshttp/service/server.hpp", "./usr/lib/libudshttp_service.a",
              "./usr/lib/cmake/udshttp/udshttpConfig.cmake", "./usr/lib/pkgconfig/udshttp.pc",
              "./usr/lib/systemd/system/udshttpd.socket",
              "./usr/lib/systemd/system/udshttpd.service", "./usr/share/man/man8/udshttpd.8.gz",
              "./usr/share/man/man1/udshttp.1.gz", "./usr/share/doc/udshttp/copyright",
              "./usr/share/doc/udshttp/changelog.gz", "./usr/lib/sysusers.d/udshttp.conf",
              "./usr/share/bash-completion/completions/udshttp",
              "./usr/share/bash-completion/completions/udshttpd"})
            CHECK_MESSAGE(contents.find(std::string(f) + "\n") != std::string::npos,
                          std::string(f));
        // The unit starts the binary where the package puts it.
        const auto extracted = dir.file("x");
        must({"dpkg-deb", "-x", deb, extracted}, dir);
        CHECK(read_file(extracted + "/usr/lib/systemd/system/udshttpd.service")
                  .find("ExecStart=/usr/bin/udshttpd ") != std::string::npos);
        const auto depends = must({"dpkg-deb", "-f", deb, "Depends"}, dir).out;
        CHECK(depends.find("libboost-url1.81.0") != std::string::npos);
        CHECK(depends.find("libstdc++6") != std::string::npos);

        // A real maintainer, the one the changelog names; the changelog's version is ours.
        const auto maintainer = must({"dpkg-deb", "-f", deb, "Maintainer"}, dir).out;
        CHECK(std::regex_match(maintainer, std::regex("[^<>]+ <[^@<>]+@[^@<>.]+\\.[^@<>]+>\n")));
        CHECK(maintainer.find("localhost") == std::string::npos);
        const auto changelog = dir.file("changelog");
        write_file(
            changelog,
            must({"gzip", "-dc", extracted + "/usr/share/doc/udshttp/changelog.gz"}, dir).out);
        CHECK(must({"dpkg-parsechangelog", "-l", changelog, "-S", "Maintainer"}, dir).out ==
              maintainer);
        CHECK(must({"dpkg-parsechangelog", "-l", changelog, "-S", "Version"}, dir).out ==
              UDSHTTP_VERSION_STRING "\n");
        CHECK(read_file(extracted + "/usr/share/doc/udshttp/copyright")
                  .starts_with("Format: https://www.debian.org/doc/packaging-manuals/"
                               "copyright-format/1.0/\n"));

        // The postinst creates the group the socket unit names. Run for real against the
        // unpacked tree as its root (DPKG_ROOT, as dpkg gives it), so this machine's
        // /etc/group is left alone; twice, as an upgrade runs it again.
        const auto control = dir.file("control");
        must({"dpkg-deb", "-e", deb, control}, dir);
        REQUIRE(fs::exists(control + "/postinst"));
        CHECK((fs::status(control + "/postinst").permissions() & fs::perms::owner_exec) !=
              fs::perms::none);
        CHECK(read_file(extracted + "/usr/lib/systemd/system/udshttpd.socket")
                  .find("\nSocketGroup=udshttp\n") != std::string::npos);
        if (require_peer("systemd-sysusers", "systemd")) {
            fs::create_directories(extracted + "/etc");
            const std::vector<std::string> env{"DPKG_ROOT=" + extracted};
            must({"/bin/sh", control + "/postinst", "configure"}, dir, {.uid = {}, .env = env});
            must({"/bin/sh", control + "/postinst", "configure"}, dir, {.uid = {}, .env = env});
            const auto group = read_file(extracted + "/etc/group");
            CHECK(std::regex_search(group, std::regex("(^|\n)udshttp:x:[0-9]+:\n")));
            CHECK(std::count(group.begin(), group.end(), '\n') == 1);
        }
    }

    TEST_CASE("README describes every option --help names") {
        temp_dir dir;
        const auto readme = read_file(source_dir() + "/README.md");
        for (const auto& program : {udshttpd_path(), udshttp_path()})
            for (const auto& option : help_options(program, dir))
                CHECK_MESSAGE(names_option(readme, option), "README.md does not name " << option);
    }

    TEST_CASE("man pages describe every option --help names and render without a warning") {
        if (!require_peer("groff", "groff-base"))
            return;
        temp_dir dir;
        for (const auto& [program, page] :
             {std::pair{udshttpd_path(), "udshttpd.8"}, std::pair{udshttp_path(), "udshttp.1"}}) {
            const auto source = source_dir() + "/docs/man/" + page;
            auto text = read_file(source);
            // roff writes a hyphen-minus as \-; read it as the - the user types.
            for (auto at = text.find("\\-"); at != std::string::npos; at = text.find("\\-", at))
                text.erase(at, 1);
            const auto options = help_options(program, dir);
            CHECK(options.size() > 20);
            for (const auto& option : options)
                CHECK_MESSAGE(names_option(text, option), page << " does not describe " << option);
            const auto r = run({"groff", "-man", "-Tutf8", "-ww", "-z", source}, dir);
            CHECK(r.code == 0);
            CHECK_MESSAGE(r.err.empty(), r.err);
        }
    }

    TEST_CASE("bash completion offers every option --help names, and values where they are few") {
        temp_dir dir;
        const auto completions = source_dir() + "/packaging/bash-completion/";
        const auto udshttpd = completions + "udshttpd";
        const auto udshttp = completions + "udshttp";
        auto offered = complete(udshttpd, "_udshttpd", {"udshttpd", "--"}, dir);
        for (const auto& option : help_options(udshttpd_path(), dir))
            if (option.starts_with("--"))
                CHECK_MESSAGE(offered.contains(option), "udshttpd " << option);
        CHECK(complete(udshttpd, "_udshttpd", {"udshttpd", "--log-format", ""}, dir) ==
              std::set<std::string>{"text", "json"});
        CHECK(complete(udshttpd, "_udshttpd", {"udshttpd", "--log-level", "w"}, dir) ==
              std::set<std::string>{"warn"});
        CHECK(complete(udshttpd, "_udshttpd", {"udshttpd", "--threads", ""}, dir).empty());

        offered = complete(udshttp, "_udshttp", {"udshttp", "--"}, dir);
        for (const auto& sub : {"events", "ws"})
            offered.merge(complete(udshttp, "_udshttp", {"udshttp", sub, "--"}, dir));
        for (const auto& option : help_options(udshttp_path(), dir))
            if (option.starts_with("--"))
                CHECK_MESSAGE(offered.contains(option), "udshttp " << option);
        CHECK(complete(udshttp, "_udshttp", {"udshttp", "rules", ""}, dir) ==
              std::set<std::string>{"suggest"});
        CHECK(complete(udshttp, "_udshttp", {"udshttp", "r"}, dir) ==
              std::set<std::string>{"routes", "rules"});
        CHECK(complete(udshttp, "_udshttp", {"udshttp", "-X", "P"}, dir) ==
              std::set<std::string>{"POST", "PUT", "PATCH"});
        CHECK(complete(udshttp, "_udshttp", {"udshttp", "--retry-c"}, dir) ==
              std::set<std::string>{"--retry-connrefused"});
        CHECK(complete(udshttp, "_udshttp", {"udshttp", "ro"}, dir) ==
              std::set<std::string>{"routes"});
        // A file argument completes to files.
        write_file(dir.file("payload.json"), "{}");
        CHECK(complete(udshttp, "_udshttp", {"udshttp", "-T", dir.file("pay")}, dir) ==
              std::set<std::string>{dir.file("payload.json")});
        const auto registered = must({"/bin/bash", "-c",
                                      "source '" + udshttp + "'; source '" + udshttpd +
                                          "'; complete -p udshttp udshttpd"},
                                     dir)
                                    .out;
        CHECK(registered == "complete -F _udshttp udshttp\ncomplete -F _udshttpd udshttpd\n");
    }

    TEST_CASE("the shipped service unit is sandboxed: systemd-analyze security scores it 2.5 or "
              "less") {
        if (!require_peer("/usr/bin/systemd-analyze", "systemd"))
            return;
        temp_dir dir;
        const auto r = run({"/usr/bin/systemd-analyze", "security", "--offline=yes", "--no-pager",
                            source_dir() + "/examples/systemd/udshttpd.service"},
                           dir);
        INFO(r.out << r.err);
        const std::regex overall("Overall exposure level for udshttpd.service: ([0-9.]+)");
        std::smatch m;
        const auto text = r.out + r.err;
        REQUIRE(std::regex_search(text, m, overall));
        CHECK(std::stod(m[1].str()) <= 2.5);
        // What the sandbox must not take away: the passed socket, and the callers' identity.
        const auto unit = read_file(source_dir() + "/examples/systemd/udshttpd.service");
        CHECK(unit.find("RestrictAddressFamilies=AF_UNIX") != std::string::npos);
        CHECK(unit.find("\nPrivateUsers=yes") == std::string::npos); // SO_PEERCRED would lie
        CHECK(unit.find("Type=notify") != std::string::npos);
    }

    TEST_CASE("scripts/dev run installs only what building and running need - test adds the rest") {
        temp_dir dir;
        const auto run_list =
            must({"/bin/bash", source_dir() + "/scripts/dev", "packages", "run"}, dir).out;
        const auto test_list =
            must({"/bin/bash", source_dir() + "/scripts/dev", "packages", "test"}, dir).out;
        const auto has = [](const std::string& list, const std::string& p) {
            return ("\n" + list).find("\n" + p + "\n") != std::string::npos;
        };
        for (const char* p : {"g++", "cmake", "libboost1.81-dev", "libboost-url1.81-dev",
                              "nlohmann-json3-dev", "zlib1g-dev"}) {
            CHECK_MESSAGE(has(run_list, p), p);
            CHECK_MESSAGE(has(test_list, p), p);
        }
        for (const char* p : {"nodejs", "golang-go", "clang", "nginx-light", "doctest-dev",
                              "python3-aiohttp", "curl"}) {
            CHECK_MESSAGE(!has(run_list, p), p);
            CHECK_MESSAGE(has(test_list, p), p);
        }
    }
}
