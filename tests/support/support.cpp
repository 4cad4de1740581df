#include "support.hpp"

#include <udshttp/proto/url.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace udshttp::test {

temp_dir::temp_dir() {
    char tmpl[] = "/tmp/udsh.XXXXXX";
    if (!::mkdtemp(tmpl))
        throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
    path_ = tmpl;
}

temp_dir::~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (!line.empty())
            out.push_back(line);
    return out;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

void write_file(const std::string& path, const std::string& content) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
}

child::child(std::vector<std::string> argv, const temp_dir& dir, spawn_options options) {
    static int counter = 0;
    const auto stem = dir.file("child" + std::to_string(++counter));
    out_path_ = stem + ".out";
    err_path_ = stem + ".err";
    std::vector<char*> args;
    for (auto& a : argv)
        args.push_back(a.data());
    args.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0)
        throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid_ == 0) {
        // Only async-signal-safe calls from here to exec.
        const int out = ::open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int err = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(out, 1);
        ::dup2(options.stderr_fd ? *options.stderr_fd : err, 2);
        const int in =
            ::open(options.stdin_file.empty() ? "/dev/null" : options.stdin_file.c_str(), O_RDONLY);
        ::dup2(in, 0);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        for (auto& e : options.env)
            ::putenv(e.data());
        // Supplementary groups first (only these, not the parent's), then gid, then uid.
        if (options.uid && (::setgroups(options.groups.size(), options.groups.data()) != 0 ||
                            ::setgid(*options.uid) != 0 || ::setuid(*options.uid) != 0))
            ::_exit(126);
        ::execvp(args[0], args.data());
        ::_exit(127);
    }
}

child::~child() {
    if (pid_ > 0 && !status_) {
        ::kill(pid_, SIGKILL);
        int st = 0;
        ::waitpid(pid_, &st, 0);
    }
}

std::optional<int> child::wait(std::chrono::milliseconds timeout) {
    if (status_)
        return status_;
    const auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        int st = 0;
        const auto r = ::waitpid(pid_, &st, WNOHANG);
        if (r == pid_) {
            status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return status_;
        }
        if (std::chrono::steady_clock::now() >= until)
            return std::nullopt;
        std::this_thread::sleep_for(5ms);
    }
}

void child::signal(int sig) const {
    if (pid_ > 0 && !status_)
        ::kill(pid_, sig);
}

bool child::wait_for_output(const std::string& text, std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
        if (out().find(text) != std::string::npos)
            return true;
        int st = 0;
        if (!status_ && ::waitpid(pid_, &st, WNOHANG) == pid_) {
            status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return out().find(text) != std::string::npos;
        }
        std::this_thread::sleep_for(5ms);
    }
    return false;
}

run_result run(std::vector<std::string> argv, const temp_dir& dir, child::spawn_options options,
               std::chrono::milliseconds timeout) {
    child c(std::move(argv), dir, std::move(options));
    run_result r;
    const auto code = c.wait(timeout);
    r.code = code.value_or(-1);
    r.out = c.out();
    r.err = c.err();
    return r;
}

void check_peer(const run_result& r, const std::string& name) {
    INFO(name << " said: " << r.out << r.err);
    CHECK(r.code == 0);
    CHECK(r.out.find(name + ": ") != std::string::npos);
    CHECK(r.out.find("checks passed") != std::string::npos);
}

bool have_program(const std::string& name) {
    if (name.find('/') != std::string::npos)
        return ::access(name.c_str(), X_OK) == 0;
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/bin:/bin";
    std::size_t start = 0;
    while (start <= dirs.size()) {
        auto end = dirs.find(':', start);
        if (end == std::string::npos)
            end = dirs.size();
        if (::access((dirs.substr(start, end - start) + "/" + name).c_str(), X_OK) == 0)
            return true;
        start = end + 1;
    }
    return false;
}

raw_socket::raw_socket(const proto::endpoint& where, std::chrono::milliseconds timeout) {
    sockaddr_storage ss{};
    socklen_t len = 0;
    int family = AF_UNIX;
    if (where.is_unix()) {
        auto& un = reinterpret_cast<sockaddr_un&>(ss);
        un.sun_family = AF_UNIX;
        std::string path = where.kind == proto::transport::unix_abstract
                               ? std::string(1, '\0') + where.address
                               : where.address;
        std::memcpy(un.sun_path, path.data(), path.size());
        len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() +
                                     (where.kind == proto::transport::unix_path ? 1 : 0));
    } else if (where.address.find(':') != std::string::npos) {
        family = AF_INET6;
        auto& in6 = reinterpret_cast<sockaddr_in6&>(ss);
        in6.sin6_family = AF_INET6;
        in6.sin6_port = htons(where.port);
        ::inet_pton(AF_INET6, where.address.c_str(), &in6.sin6_addr);
        len = sizeof in6;
    } else {
        family = AF_INET;
        auto& in = reinterpret_cast<sockaddr_in&>(ss);
        in.sin_family = AF_INET;
        in.sin_port = htons(where.port);
        ::inet_pton(AF_INET, where.address == "localhost" ? "127.0.0.1" : where.address.c_str(),
                    &in.sin_addr);
        len = sizeof in;
    }
    fd_ = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{.tv_sec = static_cast<time_t>(timeout.count() / 1000),
               .tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0)
        close();
}

raw_socket::~raw_socket() {
    close();
}

void raw_socket::close() {
    if (fd_ >= 0)
        ::close(fd_);
    fd_ = -1;
}

bool raw_socket::send(const std::string& bytes) {
    std::size_t off = 0;
    while (off < bytes.size()) {
        const auto n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        off += static_cast<std::size_t>(n);
    }
    return true;
}

std::string raw_socket::read_all() {
    std::string out;
    char buf[65536];
    for (;;) {
        const auto n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

namespace {
// Length of the complete responses at the start of raw, counting Content-Length bodies.
std::size_t complete_responses(const std::string& raw) {
    std::size_t count = 0;
    std::size_t pos = 0;
    for (;;) {
        const auto end = raw.find("\r\n\r\n", pos);
        if (end == std::string::npos)
            return count;
        std::size_t body = 0;
        const auto head = raw.substr(pos, end - pos);
        for (const char* name : {"\r\nContent-Length: ", "\r\ncontent-length: "})
            if (auto cl = head.find(name); cl != std::string::npos)
                body = std::stoul(head.substr(cl + std::strlen(name)));
        const bool head_only = head.find(" 100 Continue") != std::string::npos;
        if (raw.size() < end + 4 + body)
            return count;
        pos = end + 4 + body;
        if (!head_only)
            ++count;
    }
}
} // namespace

std::string raw_socket::read_responses(std::size_t n) {
    std::string out;
    char buf[65536];
    while (complete_responses(out) < n) {
        const auto got = ::recv(fd_, buf, sizeof buf, 0);
        if (got <= 0)
            break;
        out.append(buf, static_cast<std::size_t>(got));
    }
    return out;
}

void raw_socket::shutdown_write() {
    ::shutdown(fd_, SHUT_WR);
}

int bind_unix_socket(const std::string& path, int backlog) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    if (backlog >= 0)
        REQUIRE(::listen(fd, backlog) == 0);
    return fd;
}

std::string body_of(const std::string& raw) {
    const auto end = raw.find("\r\n\r\n");
    return end == std::string::npos ? std::string{} : raw.substr(end + 4);
}

std::string status_line(const std::string& raw) {
    return raw.substr(0, raw.find("\r\n"));
}

std::string roundtrip(const proto::endpoint& where, const std::string& bytes) {
    raw_socket s(where);
    REQUIRE(s.connected());
    REQUIRE(s.send(bytes));
    return s.read_all();
}

bool read_until(raw_socket& s, std::string& got, std::string_view text,
                std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (got.find(text) == std::string::npos) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        if (left <= 0ms)
            return false;
        pollfd p{s.fd(), POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
            return false;
        char buf[65536];
        const auto n = ::recv(s.fd(), buf, sizeof buf, 0);
        if (n <= 0)
            return got.find(text) != std::string::npos;
        got.append(buf, static_cast<std::size_t>(n));
    }
    return true;
}

std::string dechunk(const std::string& raw, bool* complete) {
    std::string body;
    auto pos = raw.find("\r\n\r\n");
    if (complete)
        *complete = false;
    if (pos == std::string::npos)
        return body;
    pos += 4;
    while (pos < raw.size()) {
        const auto eol = raw.find("\r\n", pos);
        if (eol == std::string::npos)
            break;
        const auto size = std::stoul(raw.substr(pos, eol - pos), nullptr, 16);
        if (size == 0) {
            if (complete)
                *complete = raw.compare(eol, 4, "\r\n\r\n") == 0;
            break;
        }
        body += raw.substr(eol + 2, size);
        pos = eol + 2 + size + 2;
    }
    return body;
}

std::size_t count_responses(const std::string& raw) {
    return complete_responses(raw);
}

const client::response& response_of(const result<client::response>& r) {
    REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error().message));
    return *r;
}

server_fixture::server_fixture(bool unix_socket, service::server_options options,
                               void (*setup)(service::router&), bool builtin_routes) {
    options.listen = {unix_socket ? proto::endpoint::unix_path(dir_.file("s.sock"))
                                  : proto::endpoint::tcp("127.0.0.1", 0)};
    options.builtin_routes = builtin_routes;
    server_ = std::make_unique<service::server>(std::move(options));
    if (setup)
        setup(server_->routes());
    server_->start();
    endpoint_ = server_->endpoints().at(0);
}

server_fixture::~server_fixture() {
    server_->stop();
}

std::string server_fixture::url(const std::string& target) const {
    return server_->url(target);
}

std::string udshttpd_path() {
    return UDSHTTP_TEST_UDSHTTPD;
}
std::string udshttp_path() {
    return UDSHTTP_TEST_UDSHTTP;
}
std::string peers_dir() {
    return UDSHTTP_TEST_PEERS;
}
std::string stream_check_path() {
    return UDSHTTP_TEST_STREAM_CHECK;
}
std::string source_dir() {
    return UDSHTTP_TEST_SOURCE;
}
bool in_ci() {
    const char* ci = std::getenv("CI");
    return ci && std::string(ci) == "true";
}

daemon_fixture::daemon_fixture(bool with_tcp, std::vector<std::string> extra) {
    std::vector<std::string> argv{udshttpd_path(), "--listen", socket_path()};
    if (with_tcp) {
        argv.push_back("--listen");
        argv.push_back("tcp://127.0.0.1:0");
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    proc = std::make_unique<child>(argv, dir);
    const auto expected = with_tcp ? "listening on tcp://" : "listening on unix:";
    REQUIRE_MESSAGE(proc->wait_for_output(expected), "udshttpd did not start: " << proc->err());
    if (with_tcp) {
        std::smatch m;
        const auto out = proc->out();
        REQUIRE(std::regex_search(out, m, std::regex("listening on tcp://127.0.0.1:(\\d+)")));
        tcp_port = static_cast<std::uint16_t>(std::stoi(m[1]));
    }
}

std::string daemon_fixture::unix_url(const std::string& target) const {
    return proto::make_url(proto::endpoint::unix_path(socket_path()), target);
}

std::string daemon_fixture::tcp_url(const std::string& target) const {
    return proto::make_url(proto::endpoint::tcp("127.0.0.1", tcp_port), target);
}

bool require_peer(const std::string& program, const std::string& package) {
    if (have_program(program))
        return true;
    if (in_ci())
        FAIL(program << " is missing in CI; the test command installs " << package);
    MESSAGE("skipped: " << program << " not found (apt-get install " << package << ")");
    return false;
}

bool require_python_module(const std::string& module, const std::string& package) {
    if (!require_peer("/usr/bin/python3", "python3"))
        return false;
    temp_dir probe;
    if (run({"/usr/bin/python3", "-c", "import " + module}, probe).code == 0)
        return true;
    if (in_ci())
        FAIL("Python module " << module << " is missing in CI; the test command installs "
                              << package);
    MESSAGE("skipped: Python module " << module << " not installed (apt-get install " << package
                                      << ")");
    return false;
}

std::size_t vm_hwm_kb(pid_t pid) {
    const auto status = read_file("/proc/" + std::to_string(pid) + "/status");
    const auto at = status.find("VmHWM:");
    if (at == std::string::npos)
        return 0;
    return std::strtoul(status.c_str() + at + 6, nullptr, 10);
}

} // namespace udshttp::test
