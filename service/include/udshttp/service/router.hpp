#pragma once

/// @file
/// Method + path pattern -> handler. Patterns are literal segments and {param} segments:
/// "/hello/{name}". resolve() finds the route for a request; dispatch() answers it: the
/// route's handler, or 400 (a {param} with invalid percent-encoding), 404 (no route has the
/// path), 405 with an Allow field (routes have the path, not the method), or 500 when the
/// handler throws. HEAD is answered by GET routes.

#include <udshttp/service/request.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace udshttp::service {

/// A route handler. It runs on the connection's worker thread and must not block for long.
using handler = std::function<void(const request&, response&)>;
/// Makes the stream_handler for one request of a stream route.
using stream_factory = std::function<std::unique_ptr<stream_handler>()>;

/// What GET /openapi.json says about a route (router::describe()).
struct route_doc {
    std::string summary{};     ///< one line: "Greets NAME"
    std::string description{}; ///< more, if there is more to say
    /// Media type of the request body ("application/json"), empty when it takes none.
    std::string request_type{};
    /// Media type of the successful answer.
    std::string response_type = "text/plain";
};

/// One registered route, as router::for_each() shows it.
struct route_view {
    std::size_t index;        ///< its position in the order added
    http::verb method;        ///< its method
    std::string_view pattern; ///< "/hello/{name}"
    const route_doc& doc;     ///< empty summary if never described
    bool stream;              ///< a stream route
};

class route_match;

/// The routing table.
/// @par Thread safety
/// Add routes before server::start(); after that the table is only read.
class router {
public:
    /// Adds a route. Throws std::invalid_argument for a malformed pattern or a duplicate.
    router& add(http::verb method, std::string_view pattern, handler h);
    /// Adds a stream route: its handler sees the body as it arrives (see stream_handler).
    router& add_stream(http::verb method, std::string_view pattern, stream_factory f);
    /// Describes the route added last, for GET /openapi.json:
    ///     r.get("/greet/{name}", greet).describe({.summary = "Greets NAME"});
    /// Throws std::logic_error if no route has been added.
    router& describe(route_doc doc);
    /// Shorthand for add(GET, ...).
    router& get(std::string_view pattern, handler h) {
        return add(http::verb::get, pattern, std::move(h));
    }
    /// Shorthand for add(POST, ...).
    router& post(std::string_view pattern, handler h) {
        return add(http::verb::post, pattern, std::move(h));
    }

    /// Finds the route for a request: `target` is its request target as sent ("/a/b?q",
    /// or an absolute form "http://host/a/b"), whose path the patterns are matched against.
    route_match resolve(http::verb method, std::string_view target) const;

    /// What dispatch() did.
    struct outcome {
        bool by_route = false; ///< the route's handler answered (else the router did)
        std::string failure{}; ///< what a throwing handler said; res is then a 500
    };
    /// Answers `req`, resolved as `m` (req must have been made with m): the handler fills
    /// `res`, or the router fills it with 400, 404, 405 (with Allow), or 500 when the handler
    /// throws. Never throws. A stream route is not dispatched here (see open_stream()): it is
    /// answered 500.
    outcome dispatch(const route_match& m, const request& req, response& res) const noexcept;

    /// The stream handler for a match of a stream route, or null if `m` is not one. Throws
    /// what the route's factory throws.
    std::unique_ptr<stream_handler> open_stream(const route_match& m) const;

    /// True if a route for exactly this method and pattern exists.
    bool contains(http::verb method, std::string_view pattern) const noexcept;
    /// The number of routes.
    std::size_t size() const noexcept { return routes_.size(); }
    /// Calls fn(route_view) for each route, in the order added.
    template <class Fn> void for_each(Fn&& fn) const {
        for (std::size_t i = 0; i < routes_.size(); ++i) {
            const auto& r = routes_[i];
            fn(route_view{i, r.method, r.pattern, r.doc, static_cast<bool>(r.stream)});
        }
    }

private:
    friend class route_match;
    struct segment {
        std::string text; // literal text, or the parameter name
        bool is_param = false;
    };
    struct route {
        http::verb method;
        std::string pattern;
        std::vector<segment> segments;
        handler fn;
        stream_factory stream;
        route_doc doc;
    };
    router& add_route(http::verb method, std::string_view pattern, handler h, stream_factory f);

    std::vector<route> routes_;
};

/// What router::resolve() found: the route with its decoded {param} values, or why none
/// answers. Valid while the router is.
class route_match {
public:
    /// A route will answer (a plain or a stream route).
    bool found() const noexcept { return route_ != nullptr; }
    /// The route found is a stream route.
    bool streams() const noexcept { return route_ && route_->stream; }
    /// The percent-decoded value of {name}; empty if the route has none.
    std::string_view param(std::string_view name) const noexcept;
    /// The route's position in the order added, for per-route counters; nullopt if none.
    std::optional<std::size_t> index() const noexcept { return index_; }
    /// The path the patterns were matched against, still percent-encoded.
    std::string_view path() const noexcept { return path_; }

private:
    friend class router;
    enum class verdict { found, bad_encoding, not_found, method_not_allowed };
    const router::route* route_ = nullptr;
    std::optional<std::size_t> index_;
    verdict verdict_ = verdict::not_found;
    std::string_view path_;
    std::vector<std::pair<std::string_view, std::string>> params_;
    std::string allow_; // for 405: "GET, POST, HEAD"
};

} // namespace udshttp::service
