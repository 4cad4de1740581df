#include <udshttp/service/router.hpp>

#include <udshttp/proto/url.hpp>

#include <stdexcept>

namespace udshttp::service {
namespace {

// Calls fn(segment) for each '/'-separated segment after the leading '/'.
template <class Fn> bool for_each_segment(std::string_view path, Fn&& fn) {
    if (path.empty() || path.front() != '/')
        return false;
    path.remove_prefix(1);
    while (true) {
        const auto slash = path.find('/');
        if (!fn(path.substr(0, slash)))
            return false;
        if (slash == std::string_view::npos)
            return true;
        path.remove_prefix(slash + 1);
    }
}

} // namespace

router& router::add(http::verb method, std::string_view pattern, handler h) {
    if (!h)
        throw std::invalid_argument("route " + std::string(pattern) + ": empty handler");
    return add_route(method, pattern, std::move(h), nullptr);
}

router& router::add_stream(http::verb method, std::string_view pattern, stream_factory f) {
    if (!f)
        throw std::invalid_argument("route " + std::string(pattern) + ": empty stream factory");
    return add_route(method, pattern, nullptr, std::move(f));
}

router& router::describe(route_doc doc) {
    if (routes_.empty())
        throw std::logic_error("router::describe: no route to describe yet");
    routes_.back().doc = std::move(doc);
    return *this;
}

router& router::add_route(http::verb method, std::string_view pattern, handler h,
                          stream_factory f) {
    route r{.method = method,
            .pattern = std::string(pattern),
            .segments = {},
            .fn = std::move(h),
            .stream = std::move(f),
            .doc = {}};
    const bool ok = for_each_segment(pattern, [&](std::string_view seg) {
        if (seg.size() >= 2 && seg.front() == '{' && seg.back() == '}') {
            auto name = seg.substr(1, seg.size() - 2);
            if (name.find_first_of("{}/") != std::string_view::npos)
                return false;
            r.segments.push_back({std::string(name), true});
        } else {
            if (seg.find_first_of("{}") != std::string_view::npos)
                return false;
            r.segments.push_back({std::string(seg), false});
        }
        return true;
    });
    if (!ok)
        throw std::invalid_argument("route pattern '" + std::string(pattern) +
                                    "' is malformed: it must start with '/' and use whole "
                                    "{param} segments");
    for (const auto& existing : routes_)
        if (existing.method == method && existing.pattern == r.pattern)
            throw std::invalid_argument("route " + std::string(http::to_string(method)) + " " +
                                        r.pattern + " is already registered");
    routes_.push_back(std::move(r));
    return *this;
}

bool router::contains(http::verb method, std::string_view pattern) const noexcept {
    for (const auto& r : routes_)
        if (r.method == method && r.pattern == pattern)
            return true;
    return false;
}

bool router::match_path(const route& r, std::string_view path,
                        std::vector<std::pair<std::string_view, std::string_view>>& raw) {
    raw.clear();
    std::size_t i = 0;
    const bool ok = for_each_segment(path, [&](std::string_view seg) {
        if (i == r.segments.size())
            return false;
        const auto& want = r.segments[i++];
        if (want.is_param) {
            if (seg.empty())
                return false;
            raw.emplace_back(want.text, seg);
            return true;
        }
        return seg == want.text;
    });
    return ok && i == r.segments.size();
}

router::match_result router::match(http::verb method, std::string_view path, request& req) const {
    match_result out;
    std::vector<std::pair<std::string_view, std::string_view>> raw;
    const route* found = nullptr;
    const route* head_fallback = nullptr;
    for (const auto& r : routes_) {
        if (!match_path(r, path, raw))
            continue;
        out.path_known = true;
        if (r.method == method) {
            found = &r;
            break;
        }
        if (method == http::verb::head && r.method == http::verb::get && !head_fallback)
            head_fallback = &r;
    }
    if (!found)
        found = head_fallback;
    if (found) {
        // raw holds the parameters of the last path match; recompute for the chosen route.
        match_path(*found, path, raw);
        auto& params = req.params();
        params.clear();
        for (const auto& [name, value] : raw) {
            auto decoded = proto::percent_decode(value);
            if (!decoded) {
                out.bad_encoding = true;
                return out;
            }
            params.emplace_back(name, std::move(*decoded));
        }
        if (found->stream)
            out.stream = &found->stream;
        else
            out.target = &found->fn;
        out.index = static_cast<std::size_t>(found - routes_.data());
        return out;
    }
    if (out.path_known) {
        bool has_get = false;
        bool has_head = false;
        for (const auto& r : routes_) {
            if (!match_path(r, path, raw))
                continue;
            const auto name = http::to_string(r.method);
            if (out.allow.find(name) != std::string::npos)
                continue;
            if (!out.allow.empty())
                out.allow += ", ";
            out.allow += name;
            has_get |= r.method == http::verb::get;
            has_head |= r.method == http::verb::head;
        }
        if (has_get && !has_head)
            out.allow += ", HEAD";
    }
    return out;
}

} // namespace udshttp::service
