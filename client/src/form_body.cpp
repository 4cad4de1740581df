#include "form_body.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <iterator>
#include <memory>
#include <random>

namespace udshttp::cli {
namespace {

udshttp::error read_failure(const std::string& file, int err) {
    return {make_error_code(errc::io_error),
            "-F: cannot read " + (file == "-" ? std::string("stdin") : "'" + file + "'") + ": " +
                std::strerror(err)};
}

// A name or file name inside the quotes of Content-Disposition, escaped as browsers do
// (RFC 7578 4.2: " as %22, CR and LF as %0D and %0A), so no value can end the field early.
std::string disposition_value(std::string_view text) {
    std::string out;
    for (const char ch : text) {
        if (ch == '"')
            out += "%22";
        else if (ch == '\r')
            out += "%0D";
        else if (ch == '\n')
            out += "%0A";
        else
            out += ch;
    }
    return out;
}

// A piece of the body: bytes, or a file whose content goes there.
struct segment {
    std::string bytes{};
    std::string file{}; // non-empty: stream this file
    std::uint64_t size = 0;
};

std::string base_name(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

} // namespace

std::string guess_type(std::string_view name) {
    static constexpr std::pair<std::string_view, std::string_view> types[] = {
        {".gif", "image/gif"},       {".jpg", "image/jpeg"},       {".jpeg", "image/jpeg"},
        {".png", "image/png"},       {".svg", "image/svg+xml"},    {".txt", "text/plain"},
        {".htm", "text/html"},       {".html", "text/html"},       {".pdf", "application/pdf"},
        {".xml", "application/xml"}, {".json", "application/json"}};
    for (const auto& [ext, type] : types)
        if (name.size() > ext.size() && name.ends_with(ext))
            return std::string(type);
    return "application/octet-stream";
}

udshttp::result<form_body> make_form_body(const std::vector<form_part>& parts,
                                          std::string boundary) {
    if (boundary.empty()) { // as curl's: dashes, then random hex
        std::random_device rd;
        std::uniform_int_distribution<int> hex(0, 15);
        boundary = std::string(24, '-');
        for (int i = 0; i < 16; ++i)
            boundary += "0123456789abcdef"[hex(rd)];
    }
    std::vector<segment> segs;
    const auto text = [&](std::string bytes) {
        if (!segs.empty() && segs.back().file.empty())
            segs.back().bytes += bytes;
        else
            segs.push_back({.bytes = std::move(bytes)});
    };
    for (const auto& p : parts) {
        std::string head = "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" +
                           disposition_value(p.name) + "\"";
        if (p.how == form_part::kind::file) {
            const auto shown =
                p.filename.empty() ? base_name(p.value == "-" ? "" : p.value) : p.filename;
            head += "; filename=\"" + disposition_value(shown) + "\"";
            head += "\r\nContent-Type: " + (p.type.empty() ? guess_type(shown) : p.type);
        } else if (!p.type.empty()) {
            head += "\r\nContent-Type: " + p.type;
        }
        head += "\r\n\r\n";
        text(std::move(head));
        if (p.how == form_part::kind::text) {
            text(p.value);
        } else if (p.how == form_part::kind::file_content || p.value == "-") {
            auto content = read_whole(p.value);
            if (!content)
                return read_failure(p.value, content.error().value());
            text(std::move(*content));
        } else {
            struct stat st {};
            if (::stat(p.value.c_str(), &st) != 0)
                return read_failure(p.value, errno);
            if (!S_ISREG(st.st_mode)) { // a pipe or device: its length is known only once read
                auto content = read_whole(p.value);
                if (!content)
                    return read_failure(p.value, content.error().value());
                text(std::move(*content));
            } else {
                segs.push_back({.file = p.value, .size = static_cast<std::uint64_t>(st.st_size)});
            }
        }
        text("\r\n");
    }
    text("--" + boundary + "--\r\n");
    std::uint64_t length = 0;
    for (const auto& s : segs)
        length += s.file.empty() ? s.bytes.size() : s.size;

    // The source walks the segments; a file is opened when its turn comes and closed at its
    // end. A file that shrank or grew since stat() is an error (its length was promised).
    struct state {
        std::shared_ptr<const std::vector<segment>> segs;
        std::size_t at = 0;     // the segment being sent
        std::uint64_t done = 0; // of it, bytes sent
        int fd = -1;
        ~state() {
            if (fd >= 0)
                ::close(fd);
        }
    };
    auto shared = std::make_shared<const std::vector<segment>>(std::move(segs));
    auto make = [shared, length] {
        auto st = std::make_shared<state>();
        st->segs = shared;
        client::body_source source = [st](std::span<char> buf) -> udshttp::result<std::size_t> {
            while (st->at < st->segs->size()) {
                const auto& seg = (*st->segs)[st->at];
                if (seg.file.empty()) {
                    const auto n = std::min<std::size_t>(
                        buf.size(), seg.bytes.size() - static_cast<std::size_t>(st->done));
                    std::memcpy(buf.data(), seg.bytes.data() + st->done, n);
                    st->done += n;
                    if (st->done == seg.bytes.size()) {
                        ++st->at;
                        st->done = 0;
                    }
                    if (n > 0)
                        return n;
                    continue;
                }
                if (st->fd < 0) {
                    st->fd = ::open(seg.file.c_str(), O_RDONLY | O_CLOEXEC);
                    if (st->fd < 0)
                        return read_failure(seg.file, errno);
                }
                const auto want = std::min<std::uint64_t>(buf.size(), seg.size - st->done);
                const auto n = want == 0 ? 0 : ::read(st->fd, buf.data(), want);
                if (n < 0 && errno == EINTR)
                    continue;
                if (n < 0)
                    return read_failure(seg.file, errno);
                if (n == 0 && st->done < seg.size)
                    return udshttp::error{make_error_code(errc::io_error),
                                          "-F: '" + seg.file + "' shrank while it was sent"};
                st->done += static_cast<std::uint64_t>(n);
                if (st->done == seg.size) {
                    ::close(st->fd);
                    st->fd = -1;
                    ++st->at;
                    st->done = 0;
                }
                if (n > 0)
                    return static_cast<std::size_t>(n);
            }
            return std::size_t{0};
        };
        return client::streamed_body{std::move(source), length};
    };
    return form_body{std::move(make), "multipart/form-data; boundary=" + boundary};
}

} // namespace udshttp::cli
