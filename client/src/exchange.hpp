#pragma once

// One request and its response on one connection, full duplex: the writer sends the head and
// the body while the reader reads the answer, so a server may answer while the body is still
// going out (a streamed echo of any size, or an early 413). Each side returns an outcome;
// what they must know of each other while both run is in `duplex`.

#include "io.hpp"

#include <udshttp/client/client.hpp>

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>

#include <optional>

namespace udshttp::client::detail {

namespace http = boost::beast::http;
using request_message = http::request<http::buffer_body>;

struct duplex {
    const progress_callback* report = nullptr;
    progress prog{};
    std::uint64_t read_bytes = 0; // raw bytes read: 0 means the server said nothing
    bool write_over = false;      // the writer has finished, sent whole or not
    bool write_done = false;      // ...and the request went out whole
    bool read_done = false;       // a whole response has been read
    bool read_over = false;       // the reader has finished, however it ended
    // The writer's wait for an answer after a failed write; the reader's end wakes it.
    std::optional<timer_type> grace;

    void tell() const {
        if (report && *report)
            (*report)(prog);
    }
};

struct write_outcome {
    boost::system::error_code ec;
    bool done = false;                   // the request went out whole
    bool abandoned_read = false;         // the write failed and no answer came: reader stopped
    std::optional<error> source_error{}; // the body source failed or broke its length
};

struct read_outcome {
    boost::system::error_code ec;
    bool done = false; // a whole response was read
    bool keep_alive = false;
    std::optional<error> sink_error{}; // the download sink failed
    response out{};
};

// Sends the request; if it could not be sent whole, waits a bounded time for an answer that
// may still come (a server's early 413 already in our receive buffer), then stops the reader.
awaitable<write_outcome> send_request(connection& c, request_message& msg, const request& req,
                                      duplex& d);

// Reads the response (skipping interim 1xx answers) into memory or the download's sink, within
// the options' header and body limits.
awaitable<read_outcome> read_response(connection& c, const request& req, const download* dl,
                                      const client_options& options, duplex& d);

// The single retry rule: a pooled connection the server closed in the meantime fails on
// first use, before the server said anything; an idempotent request without a streamed body
// then goes once more, on a fresh connection.
bool retry_on_fresh_connection(const request& req, bool reused, int attempt, const duplex& d,
                               const write_outcome& w, const read_outcome& r);

// What a failed exchange is reported as, its message starting with `what` ("GET url").
error exchange_failure(const std::string& what, const client_options& options,
                       const write_outcome& w, const read_outcome& r);

} // namespace udshttp::client::detail
