// LD_PRELOAD shim for one attack, made deterministic: right after udshttpd's bind() of a Unix
// socket file, rename the symlink SWAP_AFTER_BIND_LINK over the path just bound, as a local user
// who can write in the socket's directory would. A server that then sets the mode by path
// (chmod) changes the symlink's target instead of its socket.

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

extern "C" int bind(int fd, const sockaddr* addr, socklen_t len) {
    using bind_fn = int (*)(int, const sockaddr*, socklen_t);
    static const auto real = reinterpret_cast<bind_fn>(dlsym(RTLD_NEXT, "bind"));
    const int rc = real(fd, addr, len);
    const char* link = getenv("SWAP_AFTER_BIND_LINK");
    if (rc == 0 && link && addr->sa_family == AF_UNIX) {
        const auto* un = reinterpret_cast<const sockaddr_un*>(addr);
        if (un->sun_path[0] != '\0')
            rename(link, un->sun_path);
    }
    return rc;
}
