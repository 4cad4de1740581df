#include "peer.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>

namespace udshttp::service::detail {

proto::peer_info read_peer(int fd, bool is_unix) {
    proto::peer_info peer;
    if (is_unix) {
        peer.transport = "unix";
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
            peer.pid = cred.pid;
            peer.uid = cred.uid;
            peer.gid = cred.gid;
        }
        return peer;
    }
    peer.transport = "tcp";
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
        return peer;
    if (const auto ep = proto::endpoint::from_sockaddr(&ss, len)) {
        peer.address = ep->address;
        peer.port = ep->port;
    }
    return peer;
}

std::optional<std::string> why_refused(const server_options& o, const proto::peer_info& peer,
                                       int fd) {
    if (o.allow_uids.empty() && o.allow_gids.empty())
        return std::nullopt;
    if (peer.transport != "unix")
        return "TCP peers have no credentials to check against --allow-uid/--allow-gid";
    if (!peer.uid || !peer.gid)
        return "the peer's credentials are unavailable (SO_PEERCRED failed)";
    const auto has = [](const auto& list, std::int64_t id) {
        return std::find(list.begin(), list.end(), id) != list.end();
    };
    if (has(o.allow_uids, *peer.uid) || has(o.allow_gids, *peer.gid))
        return std::nullopt;
    if (!o.allow_gids.empty()) {
        std::array<gid_t, 256> groups{};
        socklen_t len = sizeof groups;
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0)
            for (std::size_t i = 0; i < len / sizeof(gid_t); ++i)
                if (has(o.allow_gids, groups[i]))
                    return std::nullopt;
    }
    return "uid " + std::to_string(*peer.uid) + " (gid " + std::to_string(*peer.gid) +
           ") is not in --allow-uid/--allow-gid";
}

} // namespace udshttp::service::detail
