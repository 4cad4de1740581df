#pragma once

// The topic hub behind udshttpd's /topics/{name} and /events: publishers append messages to a
// topic, each topic keeps the last few for late subscribers (its replay buffer), and every
// subscriber has a bounded queue. A subscriber whose queue overflows is cut (it gets one
// terminal error and is closed, and the cut is counted): nothing is ever dropped silently.
//
// Shared by all workers under one mutex; a subscriber lives on its connection's worker and is
// woken there (one post per wake-up, and none while it is already awake).

#include <udshttp/service/server.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace udshttp::service::detail {

// One published message, shared by the replay buffer and every queue it is in.
struct hub_message {
    std::uint64_t id = 0;
    std::string type{}; // the publisher's Content-Type
    std::string body{};
    bool text = false; // the body is UTF-8
    // The message as one JSON object, made once when it is published (not per subscriber):
    // {"type":"message","id":..,"content_type":..,"data":..}, with "data_base64" instead of
    // "data" for a body that is not UTF-8. Empty for /events, whose bodies are JSON already.
    std::string json{};
    // The message as an SSE event (the same bytes for every SSE subscriber): the body as its
    // data lines when it is UTF-8, else an event "message-base64" whose data is `json`.
    std::string sse{};
};
using hub_message_ptr = std::shared_ptr<const hub_message>;

class topic_hub;

// One subscriber: its queue, and the timer its coroutine waits on. Its methods run on the
// subscriber's own worker; the hub fills the queue from any worker.
class hub_subscriber {
public:
    hub_subscriber(boost::asio::any_io_executor ex) : wake(ex) {}

    struct batch {
        std::vector<hub_message_ptr> messages; // in id order
        bool cut = false;                      // too slow: the queue overflowed
        std::uint64_t missed = 0; // replay asked for ids no longer kept (a gap this long)
    };
    // Takes what is queued. When nothing is, arms the wake-up: wait on `wake` then.
    batch take();

    boost::asio::steady_timer wake; // cancelled (from its own worker) when messages arrive

private:
    friend class topic_hub;
    // Guarded by the hub's mutex. A vector, not a deque: libstdc++'s deque allocates 576 bytes
    // even when empty, and an idle subscriber's queue is empty.
    std::vector<hub_message_ptr> queue_;
    std::size_t queued_bytes_ = 0;
    std::uint64_t missed_ = 0;
    bool waiting_ = false;
    bool cut_ = false;
    topic_hub* hub_ = nullptr;
};

class topic_hub {
public:
    explicit topic_hub(hub_limits limits) : limits_(limits) {}

    // The name every user topic must have: 1 to 64 of A-Z a-z 0-9 . _ -
    static bool valid_name(std::string_view name) noexcept;
    // The internal topic of /events (not a valid user topic name).
    static constexpr std::string_view events_topic = "$events";

    struct refusal {
        errc code;
        std::string message;
    };

    // Appends a message; returns its id.
    std::variant<std::uint64_t, refusal> publish(std::string_view topic, std::string type,
                                                 std::string body);

    // Subscribes `sub` (owned by the caller, which must unsubscribe() before it goes) to
    // `topic`. With `after`, the kept messages with a later id are queued first.
    std::optional<refusal> subscribe(std::string_view topic, std::optional<std::uint64_t> after,
                                     const std::shared_ptr<hub_subscriber>& sub);
    void unsubscribe(std::string_view topic, const std::shared_ptr<hub_subscriber>& sub);

    // The latest id of a topic (0 if none yet).
    std::uint64_t last_id(std::string_view topic);

    // True while /events has a subscriber (a relaxed load: the hot path asks it per request).
    bool events_wanted() const noexcept {
        return events_subscribers_.load(std::memory_order_relaxed) > 0;
    }

    struct topic_stats {
        std::string name;
        std::uint64_t published;
        std::size_t subscribers;
        std::uint64_t cut;
    };
    std::vector<topic_stats> stats();

    const hub_limits& limits() const noexcept { return limits_; }

private:
    struct topic {
        std::uint64_t next_id = 1;
        std::deque<hub_message_ptr> replay;
        std::size_t replay_bytes = 0;
        std::vector<std::shared_ptr<hub_subscriber>> subscribers;
        std::uint64_t published = 0;
        std::uint64_t cut = 0;
    };
    // The topic, created if there is room; null when the topic limit is reached.
    topic* find_or_create(std::string_view name);
    // Queues `m` for `sub` (or cuts it); true if it needs a wake-up.
    bool deliver(topic& t, hub_subscriber& sub, const hub_message_ptr& m);
    static void wake(const std::shared_ptr<hub_subscriber>& sub);

    friend class hub_subscriber;
    const hub_limits limits_;
    std::mutex mutex_;
    std::map<std::string, topic, std::less<>> topics_;
    std::size_t subscribers_ = 0;
    std::atomic<std::size_t> events_subscribers_{0};
};

} // namespace udshttp::service::detail
