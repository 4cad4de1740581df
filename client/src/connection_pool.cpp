#include "connection_pool.hpp"

#include <sys/socket.h>

#include <cerrno>

namespace udshttp::client::detail {

bool still_open(connection& c) noexcept {
    if (!c.socket.is_open() || c.buffer.size() != 0)
        return false;
    // One non-blocking peek before we write on it: nothing to read means still open.
    char byte = 0;
    const auto n = ::recv(c.socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

connection_ptr connection_pool::take(std::string_view key) {
    auto it = by_endpoint_.find(key);
    if (it == by_endpoint_.end())
        return nullptr;
    auto& stack = it->second;
    const auto now = clock::now();
    while (!stack.empty()) {
        auto c = std::move(stack.back());
        stack.pop_back();
        if (now - c->idle_since <= idle_timeout_ && still_open(*c))
            return c;
    }
    return nullptr;
}

void connection_pool::give_back(const std::string& key, connection_ptr c) {
    auto& stack = by_endpoint_[key];
    // Drop the ones idle too long while we are here, oldest first.
    const auto now = clock::now();
    std::erase_if(stack,
                  [&](const connection_ptr& old) { return now - old->idle_since > idle_timeout_; });
    if (stack.size() < max_idle_) {
        c->idle_since = now;
        stack.push_back(std::move(c));
    }
}

std::size_t connection_pool::idle() const noexcept {
    std::size_t n = 0;
    for (const auto& [key, stack] : by_endpoint_)
        n += stack.size();
    return n;
}

} // namespace udshttp::client::detail
