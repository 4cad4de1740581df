// libFuzzer target: the endpoint and URL grammar (proto), which every --listen, every client
// URL and every CLI argument goes through. Any input must give a value or an error, never a
// crash; a value must print canonically and parse back to itself.

#include <udshttp/proto/endpoint.hpp>
#include <udshttp/proto/url.hpp>

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    if (auto e = udshttp::proto::endpoint::parse(text)) {
        const auto printed = e->to_string();
        auto again = udshttp::proto::endpoint::parse(printed);
        if (!again || !(*again == *e))
            std::abort(); // the canonical form must round-trip
    }
    if (auto u = udshttp::proto::url::parse(text)) {
        const auto printed = u->to_string();
        auto again = udshttp::proto::url::parse(printed);
        if (!again || !(again->where == u->where) || again->target != u->target)
            std::abort();
    }
    (void)udshttp::proto::percent_decode(text);
    return 0;
}
