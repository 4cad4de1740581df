#include <udshttp/service/server.hpp>

#include <udshttp/proto/url.hpp>

#include "inherited_sockets.hpp"
#include "listener.hpp"
#include "server_state.hpp"
#include "session.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace udshttp::service {

namespace {
using work_guard = boost::asio::executor_work_guard<detail::executor>;

std::chrono::milliseconds sweep_tick(const server_options& o) {
    // A quarter of the shortest deadline: a deadline fires at most 25% late, and an idle
    // server wakes at most four times a second.
    const auto shortest = std::min(o.header_timeout, o.idle_timeout);
    return std::clamp(shortest / 4, std::chrono::milliseconds(1), std::chrono::milliseconds(250));
}
// Each connection is a descriptor: with more connections allowed than descriptors, the accept
// loop would fail with EMFILE over and over while clients wait unanswered. Keep room for the
// listeners, the log and the refused peers' budget.
void cap_connections(detail::server_state& state) {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY)
        return;
    constexpr std::size_t reserve = 64 + detail::max_refusals;
    const auto fds = static_cast<std::size_t>(lim.rlim_cur);
    const std::size_t room = fds > reserve ? fds - reserve : 1;
    auto& max = state.options.max_connections;
    if (max <= room)
        return;
    state.log.log(log_level::warn, "max-connections lowered from " + std::to_string(max) + " to " +
                                       std::to_string(room) +
                                       ": the open-files limit (RLIMIT_NOFILE) is " +
                                       std::to_string(fds) + " descriptors");
    max = room;
}
} // namespace

struct server::impl {
    detail::server_state state;
    std::vector<std::unique_ptr<detail::listener>> listeners;
    std::vector<work_guard> guards;
    std::mutex mutex;
    std::condition_variable cv;
    bool started = false;
    bool stopped = false;
};

server::server(server_options options) : impl_(std::make_unique<impl>()) {
    if (options.listen.empty())
        options.listen.emplace_back(proto::endpoint::unix_path("./udshttp.sock"));
    options.threads = std::max(1U, options.threads);
    impl_->state.options = std::move(options);
}

server::~server() {
    stop();
}

router& server::routes() noexcept {
    return impl_->state.routes;
}

const server_options& server::options() const noexcept {
    return impl_->state.options;
}

void server::start() {
    std::lock_guard lock(impl_->mutex);
    if (impl_->started)
        throw std::logic_error("udshttp::service::server::start() called twice");
    auto& state = impl_->state;
    // Every address parsed before anything is bound or started.
    std::vector<proto::endpoint> wanted;
    for (const auto& address : state.options.listen) {
        auto where = address.endpoint();
        if (!where)
            throw startup_error(where.error().code, "cannot listen: " + where.error().message);
        wanted.push_back(std::move(*where));
    }
    state.log.open(state.options);
    cap_connections(state);
    if (state.options.builtin_routes)
        detail::add_builtin_routes(state);

    if (state.options.gateway.enabled())
        state.gateway = std::make_unique<detail::gateway_state>(state.options.gateway);
    const std::size_t upstreams = state.gateway ? state.gateway->upstreams.size() : 0;
    for (unsigned i = 0; i < state.options.threads; ++i) {
        state.workers.push_back(
            std::make_unique<detail::worker>(state.routes.size(), state.options.threads == 1));
        state.workers.back()->stats.size_gateway(upstreams);
        state.workers.back()->upstream_idle.resize(upstreams);
    }
    try {
        for (const auto& where : wanted)
            for (const auto& e : detail::expand_inherited(where))
                impl_->listeners.push_back(
                    std::make_unique<detail::listener>(*state.workers.front(), e, state.options));
    } catch (...) {
        impl_->listeners.clear(); // removes the socket files bound so far
        state.workers.clear();
        throw;
    }

    // Like sd_listen_fds(1): passed sockets are ours now, and processes a handler starts must
    // not believe they were activated. Done before any thread runs (setenv is not thread-safe).
    if (std::any_of(wanted.begin(), wanted.end(),
                    [](const auto& e) { return e.kind == proto::transport::systemd; }))
        for (const char* name : {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"})
            ::unsetenv(name);

    const auto tick = sweep_tick(state.options);
    for (auto& w : state.workers) {
        impl_->guards.emplace_back(w->ctx.get_executor());
        detail::start_sweeper(*w, tick);
    }
    for (auto& l : impl_->listeners)
        l->start(state);
    for (auto& w : state.workers)
        w->thread = std::thread([ctx = &w->ctx, &state] {
            // An exception that escapes a completion handler (one not spawned through
            // log_exception) would end run() and with it every connection on this worker: log
            // it and run on.
            for (;;) {
                try {
                    ctx->run();
                    return;
                } catch (...) {
                    detail::log_exception(state, "a worker's handler", std::current_exception());
                }
            }
        });
    impl_->started = true;
}

void server::wait() {
    std::unique_lock lock(impl_->mutex);
    impl_->cv.wait(lock, [this] { return impl_->stopped || !impl_->started; });
}

void server::stop() {
    std::unique_lock lock(impl_->mutex);
    if (!impl_->started || impl_->stopped)
        return;
    auto& state = impl_->state;
    state.stopping = true;
    for (auto& l : impl_->listeners)
        boost::asio::post(l->home().ctx, [l = l.get()] { l->close(); });
    for (auto& w : state.workers)
        boost::asio::post(w->ctx, [w = w.get()] { w->connections.drain(); });

    // Drain: requests in flight finish (each session sees `stopping` and answers with
    // Connection: close); idle connections close at once. Polling the shared count is simpler
    // than a completion signal and costs nothing next to the drain itself.
    const auto deadline = detail::clock::now() + state.options.drain_timeout;
    while (state.connections.load(std::memory_order_relaxed) > 0 && detail::clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (const auto left = state.connections.load(std::memory_order_relaxed); left > 0)
        state.log.log(log_level::warn, std::to_string(left) +
                                           " connection(s) still busy after the drain timeout of " +
                                           std::to_string(state.options.drain_timeout.count()) +
                                           " ms; closing them");
    if (const auto ended = state.streams_drained.load(std::memory_order_relaxed); ended > 0)
        state.log.log(log_level::info,
                      "the drain ended " + std::to_string(ended) + " response stream(s)");
    impl_->guards.clear();
    for (auto& w : state.workers)
        w->ctx.stop();
    for (auto& w : state.workers)
        if (w->thread.joinable())
            w->thread.join();
    // Listeners first (their acceptors live on a worker's context), then the workers, whose
    // contexts destroy the coroutine frames of any connection still open.
    impl_->listeners.clear();
    state.workers.clear();
    state.log.flush(); // what the workers logged is written by the time stop() returns
    impl_->stopped = true;
    impl_->cv.notify_all();
}

void server::reopen_logs() {
    auto& log = impl_->state.log;
    if (auto failed = log.reopen(); !failed.empty())
        log.log(log_level::error, failed);
}

std::string server::url(std::string_view target) const {
    const auto bound = endpoints();
    if (bound.empty())
        throw std::logic_error("udshttp::service::server::url() called before start()");
    return proto::make_url(bound.front(), target);
}

result<proto::endpoint> listen_address::endpoint() const {
    if (where_)
        return *where_;
    return proto::endpoint::parse(text_);
}

std::vector<proto::endpoint> server::endpoints() const {
    std::lock_guard lock(impl_->mutex);
    std::vector<proto::endpoint> out;
    for (const auto& l : impl_->listeners)
        out.push_back(l->local_endpoint());
    return out;
}

} // namespace udshttp::service
