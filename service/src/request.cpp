#include <udshttp/service/request.hpp>
#include <udshttp/service/router.hpp>

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

bool request::wants_json() const noexcept {
    const std::string_view accept = message_[http::field::accept];
    // Case-insensitive search for the media type; parameters (;q=) do not matter here.
    constexpr std::string_view json = "application/json";
    if (accept.size() < json.size())
        return false;
    for (std::size_t i = 0; i + json.size() <= accept.size(); ++i)
        if (boost::beast::iequals(accept.substr(i, json.size()), json))
            return true;
    return false;
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
