#include <udshttp/proto/units.hpp>

#include <charconv>
#include <cmath>
#include <string>

namespace udshttp::proto {
namespace {

error invalid(std::string_view what, std::string_view text, std::string_view expected) {
    std::string msg = "invalid ";
    msg.append(what).append(" '").append(text).append("': expected ").append(expected);
    return {make_error_code(errc::bad_request), std::move(msg)};
}

// Splits "12.5ms" into the number and the unit.
std::pair<std::string_view, std::string_view> split_unit(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.'))
        ++i;
    return {text.substr(0, i), text.substr(i)};
}

} // namespace

result<std::chrono::milliseconds> parse_duration(std::string_view text) {
    constexpr std::string_view expected = "a number with ms, s, m or h, such as 500ms or 10s";
    auto [number, unit] = split_unit(text);
    double value = 0;
    // from_chars for double is in GCC 12's libstdc++.
    auto [p, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (number.empty() || ec != std::errc{} || p != number.data() + number.size() ||
        !std::isfinite(value) || value < 0)
        return invalid("duration", text, expected);
    double ms_per_unit = 0;
    if (unit.empty() || unit == "s")
        ms_per_unit = 1000;
    else if (unit == "ms")
        ms_per_unit = 1;
    else if (unit == "m" || unit == "min")
        ms_per_unit = 60'000;
    else if (unit == "h")
        ms_per_unit = 3'600'000;
    else
        return invalid("duration", text, expected);
    const double ms = value * ms_per_unit;
    if (ms > 1e15)
        return invalid("duration", text, "at most about 30,000 years");
    return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(ms)));
}

result<std::uint64_t> parse_size(std::string_view text) {
    constexpr std::string_view expected = "a whole number with B, KiB, MiB or GiB, such as 64KiB";
    auto [number, unit] = split_unit(text);
    std::uint64_t value = 0;
    auto [p, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (number.empty() || ec != std::errc{} || p != number.data() + number.size())
        return invalid("size", text, expected);
    unsigned shift = 0;
    if (unit.empty() || unit == "B")
        shift = 0;
    else if (unit == "K" || unit == "k" || unit == "KiB" || unit == "KB" || unit == "kB")
        shift = 10;
    else if (unit == "M" || unit == "MiB" || unit == "MB")
        shift = 20;
    else if (unit == "G" || unit == "GiB" || unit == "GB")
        shift = 30;
    else
        return invalid("size", text, expected);
    if (shift && value > (UINT64_MAX >> shift))
        return invalid("size", text, "a size that fits in 64 bits");
    return value << shift;
}

} // namespace udshttp::proto
