#include "response_head.hpp"

#include <charconv>

namespace udshttp::service::detail {

std::string_view date_cache::get() noexcept {
    const std::time_t now = std::time(nullptr);
    if (now != last_) {
        std::tm tm{};
        gmtime_r(&now, &tm);
        len_ = std::strftime(buf_, sizeof buf_, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last_ = now;
    }
    return {buf_, len_};
}

bool format_head(const response& res, std::optional<std::uint64_t> length, bool keep_alive,
                 std::string_view date, std::string& out, bool chunked) {
    using namespace std::string_view_literals;
    out.clear();
    const auto put = [&out](std::string_view v) { out.append(v.data(), v.size()); };
    put(res.version() == 10 ? "HTTP/1.0 "sv : "HTTP/1.1 "sv);
    const auto status = res.result_int();
    const char code[4] = {static_cast<char>('0' + status / 100 % 10),
                          static_cast<char>('0' + status / 10 % 10),
                          static_cast<char>('0' + status % 10), ' '};
    put({code, 4});
    const auto reason = own_reason(res);
    put(reason.empty() ? proto::reason_phrase(status) : reason);
    put("\r\n"sv);
    // One pass over the fields, comparing field enums, not names.
    bool has_server = false, has_date = false;
    for (const auto& f : res) {
        const auto name = f.name();
        if (name == http::field::transfer_encoding || name == http::field::connection)
            return false;
        has_server = has_server || name == http::field::server;
        has_date = has_date || name == http::field::date;
        put(f.name_string());
        put(": "sv);
        put(f.value());
        put("\r\n"sv);
    }
    if (!has_server) {
        put("Server: "sv);
        put(server_field);
        put("\r\n"sv);
    }
    if (!has_date) {
        put("Date: "sv);
        put(date);
        put("\r\n"sv);
    }
    if (length) {
        char digits[24];
        const auto end = std::to_chars(digits, digits + sizeof digits, *length).ptr;
        put("Content-Length: "sv);
        put({digits, static_cast<std::size_t>(end - digits)});
        put("\r\n"sv);
    } else if (chunked) {
        put("Transfer-Encoding: chunked\r\n"sv);
    }
    if (!keep_alive && res.version() >= 11)
        put("Connection: close\r\n"sv);
    else if (keep_alive && res.version() == 10)
        put("Connection: keep-alive\r\n"sv);
    put("\r\n"sv);
    return true;
}

std::optional<std::uint64_t> finish(response& res, http::verb method) noexcept {
    res.erase(http::field::content_length); // announced from the body, whatever a handler said
    const auto status = res.result_int();
    if (status < 200 || status == 204 || status == 304) {
        res.body().clear();
        return std::nullopt;
    }
    const auto size = res.body().size();
    if (method == http::verb::head)
        res.body().clear();
    return size;
}

} // namespace udshttp::service::detail
