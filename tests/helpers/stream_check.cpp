// stream_check URL BYTES [chunked]: streams BYTES of a fixed pattern to URL (an echo) through the
// client library's body source, checks every byte that comes back through its sink, and
// prints "ok BYTES maxrss_kb=K" (exit 0), or what went wrong (exit 1). Neither side ever holds
// the body, so the resident size shows the library's own memory. Used by the tests.

#include <udshttp/client/client.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <random>
#include <string>
#include <vector>

namespace {

// Byte i of the stream is table[i % period]; an odd period so pieces never line up with it.
class pattern {
public:
    pattern() : table_(period) {
        std::mt19937 gen(42);
        for (auto& b : table_)
            b = static_cast<char>(gen());
    }
    // Copies bytes [offset, offset + n) of the stream to out.
    void fill(std::uint64_t offset, char* out, std::size_t n) const {
        while (n > 0) {
            const auto at = static_cast<std::size_t>(offset % period);
            const auto take = std::min(n, period - at);
            std::memcpy(out, table_.data() + at, take);
            out += take;
            offset += take;
            n -= take;
        }
    }
    // True if in equals bytes [offset, offset + in.size()) of the stream.
    bool matches(std::uint64_t offset, std::string_view in) const {
        while (!in.empty()) {
            const auto at = static_cast<std::size_t>(offset % period);
            const auto take = std::min(in.size(), period - at);
            if (std::memcmp(in.data(), table_.data() + at, take) != 0)
                return false;
            in.remove_prefix(take);
            offset += take;
        }
        return true;
    }

private:
    static constexpr std::size_t period = 1024 * 1024 + 7;
    std::vector<char> table_;
};

} // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::cerr << "usage: stream_check URL BYTES [chunked]\n";
        return 2;
    }
    const std::uint64_t total = std::strtoull(argv[2], nullptr, 10);
    const bool chunked = argc > 3 && std::string(argv[3]) == "chunked";
    const pattern p;
    std::uint64_t sent = 0;
    std::uint64_t received = 0;
    bool mismatch = false;

    udshttp::client::streamed_body body;
    body.source = [&](std::span<char> buf) -> udshttp::result<std::size_t> {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), total - sent));
        p.fill(sent, buf.data(), n);
        sent += n;
        return n;
    };
    if (!chunked)
        body.length = total;
    udshttp::client::request req{.method = "POST",
                                 .url = argv[1],
                                 .headers = {{"Content-Type", "application/octet-stream"}},
                                 .body = std::move(body)};
    udshttp::client::download dl;
    dl.sink = [&](std::string_view piece) -> udshttp::result<void> {
        if (!mismatch && !p.matches(received, piece)) {
            mismatch = true;
            std::cerr << "mismatch within bytes " << received << ".." << received + piece.size()
                      << '\n';
        }
        received += piece.size();
        return {};
    };
    udshttp::client::client c({.timeout = std::chrono::minutes(5)});
    auto r = c.send(req, dl);
    if (!r) {
        std::cerr << r.error().message << '\n';
        return 1;
    }
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    if (r->status != 200 || mismatch || received != total) {
        std::cerr << "status " << r->status << ", received " << received << " of " << total
                  << (mismatch ? ", with wrong bytes" : "") << '\n';
        return 1;
    }
    std::cout << "ok " << received << " maxrss_kb=" << usage.ru_maxrss
              << " chunked_answer=" << (r->header("Transfer-Encoding") == "chunked") << '\n';
    return 0;
}
