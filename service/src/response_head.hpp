#pragma once

// The head of a response, formatted by hand for the common answer: one pass over the fields
// into a reused string, sent with the body in one gather write. Beast's serializer did the
// same with a quarter of all instructions per request in buffer sequence adaptors; it still
// writes what format_head() declines (a handler's own framing or connection options).

#include <udshttp/proto/version.hpp>
#include <udshttp/service/request.hpp>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace udshttp::service::detail {

constexpr std::string_view server_field = "udshttp/" UDSHTTP_VERSION_STRING;

// The IMF-fixdate for the Date field, formatted once a second.
class date_cache {
public:
    std::string_view get() noexcept;

private:
    std::time_t last_ = 0;
    char buf_[40] = {};
    std::size_t len_ = 0;
};

// Formats the head of `res` into `out` (cleared first): status line, the fields, Server and
// Date unless the handler set them, Content-Length if `length` (else Transfer-Encoding:
// chunked if `chunked`), and Connection as keep_alive and the version require. Returns false when
// Beast must write the message instead: a field the handler set changes the framing or the
// connection (Transfer-Encoding, Connection). The bytes equal what Beast's serializer writes for
// the same message once stamp() has run and content_length() and keep_alive() are set
// (tests/internal/response_head_test.cpp). The reason phrase is the handler's, else
// proto::reason_phrase(): RFC 9110's, or none for a status it does not name ("HTTP/1.1 599 \r\n",
// which RFC 9112 allows).
bool format_head(const response& res, std::optional<std::uint64_t> length, bool keep_alive,
                 std::string_view date, std::string& out, bool chunked = false);

// The reason phrase a handler set, or empty. (Beast's reason() falls back to its own table of
// RFC 7231 phrases, so a phrase equal to that one counts as not set.)
template <class Fields> std::string_view own_reason(const http::header<false, Fields>& h) {
    const std::string_view r = h.reason();
    return r == std::string_view(http::obsolete_reason(h.result())) ? std::string_view() : r;
}

// Adds Server and Date to fields the handler did not give them, and RFC 9110's reason phrase
// (proto::reason_phrase, as format_head() writes it) where the handler set none, for a head
// Beast writes.
template <class Fields> void stamp(http::header<false, Fields>& fields, std::string_view date) {
    if (own_reason(fields).empty()) {
        if (const auto phrase = proto::reason_phrase(fields.result_int()); !phrase.empty())
            fields.reason(phrase);
    }
    if (fields.count(http::field::server) == 0)
        fields.set(http::field::server, server_field);
    if (fields.count(http::field::date) == 0)
        fields.set(http::field::date, date);
}

// The Content-Length to announce (none for 1xx, 204 and 304), with the body cleared where it
// must not be sent (those statuses, and HEAD). Never throws (a handler may have set a status
// that forbids a body and given one anyway).
std::optional<std::uint64_t> finish(response& res, http::verb method) noexcept;

} // namespace udshttp::service::detail
