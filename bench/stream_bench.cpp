// udshttp-stream-bench: load for what streams rather than answers: a WebSocket echo, and a
// topic's fan-out to Server-Sent Events subscribers. Like udshttp-bench it is plain Asio with
// completion handlers on one thread, its own small WebSocket and SSE parsers, and every message
// checked, so that it costs far less per message than the servers it compares.

#include "bench_common.hpp"

#include <udshttp/proto/version.hpp>

#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>

namespace {

using namespace udshttp::bench;
using socket_type = asio::generic::stream_protocol::socket;
using clk = std::chrono::steady_clock;
using error_code = boost::system::error_code;

void print_help() {
    std::cout << R"(Usage: udshttp-stream-bench ws [OPTIONS] URL
       udshttp-stream-bench fanout [OPTIONS] URL

ws       WebSocket echo: each connection upgrades (GET URL, Upgrade: websocket), then sends a
         binary message of --size bytes and waits for it to come back, over and over. Reports
         messages/s and the round trip's latency.
fanout   Topic fan-out: --connections subscribers GET URL as Server-Sent Events; once all are
         subscribed, one publisher POSTs messages to URL, keeping at most --window of them not
         yet delivered to every subscriber. Reports messages delivered/s (summed over the
         subscribers) and the latency from the publisher's write to each subscriber's read.

URLs: http+unix://%2Frun%2Fapp.sock/ws/echo, ws+unix://..., http://127.0.0.1:8080/topics/t

Options:
  -c, --connections N   WebSocket connections, or subscribers (default 1)
  -b, --size SIZE       message size (default 64; fanout: at least 48)
      --window N        fanout: messages in flight (default 16)
  -d, --duration DUR    measured time, after the warm-up (default 5s)
  -w, --warmup DUR      unmeasured time first (default 1s)
      --json            print one JSON object instead of the summary
  -h, --help            this text
  -V, --version         print the version

Every message is checked: an echo byte for byte against what was sent; a subscriber's events
for being the publisher's, in order, none missing. Exit status: 0 if all were right, 1 if any
was wrong or a connection failed, 2 for bad usage.
)";
}

struct options {
    std::string mode;
    std::string url;
    unsigned connections = 1;
    std::size_t size = 64;
    unsigned window = 16;
    std::chrono::nanoseconds duration = std::chrono::seconds(5);
    std::chrono::nanoseconds warmup = std::chrono::seconds(1);
    bool json = false;
};

// The run: one io_context, its phases, and what was measured.
struct run_state {
    asio::io_context ctx{1};
    const options& opt;
    asio::generic::stream_protocol::endpoint peer;
    std::string host, target;
    bool measuring = false, stopping = false;
    clk::time_point measure_start, measure_end;
    std::uint64_t messages = 0, published = 0, errors = 0;
    std::string first_error;
    histogram latency;
    unsigned ready = 0; // connections upgraded or subscribed
    std::vector<std::function<void()>> closers;

    explicit run_state(const options& o) : opt(o) {}
    void error(const std::string& what) {
        ++errors;
        if (first_error.empty())
            first_error = what;
    }
    void record(clk::time_point since) {
        if (!measuring)
            return;
        ++messages;
        latency.record(static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(clk::now() - since).count()));
    }
    void is_ready() { ++ready; }
};

// A connection that sends an HTTP request and reads its response head; what follows the head
// is the subclass's. Reads go into one buffer that grows only for a head.
class conn_base {
public:
    explicit conn_base(run_state& r) : r_(r), socket_(r.ctx), in_(64 * 1024) {
        r.closers.push_back([this] { close(); });
    }
    virtual ~conn_base() = default;

    // Connects and sends `request`; `with_head`: a response head comes first (else every
    // byte read goes to on_bytes()).
    void start(std::string request, bool with_head = true) {
        request_ = std::move(request);
        head_done_ = !with_head;
        socket_.async_connect(r_.peer, [this](const error_code& ec) {
            if (ec)
                return fail("connect: " + ec.message());
            if (r_.peer.protocol().family() != AF_UNIX) {
                error_code ignored;
                socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
            }
            if (!request_.empty())
                asio::async_write(socket_, asio::buffer(request_),
                                  [this](const error_code& ec2, std::size_t) {
                                      if (ec2)
                                          return fail("write: " + ec2.message());
                                  });
            read();
            on_connected();
        });
    }
    void close() {
        closed_ = true;
        error_code ignored;
        socket_.close(ignored);
    }

protected:
    // The response head arrived (without its blank line); false ends the connection.
    virtual bool on_head(std::string_view head) = 0;
    // Bytes after the head; returns how many it consumed (the rest waits for more), or
    // nullopt to end the connection.
    virtual std::optional<std::size_t> on_bytes(std::string_view data) = 0;
    virtual void on_connected() {}

    void fail(const std::string& what) {
        if (closed_ || r_.stopping)
            return;
        r_.error(what);
        close();
    }
    void read() {
        if (len_ == in_.size())
            in_.resize(in_.size() * 2);
        socket_.async_read_some(asio::buffer(in_.data() + len_, in_.size() - len_),
                                [this](const error_code& ec, std::size_t n) {
                                    if (ec)
                                        return fail("read: " + ec.message());
                                    len_ += n;
                                    if (consume())
                                        read();
                                    else
                                        close();
                                });
    }

    run_state& r_;
    socket_type socket_;

private:
    bool consume() {
        std::size_t pos = 0;
        if (!head_done_) {
            const std::string_view all(in_.data(), len_);
            const auto end = all.find("\r\n\r\n");
            if (end == std::string_view::npos)
                return true;
            head_done_ = true;
            if (!on_head(all.substr(0, end + 2)))
                return false;
            pos = end + 4;
        }
        while (pos < len_) {
            const auto used = on_bytes(std::string_view(in_.data() + pos, len_ - pos));
            if (!used)
                return false;
            if (*used == 0)
                break;
            pos += *used;
        }
        std::memmove(in_.data(), in_.data() + pos, len_ - pos);
        len_ -= pos;
        return true;
    }

    std::string request_;
    std::vector<char> in_;
    std::size_t len_ = 0;
    bool head_done_ = false;
    bool closed_ = false;
};

unsigned status_of(std::string_view head) {
    if (head.size() < 12 || !head.starts_with("HTTP/1."))
        return 0;
    return static_cast<unsigned>((head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0'));
}

std::string lower(std::string_view t) {
    std::string out(t);
    for (auto& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// The value of the head's field `name` (any case), lower-cased; nullopt if it has none.
std::optional<std::string> field_value(std::string_view head, std::string_view name) {
    const auto h = lower(head);
    const auto key = "\r\n" + lower(name) + ":";
    const auto at = h.find(key);
    if (at == std::string::npos)
        return std::nullopt;
    const auto eol = h.find("\r\n", at + key.size());
    auto value = h.substr(at + key.size(), eol - at - key.size());
    value.erase(0, value.find_first_not_of(' '));
    return value;
}

// True if the head has the field `name` whose value contains `part` (any case).
bool has_field(std::string_view head, std::string_view name, std::string_view part) {
    const auto v = field_value(head, name);
    return v && v->find(lower(part)) != std::string::npos;
}

// ---- WebSocket echo ------------------------------------------------------------------------

// The key of RFC 6455's example, and the Sec-WebSocket-Accept it must produce.
constexpr std::string_view ws_key = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view ws_accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

// One binary message as a client sends it: FIN, a length, a mask, the masked payload.
std::string masked_frame(std::string_view payload) {
    std::string f;
    f += static_cast<char>(0x82);
    const auto n = payload.size();
    if (n < 126) {
        f += static_cast<char>(0x80 | n);
    } else if (n < 65536) {
        f += static_cast<char>(0x80 | 126);
        f += static_cast<char>(n >> 8);
        f += static_cast<char>(n & 0xff);
    } else {
        f += static_cast<char>(0x80 | 127);
        for (int shift = 56; shift >= 0; shift -= 8)
            f += static_cast<char>((n >> shift) & 0xff);
    }
    const std::array<unsigned char, 4> mask{0x37, 0xfa, 0x21, 0x3d};
    for (auto m : mask)
        f += static_cast<char>(m);
    for (std::size_t i = 0; i < n; ++i)
        f += static_cast<char>(static_cast<unsigned char>(payload[i]) ^ mask[i % 4]);
    return f;
}

class ws_conn final : public conn_base {
public:
    ws_conn(run_state& r, const std::string& frame, const std::string& payload)
        : conn_base(r), frame_(frame), payload_(payload) {}

    void begin() {
        start("GET " + r_.target + " HTTP/1.1\r\nHost: " + r_.host +
              "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " +
              std::string(ws_key) + "\r\nSec-WebSocket-Version: 13\r\n\r\n");
    }
    void send() {
        if (r_.stopping)
            return;
        sent_at_ = clk::now();
        asio::async_write(socket_, asio::buffer(frame_), [this](const error_code& ec, std::size_t) {
            if (ec)
                fail("write: " + ec.message());
        });
    }

private:
    bool on_head(std::string_view head) override {
        if (status_of(head) != 101 || !has_field(head, "sec-websocket-accept", ws_accept)) {
            fail("the upgrade was answered " + std::string(head.substr(0, head.find('\r'))));
            return false;
        }
        r_.is_ready();
        return true;
    }

    std::optional<std::size_t> on_bytes(std::string_view d) override {
        if (frame_left_ == 0) { // a frame header
            if (d.size() < 2)
                return 0;
            const auto b0 = static_cast<unsigned char>(d[0]), b1 = static_cast<unsigned char>(d[1]);
            std::size_t hdr = 2;
            std::uint64_t len = b1 & 0x7f;
            if (len == 126) {
                if (d.size() < 4)
                    return 0;
                len = (std::uint64_t(static_cast<unsigned char>(d[2])) << 8) |
                      static_cast<unsigned char>(d[3]);
                hdr = 4;
            } else if (len == 127) {
                if (d.size() < 10)
                    return 0;
                len = 0;
                for (std::size_t i = 2; i < 10; ++i)
                    len = (len << 8) | static_cast<unsigned char>(d[i]);
                hdr = 10;
            }
            if (b1 & 0x80)
                return bad("the server masked a frame");
            const unsigned op = b0 & 0x0f;
            if (op >= 8) { // control: ping and pong are ignored, close ends the run badly
                if (d.size() < hdr + len)
                    return 0;
                if (op == 8)
                    return bad("the server closed the WebSocket");
                return hdr + len;
            }
            if ((op == 0) != in_message_ || (op != 0 && op != 2))
                return bad("unexpected frame opcode " + std::to_string(op));
            in_message_ = true;
            fin_ = (b0 & 0x80) != 0;
            frame_left_ = len;
            if (len == 0 && fin_)
                return message_done() ? std::optional<std::size_t>(hdr) : std::nullopt;
            if (len == 0)
                return hdr;
            // a non-empty data frame: its payload follows
            frame_left_ = len;
            return hdr;
        }
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(frame_left_, d.size()));
        if (got_ + n > payload_.size() || std::memcmp(payload_.data() + got_, d.data(), n) != 0)
            return bad("the echo differs from the message sent at byte " + std::to_string(got_));
        got_ += n;
        frame_left_ -= n;
        if (frame_left_ == 0 && fin_ && !message_done())
            return std::nullopt;
        return n;
    }

    bool message_done() {
        if (got_ != payload_.size()) {
            bad("echoed " + std::to_string(got_) + " of " + std::to_string(payload_.size()) +
                " bytes");
            return false;
        }
        r_.record(sent_at_);
        got_ = 0;
        in_message_ = false;
        send();
        return true;
    }
    std::optional<std::size_t> bad(const std::string& what) {
        fail(what);
        return std::nullopt;
    }

    const std::string& frame_;
    const std::string& payload_;
    clk::time_point sent_at_;
    std::uint64_t frame_left_ = 0, got_ = 0;
    bool in_message_ = false, fin_ = false;
};

// ---- Topic fan-out -------------------------------------------------------------------------

// What the subscribers and the publisher share: how many subscribers have each message.
struct fanout_state {
    static constexpr std::size_t ring = 4096; // > the largest --window
    std::array<std::uint32_t, ring> have{};
    std::uint64_t completed = 0; // every message up to this one reached every subscriber
    unsigned subscribers = 0;    // still subscribed
    std::function<void()> on_complete;
    clk::time_point epoch = clk::now();

    void delivered(std::uint64_t seq) {
        if (++have[seq % ring] < subscribers)
            return;
        have[seq % ring] = 0;
        // Each subscriber gets the messages in order, so they complete in order.
        completed = seq;
        on_complete();
    }
};

// An SSE subscriber: reads the chunked (or close-delimited) stream, splits lines, and checks
// that each "data: m SEQ NS ..." is the next message.
class subscriber final : public conn_base {
public:
    subscriber(run_state& r, fanout_state& f) : conn_base(r), f_(f) {}

    void begin() {
        start("GET " + r_.target + " HTTP/1.1\r\nHost: " + r_.host +
              "\r\nAccept: text/event-stream\r\n\r\n");
    }

private:
    bool on_head(std::string_view head) override {
        if (status_of(head) != 200 || !has_field(head, "content-type", "text/event-stream")) {
            fail("the subscription was answered " + std::string(head.substr(0, head.find('\r'))));
            return false;
        }
        chunked_ = has_field(head, "transfer-encoding", "chunked");
        r_.is_ready();
        return true;
    }

    std::optional<std::size_t> on_bytes(std::string_view d) override {
        if (!chunked_)
            return body(d);
        if (chunk_left_ == 0) { // a chunk-size line, or the CRLF that ends a chunk
            const auto eol = d.find("\r\n");
            if (eol == std::string_view::npos)
                return 0;
            if (eol == 0)
                return 2;
            std::uint64_t size = 0;
            const auto [p, ec] = std::from_chars(d.data(), d.data() + eol, size, 16);
            if (ec != std::errc{})
                return bad("bad chunk size line");
            if (size == 0)
                return bad("the server ended the stream");
            chunk_left_ = size;
            return eol + 2;
        }
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_left_, d.size()));
        chunk_left_ -= n;
        if (!body(d.substr(0, n)))
            return std::nullopt;
        return n;
    }

    // SSE body bytes: complete lines are handled, a partial one kept.
    std::optional<std::size_t> body(std::string_view d) {
        std::size_t used = 0;
        while (used < d.size()) {
            const auto eol = d.find('\n', used);
            if (eol == std::string_view::npos) {
                line_.append(d.substr(used));
                break;
            }
            std::string_view line = d.substr(used, eol - used);
            if (!line_.empty()) {
                line_.append(line);
                line = line_;
            }
            if (!handle(line))
                return std::nullopt;
            line_.clear();
            used = eol + 1;
        }
        return d.size();
    }

    bool handle(std::string_view line) {
        if (line.starts_with("event:")) {
            bad("an event of type" + std::string(line.substr(6)) + " (the server cut or ended it)");
            return false;
        }
        if (!line.starts_with("data: m "))
            return true; // id:, comments (heartbeats) and blank lines
        line.remove_prefix(8);
        std::uint64_t seq = 0, ns = 0;
        auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), seq);
        if (ec == std::errc{} && p < line.data() + line.size())
            ec = std::from_chars(p + 1, line.data() + line.size(), ns).ec;
        if (ec != std::errc{}) {
            bad("a data line that is not the publisher's");
            return false;
        }
        if (seq != next_) {
            bad("expected message " + std::to_string(next_) + ", got " + std::to_string(seq));
            return false;
        }
        ++next_;
        r_.record(f_.epoch + std::chrono::nanoseconds(ns));
        f_.delivered(seq);
        return true;
    }

    std::optional<std::size_t> bad(const std::string& what) {
        fail(what);
        if (f_.subscribers > 0)
            --f_.subscribers;
        return std::nullopt;
    }

    fanout_state& f_;
    bool chunked_ = false;
    std::uint64_t chunk_left_ = 0;
    std::uint64_t next_ = 1;
    std::string line_;
};

// The publisher: one POST at a time, while fewer than --window messages are incomplete.
class publisher final : public conn_base {
public:
    publisher(run_state& r, fanout_state& f) : conn_base(r), f_(f) {}

    void begin() { start({}, false); }
    // Every subscriber is subscribed: the load begins (once connected).
    void go() {
        go_ = true;
        publish();
    }

    void publish() {
        if (r_.stopping || in_flight_ || seq_ - f_.completed >= r_.opt.window || !connected_ ||
            !go_)
            return;
        in_flight_ = true;
        ++seq_;
        if (r_.measuring)
            ++r_.published;
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(clk::now() - f_.epoch);
        std::string body = "m " + std::to_string(seq_) + " " + std::to_string(ns.count()) + " ";
        body.resize(std::max(body.size(), r_.opt.size), 'x');
        request_ =
            "POST " + r_.target + " HTTP/1.1\r\nHost: " + r_.host +
            "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\n\r\n" + body;
        asio::async_write(socket_, asio::buffer(request_),
                          [this](const error_code& ec, std::size_t) {
                              if (ec)
                                  fail("publish: " + ec.message());
                          });
    }

private:
    void on_connected() override {
        connected_ = true;
        publish();
    }

    // The publisher's connection reads answers only: each is a head and a Content-Length body.
    bool on_head(std::string_view) override { return true; }
    std::optional<std::size_t> on_bytes(std::string_view d) override {
        if (chunked_) { // a small answer: it ends at its last chunk
            const auto end = d.find("0\r\n\r\n");
            if (end == std::string_view::npos)
                return 0;
            chunked_ = false;
            answered();
            return end + 5;
        }
        if (body_left_ > 0) {
            const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(body_left_, d.size()));
            body_left_ -= n;
            if (body_left_ == 0)
                answered();
            return n;
        }
        const auto end = d.find("\r\n\r\n");
        if (end == std::string_view::npos)
            return 0;
        const auto head = d.substr(0, end + 2);
        if (status_of(head) / 100 != 2) {
            fail("a publish was answered " + std::string(head.substr(0, head.find('\r'))));
            return std::nullopt;
        }
        chunked_ = has_field(head, "transfer-encoding", "chunked");
        const auto length = field_value(head, "content-length");
        body_left_ = length ? std::strtoull(length->c_str(), nullptr, 10) : 0;
        if (body_left_ == 0 && !chunked_)
            answered();
        return end + 4;
    }
    void answered() {
        in_flight_ = false;
        publish();
    }

    fanout_state& f_;
    std::string request_;
    std::uint64_t seq_ = 0, body_left_ = 0;
    bool in_flight_ = false, connected_ = false, go_ = false, chunked_ = false;
};

options parse_args(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        std::optional<std::string_view> attached;
        if (arg.starts_with("--") && arg.find('=') != std::string_view::npos) {
            attached = arg.substr(arg.find('=') + 1);
            arg = arg.substr(0, arg.find('='));
        } else if (arg.size() > 2 && arg[0] == '-' && arg[1] != '-') {
            attached = arg.substr(2);
            arg = arg.substr(0, 2);
        }
        const auto next = [&]() -> std::string_view {
            if (attached)
                return *attached;
            if (i + 1 >= argc) {
                std::cerr << tool << ": " << arg << " needs a value (see --help)\n";
                std::exit(2);
            }
            return argv[++i];
        };
        if (arg == "-h" || arg == "--help") {
            print_help();
            std::exit(0);
        } else if (arg == "-V" || arg == "--version") {
            std::cout << tool << " " << UDSHTTP_VERSION_STRING << "\n";
            std::exit(0);
        } else if (arg == "-c" || arg == "--connections") {
            o.connections = parse_count_or_exit(arg, next(), 100'000);
        } else if (arg == "-b" || arg == "--size") {
            auto s = udshttp::proto::parse_size(next());
            if (!s || *s == 0 || *s > 64 * 1024 * 1024) {
                std::cerr << tool << ": --size: from 1 byte to 64 MiB\n";
                std::exit(2);
            }
            o.size = *s;
        } else if (arg == "--window") {
            o.window = parse_count_or_exit(arg, next(), fanout_state::ring / 2);
        } else if (arg == "-d" || arg == "--duration") {
            o.duration = parse_duration_or_exit(arg, next());
        } else if (arg == "-w" || arg == "--warmup") {
            o.warmup = parse_duration_or_exit(arg, next());
        } else if (arg == "--json") {
            o.json = true;
        } else if (arg.starts_with("-") && arg.size() > 1) {
            std::cerr << tool << ": unknown option " << arg << " (see --help)\n";
            std::exit(2);
        } else if (o.mode.empty()) {
            o.mode = arg;
        } else if (o.url.empty()) {
            o.url = arg;
        } else {
            std::cerr << tool << ": more than one URL: " << o.url << " and " << arg << "\n";
            std::exit(2);
        }
    }
    if (o.mode != "ws" && o.mode != "fanout") {
        std::cerr << tool << ": the first argument is ws or fanout (see --help)\n";
        std::exit(2);
    }
    if (o.url.empty()) {
        std::cerr << tool << ": no URL given (see --help)\n";
        std::exit(2);
    }
    return o;
}

} // namespace

int main(int argc, char** argv) try {
    tool = "udshttp-stream-bench";
    const auto opt = parse_args(argc, argv);
    auto url = udshttp::proto::url::parse(opt.url);
    if (!url) {
        std::cerr << tool << ": " << url.error().message << "\n";
        return 2;
    }
    run_state r(opt);
    r.peer = resolve(url->where);
    r.host = url->host;
    r.target = url->target;

    // The phases: connect everything (at most 30 s), warm up, measure, stop.
    asio::steady_timer phase(r.ctx);
    const auto stop_all = [&] {
        r.stopping = true;
        for (auto& close : r.closers)
            close();
        r.ctx.stop();
    };
    const auto begin_measuring = [&] {
        phase.expires_after(opt.warmup);
        phase.async_wait([&](const error_code&) {
            r.measuring = true;
            r.measure_start = clk::now();
            phase.expires_after(opt.duration);
            phase.async_wait([&](const error_code&) {
                r.measuring = false;
                r.measure_end = clk::now();
                stop_all();
            });
        });
    };
    phase.expires_after(std::chrono::seconds(30));
    phase.async_wait([&](const error_code& ec) {
        if (ec)
            return; // the load began
        r.error("only " + std::to_string(r.ready) + " of " + std::to_string(opt.connections) +
                " connections were ready after 30 s");
        stop_all();
    });

    std::vector<std::unique_ptr<ws_conn>> ws;
    std::vector<std::unique_ptr<subscriber>> subs;
    std::unique_ptr<publisher> pub;
    fanout_state fan;
    const auto payload = make_body(opt.size);
    const auto frame = masked_frame(payload);
    // Connections start a few hundred at a time, each further one as an earlier one is
    // ready, so that 10,000 do not overflow a listen backlog.
    std::size_t started = 0;
    std::function<void()> start_next, all_ready;
    if (opt.mode == "ws") {
        for (unsigned i = 0; i < opt.connections; ++i)
            ws.push_back(std::make_unique<ws_conn>(r, frame, payload));
        start_next = [&] {
            if (started < ws.size())
                ws[started++]->begin();
        };
        all_ready = [&] {
            for (auto& c : ws)
                c->send();
        };
    } else {
        for (unsigned i = 0; i < opt.connections; ++i)
            subs.push_back(std::make_unique<subscriber>(r, fan));
        fan.subscribers = opt.connections;
        pub = std::make_unique<publisher>(r, fan);
        fan.on_complete = [&] { pub->publish(); };
        start_next = [&] {
            if (started < subs.size())
                subs[started++]->begin();
        };
        all_ready = [&] { pub->go(); };
        pub->begin();
    }
    // Keeps 256 connections being set up at a time; once all are ready, the load begins.
    asio::steady_timer feeder(r.ctx);
    std::function<void()> feed = [&] {
        const auto target = std::min<std::size_t>(r.ready + 256, opt.connections);
        while (started < target)
            start_next();
        if (r.ready == opt.connections) {
            phase.cancel();
            all_ready();
            begin_measuring();
            return;
        }
        if (r.stopping)
            return;
        if (r.errors > 0) // a connection was refused or answered wrongly: no run
            return stop_all();
        feeder.expires_after(std::chrono::milliseconds(1));
        feeder.async_wait([&](const error_code& ec) {
            if (!ec)
                feed();
        });
    };
    feed();
    r.ctx.run();

    const double secs = std::chrono::duration<double>(r.measure_end - r.measure_start).count();
    const double rate = secs > 0 ? double(r.messages) / secs : 0;
    const double pub_rate = secs > 0 ? double(r.published) / secs : 0;
    const auto us = [&](double q) { return double(r.latency.quantile(q)) / 1000.0; };
    if (opt.json) {
        std::printf("{\"mode\":\"%s\",\"url\":\"%s\",\"connections\":%u,\"message_bytes\":%zu,"
                    "\"window\":%u,\"seconds\":%.3f,\"messages\":%llu,\"messages_per_s\":%.1f,"
                    "\"published_per_s\":%.1f,\"mb_per_s\":%.2f,\"latency_us\":{\"p50\":%.2f,"
                    "\"p90\":%.2f,\"p99\":%.2f,\"p999\":%.2f,\"max\":%.2f},\"errors\":%llu,"
                    "\"first_error\":\"%s\"}\n",
                    opt.mode.c_str(), json_escape(opt.url).c_str(), opt.connections, opt.size,
                    opt.window, secs, static_cast<unsigned long long>(r.messages), rate, pub_rate,
                    rate * double(opt.size) / 1e6, us(0.5), us(0.9), us(0.99), us(0.999), us(1.0),
                    static_cast<unsigned long long>(r.errors), json_escape(r.first_error).c_str());
    } else {
        std::printf("%s %s, %u connection(s), %zu-byte messages\n", opt.mode.c_str(),
                    opt.url.c_str(), opt.connections, opt.size);
        if (opt.mode == "fanout")
            std::printf("  %.0f published/s, window %u\n", pub_rate, opt.window);
        std::printf("  %llu messages in %.2f s: %.0f messages/s\n",
                    static_cast<unsigned long long>(r.messages), secs, rate);
        std::printf("  latency us: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n", us(0.5),
                    us(0.9), us(0.99), us(0.999), us(1.0));
        std::printf("  errors: %llu%s%s\n", static_cast<unsigned long long>(r.errors),
                    r.first_error.empty() ? "" : "; first: ", r.first_error.c_str());
    }
    return r.errors == 0 && r.messages > 0 ? 0 : 1;
} catch (const std::exception& e) {
    std::cerr << tool << ": " << e.what() << "\n";
    return 1;
}
