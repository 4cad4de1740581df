#include "inherited_sockets.hpp"

#include <udshttp/service/server.hpp>

#include <boost/asio/error.hpp>

#include <unistd.h>

#include <cstdlib>
#include <sstream>

namespace udshttp::service::detail {

std::vector<proto::endpoint> expand_inherited(const proto::endpoint& where) {
    if (where.kind != proto::transport::systemd)
        return {where};
    auto env_error = [&](const std::string& why) {
        return startup_error(boost::asio::error::invalid_argument,
                             "cannot listen on " + where.to_string() + ": " + why);
    };
    const char* pid = std::getenv("LISTEN_PID");
    const char* fds = std::getenv("LISTEN_FDS");
    if (!pid || !fds)
        throw env_error("no sockets were passed (LISTEN_PID/LISTEN_FDS are not set; start it "
                        "from a systemd .socket unit)");
    if (std::to_string(::getpid()) != pid)
        throw env_error(std::string("LISTEN_PID is ") + pid + ", not this process (" +
                        std::to_string(::getpid()) + ")");
    const int count = std::atoi(fds);
    if (count <= 0)
        throw env_error(std::string("LISTEN_FDS is '") + fds + "'");
    std::vector<std::string> names;
    if (const char* n = std::getenv("LISTEN_FDNAMES")) {
        std::stringstream ss(n);
        for (std::string item; std::getline(ss, item, ':');)
            names.push_back(item);
    }
    std::vector<proto::endpoint> out;
    constexpr int first_fd = 3; // SD_LISTEN_FDS_START
    for (int i = 0; i < count; ++i) {
        const std::string name =
            i < static_cast<int>(names.size()) ? names[static_cast<std::size_t>(i)] : "";
        if (where.address.empty() || where.address == name)
            out.push_back(proto::endpoint{.kind = proto::transport::inherited_fd,
                                          .address = name,
                                          .port = 0,
                                          .fd = first_fd + i});
    }
    if (out.empty())
        throw env_error("no passed socket is named '" + where.address + "' (LISTEN_FDNAMES=" +
                        (std::getenv("LISTEN_FDNAMES") ? std::getenv("LISTEN_FDNAMES") : "") + ")");
    return out;
}

} // namespace udshttp::service::detail
