#pragma once

// The udshttpd command line and its UDSHTTP_* environment, parsed without side effects:
// parse_daemon_args() prints nothing and never exits, so every flag rule is a unit test
// (tests/internal/daemon_cli_test.cpp). It reads the user and group databases for names.

#include <udshttp/service/server.hpp>

#include <boost/system/result.hpp>

#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace udshttp::service::daemon {

constexpr int exit_failure = 1; // an endpoint cannot be served
constexpr int exit_usage = 2;

enum class action { serve, help, version };

struct command {
    daemon::action action = action::serve;
    server_options options{};
    std::vector<std::string> warnings{}; // one line each, for stderr
};

struct usage_error {
    std::string message; // one line, without the "udshttpd: " prefix
};
[[noreturn]] void throw_exception_from_error(const usage_error& e,
                                             const boost::source_location& loc);

// The UDSHTTP_* variables of an environment, by name.
using environment = std::map<std::string, std::string, std::less<>>;
// The process's UDSHTTP_* variables.
environment process_environment();

// Parses the arguments after the program name, over what the environment sets: every option
// can come as UDSHTTP_ and its long name (UDSHTTP_MAX_BODY_BYTES=1MiB); the command line wins,
// and a repeatable option given there replaces the environment's list.
// A UDSHTTP_ variable that names no option is a warning that names it (scripts/dev's own
// UDSHTTP_SANITIZE and UDSHTTP_FUZZ_SECONDS excepted).
boost::system::result<command, usage_error> parse_daemon_args(std::span<const std::string> args,
                                                              const environment& env);

std::string_view help_text() noexcept;

} // namespace udshttp::service::daemon
