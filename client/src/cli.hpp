#pragma once

// The udshttp command line, parsed without side effects: parse_cli() reads no file, prints
// nothing and never exits, so every flag rule is a unit test (tests/internal/cli_test.cpp).
// main.cpp does the I/O the parsed options ask for.

#include <udshttp/client/client.hpp>

#include <boost/system/result.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
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
    too_many_redirects = 47,
    bad_content_encoding = 61,
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

// One -F part, as curl's: name=value, name=@FILE (a file, streamed), name=<FILE (its content
// as the value); ;type= and ;filename= after it.
struct form_part {
    enum class kind { text, file, file_content };
    std::string name{};
    std::string value{}; // the text, or the file name ("-": stdin)
    kind how = kind::text;
    std::string type{};     // ;type=: the part's Content-Type
    std::string filename{}; // ;filename=: the name sent for a file part
    friend bool operator==(const form_part&, const form_part&) = default;
};

// Where one URL's body goes: -o FILE, or -O (named after the URL).
struct output_target {
    std::string file{};
    bool remote_name = false;
    friend bool operator==(const output_target&, const output_target&) = default;
};

struct cli_options {
    std::string url{};               // the first URL (the only one, mostly)
    std::vector<std::string> urls{}; // every URL in order, url first: one transfer each
    // -o and -O in order: the first goes with the first URL, and so on (output and
    // remote_name are the first's).
    std::vector<output_target> outputs{};
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
    std::vector<form_part> form{};           // -F: a multipart/form-data body
    bool follow = false;                     // -L: follow redirects
    unsigned max_redirs = 50;                // --max-redirs (curl's default)
    bool http10 = false;                     // --http1.0 / -0
    bool compressed = false;                 // --compressed: ask for gzip/deflate, decode it
    bool progress_bar = false;               // -#: a bar instead of the figures
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

    bool has_data() const noexcept {
        return !data.empty() || !upload_file.empty() || !form.empty();
    }
    bool errors_shown() const noexcept { return !silent || show_error; }
    // The method to send: -X, or what the other options imply.
    std::string effective_method() const;
};

enum class action { request, help, version, routes, events, ws, rules_suggest };

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

// The arguments of a curl config file (-K/--config): one option a line, with or without its
// dashes (a name without them is a long option), its value after whitespace, '=' or ':',
// in double quotes when it has spaces (\\ \" \t \n \r \v escapes); '#' starts a comment line.
boost::system::result<std::vector<std::string>, usage_error>
parse_config(std::string_view text, std::string_view file_name);

// `args` with every -K FILE / --config FILE replaced by the arguments in FILE, read with
// `read` (which names the file in its error). A config file does not name another.
using file_reader =
    std::function<boost::system::result<std::string, usage_error>(const std::string& file)>;
boost::system::result<std::vector<std::string>, usage_error>
expand_config(std::span<const std::string> args, const file_reader& read);

// Where a redirect's Location (a URI reference, RFC 3986 5.2) leads from the request target
// `target` ("/a/b?q"): the new origin-form target. An absolute Location ("http://h/x") gives
// its path and query; `absolute` says it was one, and `host` is its authority then.
struct redirect_target {
    std::string target;
    bool absolute = false;
    std::string scheme{};
    std::string host{};
};
boost::system::result<redirect_target, usage_error> resolve_redirect(std::string_view target,
                                                                     std::string_view location);

// The body -d/--data-binary/--json give, read whole: files and stdin are read here. Errors
// name the file and the errno meaning.
udshttp::result<std::string> load_data(const std::vector<data_part>& parts);

// The whole content of `file` ("-": stdin), with plain read()s, so stdin is read the same way
// wherever an option takes it (-d @-, -F x=@-, -K -, -w @-). The error is the errno's.
boost::system::result<std::string, std::error_code> read_whole(const std::string& file);

std::string_view help_text() noexcept;

} // namespace udshttp::cli
