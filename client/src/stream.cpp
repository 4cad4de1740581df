// SSE and NDJSON as they arrive: the parsers, and the calls that feed them from a request.

#include "message.hpp"

#include <udshttp/client/stream.hpp>
#include <udshttp/proto/text.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <nlohmann/json.hpp>

#include <charconv>
#include <thread>

namespace udshttp::client {

sse_parser::sse_parser(handler on_event, std::size_t max_line)
    : on_event_(std::move(on_event)), max_line_(max_line) {}

void sse_parser::reset() noexcept {
    partial_.clear();
    skip_lf_ = false;
    type_.clear();
    data_.clear();
    has_data_ = false;
}

result<bool> sse_parser::feed(std::string_view piece) {
    while (!piece.empty() && !stopped_) {
        if (skip_lf_) {
            skip_lf_ = false;
            if (piece.front() == '\n') {
                piece.remove_prefix(1);
                continue;
            }
        }
        const auto eol = piece.find_first_of("\r\n");
        if (eol == std::string_view::npos) {
            partial_.append(piece);
            break;
        }
        partial_.append(piece.substr(0, eol));
        skip_lf_ = piece[eol] == '\r';
        piece.remove_prefix(eol + 1);
        line(partial_);
        partial_.clear();
    }
    if (partial_.size() > max_line_)
        return error{make_error_code(errc::protocol_error),
                     "an event-stream line is longer than " + std::to_string(max_line_) + " bytes"};
    return !stopped_;
}

void sse_parser::line(std::string_view l) {
    if (l.empty()) { // dispatch
        if (has_data_) {
            sse_event e{.type = type_.empty() ? "message" : type_, .data = data_, .id = id_};
            if (!on_event_(e))
                stopped_ = true;
        }
        type_.clear();
        data_.clear();
        has_data_ = false;
        return;
    }
    if (l.front() == ':')
        return; // a comment
    const auto colon = l.find(':');
    const auto name = l.substr(0, colon);
    auto value = colon == std::string_view::npos ? std::string_view() : l.substr(colon + 1);
    if (!value.empty() && value.front() == ' ')
        value.remove_prefix(1);
    if (name == "event") {
        type_ = value;
    } else if (name == "data") {
        if (has_data_)
            data_ += '\n';
        data_.append(value);
        has_data_ = true;
    } else if (name == "id") {
        if (value.find('\0') == std::string_view::npos)
            id_ = value;
    } else if (name == "retry") {
        std::uint64_t ms = 0;
        const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), ms);
        if (ec == std::errc{} && end == value.data() + value.size())
            retry_ = std::chrono::milliseconds(ms);
    }
}

ndjson_parser::ndjson_parser(handler on_value, std::size_t max_line)
    : on_value_(std::move(on_value)), max_line_(max_line) {}

result<bool> ndjson_parser::feed(std::string_view piece) {
    while (!piece.empty() && !stopped_) {
        const auto nl = piece.find('\n');
        if (nl == std::string_view::npos) {
            partial_.append(piece);
            break;
        }
        partial_.append(piece.substr(0, nl));
        piece.remove_prefix(nl + 1);
        std::string_view text = partial_;
        while (!text.empty() && (text.back() == '\r' || text.back() == ' '))
            text.remove_suffix(1);
        if (text.find_first_not_of(" \t") != std::string_view::npos) {
            auto value = nlohmann::json::parse(text, nullptr, false);
            if (value.is_discarded())
                return error{make_error_code(errc::invalid_json),
                             "an NDJSON line is not JSON: " +
                                 proto::quote(text, proto::default_quote_bytes)};
            if (!on_value_(value))
                stopped_ = true;
        }
        partial_.clear();
    }
    if (partial_.size() > max_line_)
        return error{make_error_code(errc::protocol_error),
                     "an NDJSON line is longer than " + std::to_string(max_line_) + " bytes"};
    return !stopped_;
}

namespace {

// One request of a stream: its body goes into the parser while the status is 2xx; an error
// status's body is kept (up to 64 KiB) for the error message.
template <class Parser> struct attempt {
    Parser& parser;
    unsigned status = 0;
    std::string error_text{};
    bool stopped = false;
    std::optional<error> parse_error{};

    download make_download() {
        download dl;
        dl.head = [this](const response& r) { status = r.status; };
        dl.sink = [this](std::string_view piece) -> result<void> {
            if (status < 200 || status >= 300) {
                if (error_text.size() < 64 * 1024)
                    error_text.append(piece);
                return {};
            }
            auto fed = parser.feed(piece);
            if (!fed) {
                parse_error = fed.error();
                return fed.error();
            }
            if (!*fed) {
                stopped = true; // the caller's handler said stop: end the request here
                return error{make_error_code(errc::io_error), "stopped by the handler"};
            }
            return {};
        };
        return dl;
    }
};

request stream_request(std::string_view url, const stream_options& o, std::string_view accept,
                       const std::string& last_id) {
    request req{.method = "GET",
                .url = std::string(url),
                .headers = o.headers,
                .body = {},
                .timeout = std::chrono::milliseconds(0), // a stream may last for hours
                .connect_timeout = {}};
    req.headers.emplace_back("Accept", accept);
    if (!last_id.empty())
        req.headers.emplace_back("Last-Event-ID", last_id);
    return req;
}

// What one attempt's end means: done (with this result), or go on (reconnect after `delay`).
struct verdict {
    std::optional<result<void>> done;
    std::chrono::milliseconds delay{0};
};

template <class Parser>
verdict judge(const attempt<Parser>& a, result<response>& r, const std::string& what,
              const stream_options& o, std::size_t& quiet_attempts, bool got_events,
              std::optional<std::chrono::milliseconds> server_retry) {
    if (a.stopped)
        return {result<void>{}, {}};
    if (a.parse_error)
        return {result<void>(*a.parse_error), {}};
    if (r && !r->ok()) {
        r->body = a.error_text;
        return {result<void>(detail::answer_error(what, *r)), {}};
    }
    if (got_events)
        quiet_attempts = 0;
    if (!o.reconnect || ++quiet_attempts > o.max_reconnects) {
        if (!r)
            return {result<void>(r.error()), {}};
        return {result<void>{}, {}};
    }
    return {std::nullopt, server_retry.value_or(o.retry_delay)};
}

template <class Parser, class Handler>
result<void> read_stream(client& c, std::string_view url, Handler on_item, const stream_options& o,
                         std::string_view accept) {
    bool got = false;
    Parser parser([&](const auto& item) {
        got = true;
        return on_item(item);
    });
    const std::string what = "GET " + std::string(url);
    std::size_t quiet = 0;
    for (;;) {
        std::string last_id;
        std::optional<std::chrono::milliseconds> retry;
        if constexpr (std::is_same_v<Parser, sse_parser>) {
            last_id = parser.last_event_id();
            retry = parser.retry();
        }
        parser.reset();
        got = false;
        attempt<Parser> a{parser};
        auto r = c.send(stream_request(url, o, accept, last_id), a.make_download());
        if constexpr (std::is_same_v<Parser, sse_parser>)
            retry = parser.retry();
        auto v = judge(a, r, what, o, quiet, got, retry);
        if (v.done)
            return *v.done;
        std::this_thread::sleep_for(v.delay);
    }
}

template <class Parser, class Handler>
boost::asio::awaitable<result<void>> async_read_stream(async_client& c, std::string url,
                                                       Handler on_item, stream_options o,
                                                       std::string_view accept) {
    bool got = false;
    Parser parser([&](const auto& item) {
        got = true;
        return on_item(item);
    });
    const std::string what = "GET " + url;
    std::size_t quiet = 0;
    for (;;) {
        std::string last_id;
        std::optional<std::chrono::milliseconds> retry;
        if constexpr (std::is_same_v<Parser, sse_parser>)
            last_id = parser.last_event_id();
        parser.reset();
        got = false;
        attempt<Parser> a{parser};
        auto req = stream_request(url, o, accept, last_id);
        auto dl = a.make_download();
        auto r = co_await c.async_send(std::move(req), std::move(dl));
        if constexpr (std::is_same_v<Parser, sse_parser>)
            retry = parser.retry();
        auto v = judge(a, r, what, o, quiet, got, retry);
        if (v.done)
            co_return *v.done;
        boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, v.delay);
        co_await t.async_wait(boost::asio::use_awaitable);
    }
}

constexpr std::string_view sse_type = "text/event-stream";
constexpr std::string_view ndjson_type = "application/x-ndjson";

} // namespace

result<void> read_events(client& c, std::string_view url, sse_parser::handler on_event,
                         const stream_options& options) {
    return read_stream<sse_parser>(c, url, std::move(on_event), options, sse_type);
}

result<void> read_json_lines(client& c, std::string_view url, ndjson_parser::handler on_value,
                             const stream_options& options) {
    return read_stream<ndjson_parser>(c, url, std::move(on_value), options, ndjson_type);
}

boost::asio::awaitable<result<void>> async_read_events(async_client& c, std::string url,
                                                       sse_parser::handler on_event,
                                                       stream_options options) {
    co_return co_await async_read_stream<sse_parser>(c, std::move(url), std::move(on_event),
                                                     std::move(options), sse_type);
}

boost::asio::awaitable<result<void>> async_read_json_lines(async_client& c, std::string url,
                                                           ndjson_parser::handler on_value,
                                                           stream_options options) {
    co_return co_await async_read_stream<ndjson_parser>(c, std::move(url), std::move(on_value),
                                                        std::move(options), ndjson_type);
}

} // namespace udshttp::client
