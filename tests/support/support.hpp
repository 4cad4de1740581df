#pragma once

// Test support: temp dirs, child processes, raw sockets and an in-process server. Plain POSIX
// (no Asio) so test files compile fast; everything here cleans up in its destructor, so a
// failing test leaves no process, socket or directory behind.

#include <udshttp/client/client.hpp>
#include <udshttp/proto/endpoint.hpp>
#include <udshttp/service/server.hpp>

#include <doctest/doctest.h>

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace udshttp::test {

using namespace std::chrono_literals;

// A fresh directory under /tmp (short, so socket paths stay far below 107 bytes), removed
// with its contents on destruction.
class temp_dir {
public:
    temp_dir();
    ~temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    const std::string& path() const noexcept { return path_; }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

// Reads and writes whole files.
std::string read_file(const std::string& path);
// The non-empty lines of `text`, without their newlines.
std::vector<std::string> lines_of(const std::string& text);
void write_file(const std::string& path, const std::string& content);

// How a child process is started (child::spawn_options).
struct child_options {
    std::optional<uid_t> uid{};     // setuid() before exec (tests that run as root)
    std::vector<std::string> env{}; // extra NAME=value entries
    std::string stdin_file{};       // redirect stdin from this file
    std::vector<gid_t> groups{};    // with uid: the only supplementary groups
    std::optional<int> stderr_fd{}; // stderr to this descriptor (a pipe) instead of a file
};

// A child process with stdout/stderr captured to files. Killed (SIGKILL) and reaped on
// destruction if still running.
class child {
public:
    using spawn_options = child_options;
    child(std::vector<std::string> argv, const temp_dir& dir, spawn_options options = {});
    ~child();
    child(const child&) = delete;
    child& operator=(const child&) = delete;

    pid_t pid() const noexcept { return pid_; }
    // Waits for exit; returns the exit code (128+signal if killed), nullopt on timeout.
    std::optional<int> wait(std::chrono::milliseconds timeout = 30s);
    // Sends a signal.
    void signal(int sig) const;
    // Waits until stdout contains `text` (or the process exits / timeout); true if found.
    bool wait_for_output(const std::string& text, std::chrono::milliseconds timeout = 10s);
    std::string out() const { return read_file(out_path_); }
    std::string err() const { return read_file(err_path_); }

private:
    pid_t pid_ = -1;
    std::optional<int> status_;
    std::string out_path_;
    std::string err_path_;
};

// Runs a command to completion (bounded); returns {exit code, stdout, stderr}.
struct run_result {
    int code = -1;
    std::string out;
    std::string err;
};
run_result run(std::vector<std::string> argv, const temp_dir& dir,
               child::spawn_options options = {}, std::chrono::milliseconds timeout = 60s);

// A peer script's verdict (tests/peers, checklist.py): exit 0 and its "NAME: N checks passed"
// line.
void check_peer(const run_result& r, const std::string& name);

// True if an executable is on PATH (or is an absolute path that exists).
bool have_program(const std::string& name);

// A blocking socket connected to an endpoint (Unix path, abstract or TCP), with a receive
// timeout so a test can never hang on it.
class raw_socket {
public:
    explicit raw_socket(const proto::endpoint& where, std::chrono::milliseconds timeout = 5s);
    ~raw_socket();
    raw_socket(const raw_socket&) = delete;
    raw_socket& operator=(const raw_socket&) = delete;
    bool connected() const noexcept { return fd_ >= 0; }
    int fd() const noexcept { return fd_; }
    // Sends all bytes; false on error.
    bool send(const std::string& bytes);
    // Reads until the peer closes or the timeout passes.
    std::string read_all();
    // Reads until `n` complete HTTP responses with Content-Length bodies were seen, or close.
    std::string read_responses(std::size_t n);
    // Half-closes the sending side.
    void shutdown_write();
    void close();

private:
    int fd_ = -1;
};

// The body of the first response in raw bytes (everything after the head), and its status line.
std::string body_of(const std::string& raw);
std::string status_line(const std::string& raw);
// Connects, sends bytes, reads until the server closes.
std::string roundtrip(const proto::endpoint& where, const std::string& bytes);

// A Unix stream socket bound at path, listening with `backlog` (or not listening at all when
// backlog < 0, which leaves a stale socket file once closed). Returns the descriptor.
int bind_unix_socket(const std::string& path, int backlog);

// Reads from `s` into `got` until `text` has arrived (true), `limit` passes or the peer closes.
bool read_until(raw_socket& s, std::string& got, std::string_view text,
                std::chrono::milliseconds limit = 5s);
// The body of a chunked response in `raw` (after its head) without the chunk framing;
// `complete` says whether the last chunk arrived.
std::string dechunk(const std::string& raw, bool* complete = nullptr);

// Counts the complete responses (head plus Content-Length body) in a raw byte stream;
// interim 100 Continue answers do not count.
std::size_t count_responses(const std::string& raw);

// The two transports every behaviour is proven on.
struct unix_transport {
    static constexpr const char* name = "unix";
};
struct tcp_transport {
    static constexpr const char* name = "tcp";
};

// The response in `r`, REQUIRE-ing that there is one: a failed request fails the test with
// its message instead of dereferencing an error.
const client::response& response_of(const result<client::response>& r);

// An in-process server on a fresh socket in a temp dir or on 127.0.0.1 port 0, serving the
// built-in routes (as udshttpd does) unless builtin_routes is false.
class server_fixture {
public:
    explicit server_fixture(bool unix_socket, service::server_options options = {},
                            void (*setup)(service::router&) = nullptr, bool builtin_routes = true);
    ~server_fixture();
    service::server& server() { return *server_; }
    const proto::endpoint& endpoint() const noexcept { return endpoint_; }
    // The URL of `target` on this server (its server::url()).
    std::string url(const std::string& target) const;
    temp_dir& dir() { return dir_; }

private:
    temp_dir dir_;
    std::unique_ptr<service::server> server_;
    proto::endpoint endpoint_;
};

template <class Transport> struct transport_fixture : server_fixture {
    explicit transport_fixture(service::server_options options = {},
                               void (*setup)(service::router&) = nullptr)
        : server_fixture(std::is_same_v<Transport, unix_transport>, std::move(options), setup) {}
};

// udshttpd as a child process on a socket in a temp dir (and TCP port 0 when asked), ready
// once it prints where it listens.
class daemon_fixture {
public:
    explicit daemon_fixture(bool with_tcp = false, std::vector<std::string> extra = {});
    std::string socket_path() const { return dir.file("d.sock"); }
    std::string unix_url(const std::string& target) const;
    std::string tcp_url(const std::string& target) const;

    temp_dir dir;
    std::unique_ptr<child> proc;
    std::uint16_t tcp_port = 0;
};

// True if `program` exists. Otherwise: a failure in CI (the test command installs `package`),
// a skip with a message elsewhere.
bool require_peer(const std::string& program, const std::string& package);
// The same for a Python module from Debian's /usr/bin/python3.
bool require_python_module(const std::string& module, const std::string& package);

// Waits up to `limit` for pred() to hold, looking every 10 ms.
template <class Pred> bool eventually(Pred pred, std::chrono::milliseconds limit = 10s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > until)
            return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

// The peak resident size of process `pid` (VmHWM), in KiB; 0 if it cannot be read.
std::size_t vm_hwm_kb(pid_t pid);

// Paths of the binaries under test, from CMake.
std::string udshttpd_path();
std::string udshttp_path();
std::string peers_dir();
std::string source_dir();        // the project's top directory
std::string stream_check_path(); // tests/helpers/stream_check
// True when running in CI (CI=true): missing peers are failures there, not skips.
bool in_ci();

} // namespace udshttp::test

// doctest prints a failed result as its error message, a good one as "value".
template <class T> struct doctest::StringMaker<boost::system::result<T, udshttp::error>> {
    static doctest::String convert(const boost::system::result<T, udshttp::error>& r) {
        if (r)
            return "value";
        return ("error: " + r.error().message).c_str();
    }
};
