// udshttpd's flag and environment rules, without a process: parse_daemon_args().

#include "daemon_cli.hpp"

#include <doctest/doctest.h>

#include <map>

using namespace udshttp;
using namespace udshttp::service::daemon;
using namespace std::chrono_literals;

namespace {

struct fake_env {
    environment vars;
};

command parse(std::vector<std::string> args, const fake_env& env = {}) {
    auto r = parse_daemon_args(args, env.vars);
    REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message));
    return *r;
}

std::string error_of(std::vector<std::string> args, const fake_env& env = {}) {
    auto r = parse_daemon_args(args, env.vars);
    REQUIRE_FALSE(r.has_value());
    return r.error().message;
}

std::vector<std::string> listens(const command& c) {
    std::vector<std::string> out;
    for (const auto& e : c.options.listen)
        out.push_back(e.endpoint()->to_string());
    return out;
}

} // namespace

TEST_SUITE("internal") {

    TEST_CASE("udshttpd args: -l mixed with --listen - sizes and durations") {
        // -l then --listen: one list (once the second spelling cleared the first's entries).
        const auto c =
            parse({"-l", "/a.sock", "--listen=@b", "--listen", "127.0.0.1:80", "--max-body-bytes",
                   "1MiB", "--idle-timeout=500ms", "--threads", "3", "--allow-remote"});
        CHECK(listens(c) ==
              std::vector<std::string>{"unix:/a.sock", "unix:@b", "tcp://127.0.0.1:80"});
        CHECK(c.options.max_body_bytes == 1024 * 1024);
        CHECK(c.options.idle_timeout == 500ms);
        CHECK(c.options.threads == 3);
        CHECK(c.options.allow_remote);
        CHECK(c.action == action::serve);
        CHECK(c.options.builtin_routes);
    }

    TEST_CASE("udshttpd args: the environment - and argv over it") {
        fake_env env{{{"UDSHTTP_LISTEN", "/e1.sock,/e2.sock"},
                      {"UDSHTTP_MAX_CONNECTIONS", "7"},
                      {"UDSHTTP_ALLOW_REMOTE", "yes"},
                      {"UDSHTTP_ALLOW_UID", "0"}}};
        const auto from_env = parse({}, env);
        CHECK(listens(from_env) == std::vector<std::string>{"unix:/e1.sock", "unix:/e2.sock"});
        CHECK(from_env.options.max_connections == 7);
        CHECK(from_env.options.allow_remote);
        CHECK(from_env.options.allow_uids == std::vector<uid_t>{0});
        // A repeatable option on the command line replaces the environment's list.
        const auto both =
            parse({"-l", "/cli.sock", "--max-connections", "9", "--allow-uid", "1,2"}, env);
        CHECK(listens(both) == std::vector<std::string>{"unix:/cli.sock"});
        CHECK(both.options.max_connections == 9);
        CHECK(both.options.allow_uids == std::vector<uid_t>{1, 2});
        // Errors from the environment name the variable.
        CHECK(error_of({}, fake_env{{{"UDSHTTP_THREADS", "x"}}}) ==
              "UDSHTTP_THREADS: 'x' is not a number from 0 to 1024");
        CHECK(error_of({}, fake_env{{{"UDSHTTP_ALLOW_REMOTE", "maybe"}}}) ==
              "UDSHTTP_ALLOW_REMOTE: 'maybe' is not 1, true, yes, 0, false or no");
    }

    TEST_CASE("udshttpd args: usage errors name the flag and the value") {
        CHECK(error_of({"--threads", "0"}) == "--threads: must be at least 1");
        CHECK(error_of({"--threads"}) == "--threads needs a value");
        CHECK(error_of({"--socket-mode", "999"}) ==
              "--socket-mode: '999' is not an octal mode such as 0660");
        CHECK(error_of({"--allow-uid", "no-such-user-here"}) ==
              "--allow-uid: no such user 'no-such-user-here'");
        CHECK(error_of({"--allow-remote=1"}) == "--allow-remote takes no value");
        CHECK(error_of({"--log-level", "loud"}) ==
              "--log-level: 'loud' is not one of debug, info, warn, error, off");
        CHECK(error_of({"--access-log="}) == "--access-log: needs a file path or -");
        CHECK(error_of({"--frobnicate"}) == "unknown option '--frobnicate'");
        CHECK(error_of({"-l", "127.0.0.1"}).starts_with("-l: "));
        CHECK(error_of({"-l", "@abs", "--socket-mode", "0600"})
                  .starts_with("--socket-mode does not apply to abstract socket unix:@abs"));
    }

    TEST_CASE("udshttpd args: zero limits are refused - unknown UDSHTTP_ names are warned") {
        CHECK(error_of({"--max-connections", "0"}) == "--max-connections: must be at least 1");
        CHECK(error_of({"--idle-timeout", "0"}).starts_with("--idle-timeout: must be more than 0"));
        CHECK(error_of({"--header-timeout", "0ms"})
                  .starts_with("--header-timeout: must be more than 0"));
        CHECK(error_of({}, fake_env{{{"UDSHTTP_IDLE_TIMEOUT", "0"}}})
                  .starts_with("UDSHTTP_IDLE_TIMEOUT: must be more than 0"));
        CHECK(parse({"--drain-timeout", "0"}).options.drain_timeout == 0ms);
        const auto typo = parse({}, fake_env{{{"UDSHTTP_LISTNE", "/x.sock"},
                                              {"UDSHTTP_SANITIZE", "off"},
                                              {"UDSHTTP_THREADS", "2"}}});
        CHECK(typo.warnings ==
              std::vector<std::string>{
                  "UDSHTTP_LISTNE names no udshttpd option; ignored (see udshttpd --help)"});
        CHECK(typo.options.threads == 2);
        // --help says what the values may be.
        CHECK(help_text().find("DUR is seconds, or a number with ms") != std::string_view::npos);
        CHECK(help_text().find("KB, MB and GB mean the same") != std::string_view::npos);
    }

    TEST_CASE("udshttpd args: help and version win over what follows") {
        CHECK(parse({"--help", "--frobnicate"}).action == action::help);
        CHECK(parse({"-V"}).action == action::version);
        CHECK(help_text().find("Exit status") != std::string_view::npos);
    }

} // TEST_SUITE

TEST_SUITE("internal") {
    TEST_CASE("daemon args: the topic hub's limits - from flags and the environment") {
        const auto c = parse({"--topics", "3", "--topic-subscribers", "7", "--topic-message-bytes",
                              "4KiB", "--topic-replay", "9", "--heartbeat", "500ms"},
                             {{{"UDSHTTP_TOPIC_QUEUE_BYTES", "2MiB"}}});
        CHECK(c.options.hub.topics == 3);
        CHECK(c.options.hub.subscribers == 7);
        CHECK(c.options.hub.message_bytes == 4096);
        CHECK(c.options.hub.replay == 9);
        CHECK(c.options.hub.queue_bytes == 2u << 20);
        CHECK(c.options.hub.heartbeat == 500ms);
        CHECK(c.warnings.empty());
        CHECK(error_of({"--heartbeat", "0"}) == "--heartbeat: must be more than 0");
        CHECK(error_of({"--topic-queue-bytes", "0"}) == "--topic-queue-bytes: must be more than 0");
        CHECK(error_of({"--topics", "lots"}).starts_with("--topics: 'lots' is not a number"));
    }
}
