#pragma once

// Who is calling: the peer's credentials (SO_PEERCRED on Unix sockets, the address on TCP),
// and whether --allow-uid/--allow-gid lets it call. Decided once, at accept time, before any
// byte is read: a refused peer never reaches the request parser.

#include <udshttp/proto/api.hpp>
#include <udshttp/service/server.hpp>

#include <optional>
#include <string>

namespace udshttp::service::detail {

// The identity of the peer on connected socket `fd`.
proto::peer_info read_peer(int fd, bool is_unix);

// Why the peer may not call, or nullopt if it may. Unix peers are checked by uid, then by
// primary gid, then by supplementary groups (SO_PEERGROUPS, Linux 4.13+).
std::optional<std::string> why_refused(const server_options& o, const proto::peer_info& peer,
                                       int fd);

} // namespace udshttp::service::detail
