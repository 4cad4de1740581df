// udshttpd: the udshttp server as a daemon. Options, start-up report, signals.

#include "daemon_cli.hpp"
#include "log.hpp"
#include "sd_notify.hpp"

#include <udshttp/proto/url.hpp>
#include <udshttp/proto/version.hpp>
#include <udshttp/service/server.hpp>

#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace udshttp::service::daemon;

// The start-up report: where we listen, and a command to paste.
void print_endpoint(const udshttp::proto::endpoint& e) {
    using udshttp::proto::transport;
    std::cout << "udshttpd " << udshttp::version << ": listening on " << e.to_string() << '\n';
    switch (e.kind) {
    case transport::unix_path:
        std::cout << "  try: curl --unix-socket " << e.address << " http://localhost/hello\n";
        break;
    case transport::unix_abstract:
        std::cout << "  try: curl --abstract-unix-socket " << e.address
                  << " http://localhost/hello\n";
        break;
    case transport::tcp:
        std::cout << "  try: curl '" << udshttp::proto::make_url(e, "/hello") << "'\n";
        break;
    default:
        break;
    }
}

// One of udshttpd's own lines on stderr. As text it keeps the wording these lines always had,
// "udshttpd: " + prefix + message (prefix "warning: " or none); as JSON it is the logger's line,
// so that with --log-format json every line on stderr parses.
void say(udshttp::service::log_format format, udshttp::service::log_level level,
         std::string_view prefix, const std::string& message) {
    if (format == udshttp::service::log_format::json)
        std::cerr << udshttp::service::detail::diagnostic(format, level, message) << '\n';
    else
        std::cerr << "udshttpd: " << prefix << message << '\n';
}

} // namespace

int main(int argc, char** argv) {
    const std::vector<std::string> args(argv + 1, argv + argc);
    auto command = parse_daemon_args(args, process_environment());
    if (!command) {
        std::cerr << "udshttpd: " << command.error().message << " (see udshttpd --help)\n";
        return exit_usage;
    }
    using udshttp::service::log_level;
    const auto format = command->options.log_format;
    for (const auto& w : command->warnings)
        say(format, log_level::warn, "warning: ", w);
    if (command->action == action::help) {
        std::cout << help_text();
        return 0;
    }
    if (command->action == action::version) {
        std::cout << "udshttpd " << udshttp::version_line() << '\n';
        return 0;
    }
    auto options = std::move(command->options);

    // glibc gives a worker thread's freed memory back to the kernel (madvise) as soon as 128 KiB
    // of it is free, so every 64 KiB WebSocket message or body allocated and freed in turn
    // faulted its pages in again: 64 connections echoing 64 KiB messages ran at 9,000
    // messages/s, and at 35,000 with 4 MiB kept. GLIBC_TUNABLES's malloc settings win.
    if (const char* t = std::getenv("GLIBC_TUNABLES"); !t || !std::strstr(t, "glibc.malloc."))
        ::mallopt(M_TRIM_THRESHOLD, 4 * 1024 * 1024);

    // Signals are taken by sigwait() on this thread; block them before any worker starts so
    // every thread inherits the mask.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    // systemd's default soft limit is 1024 descriptors against 10,000 connections: take the
    // hard limit (server::start() lowers --max-connections to what that allows, and says so).
    if (rlimit lim{}; ::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &lim);
    }

    udshttp::service::server srv(std::move(options));
    try {
        srv.start();
    } catch (const udshttp::service::startup_error& e) {
        say(format, log_level::error, "", e.what());
        return exit_failure;
    }
    const bool quiet = srv.options().log_level > udshttp::service::log_level::info;
    if (!quiet)
        for (const auto& e : srv.endpoints())
            print_endpoint(e);
    std::cout << std::flush;
    // Every listener is bound: a Type=notify unit counts the service as started now.
    if (const auto why = udshttp::service::detail::notify_systemd("READY=1\nMAINPID=" +
                                                                  std::to_string(::getpid()));
        !why.empty())
        say(format, log_level::warn, "warning: ", "cannot tell systemd it is ready: " + why);

    int sig = 0;
    // SIGHUP: reopen the access log (logrotate's postrotate) and go on serving.
    while (sigwait(&signals, &sig) == 0 && sig == SIGHUP)
        srv.reopen_logs();
    if (!quiet)
        say(format, log_level::info, "",
            std::string(sig == SIGTERM ? "SIGTERM" : "SIGINT") + ", draining (up to " +
                std::to_string(srv.options().drain_timeout.count()) + " ms)");
    (void)udshttp::service::detail::notify_systemd("STOPPING=1");
    srv.stop();
    return 0;
}
