#include <udshttp/proto/url.hpp>

#include <boost/url/encode.hpp>
#include <boost/url/ipv4_address.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/pct_string_view.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <boost/url/url_view.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace udshttp::proto {
namespace {

error invalid(std::string_view text, std::string_view why) {
    std::string msg = "invalid URL '";
    msg.append(text).append("': ").append(why);
    return {make_error_code(errc::invalid_url), std::move(msg)};
}

std::string target_of(const boost::urls::url_view& u) {
    std::string target(u.encoded_path());
    if (target.empty())
        target = "/";
    if (u.has_query())
        target.append("?").append(u.encoded_query());
    return target;
}

result<url> parse_unix_url(std::string_view text, const boost::urls::url_view& u) {
    if (u.has_port())
        return invalid(text, "an http+unix URL has no port; its authority is the socket path");
    if (u.host_type() != boost::urls::host_type::name)
        return invalid(text, "the authority must be a percent-encoded socket path such as "
                             "%2Frun%2Fapp.sock");
    auto socket = percent_decode(u.encoded_host());
    if (!socket || socket->empty())
        return invalid(text, "the authority must be a percent-encoded socket path such as "
                             "%2Frun%2Fapp.sock");
    // %40name and %00name both name an abstract socket.
    const char first = socket->front();
    auto where = (first == '@' || first == '\0') ? endpoint::parse("@" + socket->substr(1))
                                                 : endpoint::parse("unix:" + *socket);
    if (!where)
        return where.error();
    return url{.where = std::move(*where), .target = target_of(u), .host = "localhost"};
}

result<url> parse_http_url(std::string_view text, const boost::urls::url_view& u) {
    std::uint16_t port = 80;
    if (u.has_port()) {
        // Boost.URL 1.81 accepts any digits here; the range check is ours.
        const auto digits = u.port();
        unsigned value = 0;
        auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
        if (digits.empty() || ec != std::errc{} || p != digits.data() + digits.size() ||
            value == 0 || value > 65535)
            return invalid(text, "port '" + std::string(digits) + "' is not from 1 to 65535");
        port = static_cast<std::uint16_t>(value);
    }
    std::string host;
    switch (u.host_type()) {
    case boost::urls::host_type::ipv4:
    case boost::urls::host_type::ipv6:
        host = u.host_address();
        break;
    case boost::urls::host_type::name: {
        auto decoded = percent_decode(u.encoded_host());
        if (!decoded || decoded->empty())
            return invalid(text, "the host is missing");
        // A DNS name: letters, digits, '-', '.' (and '_', which resolvers accept). Anything
        // else, once decoded ("%20"), could not be printed back as a URL (found by fuzz_url).
        const auto name_char = [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
        };
        if (!std::all_of(decoded->begin(), decoded->end(), name_char))
            return invalid(text, "host '" + *decoded + "' is not a host name");
        // A name's last label is never all digits (RFC 3696 2): "1.2.3" or "7.6.8.6.6.6" is
        // neither a name nor an IPv4 address, and resolvers read some of them as legacy
        // numeric forms (inet_aton: 1.2.3 is 1.2.0.3). Boost.URL 1.81 also could not read
        // "7.6.8.6.6.6" back once printed: it takes "7.6.8.6" as IPv4 and leaves ".6.6"
        // (found by fuzz_url, from "%37.6.8.6.6.6").
        const auto last = std::string_view(*decoded).substr(
            decoded->find_last_of('.', decoded->size() > 1 ? decoded->size() - 2 : 0) + 1);
        const auto label = last.ends_with('.') ? last.substr(0, last.size() - 1) : last;
        if (!label.empty() && std::all_of(label.begin(), label.end(), [](char c) {
                return std::isdigit(static_cast<unsigned char>(c));
            }))
            return invalid(text, "host '" + *decoded +
                                     "' is not an IPv4 address, and a host name's last label "
                                     "cannot be all digits");
        host = std::move(*decoded);
        break;
    }
    default:
        return invalid(text, "unsupported host form");
    }
    std::string host_header(u.encoded_host());
    if (u.has_port())
        host_header.append(":").append(u.port());
    return url{.where = endpoint::tcp(std::move(host), port),
               .target = target_of(u),
               .host = std::move(host_header)};
}

} // namespace

result<url> url::parse(std::string_view text) {
    // Boost.URL's own word for these is "leftover": say what and where.
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto ch = static_cast<unsigned char>(text[i]);
        if (ch == ' ')
            return invalid(text, "a space at byte " + std::to_string(i + 1) + "; write it as %20");
        if (ch < 0x20 || ch == 0x7f)
            return invalid(text, "a control character at byte " + std::to_string(i + 1));
    }
    auto parsed = boost::urls::parse_uri(text);
    if (!parsed)
        return invalid(text, parsed.error().message());
    const auto& u = *parsed;
    if (!u.has_authority())
        return invalid(text, "expected scheme://authority/path");
    if (u.has_userinfo())
        return invalid(text, "user information (user@) is not supported");
    // RFC 3986 3.3: after an authority the path is empty or starts with '/'. Boost.URL 1.81
    // accepts "http://host:8e0t/x" as port 8 and path "e0t/x" (found by fuzz/fuzz_url).
    if (const auto path = u.encoded_path(); !path.empty() && path.front() != '/')
        return invalid(text, "the authority must end at ':port' or '/' (bad port or host?)");
    const auto scheme = u.scheme();
    // ws+unix:// and ws:// name the same endpoints and targets, for WebSocket clients.
    if (scheme == "http+unix" || scheme == "unix" || scheme == "ws+unix")
        return parse_unix_url(text, u);
    if (scheme == "http" || scheme == "ws")
        return parse_http_url(text, u);
    std::string msg = "unsupported scheme '";
    msg.append(scheme).append("' in '").append(text).append(
        "'; use http+unix:// or http:// (ws+unix:// or ws:// for a WebSocket)");
    return error{make_error_code(errc::unsupported_scheme), std::move(msg)};
}

std::string url::to_string() const {
    return make_url(where, target);
}

std::string make_url(const endpoint& where, std::string_view target) {
    std::string out;
    switch (where.kind) {
    case transport::unix_path:
        // A relative path such as "8.6.8.6.6" would print as an authority Boost.URL 1.81 reads
        // as the IPv4 address 8.6.8.6 followed by a path (found by fuzz/fuzz_url): a leading
        // digit is always written %3X, which no IP address can start with.
        out = "http+unix://";
        if (!where.address.empty() && where.address.front() >= '0' && where.address.front() <= '9')
            out.append("%3")
                .append(1, where.address.front())
                .append(percent_encode(where.address.substr(1)));
        else
            out.append(percent_encode(where.address));
        break;
    case transport::unix_abstract:
        out = "http+unix://%40" + percent_encode(where.address);
        break;
    default: {
        // TCP, and for inherited sockets the best we can do without knowing the address.
        std::string s = where.to_string();
        out = "http://" + (s.starts_with("tcp://") ? s.substr(6) : s);
        // A host name that starts like an IPv4 address ("7.6.8.6.6.x") is read back by
        // Boost.URL 1.81 as that address plus a path (found by fuzz/fuzz_url): its leading
        // digit is written %3X, as for a socket path.
        const auto& host = where.address;
        if (where.kind == transport::tcp && !host.empty() && host.front() >= '0' &&
            host.front() <= '9' && host.find(':') == std::string::npos && // not [IPv6]
            !boost::urls::parse_ipv4_address(host))
            out.replace(7, 1, std::string("%3") + host.front());
        break;
    }
    }
    if (target.empty() || target.front() != '/')
        out += '/';
    out.append(target);
    return out;
}

std::string percent_encode(std::string_view text) {
    return boost::urls::encode(text, boost::urls::unreserved_chars);
}

std::optional<std::string> percent_decode(std::string_view text) {
    const auto valid = boost::urls::make_pct_string_view(text);
    if (!valid)
        return std::nullopt;
    return valid->decode();
}

} // namespace udshttp::proto
