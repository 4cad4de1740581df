#pragma once

/// @file
/// The server as a gateway: requests whose path falls under a route prefix are forwarded to an
/// upstream (another local API on a Unix socket or loopback TCP), after the caller's identity,
/// method and path have passed a rules file. Set server_options::gateway; udshttpd's
/// --upstream, --route and --rules fill it in.
///
///     server_options o;
///     o.gateway.upstreams = {{"docker", proto::endpoint::unix_path("/run/docker.sock")}};
///     o.gateway.routes = {{"/", "docker"}};
///     o.gateway.rules = gateway_rules::parse(R"({"rules":[
///         {"uid":[1000],"methods":["GET","HEAD"],"paths":["/v*/containers/**"]}]})", "inline")
///         .value();
///
/// What is matched is the path after normalisation (normalize_path()), and what is forwarded
/// is that same path: the upstream never sees a form of the path the rules did not check.

#include <udshttp/proto/api.hpp>
#include <udshttp/proto/endpoint.hpp>
#include <udshttp/proto/error.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <utility>
#include <vector>

namespace udshttp::service {

/// One upstream: a name for routes, logs and metrics, and where it listens.
struct upstream {
    std::string name{};
    proto::endpoint endpoint{};
};

/// Requests whose normalised path is `prefix` or under it (segment-wise: "/api" covers
/// "/api" and "/api/x", not "/apix"; "/" covers everything) go to `upstream`. The longest
/// prefix wins. The path is forwarded whole (the prefix is not stripped).
struct gateway_route {
    std::string prefix{};
    std::string upstream{};
};

/// A request target after normalize_path().
struct normalized_target {
    std::string path{};  ///< normalised: unreserved characters decoded, no dot-segments, no "//"
    std::string query{}; ///< as sent, without the '?'; empty when there is none
    bool has_query = false;
    /// What is forwarded: path, and "?query" if there was one.
    std::string target() const { return has_query ? path + "?" + query : path; }
};

/// RFC 3986 normalisation of an origin-form target, for matching and forwarding: %XX of an
/// unreserved character (ALPHA DIGIT - . _ ~) is decoded, other escapes kept with upper-case hex,
/// "." and ".." segments removed (6.2.2.3) and empty segments ("//") dropped; a trailing "/"
/// stays. Refused (the error says which): a target that is not origin-form (absolute-form,
/// "*"), bad percent-encoding, an encoded "/", "\" or NUL, a raw "\", an encoded dot that
/// makes a dot-segment ("%2e%2e"), and ".." above the root.
result<normalized_target> normalize_path(std::string_view target);

/// Matches a path against a rule pattern: "*" matches within one segment (no '/'), "**" any
/// run of characters including '/', anything else itself. A pattern ending in "/**" also
/// matches the path without that tail ("/metrics/**" matches "/metrics").
bool path_matches(std::string_view pattern, std::string_view path) noexcept;

/// Who is calling, as far as the gateway can tell: the connection's peer, and what the kernel
/// says about it beyond SO_PEERCRED.
struct caller_identity {
    proto::peer_info peer{};     ///< transport; pid, uid, gid (Unix); address, port (TCP)
    std::vector<gid_t> groups{}; ///< supplementary groups (SO_PEERGROUPS)
    /// The executable (/proc/PID/exe) and cgroup (/proc/PID/cgroup's v2 line) of the peer,
    /// read through its pidfd (SO_PEERPIDFD) when the kernel gives one, so the process read
    /// is the one that connected; else through the pid, which may have been reused if the
    /// peer exited (documented race). Empty when unreadable (another user's process when
    /// the gateway is not root): a rule that names them then does not match.
    std::string exe{};
    std::string cgroup{};
    bool pidfd_checked = false; ///< exe and cgroup were read while the pidfd held the process
};

/// One allow (or deny) rule. Every condition given must hold; an absent one holds always.
struct gateway_rule {
    std::string name{};
    bool allow = true;
    std::optional<std::string> transport{}; ///< "unix" or "tcp"
    std::vector<uid_t> uids{};
    std::vector<gid_t> gids{};          ///< primary or supplementary
    std::vector<std::string> exes{};    ///< exact executable paths
    std::vector<std::string> cgroups{}; ///< path patterns over the cgroup path
    std::vector<std::string> methods{}; ///< exact, upper case; empty: any
    std::vector<std::string> paths{};   ///< patterns (path_matches); empty: any
    /// Query parameters that must be present, every occurrence matching its pattern ('*' any).
    std::vector<std::pair<std::string, std::string>> query{};
    /// The body must be at most this many bytes. A chunked body is read whole (up to this
    /// bound) before it is forwarded; one that passes the bound is refused, never forwarded.
    std::optional<std::uint64_t> max_body_bytes{};
};

/// What the rules decided about one request.
struct gateway_verdict {
    bool allow = false;
    std::string rule{}; ///< the deciding rule's name; empty: no rule matched (default deny)
    /// The deciding rule's body bound, when the body's size is not known from its head.
    std::optional<std::uint64_t> inspect_body{};
};

/// The rules file: first match decides, no match denies. JSON (what nlohmann_json, already a
/// dependency, reads and what `udshttp rules suggest` writes):
///     {"rules": [{"name": "...", "action": "allow"|"deny", "transport": "unix"|"tcp",
///                 "uid": [0, "alice"], "gid": ["docker"], "exe": ["/usr/bin/x"],
///                 "cgroup": ["/system.slice/*.service"], "methods": ["GET", "HEAD"],
///                 "paths": ["/v*/containers/json"], "query": {"all": "0"},
///                 "max_body_bytes": 65536}]}
class gateway_rules {
public:
    /// Parses the JSON text; `source` (the file name) starts every error message. Unknown keys
    /// are errors, so a misspelt condition never silently widens a rule.
    static result<gateway_rules> parse(std::string_view json, std::string_view source);
    /// Reads and parses a file.
    static result<gateway_rules> load(const std::string& path);

    /// Decides a request. `content_length`: the declared length, nullopt for a chunked body;
    /// `has_body` false when there is no body at all.
    gateway_verdict decide(const caller_identity& who, std::string_view method,
                           const normalized_target& target, bool has_body,
                           std::optional<std::uint64_t> content_length) const;
    /// True when some rule names an executable or a cgroup (so the caller's process is read).
    bool needs_process() const noexcept;
    const std::vector<gateway_rule>& rules() const noexcept { return rules_; }

private:
    std::vector<gateway_rule> rules_;
};

/// The gateway part of server_options.
struct gateway_options {
    std::vector<upstream> upstreams{};
    std::vector<gateway_route> routes{};
    /// Without rules every routed request is forwarded: the socket's permissions and
    /// --allow-uid/--allow-gid are then the only filter. With rules, default deny.
    std::optional<gateway_rules> rules{};
    /// Send the caller's identity upstream: X-Udshttp-Peer-Uid/-Gid/-Pid for Unix callers,
    /// Forwarded and X-Forwarded-For for TCP ones (replacing what the caller sent). Incoming
    /// X-Udshttp-Peer-* fields are removed whether or not this is on.
    bool peer_headers = false;
    /// Allow everything, but audit what the rules would have refused ("verdict":"learn").
    bool learn = false;
    /// One JSON line per decision: empty = off, "-" = stderr, else a file (append, 0640).
    std::string audit_log{};
    /// Connecting to the upstream and waiting for its response head; beyond it 504.
    std::chrono::milliseconds upstream_timeout{30'000};
    /// Idle connections kept per upstream and worker.
    std::size_t idle_per_upstream = 64;

    bool enabled() const noexcept { return !routes.empty(); }
};

} // namespace udshttp::service
