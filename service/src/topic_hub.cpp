#include "topic_hub.hpp"

#include <udshttp/service/async.hpp>

#include <boost/asio/post.hpp>
#include <boost/beast/core/detail/base64.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>

namespace udshttp::service::detail {

namespace {

bool valid_utf8(std::string_view s) {
    try {
        (void)nlohmann::json(std::string(s)).dump();
        return true;
    } catch (const nlohmann::json::type_error&) {
        return false;
    }
}

// Fills m.text and m.json (see hub_message).
void describe(hub_message& m) {
    m.text = valid_utf8(m.body);
    nlohmann::ordered_json j{{"type", "message"}, {"id", m.id}};
    if (!m.type.empty())
        j["content_type"] = m.type;
    if (m.text) {
        j["data"] = m.body;
    } else {
        std::string b64(boost::beast::detail::base64::encoded_size(m.body.size()), '\0');
        b64.resize(boost::beast::detail::base64::encode(b64.data(), m.body.data(), m.body.size()));
        j["data_base64"] = std::move(b64);
    }
    // The content type is the publisher's bytes: replace what is not UTF-8, never throw.
    m.json = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Fills m.sse; /events's bodies are JSON lines, sent as they are.
void format_sse(hub_message& m, bool json_body) {
    const auto id = std::to_string(m.id);
    const bool as_is = json_body || m.text;
    m.sse = format_event({.data = as_is ? std::string_view(m.body) : std::string_view(m.json),
                          .event = as_is ? "" : "message-base64",
                          .id = id});
}

} // namespace

bool topic_hub::valid_name(std::string_view name) noexcept {
    return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-';
    });
}

topic_hub::topic* topic_hub::find_or_create(std::string_view name) {
    if (auto it = topics_.find(name); it != topics_.end())
        return &it->second;
    if (name != events_topic && topics_.size() >= limits_.topics + (topics_.contains(events_topic)))
        return nullptr;
    return &topics_.emplace(std::string(name), topic{}).first->second;
}

bool topic_hub::deliver(topic& t, hub_subscriber& sub, const hub_message_ptr& m) {
    if (sub.cut_)
        return false;
    if (sub.queued_bytes_ + m->body.size() > limits_.queue_bytes && !sub.queue_.empty()) {
        // Too slow: cut, never a silent drop. What is queued is let go; the cut is all it gets.
        sub.cut_ = true;
        sub.queue_.clear();
        sub.queued_bytes_ = 0;
        ++t.cut;
    } else {
        sub.queue_.push_back(m);
        sub.queued_bytes_ += m->body.size();
    }
    if (!sub.waiting_)
        return false; // awake already: it takes the queue before it waits again
    sub.waiting_ = false;
    return true;
}

void topic_hub::wake(const std::shared_ptr<hub_subscriber>& sub) {
    // The timer belongs to the subscriber's worker: cancel it there, through a post. The
    // shared_ptr keeps the subscriber alive until the post has run, even if its connection
    // ends meanwhile.
    boost::asio::post(sub->wake.get_executor(), [sub] { sub->wake.cancel(); });
}

std::variant<std::uint64_t, topic_hub::refusal>
topic_hub::publish(std::string_view name, std::string type, std::string body) {
    if (body.size() > limits_.message_bytes)
        return refusal{errc::payload_too_large,
                       "a message holds at most " + std::to_string(limits_.message_bytes) +
                           " bytes (--topic-message-bytes); this one has " +
                           std::to_string(body.size())};
    std::vector<std::shared_ptr<hub_subscriber>> to_wake;
    std::uint64_t id = 0;
    {
        std::lock_guard lock(mutex_);
        topic* t = find_or_create(name);
        if (!t)
            return refusal{errc::service_unavailable, "the hub holds at most " +
                                                          std::to_string(limits_.topics) +
                                                          " topics (--topics)"};
        id = t->next_id++;
        hub_message made{.id = id, .type = std::move(type), .body = std::move(body)};
        if (name != events_topic)
            describe(made);
        format_sse(made, name == events_topic);
        auto m = std::make_shared<const hub_message>(std::move(made));
        ++t->published;
        for (const auto& sub : t->subscribers)
            if (deliver(*t, *sub, m))
                to_wake.push_back(sub);
        t->replay.push_back(m);
        t->replay_bytes += m->body.size();
        while (!t->replay.empty() &&
               (t->replay.size() > limits_.replay || t->replay_bytes > limits_.replay_bytes)) {
            t->replay_bytes -= t->replay.front()->body.size();
            t->replay.pop_front();
        }
    }
    for (const auto& sub : to_wake)
        wake(sub);
    return id;
}

std::optional<topic_hub::refusal> topic_hub::subscribe(std::string_view name,
                                                       std::optional<std::uint64_t> after,
                                                       const std::shared_ptr<hub_subscriber>& sub) {
    std::lock_guard lock(mutex_);
    if (subscribers_ >= limits_.subscribers)
        return refusal{errc::service_unavailable, "the hub serves at most " +
                                                      std::to_string(limits_.subscribers) +
                                                      " subscribers (--topic-subscribers)"};
    topic* t = find_or_create(name);
    if (!t)
        return refusal{errc::service_unavailable, "the hub holds at most " +
                                                      std::to_string(limits_.topics) +
                                                      " topics (--topics)"};
    if (after) {
        const std::uint64_t oldest = t->replay.empty() ? t->next_id : t->replay.front()->id;
        if (*after + 1 < oldest && *after + 1 < t->next_id)
            sub->missed_ = oldest - (*after + 1);
        for (const auto& m : t->replay)
            if (m->id > *after && !sub->cut_)
                deliver(*t, *sub, m);
    }
    sub->hub_ = this;
    t->subscribers.push_back(sub);
    ++subscribers_;
    if (name == events_topic)
        events_subscribers_.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
}

void topic_hub::unsubscribe(std::string_view name, const std::shared_ptr<hub_subscriber>& sub) {
    std::lock_guard lock(mutex_);
    auto it = topics_.find(name);
    if (it == topics_.end())
        return;
    auto& subs = it->second.subscribers;
    if (auto s = std::find(subs.begin(), subs.end(), sub); s != subs.end()) {
        subs.erase(s);
        --subscribers_;
        if (name == events_topic)
            events_subscribers_.fetch_sub(1, std::memory_order_relaxed);
    }
}

std::uint64_t topic_hub::last_id(std::string_view name) {
    std::lock_guard lock(mutex_);
    auto it = topics_.find(name);
    return it == topics_.end() ? 0 : it->second.next_id - 1;
}

std::vector<topic_hub::topic_stats> topic_hub::stats() {
    std::lock_guard lock(mutex_);
    std::vector<topic_stats> out;
    out.reserve(topics_.size());
    for (const auto& [name, t] : topics_)
        out.push_back({name, t.published, t.subscribers.size(), t.cut});
    return out;
}

hub_subscriber::batch hub_subscriber::take() {
    batch b;
    std::lock_guard lock(hub_->mutex_);
    b.cut = cut_;
    b.missed = std::exchange(missed_, 0);
    b.messages.swap(queue_); // the queue's storage goes with the batch, so an idle one holds none
    queued_bytes_ = 0;
    if (b.messages.empty() && !b.cut)
        waiting_ = true;
    return b;
}

} // namespace udshttp::service::detail
