#include <udshttp/proto/units.hpp>
#include <udshttp/proto/url.hpp>
#include <udshttp/service/async.hpp>
#include <udshttp/service/request.hpp>
#include <udshttp/service/router.hpp>

#include <algorithm>

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/field.hpp>

namespace udshttp::service {

target_parts split_target(std::string_view target) noexcept {
    // RFC 9112 3.2.2: absolute-form ("http://localhost/hello") is served as its path; an
    // absolute-form target without a path means "/".
    if (!target.empty() && target.front() != '/') {
        const auto scheme_end = target.find("://");
        if (scheme_end != std::string_view::npos &&
            (boost::beast::iequals(target.substr(0, scheme_end), "http") ||
             boost::beast::iequals(target.substr(0, scheme_end), "https"))) {
            target.remove_prefix(scheme_end + 3);
            const auto path = target.find_first_of("/?");
            target = path == std::string_view::npos ? std::string_view() : target.substr(path);
            if (target.empty() || target.front() == '?')
                return {"/", target.empty() ? target : target.substr(1)};
        }
    }
    const auto q = target.find('?');
    if (q == std::string_view::npos)
        return {target, {}};
    return {target.substr(0, q), target.substr(q + 1)};
}

std::string_view request::param(std::string_view name) const noexcept {
    return match_ ? match_->param(name) : std::string_view();
}

bool request::accepts(std::string_view type) const noexcept {
    const std::string_view accept = message_[http::field::accept];
    // Case-insensitive search for the media type; parameters (;q=) do not matter here.
    if (type.empty() || accept.size() < type.size())
        return false;
    for (std::size_t i = 0; i + type.size() <= accept.size(); ++i)
        if (boost::beast::iequals(accept.substr(i, type.size()), type))
            return true;
    return false;
}

std::optional<std::string> request::query_param(std::string_view name) const {
    std::string_view q = target_.query;
    while (!q.empty()) {
        const auto amp = q.find('&');
        const auto pair = q.substr(0, amp);
        const auto eq = pair.find('=');
        if (pair.substr(0, eq) == name)
            return proto::percent_decode(eq == std::string_view::npos ? std::string_view()
                                                                      : pair.substr(eq + 1));
        if (amp == std::string_view::npos)
            break;
        q.remove_prefix(amp + 1);
    }
    return std::nullopt;
}

std::optional<std::chrono::milliseconds> poll_timeout(const request& req,
                                                      std::chrono::milliseconds max) {
    const auto text = req.query_param("timeout");
    if (!text)
        return std::chrono::milliseconds(0);
    const auto d = proto::parse_duration(*text);
    if (!d)
        return std::nullopt;
    return std::min(*d, max);
}

void set_text(response& res, std::string text) {
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = std::move(text);
}

void set_json(response& res, const nlohmann::json& body) {
    res.set(http::field::content_type, "application/json");
    // Strings from the wire (a decoded path parameter) may not be UTF-8: replace, never throw.
    res.body() = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void set_error(response& res, errc e, std::string message) {
    auto body = proto::make_error_body(e, std::move(message));
    res.result(body.status);
    set_json(res, body);
}

} // namespace udshttp::service
