// The gateway's pure parts: path normalisation, pattern matching, the rules file and its
// decisions, and reading who the caller is. No I/O but the rules file and /proc.

#include "gateway.hpp"

#include <udshttp/proto/text.hpp>
#include <udshttp/proto/url.hpp>

#include <nlohmann/json.hpp>

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <fstream>
#include <sstream>

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 // Linux 6.5; older headers lack it
#endif

namespace udshttp::service {
namespace {

error bad_target(std::string_view why) {
    return {make_error_code(errc::bad_request),
            "the gateway refuses this target: " + std::string(why)};
}

int hex(char c) noexcept {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool unreserved(unsigned char c) noexcept {
    return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

} // namespace

result<normalized_target> normalize_path(std::string_view target) {
    if (target.empty() || target.front() != '/')
        return bad_target("only origin-form targets (starting with '/') are forwarded, not '" +
                          proto::quote(target) + "'");
    normalized_target out;
    const auto q = target.find('?');
    std::string_view raw = target.substr(0, q);
    if (q != std::string_view::npos) {
        out.has_query = true;
        out.query = std::string(target.substr(q + 1));
        for (std::size_t i = 0; i < out.query.size(); ++i)
            if (out.query[i] == '%' && (i + 2 >= out.query.size() || hex(out.query[i + 1]) < 0 ||
                                        hex(out.query[i + 2]) < 0))
                return bad_target("bad percent-encoding in the query");
    }
    // One segment at a time: decode what may be decoded, then resolve dot-segments on the
    // decoded form, remembering whether a segment's dots came from escapes. The path is built
    // in place ("/a/b"), a ".." cutting it back to its last '/'.
    std::string& path = out.path;
    path.reserve(raw.size());
    std::string seg;
    bool seg_encoded_dot = false;
    const auto end_segment = [&](bool last) -> std::optional<error> {
        const bool dots = seg == "." || seg == "..";
        if (dots && seg_encoded_dot)
            return bad_target("an encoded dot makes a dot-segment in '" + proto::quote(raw) + "'");
        if (seg == "..") {
            if (path.empty())
                return bad_target("'..' climbs above the root in '" + proto::quote(raw) + "'");
            path.resize(path.rfind('/'));
            if (last)
                path += '/'; // "/a/.." is "/": the trailing slash stays
        } else if (seg == ".") {
            if (last)
                path += '/';
        } else if (!seg.empty() || last) {
            path += '/';
            path += seg;
        }
        seg.clear();
        seg_encoded_dot = false;
        return std::nullopt;
    };
    for (std::size_t i = 1; i <= raw.size(); ++i) {
        if (i == raw.size() || raw[i] == '/') {
            if (auto e = end_segment(i == raw.size()))
                return *e;
            continue;
        }
        const char c = raw[i];
        if (c == '\\')
            return bad_target("a backslash in the path");
        if (c != '%') {
            seg += c;
            continue;
        }
        if (i + 2 >= raw.size() || hex(raw[i + 1]) < 0 || hex(raw[i + 2]) < 0)
            return bad_target("bad percent-encoding in '" + proto::quote(raw) + "'");
        const auto byte = static_cast<unsigned char>(hex(raw[i + 1]) * 16 + hex(raw[i + 2]));
        i += 2;
        if (byte == '/' || byte == '\\' || byte == 0)
            return bad_target("an encoded '/', '\\' or NUL in '" + proto::quote(raw) +
                              "' would change the route");
        if (unreserved(byte)) {
            seg += static_cast<char>(byte);
            seg_encoded_dot = seg_encoded_dot || byte == '.';
        } else {
            static constexpr char digits[] = "0123456789ABCDEF";
            seg += '%';
            seg += digits[byte >> 4];
            seg += digits[byte & 15];
        }
    }
    if (path.empty())
        path = "/";
    return out;
}

bool path_matches(std::string_view pattern, std::string_view path) noexcept {
    if (pattern.size() >= 3 && pattern.ends_with("/**") &&
        path == pattern.substr(0, pattern.size() - 3))
        return true;
    // Dynamic programming over pattern positions (no backtracking blow-up on hostile paths):
    // reach[j] is true when pattern[0, j) can match the path read so far.
    std::array<bool, 257> small{};
    std::vector<bool> big;
    const std::size_t m = pattern.size();
    const auto at = [&](std::size_t j) -> bool { return m < small.size() ? small[j] : big[j]; };
    const auto set = [&](std::size_t j, bool v) {
        if (m < small.size())
            small[j] = v;
        else
            big[j] = v;
    };
    if (m >= small.size())
        big.assign(m + 1, false);
    // Epsilon closure: a star may match nothing.
    const auto close = [&] {
        for (std::size_t j = 0; j < m; ++j)
            if (at(j) && pattern[j] == '*') {
                const std::size_t k = j + 1 < m && pattern[j + 1] == '*' ? j + 2 : j + 1;
                set(k, true);
            }
    };
    set(0, true);
    close();
    for (const char c : path) {
        bool any = false;
        for (std::size_t j = m + 1; j-- > 0;) {
            if (!at(j))
                continue;
            set(j, false);
            if (j == m)
                continue;
            const char p = pattern[j];
            if (p == '*') {
                const bool twin = j + 1 < m && pattern[j + 1] == '*';
                if (twin || c != '/') { // "**" crosses '/', "*" does not
                    set(j, true);
                    any = true;
                }
                // the star stays; its closure is recomputed below
            } else if (p == c) {
                set(j + 1, true);
                any = true;
            }
        }
        if (!any)
            return false;
        close();
    }
    return at(m);
}

namespace {

using json = nlohmann::json;

error rules_error(std::string_view source, const std::string& why) {
    return {make_error_code(errc::invalid_json), std::string(source) + ": " + why};
}

template <class Id, class Lookup>
std::optional<std::string> read_ids(const json& v, std::vector<Id>& out, Lookup lookup,
                                    std::string_view what) {
    if (!v.is_array())
        return std::string(what) + " must be a list";
    for (const auto& e : v) {
        if (e.is_number_unsigned()) {
            out.push_back(e.get<Id>());
        } else if (e.is_string()) {
            const auto id = lookup(e.get<std::string>());
            if (!id)
                return "no such " + std::string(what == "uid" ? "user" : "group") + " '" +
                       e.get<std::string>() + "'";
            out.push_back(*id);
        } else {
            return std::string(what) + " entries are numbers or names";
        }
    }
    return std::nullopt;
}

std::optional<std::string> read_strings(const json& v, std::vector<std::string>& out,
                                        std::string_view what) {
    if (v.is_string()) {
        out.push_back(v.get<std::string>());
        return std::nullopt;
    }
    if (!v.is_array())
        return std::string(what) + " must be a string or a list of strings";
    for (const auto& e : v) {
        if (!e.is_string())
            return std::string(what) + " entries must be strings";
        out.push_back(e.get<std::string>());
    }
    return std::nullopt;
}

bool has(const auto& list, auto value) {
    return std::find(list.begin(), list.end(), value) != list.end();
}

// The query's parameters, '+' as a space and percent-decoded; nullopt when malformed.
std::optional<std::vector<std::pair<std::string, std::string>>> query_params(std::string_view q) {
    std::vector<std::pair<std::string, std::string>> out;
    std::size_t from = 0;
    while (from <= q.size() && !q.empty()) {
        const auto amp = std::min(q.find('&', from), q.size());
        std::string part(q.substr(from, amp - from));
        std::replace(part.begin(), part.end(), '+', ' ');
        const auto eq = part.find('=');
        auto name = proto::percent_decode(part.substr(0, eq));
        auto value = proto::percent_decode(eq == std::string::npos ? "" : part.substr(eq + 1));
        if (!name || !value)
            return std::nullopt;
        if (!name->empty())
            out.emplace_back(std::move(*name), std::move(*value));
        from = amp + 1;
    }
    return out;
}

bool glob(std::string_view pattern, std::string_view text) {
    // The query's patterns: '*' matches anything (there is no '/' structure there).
    if (pattern == "*")
        return true;
    std::string p(pattern);
    std::replace(p.begin(), p.end(), '*', '\x01');
    std::size_t pi = 0, ti = 0, star = std::string::npos, mark = 0;
    while (ti < text.size()) {
        if (pi < p.size() && p[pi] == '\x01') {
            star = pi++;
            mark = ti;
        } else if (pi < p.size() && p[pi] == text[ti]) {
            ++pi;
            ++ti;
        } else if (star != std::string::npos) {
            pi = star + 1;
            ti = ++mark;
        } else {
            return false;
        }
    }
    while (pi < p.size() && p[pi] == '\x01')
        ++pi;
    return pi == p.size();
}

} // namespace

result<gateway_rules> gateway_rules::parse(std::string_view text, std::string_view source) {
    json doc;
    try {
        doc = json::parse(text);
    } catch (const json::exception& e) {
        return rules_error(source, std::string("not JSON: ") + e.what());
    }
    if (!doc.is_object() || !doc.contains("rules") || !doc["rules"].is_array())
        return rules_error(source, "expected an object with a \"rules\" list");
    for (const auto& [key, _] : doc.items())
        if (key != "rules")
            return rules_error(source, "unknown key \"" + key + "\" (only \"rules\")");
    gateway_rules out;
    std::size_t n = 0;
    for (const auto& r : doc["rules"]) {
        ++n;
        const std::string where = "rule " + std::to_string(n);
        if (!r.is_object())
            return rules_error(source, where + " is not an object");
        gateway_rule rule;
        rule.name = where;
        std::optional<std::string> bad;
        for (const auto& [key, v] : r.items()) {
            if (key == "name") {
                if (!v.is_string())
                    bad = "\"name\" must be a string";
                else
                    rule.name = v.get<std::string>();
            } else if (key == "action") {
                if (v != "allow" && v != "deny")
                    bad = "\"action\" is \"allow\" or \"deny\"";
                rule.allow = v == "allow";
            } else if (key == "transport") {
                if (v != "unix" && v != "tcp")
                    bad = "\"transport\" is \"unix\" or \"tcp\"";
                else
                    rule.transport = v.get<std::string>();
            } else if (key == "uid") {
                bad = read_ids(
                    v, rule.uids,
                    [](const std::string& s) -> std::optional<uid_t> {
                        if (const passwd* pw = ::getpwnam(s.c_str()))
                            return pw->pw_uid;
                        return std::nullopt;
                    },
                    "uid");
            } else if (key == "gid") {
                bad = read_ids(
                    v, rule.gids,
                    [](const std::string& s) -> std::optional<gid_t> {
                        if (const group* gr = ::getgrnam(s.c_str()))
                            return gr->gr_gid;
                        return std::nullopt;
                    },
                    "gid");
            } else if (key == "exe") {
                bad = read_strings(v, rule.exes, "\"exe\"");
            } else if (key == "cgroup") {
                bad = read_strings(v, rule.cgroups, "\"cgroup\"");
            } else if (key == "methods") {
                bad = read_strings(v, rule.methods, "\"methods\"");
                for (auto& m : rule.methods)
                    if (m.empty() || std::any_of(m.begin(), m.end(), [](char c) {
                            return !std::isupper(static_cast<unsigned char>(c)) && c != '-';
                        }))
                        bad = "method '" + m + "' is not an upper-case method name";
            } else if (key == "paths") {
                bad = read_strings(v, rule.paths, "\"paths\"");
                for (const auto& p : rule.paths)
                    if (!p.starts_with('/'))
                        bad = "path pattern '" + p + "' does not start with '/'";
            } else if (key == "query") {
                if (!v.is_object())
                    bad = "\"query\" must be an object of parameter patterns";
                else
                    for (const auto& [name, pat] : v.items()) {
                        if (!pat.is_string())
                            bad = "query pattern for '" + name + "' must be a string";
                        else
                            rule.query.emplace_back(name, pat.get<std::string>());
                    }
            } else if (key == "max_body_bytes") {
                if (!v.is_number_unsigned())
                    bad = "\"max_body_bytes\" must be a number of bytes";
                else
                    rule.max_body_bytes = v.get<std::uint64_t>();
            } else {
                bad = "unknown key \"" + key + "\"";
            }
            if (bad)
                return rules_error(source, where + ": " + *bad);
        }
        out.rules_.push_back(std::move(rule));
    }
    return out;
}

result<gateway_rules> gateway_rules::load(const std::string& path) {
    std::ifstream in(path);
    if (!in)
        return error{boost::system::error_code(errno, boost::system::system_category()),
                     "cannot read rules file " + path + ": " + std::strerror(errno)};
    std::stringstream text;
    text << in.rdbuf();
    return parse(text.str(), path);
}

bool gateway_rules::needs_process() const noexcept {
    return std::any_of(rules_.begin(), rules_.end(),
                       [](const auto& r) { return !r.exes.empty() || !r.cgroups.empty(); });
}

gateway_verdict gateway_rules::decide(const caller_identity& who, std::string_view method,
                                      const normalized_target& target, bool has_body,
                                      std::optional<std::uint64_t> content_length) const {
    std::optional<std::vector<std::pair<std::string, std::string>>> params;
    for (const auto& r : rules_) {
        const auto& peer = who.peer;
        if (r.transport && *r.transport != peer.transport)
            continue;
        if (!r.uids.empty() && (!peer.uid || !has(r.uids, static_cast<uid_t>(*peer.uid))))
            continue;
        if (!r.gids.empty()) {
            const bool primary = peer.gid && has(r.gids, static_cast<gid_t>(*peer.gid));
            const bool extra = std::any_of(who.groups.begin(), who.groups.end(),
                                           [&](gid_t g) { return has(r.gids, g); });
            if (!primary && !extra)
                continue;
        }
        if (!r.exes.empty() && (who.exe.empty() || !has(r.exes, who.exe)))
            continue;
        if (!r.cgroups.empty() &&
            (who.cgroup.empty() || std::none_of(r.cgroups.begin(), r.cgroups.end(), [&](auto& p) {
                 return path_matches(p, who.cgroup);
             })))
            continue;
        if (!r.methods.empty() && !has(r.methods, method))
            continue;
        if (!r.paths.empty() && std::none_of(r.paths.begin(), r.paths.end(),
                                             [&](auto& p) { return path_matches(p, target.path); }))
            continue;
        if (!r.query.empty()) {
            if (!params)
                params =
                    query_params(target.query)
                        .value_or(std::vector<std::pair<std::string, std::string>>{{"\x01", ""}});
            bool ok = true;
            for (const auto& [name, pattern] : r.query) {
                bool seen = false;
                for (const auto& [k, v] : *params)
                    if (k == name) {
                        seen = true;
                        ok = ok && glob(pattern, v);
                    }
                ok = ok && seen;
            }
            // A query that does not decode matches no query rule.
            if (!ok || (params->size() == 1 && (*params)[0].first == "\x01"))
                continue;
        }
        gateway_verdict v{r.allow, r.name, std::nullopt};
        if (r.max_body_bytes && has_body) {
            if (content_length && *content_length > *r.max_body_bytes)
                continue; // the body is too large for this rule: the next one may take it
            if (!content_length && r.allow)
                v.inspect_body = *r.max_body_bytes;
        }
        return v;
    }
    return {false, {}, std::nullopt};
}

namespace detail {

namespace {
std::string read_small(const std::string& path) {
    std::ifstream in(path);
    std::string s;
    std::getline(in, s, '\0');
    return s.substr(0, 4096);
}
} // namespace

caller_identity read_caller(int fd, const proto::peer_info& peer, bool process) {
    caller_identity who{.peer = peer};
    if (peer.transport != "unix")
        return who;
    std::array<gid_t, 256> groups{};
    socklen_t len = sizeof groups;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0)
        who.groups.assign(groups.begin(), groups.begin() + len / sizeof(gid_t));
    if (!process || !peer.pid)
        return who;
    // SO_PEERPIDFD pins the process that connected: what /proc/PID says is read, then the
    // pidfd confirms the process is still alive, so PID was not reused in between.
    int pidfd = -1;
    socklen_t plen = sizeof pidfd;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &plen) != 0)
        pidfd = -1;
    const std::string proc = "/proc/" + std::to_string(*peer.pid);
    std::array<char, 4096> buf{};
    const auto n = ::readlink((proc + "/exe").c_str(), buf.data(), buf.size() - 1);
    if (n > 0)
        who.exe.assign(buf.data(), static_cast<std::size_t>(n));
    // The cgroup v2 line is "0::/path".
    std::istringstream lines(read_small(proc + "/cgroup"));
    for (std::string line; std::getline(lines, line);)
        if (line.starts_with("0::"))
            who.cgroup = line.substr(3);
    if (pidfd >= 0) {
        const bool alive = ::syscall(SYS_pidfd_send_signal, pidfd, 0, nullptr, 0) == 0;
        ::close(pidfd);
        if (!alive) { // the caller has gone: what was read may be another process's
            who.exe.clear();
            who.cgroup.clear();
        } else {
            who.pidfd_checked = true;
        }
    }
    return who;
}

} // namespace detail
} // namespace udshttp::service
