#pragma once

// -F: a multipart/form-data body (RFC 7578) from the parts as given, file parts streamed from
// their files, never read whole.

#include "cli.hpp"

#include <udshttp/client/client.hpp>

#include <functional>
#include <string>
#include <vector>

namespace udshttp::cli {

struct form_body {
    /// A fresh source for the body each call (a retry or a second URL sends it again).
    std::function<client::streamed_body()> make;
    std::string content_type; // multipart/form-data; boundary=...
};

// The body for `parts`, with its exact length (stdin parts are read here, files are opened
// when the body is sent). Errors name the file and the errno meaning. `boundary` is for
// tests; empty picks a random one.
udshttp::result<form_body> make_form_body(const std::vector<form_part>& parts,
                                          std::string boundary = {});

// The Content-Type curl gives a file part of this name (by its extension), else
// application/octet-stream.
std::string guess_type(std::string_view file_name);

} // namespace udshttp::cli
