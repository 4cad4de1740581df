#include <udshttp/proto/text.hpp>

#include <cstdio>

namespace udshttp::proto {

std::string quote(std::string_view text, std::size_t max) {
    std::string out;
    const auto shown = text.substr(0, max);
    out.reserve(shown.size() + 32);
    for (const char c : shown) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f || c == '"' || c == '\\') {
            char esc[8];
            std::snprintf(esc, sizeof esc, "\\x%02x", u);
            out += esc;
        } else {
            out += c;
        }
    }
    if (text.size() > max)
        out += "...(" + std::to_string(text.size() - max) + " more bytes)";
    return out;
}

} // namespace udshttp::proto
