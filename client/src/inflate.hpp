#pragma once

// --compressed: a gzip or deflate response body decoded as it arrives (zlib), in bounded memory.

#include <udshttp/client/client.hpp>

#include <memory>
#include <string_view>

namespace udshttp::cli {

class inflater {
public:
    // For a Content-Encoding of gzip, x-gzip or deflate (zlib-wrapped, or raw as some servers
    // send it); nullptr for any other (identity, or one we do not decode: passed through).
    static std::unique_ptr<inflater> for_encoding(std::string_view content_encoding);
    ~inflater();
    inflater(const inflater&) = delete;
    inflater& operator=(const inflater&) = delete;

    // Decodes `piece` and hands what comes out to `sink`. An error names the encoding.
    udshttp::result<void> feed(std::string_view piece, const client::body_sink& sink);
    // At the end of the body: an error if the stream stopped short.
    udshttp::result<void> finish() const;

private:
    explicit inflater(bool gzip);
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace udshttp::cli
