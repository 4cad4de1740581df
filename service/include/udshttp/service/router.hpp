#pragma once

/// @file
/// Method + path pattern -> handler. Patterns are literal segments and {param} segments:
/// "/hello/{name}". A path that matches no pattern is a 404; a path whose patterns exist but
/// not for the method is a 405 with an Allow field. HEAD is answered by GET routes.

#include <udshttp/service/request.hpp>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace udshttp::service {

/// A route handler. It runs on the connection's worker thread and must not block for long.
using handler = std::function<void(const request&, response&)>;
/// Makes the stream_handler for one request of a stream route.
using stream_factory = std::function<std::unique_ptr<stream_handler>()>;

/// What GET /openapi.json says about a route (router::describe()).
struct route_doc {
    std::string summary;     ///< one line: "Greets NAME"
    std::string description; ///< more, if there is more to say
    /// Media type of the request body ("application/json"), empty when it takes none.
    std::string request_type;
    /// Media type of the successful answer.
    std::string response_type = "text/plain";
};

/// The routing table.
/// @par Thread safety
/// Add routes before server::start(); after that the table is only read.
class router {
public:
    /// "No route", as an index.
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    /// What match() found.
    struct match_result {
        const handler* target = nullptr;        ///< the handler, or null for 404/405/stream
        const stream_factory* stream = nullptr; ///< set instead of target for a stream route
        bool path_known = false;                ///< some route has this path (so: 405, not 404)
        std::string allow;                      ///< for 405: the methods the path has, "GET, HEAD"
        bool bad_encoding = false;              ///< a {param} had invalid percent-encoding (400)
        std::size_t index = npos;               ///< the matched route's index, npos if none
    };

    /// One registered route, as at() shows it.
    struct route_view {
        http::verb method;
        std::string_view pattern;
        const route_doc& doc; ///< empty summary if never described
        bool stream;          ///< a stream route
    };

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

    /// Finds the handler for method and path; fills req.params() on a match.
    match_result match(http::verb method, std::string_view path, request& req) const;

    /// True if a route for exactly this method and pattern exists.
    bool contains(http::verb method, std::string_view pattern) const noexcept;

    /// The number of routes.
    std::size_t size() const noexcept { return routes_.size(); }
    /// Route i, in the order added (0 <= i < size()).
    route_view at(std::size_t i) const {
        const auto& r = routes_.at(i);
        return {r.method, r.pattern, r.doc, static_cast<bool>(r.stream)};
    }

private:
    struct segment {
        std::string text; ///< literal text, or the parameter name
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

    static bool match_path(const route& r, std::string_view path,
                           std::vector<std::pair<std::string_view, std::string_view>>& raw);

    std::vector<route> routes_;
};

} // namespace udshttp::service
