#include <udshttp/service/router.hpp>

#include <udshttp/proto/url.hpp>

#include <nlohmann/json.hpp>

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

router& router::add_stream(http::verb method, std::string_view pattern, stream_factory f) {
    handlers h;
    h.stream = std::move(f);
    return add_route(method, pattern, std::move(h));
}

router& router::heartbeat(std::chrono::milliseconds every) {
    if (routes_.empty() || routes_[last_].kind != route_kind::writer)
        throw std::logic_error("router::heartbeat: the last route added is not a stream_writer "
                               "route");
    if (every <= std::chrono::milliseconds(0))
        throw std::invalid_argument("router::heartbeat: the interval must be positive");
    routes_[last_].heartbeat = every;
    return *this;
}

awaitable<> router::call(const route_match& m, const request& req, response& res) const {
    if (m.kind() != route_kind::async)
        throw std::logic_error("router::call: not an async route");
    return m.route_->h.async(req, res);
}

awaitable<> router::call(const route_match& m, const request& req, response_stream& out) const {
    if (m.kind() != route_kind::writer)
        throw std::logic_error("router::call: not a stream_writer route");
    return m.route_->h.writer(req, out);
}

awaitable<> router::call(const route_match& m, const request& req, websocket& ws) const {
    if (!m.websocket())
        throw std::logic_error("router::call: the route has no websocket handler");
    return m.route_->h.ws(req, ws);
}

awaitable<> router::call(const route_match& m, const request& req, upgraded_stream& up) const {
    if (!m.upgrades())
        throw std::logic_error("router::call: the route has no upgrade handler");
    return m.route_->h.raw(req, up);
}

router& router::describe(route_doc doc) {
    if (routes_.empty())
        throw std::logic_error("router::describe: no route to describe yet");
    routes_[last_].doc = std::move(doc);
    return *this;
}

namespace {

route_kind main_kind(const auto& h) {
    if (h.fn)
        return route_kind::plain;
    if (h.async)
        return route_kind::async;
    if (h.writer)
        return route_kind::writer;
    if (h.stream)
        return route_kind::body_stream;
    return route_kind::none;
}

} // namespace

router& router::add_route(http::verb method, std::string_view pattern, handlers h) {
    const auto kind = main_kind(h);
    if (kind == route_kind::none && !h.ws && !h.raw)
        throw std::invalid_argument("route " + std::string(pattern) + ": empty handler");
    route r{.method = method,
            .pattern = std::string(pattern),
            .segments = {},
            .kind = kind,
            .h = std::move(h),
            .heartbeat = {},
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
    for (std::size_t i = 0; i < routes_.size(); ++i) {
        auto& existing = routes_[i];
        if (existing.method != method || existing.pattern != r.pattern)
            continue;
        // One route per method and pattern, with at most one handler of each role: the
        // request handler, the websocket one and the upgrade one.
        const bool clash = (kind != route_kind::none && existing.kind != route_kind::none) ||
                           (r.h.ws && existing.h.ws) || (r.h.raw && existing.h.raw);
        if (clash)
            throw std::invalid_argument("route " + std::string(http::to_string(method)) + " " +
                                        r.pattern + " is already registered");
        if (kind != route_kind::none) {
            existing.kind = kind;
            existing.h.fn = std::move(r.h.fn);
            existing.h.async = std::move(r.h.async);
            existing.h.writer = std::move(r.h.writer);
            existing.h.stream = std::move(r.h.stream);
        }
        if (r.h.ws)
            existing.h.ws = std::move(r.h.ws);
        if (r.h.raw)
            existing.h.raw = std::move(r.h.raw);
        last_ = i;
        return *this;
    }
    routes_.push_back(std::move(r));
    last_ = routes_.size() - 1;
    return *this;
}

bool router::contains(http::verb method, std::string_view pattern) const noexcept {
    for (const auto& r : routes_)
        if (r.method == method && r.pattern == pattern)
            return true;
    return false;
}

namespace {

// Fills `raw` with the {param} segments of `path` if it matches `segments` whole.
bool match_path(const auto& segments, std::string_view path,
                std::vector<std::pair<std::string_view, std::string_view>>& raw) {
    raw.clear();
    std::size_t i = 0;
    const bool ok = for_each_segment(path, [&](std::string_view seg) {
        if (i == segments.size())
            return false;
        const auto& want = segments[i++];
        if (want.is_param) {
            if (seg.empty())
                return false;
            raw.emplace_back(want.text, seg);
            return true;
        }
        return seg == want.text;
    });
    return ok && i == segments.size();
}

} // namespace

route_match router::resolve(http::verb method, std::string_view target) const {
    route_match out;
    out.path_ = split_target(target).path;
    std::vector<std::pair<std::string_view, std::string_view>> raw;
    const route* found = nullptr;
    const route* head_fallback = nullptr;
    bool path_known = false;
    for (const auto& r : routes_) {
        if (!match_path(r.segments, out.path_, raw))
            continue;
        path_known = true;
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
        match_path(found->segments, out.path_, raw);
        for (const auto& [name, value] : raw) {
            auto decoded = proto::percent_decode(value);
            if (!decoded) {
                out.verdict_ = route_match::verdict::bad_encoding;
                out.params_.clear();
                return out;
            }
            out.params_.emplace_back(name, std::move(*decoded));
        }
        out.verdict_ = route_match::verdict::found;
        out.route_ = found;
        out.index_ = static_cast<std::size_t>(found - routes_.data());
        return out;
    }
    if (!path_known)
        return out; // not_found
    out.verdict_ = route_match::verdict::method_not_allowed;
    bool has_get = false;
    bool has_head = false;
    for (const auto& r : routes_) {
        if (!match_path(r.segments, out.path_, raw))
            continue;
        const auto name = http::to_string(r.method);
        if (out.allow_.find(name) != std::string::npos)
            continue;
        if (!out.allow_.empty())
            out.allow_ += ", ";
        out.allow_ += name;
        has_get |= r.method == http::verb::get;
        has_head |= r.method == http::verb::head;
    }
    if (has_get && !has_head)
        out.allow_ += ", HEAD";
    return out;
}

router::outcome router::dispatch(const route_match& m, const request& req,
                                 response& res) const noexcept {
    const auto method = req.message().method_string();
    outcome out;
    try {
        switch (m.verdict_) {
        case route_match::verdict::found:
            if (m.route_->kind == route_kind::plain) {
                m.route_->h.fn(req, res);
                out.by_route = true;
                return out;
            }
            if (m.route_->kind == route_kind::none) { // RFC 9110 15.5.22
                const bool ws = static_cast<bool>(m.route_->h.ws);
                res.result(http::status::upgrade_required);
                res.set(http::field::upgrade, ws ? "websocket" : "tcp");
                res.set(http::field::connection, "Upgrade");
                nlohmann::json body{
                    {"error",
                     {{"status", 426},
                      {"reason", "Upgrade Required"},
                      {"code", "upgrade_required"},
                      {"message", std::string(m.path_) + " answers only an Upgrade" +
                                      (ws ? " to websocket" : "")}}}};
                res.set(http::field::content_type, "application/json");
                res.body() = body.dump();
                return out;
            }
            out.failure = "a route that is not a plain one was dispatched as one";
            break;
        case route_match::verdict::bad_encoding:
            set_error(res, errc::bad_request,
                      "invalid percent-encoding in path '" + std::string(m.path_) + "'");
            return out;
        case route_match::verdict::method_not_allowed:
            set_error(res, errc::method_not_allowed,
                      std::string(method) + " is not allowed on " + std::string(m.path_) +
                          "; allowed: " + m.allow_);
            res.set(http::field::allow, m.allow_);
            return out;
        case route_match::verdict::not_found:
            set_error(res, errc::not_found,
                      "no route for " + std::string(method) + " " + std::string(m.path_));
            return out;
        }
    } catch (const std::exception& e) {
        out.failure = e.what();
    } catch (...) {
        out.failure = "an exception that is not a std::exception";
    }
    // A handler threw (or the router could not allocate its own answer): whatever it had
    // set is dropped for a plain 500.
    try {
        res = response{http::status::ok, req.message().version()};
        set_error(res, errc::internal_error);
    } catch (...) {
        res.result(http::status::internal_server_error);
        res.body().clear();
    }
    out.by_route = false;
    return out;
}

std::unique_ptr<stream_handler> router::open_stream(const route_match& m) const {
    if (!m.streams())
        return nullptr;
    return m.route_->h.stream();
}

std::string_view route_match::param(std::string_view name) const noexcept {
    for (const auto& [key, value] : params_)
        if (key == name)
            return value;
    return {};
}

} // namespace udshttp::service
