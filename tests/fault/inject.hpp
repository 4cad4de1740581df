#pragma once

// Fault injection on real sockets (see inject.cpp): arm it for one socket path and one side,
// and the Nth socket call Asio makes there fails (or transfers a single byte).

#include <string>

namespace udshttp::test::fault {

enum class side { server, client };
enum class mode {
    error,          // recv/send fail with ECONNRESET, accept with EMFILE, connect ECONNREFUSED
    short_transfer, // recv/send move one byte (legal, and must not change any result)
};

void arm(const std::string& socket_path, side s, mode m, long nth);
void disarm();
bool fired();      // the armed call was reached
long operations(); // calls counted since arm()

} // namespace udshttp::test::fault
