#pragma once

// What the load generators (udshttp-bench, udshttp-stream-bench) share: the latency histogram,
// flag parsing that exits with a one-line message, address resolution, and the bodies they
// send. Header-only; each tool is one translation unit.

#include <udshttp/proto/units.hpp>
#include <udshttp/proto/url.hpp>

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <algorithm>
#include <bit>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

namespace udshttp::bench {

namespace asio = boost::asio;
using udshttp::proto::endpoint;
using udshttp::proto::transport;

// The tool's name, for its messages; each main() sets it.
inline const char* tool = "udshttp-bench";

// A log-linear latency histogram in nanoseconds: exact below 128 ns, then 64 buckets per power
// of two (under 1.6% error), fixed size, so recording is a few instructions and no allocation.
class histogram {
public:
    void record(std::uint64_t ns) noexcept { ++counts_[index(ns)]; }
    void merge(const histogram& o) noexcept {
        for (std::size_t i = 0; i < counts_.size(); ++i)
            counts_[i] += o.counts_[i];
    }
    std::uint64_t total() const noexcept {
        std::uint64_t n = 0;
        for (auto c : counts_)
            n += c;
        return n;
    }
    // The value at quantile q (0..1), in ns; 0 when empty.
    std::uint64_t quantile(double q) const noexcept {
        const auto n = total();
        if (n == 0)
            return 0;
        const auto rank =
            std::max<std::uint64_t>(1, static_cast<std::uint64_t>(q * double(n) + 0.5));
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < counts_.size(); ++i) {
            seen += counts_[i];
            if (seen >= rank)
                return value(i);
        }
        return value(counts_.size() - 1);
    }

private:
    static constexpr std::size_t exact = 128, half = 64;
    static std::size_t index(std::uint64_t v) noexcept {
        if (v < exact)
            return v;
        const auto shift = static_cast<unsigned>(std::bit_width(v)) - 7; // v >> shift in [64, 128)
        return exact + (shift - 1) * half + ((v >> shift) - half);
    }
    static std::uint64_t value(std::size_t i) noexcept {
        if (i < exact)
            return i;
        const auto shift = (i - exact) / half + 1;
        const auto mantissa = (i - exact) % half + half;
        return (mantissa << shift) + ((std::uint64_t{1} << shift) >> 1);
    }
    std::vector<std::uint64_t> counts_ = std::vector<std::uint64_t>(exact + 58 * half);
};

inline std::chrono::nanoseconds parse_duration_or_exit(std::string_view flag,
                                                       std::string_view text) {
    auto d = udshttp::proto::parse_duration(text);
    if (!d) {
        std::cerr << tool << ": " << flag << ": " << d.error().message << "\n";
        std::exit(2);
    }
    return *d;
}

inline unsigned parse_count_or_exit(std::string_view flag, std::string_view text, unsigned max) {
    unsigned long v = 0;
    const auto* end = text.data() + text.size();
    const auto [p, ec] = std::from_chars(text.data(), end, v);
    if (ec != std::errc{} || p != end || v == 0 || v > max) {
        std::cerr << tool << ": " << flag << ": '" << text << "' is not a number from 1 to " << max
                  << "\n";
        std::exit(2);
    }
    return static_cast<unsigned>(v);
}

// The address to connect to; TCP host names are resolved once, here.
inline asio::generic::stream_protocol::endpoint resolve(const endpoint& where) {
    switch (where.kind) {
    case transport::unix_path:
        return asio::local::stream_protocol::endpoint(where.address);
    case transport::unix_abstract:
        return asio::local::stream_protocol::endpoint(std::string(1, '\0') + where.address);
    case transport::tcp: {
        asio::io_context ctx;
        asio::ip::tcp::resolver resolver(ctx);
        auto results = resolver.resolve(where.address, std::to_string(where.port));
        return results.begin()->endpoint();
    }
    default:
        throw std::runtime_error("cannot connect to " + where.to_string());
    }
}

inline std::string make_body(std::size_t size) {
    std::string body(size, '\0');
    std::uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (auto& c : body) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c = static_cast<char>(x);
    }
    return body;
}

inline std::string json_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\')
            out += '\\';
        if (static_cast<unsigned char>(c) < 0x20)
            continue;
        out += c;
    }
    return out;
}

} // namespace udshttp::bench
