#include "deadlines.hpp"

#include "worker.hpp"

#include <memory>

namespace udshttp::service::detail {

void connection_registry::add(connection_slot& s) noexcept {
    s.next = head_;
    if (head_)
        head_->prev = &s;
    head_ = &s;
    ++size_;
}

void connection_registry::remove(connection_slot& s) noexcept {
    (s.prev ? s.prev->next : head_) = s.next;
    if (s.next)
        s.next->prev = s.prev;
    s.prev = s.next = nullptr;
    --size_;
}

std::size_t connection_registry::sweep(clock::time_point now) noexcept {
    std::size_t fired = 0;
    for (auto* s = head_; s; s = s->next) {
        if (s->deadline <= now && !s->timed_out) {
            s->timed_out = true;
            boost::system::error_code ignored;
            s->socket->cancel(ignored);
            ++fired;
        }
    }
    return fired;
}

void connection_registry::drain() noexcept {
    for (auto* s = head_; s; s = s->next) {
        if (s->idle) {
            boost::system::error_code ignored;
            s->socket->cancel(ignored);
        }
        if (s->on_drain)
            s->on_drain->drain();
    }
}

namespace {

// A completion handler, not a coroutine: the sweep itself cannot throw (every step is
// noexcept), so there is nothing to restart, and no coroutine frame.
struct sweeper {
    worker& w;
    std::shared_ptr<timer_type> timer;
    std::chrono::milliseconds tick;

    void operator()(const boost::system::error_code& ec) const {
        if (ec)
            return; // the context is stopping
        w.stats.timeouts.add(w.connections.sweep(clock::now()));
        timer->expires_after(tick);
        timer->async_wait(*this);
    }
};

} // namespace

void start_sweeper(worker& w, std::chrono::milliseconds tick) {
    auto timer = std::make_shared<timer_type>(w.ctx.get_executor());
    timer->expires_after(tick);
    timer->async_wait(sweeper{w, timer, tick});
}

} // namespace udshttp::service::detail
