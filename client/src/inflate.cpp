#include "inflate.hpp"

#include <boost/beast/core/string.hpp>

#include <zlib.h>

#include <array>
#include <climits>
#include <string>
#include <utility>

namespace udshttp::cli {

struct inflater::impl {
    z_stream z{};
    bool gzip = false;
    bool started = false; // some output came: too late to retry as raw deflate
    bool raw = false;
    bool ended = false;
    std::string first; // "deflate": the first input, kept until we know its framing
};

namespace {
udshttp::error decode_error(const char* what) {
    return {make_error_code(errc::protocol_error),
            std::string("cannot decode the response body (--compressed): ") + what};
}
} // namespace

std::unique_ptr<inflater> inflater::for_encoding(std::string_view e) {
    if (boost::beast::iequals(e, "gzip") || boost::beast::iequals(e, "x-gzip"))
        return std::unique_ptr<inflater>(new inflater(true));
    if (boost::beast::iequals(e, "deflate"))
        return std::unique_ptr<inflater>(new inflater(false));
    return nullptr;
}

inflater::inflater(bool gzip) : impl_(std::make_unique<impl>()) {
    impl_->gzip = gzip;
    // 15 + 32: zlib or gzip framing, told by the header.
    inflateInit2(&impl_->z, 15 + 32);
}

inflater::~inflater() {
    inflateEnd(&impl_->z);
}

udshttp::result<void> inflater::feed(std::string_view piece, const client::body_sink& sink) {
    auto& k = *impl_;
    // "deflate" may come raw (without the zlib wrapper RFC 9110 asks for): until the first
    // output, keep what came (at most 64 KiB), to start again as raw deflate if zlib refuses it.
    const bool may_retry = !k.gzip && !k.raw && !k.started;
    if (may_retry && k.first.size() + piece.size() <= 65536)
        k.first.append(piece);
    std::array<char, 65536> out{};
    while (!piece.empty() && !k.ended) {
        const auto n = std::min<std::size_t>(piece.size(), UINT_MAX);
        k.z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(piece.data()));
        k.z.avail_in = static_cast<uInt>(n);
        for (;;) {
            k.z.next_out = reinterpret_cast<Bytef*>(out.data());
            k.z.avail_out = static_cast<uInt>(out.size());
            const int rc = inflate(&k.z, Z_NO_FLUSH);
            if (rc == Z_DATA_ERROR && may_retry && !k.first.empty()) {
                inflateEnd(&k.z);
                k.z = z_stream{};
                inflateInit2(&k.z, -15);
                k.raw = true;
                const auto seen = std::exchange(k.first, {});
                return feed(seen, sink);
            }
            if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
                return decode_error(k.z.msg ? k.z.msg : "corrupt data");
            const auto made = out.size() - k.z.avail_out;
            if (made > 0) {
                k.started = true;
                k.first.clear();
                if (auto r = sink({out.data(), made}); !r)
                    return r;
            }
            if (rc == Z_STREAM_END) {
                k.ended = true; // what follows the stream's end is ignored, as curl does
                break;
            }
            if ((k.z.avail_in == 0 && k.z.avail_out != 0) || rc == Z_BUF_ERROR)
                break;
        }
        piece.remove_prefix(n - k.z.avail_in);
    }
    return {};
}

udshttp::result<void> inflater::finish() const {
    if (!impl_->ended && (impl_->started || impl_->z.total_in > 0))
        return decode_error("the compressed stream ends early");
    return {};
}

} // namespace udshttp::cli
