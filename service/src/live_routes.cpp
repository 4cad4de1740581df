// udshttpd's built-in routes that wait, stream or upgrade (coroutine handlers, async.hpp): the
// topic hub (POST /topics/{name} publishes; GET /topics/{name} subscribes as SSE, NDJSON or
// WebSocket, or long-polls), GET /events (the server's own request events), and the echo
// route upgraded (GET /ws/echo, and POST /echo with Upgrade: tcp).

#include "server_state.hpp"
#include "topic_hub.hpp"

#include <udshttp/proto/units.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <charconv>

namespace udshttp::service::detail {
namespace {

namespace asio = boost::asio;
// What a handler returns: the handlers' awaitable (detail::awaitable is the session's).
template <class T = void> using task = service::awaitable<T>;

constexpr const char* bad_topic_name = "a topic name is 1 to 64 of A-Z a-z 0-9 . _ -";

// How a subscriber asked to receive messages.
enum class delivery { long_poll, sse, ndjson };

delivery delivery_for(const request& req) {
    if (req.accepts("text/event-stream"))
        return delivery::sse;
    if (req.accepts("application/x-ndjson"))
        return delivery::ndjson;
    return delivery::long_poll;
}

// An optional unsigned query parameter; false if present and malformed.
bool read_id(const request& req, std::string_view name, std::optional<std::uint64_t>& out) {
    const auto text = req.query_param(name);
    if (!text)
        return true;
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
    if (ec != std::errc{} || end != text->data() + text->size())
        return false;
    out = v;
    return true;
}

// Answers a stream route (nothing written yet) with a JSON error instead of a stream. (Named
// locals around co_await throughout: GCC 12 mishandles temporaries inside a co_await
// expression.)
task<> refuse(response_stream& out, errc code, std::string message) {
    set_error(out.head(), code, std::move(message));
    const auto body = std::move(out.head().body());
    co_await out.write(body);
}

// Unsubscribes when the handler ends, however it ends.
struct subscription {
    subscription(topic_hub& h, std::string t, std::shared_ptr<hub_subscriber> s)
        : hub(h), topic(std::move(t)), sub(std::move(s)) {}
    subscription(subscription&&) noexcept = default; // the moved-from one unsubscribes nothing
    subscription& operator=(subscription&&) = delete;
    ~subscription() {
        if (sub)
            hub.unsubscribe(topic, sub);
    }
    topic_hub& hub;
    std::string topic;
    std::shared_ptr<hub_subscriber> sub;
};

// Throws operation_aborted once the handler is cancelled (its peer left, the server drains,
// or the other half of a WebSocket ended), so no loop can go on waiting after that.
void throw_if_cancelled(const asio::cancellation_state& state) {
    if (state.cancelled() != asio::cancellation_type::none)
        throw boost::system::system_error(asio::error::operation_aborted);
}

// The wait for the hub's wake-up or `until`. A plain function, not a coroutine: an idle
// subscriber keeps no frame for it. Follow it with throw_if_cancelled().
auto wake_up(hub_subscriber& sub, std::chrono::steady_clock::time_point until) {
    sub.wake.expires_at(until);
    return sub.wake.async_wait(asio::as_tuple(asio::use_awaitable));
}

task<> wait(hub_subscriber& sub, std::chrono::steady_clock::time_point until) {
    const auto before = co_await asio::this_coro::cancellation_state;
    throw_if_cancelled(before); // see pump()
    co_await wake_up(sub, until);
    const auto state = co_await asio::this_coro::cancellation_state;
    throw_if_cancelled(state);
}

// A notice of the stream's own (a gap, the cut): an NDJSON line, or an SSE event of that type
// whose data is the JSON.
task<> notice(response_stream& out, delivery how, const nlohmann::ordered_json& j,
              std::string_view event) {
    const auto text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (how == delivery::ndjson) {
        out.head().set(http::field::content_type, "application/x-ndjson");
        const auto line = text + '\n';
        co_await out.write(line);
    } else {
        const sse_event e{.data = text, .event = event};
        co_await out.write_event(e);
    }
}

// Writes one batch a subscriber took: a gap notice, the messages, or the cut. (Its own
// coroutine, so that its locals live only while it writes, not in every idle subscriber.)
task<> deliver(const hub_subscriber::batch& batch, response_stream& out, delivery how) {
    if (batch.missed > 0) {
        const nlohmann::ordered_json gap{{"type", "gap"}, {"missed", batch.missed}};
        const std::string_view event = "gap";
        co_await notice(out, how, gap, event);
    }
    if (batch.cut) {
        const nlohmann::ordered_json cut{
            {"type", "error"},
            {"code", "too_slow"},
            {"message", "this subscriber fell behind by more than the queue holds; "
                        "reconnect with Last-Event-ID or ?after= to resume"}};
        const std::string_view event = "error";
        co_await notice(out, how, cut, event);
        co_return;
    }
    for (const auto& m : batch.messages) {
        if (how == delivery::ndjson) {
            // /events's messages have no JSON of their own: their bodies are JSON lines.
            const std::string line = (m->json.empty() ? m->body : m->json) + '\n';
            co_await out.write(line);
        } else {
            co_await out.write(m->sse); // formatted once, when it was published
        }
    }
}

// Writes what a subscriber gets until the peer leaves, the server drains, or the subscriber
// is cut for being too slow. Sends the head first: a subscriber knows it is subscribed before
// the first message. This frame is what an idle subscriber keeps, so it holds little.
task<> pump(subscription s, response_stream& out, delivery how) {
    out.head().set(http::field::content_type,
                   how == delivery::sse ? "text/event-stream" : "application/x-ndjson");
    co_await out.flush();
    for (;;) {
        const auto batch = s.sub->take();
        if (!batch.messages.empty() || batch.missed > 0 || batch.cut) {
            co_await deliver(batch, out, how);
            if (batch.cut)
                co_return;
            continue;
        }
        // Checked before the wait too: a peer that left while this coroutine ran without
        // suspending (a write the socket took at once) cancelled no pending wait, and the
        // timer would wait for ever; the state keeps the cancellation.
        const auto state = co_await asio::this_coro::cancellation_state;
        throw_if_cancelled(state);
        co_await wake_up(*s.sub, std::chrono::steady_clock::time_point::max());
        const auto after = co_await asio::this_coro::cancellation_state;
        throw_if_cancelled(after);
    }
}

// Long-poll: what is there now, else wait up to the timeout for the next; an empty answer at
// the deadline, never an error. "next" is the cursor for the next poll.
task<> long_poll(subscription s, response_stream& out, std::uint64_t after,
                 std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    auto batch = s.sub->take();
    while (batch.messages.empty() && !batch.cut && std::chrono::steady_clock::now() < until) {
        co_await wait(*s.sub, until);
        batch = s.sub->take();
    }
    // {"topic":..,"messages":[..],"next":..[,"missed":..]}, from each message's JSON as made
    // when it was published.
    std::string body = "{\"topic\":" + nlohmann::json(s.topic).dump() + ",\"messages\":[";
    std::uint64_t next = after;
    for (const auto& m : batch.messages) {
        if (next != after)
            body += ',';
        body += m->json;
        next = m->id;
    }
    body += "],\"next\":" + std::to_string(next);
    if (batch.missed > 0)
        body += ",\"missed\":" + std::to_string(batch.missed);
    body += '}';
    out.head().set(http::field::content_type, "application/json");
    co_await out.write(body);
}

// GET /topics/{name} as a stream route. Not a coroutine: it checks the request and subscribes
// at once, then returns the coroutine that serves it (a refusal, the pump or the long-poll),
// so that no frame of its own stays for as long as a subscriber is connected.
task<> subscribe(server_state& state, const request& req, response_stream& out) {
    std::string topic(req.param("name"));
    if (!topic_hub::valid_name(topic))
        return refuse(out, errc::bad_request, bad_topic_name);
    const auto how = delivery_for(req);
    std::optional<std::uint64_t> after;
    if (!read_id(req, "after", after))
        return refuse(out, errc::bad_request, "after= must be a message id");
    if (!after && how == delivery::sse && !out.last_event_id().empty()) {
        std::uint64_t v = 0;
        const auto id = out.last_event_id();
        if (std::from_chars(id.data(), id.data() + id.size(), v).ec == std::errc{})
            after = v;
    }
    std::optional<std::chrono::milliseconds> timeout = std::chrono::milliseconds(0);
    if (how == delivery::long_poll) {
        timeout = poll_timeout(req, state.options.hub.max_poll);
        if (!timeout)
            return refuse(out, errc::bad_request,
                          "timeout= must be a duration such as 30s or 500ms");
    }
    auto& hub = *state.hub;
    subscription s{hub, std::move(topic), std::make_shared<hub_subscriber>(out.get_executor())};
    if (how == delivery::long_poll && !after)
        after = hub.last_id(s.topic); // only what comes next
    if (auto refused = hub.subscribe(s.topic, after, s.sub))
        return refuse(out, refused->code, std::move(refused->message));
    if (how == delivery::long_poll)
        return long_poll(std::move(s), out, after.value_or(0), *timeout);
    return pump(std::move(s), out, how);
}

// A WebSocket subscriber: each message as a text message holding its JSON (as the NDJSON
// lines are). A reader runs beside the writer, since pings and the peer's close arrive
// through reads; whichever ends first ends the other.
task<> subscribe_websocket(server_state& state, const request& req, websocket& ws,
                           std::string topic) {
    using namespace boost::asio::experimental::awaitable_operators;
    std::optional<std::uint64_t> after;
    if (!read_id(req, "after", after)) {
        co_await ws.close(1008, "after= must be a message id");
        co_return;
    }
    auto& hub = *state.hub;
    const auto ex = co_await asio::this_coro::executor;
    subscription s{hub, topic, std::make_shared<hub_subscriber>(ex)};
    if (auto refused = hub.subscribe(topic, after, s.sub)) {
        co_await ws.close(1013, refused->message); // try again later
        co_return;
    }
    // The two halves end each other by hand, not through cancellation: the reader, when the
    // connection closes or breaks, sets `over` and wakes the writer; the writer, when it is
    // done (cut, or its write failed), closes the WebSocket, which ends the reader's read.
    // (Asio 1.81's operator|| did not deliver its cancellation to a writer waiting on the
    // hub's timer: a subscriber whose peer vanished stayed until the drain timeout.)
    bool over = false;
    const auto reader = [&]() -> task<> {
        try {
            for (;;) {
                auto m = co_await ws.read();
                if (!m)
                    break;
            }
        } catch (const boost::system::system_error&) {
        }
        over = true;
        s.sub->wake.cancel();
    };
    const auto writer = [&]() -> task<> {
        try {
            while (!over) {
                auto batch = s.sub->take();
                if (batch.missed > 0) {
                    const nlohmann::ordered_json gap{{"type", "gap"}, {"missed", batch.missed}};
                    const auto text = gap.dump();
                    co_await ws.write(text);
                }
                if (batch.cut) {
                    const nlohmann::ordered_json cut{{"type", "error"}, {"code", "too_slow"}};
                    const auto text = cut.dump();
                    co_await ws.write(text);
                    break;
                }
                for (const auto& m : batch.messages) {
                    co_await ws.write(m->json);
                }
                if (batch.messages.empty() && batch.missed == 0 && !over)
                    co_await wait(*s.sub, std::chrono::steady_clock::time_point::max());
            }
        } catch (const boost::system::system_error&) {
        }
        if (!over)
            co_await ws.close(1008, "too slow"); // or the write failed: the reader ends now
    };
    co_await (reader() && writer());
}

} // namespace

void add_live_routes(server_state& state) {
    state.hub = std::make_unique<topic_hub>(state.options.hub);
    auto& r = state.routes;
    // The echo route, upgraded: a WebSocket echo, and Docker's raw hijack (POST /echo with
    // Upgrade: tcp) echoing bytes until the caller's EOF, then passing the EOF back.
    if (!r.contains(http::verb::get, proto::paths::ws_echo))
        r.get(proto::paths::ws_echo,
              [](const request&, websocket& ws) -> task<> {
                  for (;;) {
                      auto m = co_await ws.read();
                      if (!m)
                          co_return;
                      co_await ws.write(m->data, m->binary);
                  }
              })
            .describe({.summary = "WebSocket echo",
                       .description = "Upgrade: websocket; every text or binary message comes "
                                      "back as it was sent.",
                       .response_type = "*/*"});
    r.add(http::verb::post, proto::paths::echo,
          [&state](const request&, upgraded_stream& up) -> task<> {
              // An echo has no reason to sit silent: the idle timeout holds, as for any request.
              up.set_idle_limit(state.options.idle_timeout);
              std::array<char, 16 * 1024> buf;
              for (;;) {
                  const auto n = co_await up.read_some(buf);
                  if (n == 0)
                      break;
                  co_await up.write(std::string_view(buf.data(), n));
              }
              up.shutdown_write();
          });

    if (!r.contains(http::verb::post, proto::paths::topic))
        r.post(proto::paths::topic,
               [&state](const request& req, response& res) {
                   const std::string topic(req.param("name"));
                   if (!topic_hub::valid_name(topic))
                       return set_error(res, errc::bad_request, bad_topic_name);
                   auto id = state.hub->publish(
                       topic, std::string(req.message()[http::field::content_type]), req.body());
                   if (auto* refused = std::get_if<topic_hub::refusal>(&id))
                       return set_error(res, refused->code, std::move(refused->message));
                   set_json(res, {{"topic", topic}, {"id", std::get<std::uint64_t>(id)}});
               })
            .describe({.summary = "Publishes to a topic",
                       .description = "The body (any media type) becomes the next message of "
                                      "the topic; answers {\"topic\",\"id\"}.",
                       .request_type = "*/*",
                       .response_type = "application/json"});
    if (!r.contains(http::verb::get, proto::paths::topic))
        r.get(proto::paths::topic,
              [&state](const request& req, response_stream& out) -> task<> {
                  return subscribe(state, req, out);
              })
            .heartbeat(state.options.hub.heartbeat)
            .describe({.summary = "Subscribes to a topic",
                       .description =
                           "Accept: text/event-stream (SSE) or application/x-ndjson streams the "
                           "topic's messages, from Last-Event-ID or ?after=ID while the replay "
                           "buffer still has it. Otherwise a long-poll: ?after=ID&timeout=30s "
                           "answers {\"messages\",\"next\"} when a message comes or, empty, at "
                           "the timeout. A subscriber that falls behind gets one error event "
                           "and is closed.",
                       .response_type = "text/event-stream"});
    r.get(proto::paths::topic, [&state](const request& req, websocket& ws) -> task<> {
        std::string topic(req.param("name"));
        if (!topic_hub::valid_name(topic)) {
            co_await ws.close(1008, bad_topic_name);
            co_return;
        }
        co_await subscribe_websocket(state, req, ws, std::move(topic));
    });
    if (!r.contains(http::verb::get, proto::paths::events))
        r.get(proto::paths::events,
              [&state](const request& req, response_stream& out) -> task<> {
                  // Not a coroutine (see subscribe()).
                  const auto how =
                      delivery_for(req) == delivery::sse ? delivery::sse : delivery::ndjson;
                  auto& hub = *state.hub;
                  subscription s{hub, std::string(topic_hub::events_topic),
                                 std::make_shared<hub_subscriber>(out.get_executor())};
                  if (auto refused = hub.subscribe(s.topic, std::nullopt, s.sub))
                      return refuse(out, refused->code, std::move(refused->message));
                  return pump(std::move(s), out, how);
              })
            .heartbeat(state.options.hub.heartbeat)
            .describe({.summary = "The server's request events, live",
                       .description = "One event per request answered (the access-log "
                                      "fields), as NDJSON or, with Accept: text/event-stream, "
                                      "SSE. A subscriber that falls behind gets one error "
                                      "event and is closed.",
                       .response_type = "application/x-ndjson"});
}

} // namespace udshttp::service::detail
