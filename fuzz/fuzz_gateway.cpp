// libFuzzer target: the gateway's path normalisation and pattern matching, which decide what a
// local peer may reach through udshttpd --upstream. Any target must be refused or normalised;
// a normalised path must start with '/', hold no empty, "." or ".." segment, no raw '\' and
// no encoded '/', '\' or NUL, and normalise to itself again (what is checked is what is
// forwarded, and forwarding it twice changes nothing). Matching a pattern made of the input
// against a path made of it must end (no backtracking blow-up) and never crash.

#include <udshttp/service/gateway.hpp>

#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

bool well_formed(std::string_view p) {
    if (p.empty() || p.front() != '/' || p.find("//") != std::string_view::npos ||
        p.find('\\') != std::string_view::npos)
        return false;
    for (const auto bad : {"%2F", "%5C", "%00"})
        if (p.find(bad) != std::string_view::npos)
            return false;
    std::size_t from = 1;
    while (from <= p.size()) {
        const auto slash = std::min(p.find('/', from), p.size());
        const auto seg = p.substr(from, slash - from);
        if (seg == "." || seg == "..")
            return false;
        from = slash + 1;
    }
    return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    using udshttp::service::normalize_path;
    if (auto t = normalize_path(text)) {
        if (!well_formed(t->path))
            std::abort();
        auto again = normalize_path(t->target());
        if (!again || again->path != t->path || again->query != t->query ||
            again->has_query != t->has_query)
            std::abort();
    }
    const auto cut = text.find('\n');
    if (cut != std::string_view::npos)
        (void)udshttp::service::path_matches(text.substr(0, cut), text.substr(cut + 1));
    return 0;
}
