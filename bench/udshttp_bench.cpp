// udshttp-bench: an HTTP/1.1 load generator for Unix sockets and TCP.
//
// Built straight on Asio sockets with completion handlers and a small response parser of its
// own, so that the generator costs far less per request than the server it measures: every
// connection owns one preformatted request batch and one read buffer, and nothing is allocated
// per request. Each connection sends its batch (one request, or --pipeline of them in one
// write) while it reads the answers, so large echo bodies flow both ways at once.

#include "bench_common.hpp"

#include <udshttp/proto/version.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using namespace udshttp::bench;
using socket_type = asio::generic::stream_protocol::socket;
using clk = std::chrono::steady_clock;

void print_help() {
    std::cout << R"(Usage: udshttp-bench [OPTIONS] URL

Load an HTTP/1.1 server over a Unix socket or TCP with keep-alive connections, check every
response, and report requests/s, MB/s and latency percentiles.

URLs:
  http+unix://%2Frun%2Fapp.sock/hello     Unix socket path, percent-encoded
  http+unix://%40name/hello               Linux abstract socket @name
  http://127.0.0.1:8080/hello             TCP ([::1] for IPv6)

Options:
  -c, --connections N   keep-alive connections (default 1)
  -d, --duration DUR    measured time, after the warm-up (default 5s)
  -w, --warmup DUR      unmeasured time first (default 1s)
  -n, --requests N      stop after N measured requests instead of after --duration
  -p, --pipeline N      requests sent back to back per connection before reading (default 1)
  -r, --rate N          offer N requests/s in all, spread evenly over the connections, instead
                        of sending the next as soon as an answer comes; latency counts from
                        when each request was due, so a server that falls behind shows it
  -t, --threads N       generator threads, each with its own connections (default 1)
  -X, --method METHOD   request method (default GET, POST with --body-size)
  -b, --body-size SIZE  send a body of SIZE pseudo-random bytes and expect it echoed back
  -H, --header LINE     add a header field (repeatable)
      --status CODE     the status every response must have (default 200)
      --idle DUR        open the connections, send one request on each, then hold them
                        idle for DUR and close (for measuring a server's memory per
                        connection); prints "idle N" once they are all established
      --json            print one JSON object instead of the table
  -h, --help            this text
  -V, --version         print the version

Every response is checked: its status, its framing (Content-Length or chunked), and its body:
byte for byte against the sent body when there is one, else against the first response's body.
Exit status: 0 if all responses were right, 1 if any was wrong or a connection failed, 2 for
bad usage.
)";
}

struct options {
    std::string url;
    unsigned connections = 1;
    std::chrono::nanoseconds duration = std::chrono::seconds(5);
    std::chrono::nanoseconds warmup = std::chrono::seconds(1);
    std::uint64_t requests = 0; // 0: run for --duration
    unsigned pipeline = 1;
    unsigned rate = 0; // requests/s offered in all; 0: as fast as answers come
    unsigned threads = 1;
    std::string method;
    std::size_t body_size = 0;
    std::vector<std::string> headers;
    unsigned status = 200;
    std::optional<std::chrono::nanoseconds> idle;
    bool json = false;
};

// What every thread shares: the phase of the run, read at each response.
struct run_state {
    std::atomic<bool> measuring{false};
    std::atomic<bool> stopping{false};
    std::atomic<bool> abandon{false};    // the end of the run plus 10 s: cut what is left
    std::atomic<std::int64_t> budget{0}; // measured requests left to start (--requests)
    std::atomic<unsigned> answered{0};   // connections that got their first answers
    bool count_mode = false;
};

struct stats {
    std::uint64_t responses = 0;  // measured, complete and right
    std::uint64_t body_bytes = 0; // measured response body bytes
    std::uint64_t bad_status = 0, bad_body = 0, bad_framing = 0, io_errors = 0, reconnects = 0;
    std::string first_error;
    histogram latency;

    void merge(const stats& o) {
        responses += o.responses;
        body_bytes += o.body_bytes;
        bad_status += o.bad_status;
        bad_body += o.bad_body;
        bad_framing += o.bad_framing;
        io_errors += o.io_errors;
        reconnects += o.reconnects;
        if (first_error.empty())
            first_error = o.first_error;
        latency.merge(o.latency);
    }
    std::uint64_t errors() const noexcept {
        return bad_status + bad_body + bad_framing + io_errors;
    }
};

// What the connections of one thread share.
struct worker {
    // One thread per context and nothing shared but atomics, so Asio may skip its locks.
    asio::io_context ctx{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE};
    const options& opt;
    run_state& run;
    asio::generic::stream_protocol::endpoint peer;
    std::string batch;         // the request, --pipeline times
    std::string_view expected; // the body every response must carry (the sent body), or empty
    std::optional<std::string> reference; // else: the first response's body
    stats st;
    // A few hundred connections connect at once, and each further one when an earlier one has
    // had its first answer, so 10,000 connections do not overflow the server's listen backlog
    // (a Unix socket connect() fails with EAGAIN when it is full).
    std::vector<std::unique_ptr<class connection>> connections;
    std::size_t next_waiting = 0;
    std::size_t paced = 0;  // connections that have started pacing (--rate), for their offsets
    std::size_t active = 0; // connections started and not yet ended
    std::atomic<bool> finished{false}; // run() has returned

    worker(const options& o, run_state& r) : opt(o), run(r) {}
    void start_next();
    // Runs the connections until they have all ended. A timer on this thread watches the
    // shared state, because with the UNSAFE hint no other thread may touch the context.
    void run_all();
    void watch();
    asio::steady_timer watcher{ctx};
    void error(std::uint64_t& counter, const std::string& what) {
        ++counter;
        if (st.first_error.empty())
            st.first_error = what;
    }
};

// ASCII case folding (field names are ASCII; std::tolower would consult the locale).
bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return (x | 0x20) == (y | 0x20);
           });
}

// One keep-alive connection: write a batch, read its responses, repeat until told to stop.
class connection {
public:
    explicit connection(worker& w)
        : w_(w), socket_(w.ctx), size_(w.opt.body_size > 0 ? 256 * 1024 : 16 * 1024),
          in_(std::make_unique_for_overwrite<char[]>(size_)), pace_(w.ctx) {
        if (w.opt.rate > 0) // each connection offers its share: a batch every interval_
            interval_ = std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(
                double(w.opt.connections) * w.opt.pipeline / w.opt.rate));
    }

    void start() {
        if (!started_) {
            started_ = true;
            ++w_.active;
        }
        socket_.async_connect(w_.peer, [this](const boost::system::error_code& ec) {
            if (ec) {
                w_.error(w_.st.io_errors, "connect: " + ec.message());
                return close_now();
            }
            if (w_.peer.protocol().family() != AF_UNIX) {
                boost::system::error_code ignored; // requests go out whole: no Nagle delay
                socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
            }
            send_batch();
        });
    }

    // Ends the connection for good (idempotent); the worker's run() returns after the last.
    void close_now() {
        pending_ = 0;
        pace_.cancel();
        boost::system::error_code ignored;
        socket_.close(ignored);
        if (started_ && !done_) {
            done_ = true;
            --w_.active;
        }
    }
    // The run is over but an answer is still missing: a server that stopped answering.
    void abandon() {
        if (started_ && !done_ && pending_ > 0)
            w_.error(w_.st.io_errors, "no answer within 10 s of the end of the run");
        close_now();
    }

private:
    enum class phase { head, length_body, chunk_size, chunk_data, chunk_end, trailer };

    bool may_send() {
        if (w_.run.stopping.load(std::memory_order_relaxed))
            return false;
        if (w_.opt.idle && sent_once_)
            return false;
        if (w_.run.count_mode && w_.run.measuring.load(std::memory_order_relaxed))
            return w_.run.budget.fetch_sub(w_.opt.pipeline, std::memory_order_relaxed) > 0;
        return true;
    }

    void send_batch() {
        clk::time_point due{};
        if (interval_.count() > 0) {
            // Paced: wait until this connection's next batch is due. The connections start
            // at offsets spread over one interval, so the offered load is even, not bursty.
            const auto now = clk::now();
            if (next_due_ == clk::time_point{})
                next_due_ = now + std::chrono::duration_cast<clk::duration>(
                                      interval_ * (double(w_.paced++ % w_.opt.connections) /
                                                   double(w_.opt.connections)));
            if (now < next_due_) {
                pace_.expires_at(next_due_);
                pace_.async_wait([this](const boost::system::error_code& ec) {
                    if (!ec)
                        send_batch();
                });
                return;
            }
            due = next_due_;
            next_due_ += interval_;
        }
        if (!may_send()) {
            if (!w_.opt.idle)
                close_now();
            return;
        }
        sent_once_ = true;
        measured_ = w_.run.measuring.load(std::memory_order_relaxed);
        pending_ = w_.opt.pipeline;
        write_done_ = false;
        sent_at_ = due == clk::time_point{} ? clk::now() : due;
        asio::async_write(socket_, asio::buffer(w_.batch),
                          [this](const boost::system::error_code& ec, std::size_t) {
                              if (ec)
                                  return fail("write: " + ec.message());
                              write_done_ = true;
                              if (pending_ == 0)
                                  batch_done();
                          });
        if (!reading_)
            read();
    }

    void read() {
        if (len_ == size_) { // a head larger than the buffer
            w_.error(w_.st.bad_framing, "response head larger than the read buffer");
            return close_now();
        }
        reading_ = true;
        socket_.async_read_some(asio::buffer(in_.get() + len_, size_ - len_),
                                [this](const boost::system::error_code& ec, std::size_t n) {
                                    reading_ = false;
                                    if (ec)
                                        return fail("read: " + ec.message());
                                    len_ += n;
                                    if (!parse())
                                        return close_now();
                                    if (pending_ > 0)
                                        read();
                                    else if (write_done_)
                                        batch_done();
                                });
    }

    void batch_done() {
        if (close_after_) {
            close_after_ = false;
            ++w_.st.reconnects;
            boost::system::error_code ignored;
            socket_.close(ignored);
            socket_ = socket_type(w_.ctx);
            pos_ = len_ = 0;
            return start();
        }
        send_batch();
    }

    void fail(const std::string& what) {
        if (done_ || (pending_ == 0 && write_done_))
            return; // already ended, or the server closed an idle connection after an answer
        w_.error(w_.st.io_errors, what);
        close_now();
    }

    // Consumes what is in the buffer; false on a framing or checking error that ends the
    // connection.
    bool parse() {
        while (pos_ < len_ && pending_ > 0) {
            const std::string_view data(in_.get() + pos_, len_ - pos_);
            switch (phase_) {
            case phase::head: {
                const auto end = data.find("\r\n\r\n");
                if (end == std::string_view::npos)
                    goto need_more;
                if (!parse_head(data.substr(0, end + 2)))
                    return false;
                pos_ += end + 4;
                body_seen_ = 0;
                if (w_.reference.has_value() || !w_.expected.empty())
                    body_.clear();
                if (chunked_)
                    phase_ = phase::chunk_size;
                else if (remaining_ > 0)
                    phase_ = phase::length_body;
                else if (!response_done())
                    return false;
                break;
            }
            case phase::length_body:
            case phase::chunk_data: {
                const auto n = std::min<std::uint64_t>(remaining_, data.size());
                if (!check_body(data.substr(0, n)))
                    return false;
                pos_ += n;
                remaining_ -= n;
                if (remaining_ == 0) {
                    if (phase_ == phase::chunk_data)
                        phase_ = phase::chunk_end;
                    else if (!response_done())
                        return false;
                }
                break;
            }
            case phase::chunk_size: {
                const auto eol = data.find("\r\n");
                if (eol == std::string_view::npos)
                    goto need_more;
                std::uint64_t size = 0;
                std::size_t i = 0;
                for (; i < eol && std::isxdigit(static_cast<unsigned char>(data[i])); ++i)
                    size = size * 16 + static_cast<std::uint64_t>(
                                           std::isdigit(static_cast<unsigned char>(data[i]))
                                               ? data[i] - '0'
                                               : std::tolower(data[i]) - 'a' + 10);
                if (i == 0) {
                    w_.error(w_.st.bad_framing, "bad chunk size line");
                    return false;
                }
                pos_ += eol + 2;
                remaining_ = size;
                phase_ = size == 0 ? phase::trailer : phase::chunk_data;
                break;
            }
            case phase::chunk_end:
                if (data.size() < 2)
                    goto need_more;
                if (data.substr(0, 2) != "\r\n") {
                    w_.error(w_.st.bad_framing, "chunk not followed by CRLF");
                    return false;
                }
                pos_ += 2;
                phase_ = phase::chunk_size;
                break;
            case phase::trailer: {
                const auto eol = data.find("\r\n");
                if (eol == std::string_view::npos)
                    goto need_more;
                pos_ += eol + 2;
                if (eol == 0 && !response_done())
                    return false;
                break;
            }
            }
        }
    need_more:
        if (pos_ == len_) {
            pos_ = len_ = 0;
        } else if (pos_ > 0 && (phase_ == phase::head || len_ > size_ / 2)) {
            std::memmove(in_.get(), in_.get() + pos_, len_ - pos_);
            len_ -= pos_;
            pos_ = 0;
        }
        return true;
    }

    bool parse_head(std::string_view head) {
        // "HTTP/1.1 200 OK\r\n" then fields, each ending in CRLF.
        if (head.size() < 12 || head.substr(0, 7) != "HTTP/1.") {
            w_.error(w_.st.bad_framing, "not an HTTP/1.x status line");
            return false;
        }
        status_ =
            static_cast<unsigned>((head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0'));
        chunked_ = false;
        remaining_ = 0;
        close_after_ = head[7] == '0';
        auto rest = head.substr(head.find("\r\n") + 2);
        while (!rest.empty()) {
            const auto eol = rest.find("\r\n");
            const auto line = rest.substr(0, eol);
            rest.remove_prefix(eol + 2);
            const auto colon = line.find(':');
            if (colon == std::string_view::npos)
                continue;
            const auto name = line.substr(0, colon);
            auto value = line.substr(colon + 1);
            while (!value.empty() && value.front() == ' ')
                value.remove_prefix(1);
            if (iequals(name, "content-length"))
                remaining_ = std::strtoull(std::string(value).c_str(), nullptr, 10);
            else if (iequals(name, "transfer-encoding"))
                chunked_ = value.find("chunked") != std::string_view::npos;
            else if (iequals(name, "connection"))
                close_after_ = iequals(value, "close");
        }
        return true;
    }

    bool check_body(std::string_view piece) {
        if (!w_.expected.empty()) {
            if (body_seen_ + piece.size() > w_.expected.size() ||
                std::memcmp(w_.expected.data() + body_seen_, piece.data(), piece.size()) != 0) {
                w_.error(w_.st.bad_body, "echoed body differs from the sent body at byte " +
                                             std::to_string(body_seen_));
                return false;
            }
        } else if (body_.size() < 1024 * 1024) {
            body_.append(piece);
        }
        body_seen_ += piece.size();
        return true;
    }

    bool response_done() {
        const auto now = clk::now();
        --pending_;
        phase_ = phase::head;
        if (status_ != w_.opt.status) {
            w_.error(w_.st.bad_status, "status " + std::to_string(status_) + ", expected " +
                                           std::to_string(w_.opt.status));
            return false;
        }
        if (!w_.expected.empty()) {
            if (body_seen_ != w_.expected.size()) {
                w_.error(w_.st.bad_body, "echoed " + std::to_string(body_seen_) + " of " +
                                             std::to_string(w_.expected.size()) + " bytes");
                return false;
            }
        } else if (!w_.reference) {
            w_.reference = body_;
        } else if (body_ != *w_.reference) {
            w_.error(w_.st.bad_body, "response body differs from the first response's");
            return false;
        }
        if (measured_ && w_.run.measuring.load(std::memory_order_relaxed)) {
            ++w_.st.responses;
            w_.st.body_bytes += body_seen_;
            w_.st.latency.record(static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(now - sent_at_).count()));
        }
        if (pending_ == 0 && !answered_) {
            answered_ = true;
            w_.run.answered.fetch_add(1, std::memory_order_relaxed);
            w_.start_next();
        }
        return true;
    }

    worker& w_;
    socket_type socket_;
    std::size_t size_;
    std::unique_ptr<char[]> in_;
    std::size_t pos_ = 0, len_ = 0;
    phase phase_ = phase::head;
    unsigned pending_ = 0;
    unsigned status_ = 0;
    bool chunked_ = false, close_after_ = false;
    bool write_done_ = true, reading_ = false, measured_ = false;
    bool sent_once_ = false, answered_ = false, started_ = false, done_ = false;
    std::uint64_t remaining_ = 0, body_seen_ = 0;
    std::string body_;
    clk::time_point sent_at_;
    asio::steady_timer pace_;  // --rate: waits for the next batch's due time
    clk::duration interval_{}; // --rate: between one connection's batches
    clk::time_point next_due_{};
};

void worker::start_next() {
    if (next_waiting < connections.size())
        connections[next_waiting++]->start();
}

void worker::run_all() {
    for (int i = 0; i < 256; ++i)
        start_next();
    watch();
    ctx.run();
    finished = true;
}

void worker::watch() {
    if (run.abandon.load(std::memory_order_relaxed) ||
        (opt.idle && run.stopping.load(std::memory_order_relaxed))) {
        for (auto& c : connections)
            c->abandon();
        return;
    }
    if (active == 0 && next_waiting > 0)
        return; // all ended: let run() return
    watcher.expires_after(std::chrono::milliseconds(5));
    watcher.async_wait([this](const boost::system::error_code&) { watch(); });
}

options parse_args(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        std::optional<std::string_view> attached; // --flag=value or -fvalue
        if (arg.starts_with("--") && arg.find('=') != std::string_view::npos) {
            attached = arg.substr(arg.find('=') + 1);
            arg = arg.substr(0, arg.find('='));
        } else if (arg.size() > 2 && arg[0] == '-' && arg[1] != '-') { // -c64
            attached = arg.substr(2);
            arg = arg.substr(0, 2);
        }
        const auto takes = [&](std::string_view s, std::string_view l) {
            return arg == s || arg == l;
        };
        const auto next = [&]() -> std::string_view {
            if (attached)
                return *attached;
            if (i + 1 >= argc) {
                std::cerr << "udshttp-bench: " << arg << " needs a value (see --help)\n";
                std::exit(2);
            }
            return argv[++i];
        };
        if (takes("-h", "--help")) {
            print_help();
            std::exit(0);
        } else if (takes("-V", "--version")) {
            std::cout << "udshttp-bench " << UDSHTTP_VERSION_STRING << "\n";
            std::exit(0);
        } else if (takes("-c", "--connections")) {
            o.connections = parse_count_or_exit(arg, next(), 1'000'000);
        } else if (takes("-d", "--duration")) {
            o.duration = parse_duration_or_exit(arg, next());
        } else if (takes("-w", "--warmup")) {
            o.warmup = parse_duration_or_exit(arg, next());
        } else if (takes("-n", "--requests")) {
            o.requests = parse_count_or_exit(arg, next(), 4'000'000'000U);
        } else if (takes("-p", "--pipeline")) {
            o.pipeline = parse_count_or_exit(arg, next(), 1024);
        } else if (takes("-r", "--rate")) {
            o.rate = parse_count_or_exit(arg, next(), 100'000'000);
        } else if (takes("-t", "--threads")) {
            o.threads = parse_count_or_exit(arg, next(), 256);
        } else if (takes("-X", "--method")) {
            o.method = next();
        } else if (takes("-b", "--body-size")) {
            auto s = udshttp::proto::parse_size(next());
            if (!s) {
                std::cerr << "udshttp-bench: --body-size: " << s.error().message << "\n";
                std::exit(2);
            }
            o.body_size = *s;
        } else if (takes("-H", "--header")) {
            o.headers.emplace_back(next());
        } else if (arg == "--status") {
            o.status = parse_count_or_exit(arg, next(), 999);
        } else if (arg == "--idle") {
            o.idle = parse_duration_or_exit(arg, next());
        } else if (arg == "--json") {
            o.json = true;
        } else if (arg.starts_with("-") && arg.size() > 1) {
            std::cerr << "udshttp-bench: unknown option " << arg << " (see --help)\n";
            std::exit(2);
        } else if (o.url.empty()) {
            o.url = arg;
        } else {
            std::cerr << "udshttp-bench: more than one URL: " << o.url << " and " << arg << "\n";
            std::exit(2);
        }
    }
    if (o.url.empty()) {
        std::cerr << "udshttp-bench: no URL given (see --help)\n";
        std::exit(2);
    }
    if (o.method.empty())
        o.method = o.body_size > 0 ? "POST" : "GET";
    o.threads = std::min(o.threads, o.connections);
    return o;
}

} // namespace

int main(int argc, char** argv) try {
    const auto opt = parse_args(argc, argv);
    auto url = udshttp::proto::url::parse(opt.url);
    if (!url) {
        std::cerr << "udshttp-bench: " << url.error().message << "\n";
        return 2;
    }
    const auto body = make_body(opt.body_size);
    std::string request = opt.method + " " + url->target + " HTTP/1.1\r\nHost: " + url->host +
                          "\r\nUser-Agent: udshttp-bench\r\n";
    for (const auto& h : opt.headers)
        request += h + "\r\n";
    if (opt.body_size > 0 || opt.method == "POST" || opt.method == "PUT")
        request += "Content-Type: application/octet-stream\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\n";
    request += "\r\n";
    request += body;
    std::string batch;
    for (unsigned i = 0; i < opt.pipeline; ++i)
        batch += request;

    const auto peer = resolve(url->where);
    run_state run;
    run.count_mode = opt.requests > 0;
    run.budget = static_cast<std::int64_t>(opt.requests);

    std::vector<std::unique_ptr<worker>> workers;
    for (unsigned t = 0; t < opt.threads; ++t) {
        auto& w = *workers.emplace_back(std::make_unique<worker>(opt, run));
        w.peer = peer;
        w.batch = batch;
        w.expected = body;
    }
    for (unsigned i = 0; i < opt.connections; ++i) {
        auto& w = *workers[i % opt.threads];
        w.connections.push_back(std::make_unique<connection>(w));
    }
    std::vector<std::thread> threads;
    for (auto& w : workers)
        threads.emplace_back([&w] { w->run_all(); });

    const auto all_finished = [&] {
        return std::all_of(workers.begin(), workers.end(),
                           [](auto& w) { return w->finished.load(); });
    };
    // Waits until every worker is done; one that makes no progress for 10 s is cut off.
    const auto wait_all = [&] {
        auto last = run.budget.load();
        auto since = clk::now();
        while (!all_finished()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
            if (const auto now = run.budget.load(); now != last || !run.count_mode) {
                if (now != last)
                    since = clk::now();
                last = now;
            }
            if (clk::now() - since > std::chrono::seconds(10))
                run.abandon = true;
        }
    };

    const auto begin = clk::now();
    clk::time_point measure_start, measure_end;
    if (opt.idle) {
        while (run.answered.load() < opt.connections && !all_finished() &&
               clk::now() - begin < std::chrono::seconds(60))
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        std::cout << "idle " << run.answered.load() << std::endl;
        std::this_thread::sleep_for(*opt.idle);
        run.stopping = true;
        wait_all();
    } else {
        std::this_thread::sleep_for(opt.warmup);
        measure_start = clk::now();
        run.measuring = true;
        if (run.count_mode) {
            wait_all();
            measure_end = clk::now();
        } else {
            std::this_thread::sleep_for(opt.duration);
            run.measuring = false;
            measure_end = clk::now();
            run.stopping = true;
            wait_all();
        }
    }
    for (auto& t : threads)
        t.join();

    stats all;
    for (auto& w : workers)
        all.merge(w->st);
    const double secs = std::chrono::duration<double>(measure_end - measure_start).count();
    const double rps = secs > 0 ? double(all.responses) / secs : 0;
    const double mbps = secs > 0 ? double(all.body_bytes) / secs / 1e6 : 0;
    const auto us = [&](double q) { return double(all.latency.quantile(q)) / 1000.0; };

    if (opt.idle) {
        std::cout << "closed " << opt.connections << " errors " << all.errors() << "\n";
    } else if (opt.json) {
        std::printf(
            "{\"url\":\"%s\",\"method\":\"%s\",\"connections\":%u,\"pipeline\":%u,"
            "\"rate\":%u,\"threads\":%u,\"body_bytes\":%zu,\"seconds\":%.3f,\"requests\":%llu,"
            "\"requests_per_s\":%.1f,\"mb_per_s\":%.2f,\"latency_us\":{\"p50\":%.2f,"
            "\"p90\":%.2f,\"p99\":%.2f,\"p999\":%.2f,\"max\":%.2f},\"errors\":{"
            "\"status\":%llu,\"body\":%llu,\"framing\":%llu,\"io\":%llu},"
            "\"reconnects\":%llu,\"first_error\":\"%s\"}\n",
            json_escape(opt.url).c_str(), json_escape(opt.method).c_str(), opt.connections,
            opt.pipeline, opt.rate, opt.threads, opt.body_size, secs,
            static_cast<unsigned long long>(all.responses), rps, mbps, us(0.5), us(0.9), us(0.99),
            us(0.999), us(1.0), static_cast<unsigned long long>(all.bad_status),
            static_cast<unsigned long long>(all.bad_body),
            static_cast<unsigned long long>(all.bad_framing),
            static_cast<unsigned long long>(all.io_errors),
            static_cast<unsigned long long>(all.reconnects), json_escape(all.first_error).c_str());
    } else {
        std::printf("%s %s, %u connection(s), pipeline %u, %u thread(s), body %zu bytes",
                    opt.method.c_str(), opt.url.c_str(), opt.connections, opt.pipeline, opt.threads,
                    opt.body_size);
        if (opt.rate > 0)
            std::printf(", offered %u requests/s", opt.rate);
        std::printf("\n");
        std::printf("  %llu requests in %.2f s: %.0f requests/s, %.1f MB/s of response body\n",
                    static_cast<unsigned long long>(all.responses), secs, rps, mbps);
        std::printf("  latency us: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n", us(0.5),
                    us(0.9), us(0.99), us(0.999), us(1.0));
        std::printf("  errors: status %llu, body %llu, framing %llu, io %llu; reconnects %llu\n",
                    static_cast<unsigned long long>(all.bad_status),
                    static_cast<unsigned long long>(all.bad_body),
                    static_cast<unsigned long long>(all.bad_framing),
                    static_cast<unsigned long long>(all.io_errors),
                    static_cast<unsigned long long>(all.reconnects));
        if (!all.first_error.empty())
            std::printf("  first error: %s\n", all.first_error.c_str());
    }
    return all.errors() == 0 && (opt.idle || all.responses > 0) ? 0 : 1;
} catch (const std::exception& e) {
    std::cerr << "udshttp-bench: " << e.what() << "\n";
    return 1;
}
