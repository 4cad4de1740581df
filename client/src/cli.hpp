#pragma once

// The udshttp command line, parsed without side effects: parse_cli() reads no file, prints
// nothing and never exits, so every flag rule is a unit test (tests/internal/cli_test.cpp).
// main.cpp does the I/O the parsed options ask for.

#include <udshttp/client/client.hpp>

#include <boost/system/result.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace udshttp::cli {

// Exit codes follow curl's, so scripts that check them port over unchanged.
enum exit_code : int {
    ok = 0,
    usage = 2,
    bad_url = 3,
    weird_reply = 8,
    connect_failed = 7,
    http_error = 22,
    write_error = 23,
    read_error = 26,
    bad_argument = 43, // curl's CURLE_BAD_FUNCTION_ARGUMENT
    timed_out = 28,
    empty_reply = 52,
    recv_error = 56,
};

// One piece of the request body as given: -d, --data-binary, --data-raw or --json.
struct data_part {
    std::string text{};          // the data, or the file name when from_file ("-": stdin)
    bool from_file = false;      // given as @FILE
    bool strip_newlines = false; // -d @FILE drops CR and LF, as curl does
    bool ampersand = true;       // joined to what precedes it with '&' (not --json)
    bool urlencode = false;      // --data-urlencode: the content percent-encoded
    std::string name{};          // --data-urlencode name=... or name@file: "name=" first
    friend bool operator==(const data_part&, const data_part&) = default;
};

struct cli_options {
    std::string url{};
    std::string method{}; // empty: GET, POST with data, HEAD with -I, PUT with -T
    client::fields headers{};
    // -H 'Name:' (nothing after the colon): a field the CLI would add is not sent, as curl's
    // (User-Agent, and -d's Content-Type); any other is simply not sent.
    std::vector<std::string> removed_headers{};
    std::vector<std::string> header_files{}; // -H @FILE: one field per line, read by main
    std::vector<data_part> data{};           // in the order given
    std::string upload_file{};               // -T FILE, or a lone --data-binary @FILE: streamed
    bool form_data = false;                  // -d: the default Content-Type is a form
    bool path_as_is = false;                 // --path-as-is: keep /./ and /../ (curl squashes them)
    bool get = false;                        // -G: the data goes into the URL's query, with GET
    bool json = false;
    bool include = false;
    bool head = false;
    bool fail = false;
    bool silent = false;
    bool show_error = false;
    bool verbose = false;
    bool no_buffer = false;   // -N: accepted as curl's; the body is never buffered anyway
    bool events_json = false; // events --json: one JSON object per event
    bool reconnect = false;   // events --reconnect: resume with Last-Event-ID when it ends
    bool binary = false;      // ws --binary: send lines as binary messages
    std::chrono::milliseconds linger{1'000}; // ws --linger: quiet time after stdin ends
    std::string output{};
    bool remote_name = false;    // -O: the output file is named after the URL's last segment
    std::string output_dir{};    // --output-dir: where -o and -O files go
    bool create_dirs = false;    // --create-dirs: make the output file's directories
    std::string dump_header{};   // -D FILE: the response head goes there ("-": stdout)
    bool fail_with_body = false; // --fail-with-body: exit 22 on >= 400, the body printed
    // --retry: how many times a transient failure is tried again (a timeout; 408, 429, 500,
    // 502, 503, 504, 522 or 524; with --retry-connrefused also a refused connect or a missing
    // socket file; with --retry-all-errors anything).
    unsigned retries = 0;
    bool retry_connrefused = false;
    bool retry_all_errors = false;
    std::optional<std::chrono::milliseconds> retry_delay{}; // unset: 1 s, doubling
    std::chrono::milliseconds retry_max_time{0};            // 0: no limit
    std::string write_out{};
    std::string unix_socket{};
    std::string abstract_socket{};
    client::client_options options{};

    bool has_data() const noexcept { return !data.empty() || !upload_file.empty(); }
    bool errors_shown() const noexcept { return !silent || show_error; }
    // The method to send: -X, or what the other options imply.
    std::string effective_method() const;
};

enum class action { request, help, version, routes, events, ws };

struct command {
    cli::action action = action::request;
    cli_options options{}; // for routes: only url; for events: url, the socket and its flags
};

struct usage_error {
    std::string message; // one line, without the "udshttp: " prefix
};
[[noreturn]] void throw_exception_from_error(const usage_error& e,
                                             const boost::source_location& loc);

// One -H argument: "Name: value" adds a field, "Name;" adds it empty, "Name:" removes it.
// Returns the usage error for anything else.
std::optional<usage_error> add_header_arg(cli_options& c, std::string_view h);

// Parses the arguments after the program name.
boost::system::result<command, usage_error> parse_cli(std::span<const std::string> args);

// The body -d/--data-binary/--json give, read whole: files and stdin are read here. Errors
// name the file and the errno meaning.
udshttp::result<std::string> load_data(const std::vector<data_part>& parts);

std::string_view help_text() noexcept;

} // namespace udshttp::cli
