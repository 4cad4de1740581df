#pragma once

/// @file
/// A blocking WebSocket client (RFC 6455, Beast underneath) over the same addressing as the
/// HTTP client: ws+unix://%2Frun%2Fapp.sock/path, ws+unix://%40name/path, ws://host:port/path
/// (http+unix:// and http:// URLs work too).
///
///     auto ws = udshttp::client::websocket::connect("ws+unix://%2Frun%2Fapp.sock/ws/echo");
///     if (!ws) { std::cerr << ws.error().message << '\n'; return; }
///     ws->send("hello");
///     auto m = ws->receive();          // result<optional<message>>: nullopt once closed
///     ws->close();

#include <udshttp/proto/error.hpp>

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace udshttp::client {

struct websocket_options {
    std::chrono::milliseconds connect_timeout{5'000}; ///< connecting; 0 means no limit
    std::uint64_t max_message_bytes = 16u << 20;      ///< a larger message fails receive()
    std::string user_agent = "udshttp";
};

/// One WebSocket connection. Not thread-safe: one thread at a time.
class websocket {
public:
    struct message {
        std::string data{};
        bool binary = false;
    };

    /// Connects and performs the opening handshake. An answer other than 101 is an error
    /// carrying its status (and the server's JSON error message, if it sent one).
    static result<websocket> connect(std::string_view url, const websocket_options& options = {});

    websocket(websocket&&) noexcept;
    websocket& operator=(websocket&&) noexcept;
    ~websocket();

    /// Sends one message (text unless `binary`).
    result<void> send(std::string_view data, bool binary = false);
    /// Waits for the next message; nullopt once the server has closed (close_code() says how).
    result<std::optional<message>> receive();
    /// The closing handshake with `code`.
    result<void> close(std::uint16_t code = 1000, std::string_view reason = {});
    /// Relays lines and messages, as `udshttp ws` does: each line read from file descriptor
    /// `in` (without its newline) goes out as a message (binary if `binary`), and each
    /// message received is written to `out` with a newline, as it arrives. Once `in` ends,
    /// the answers still coming are printed until the server has been quiet for `linger`;
    /// then the closing handshake. Returns when the connection is closed, by either side.
    result<void> relay(int in, std::ostream& out, bool binary = false,
                       std::chrono::milliseconds linger = std::chrono::seconds(1));
    /// The server's close code, once receive() returned nullopt.
    std::optional<std::uint16_t> close_code() const noexcept;

private:
    struct impl;
    explicit websocket(std::unique_ptr<impl> p) noexcept;
    std::unique_ptr<impl> impl_;
};

} // namespace udshttp::client
