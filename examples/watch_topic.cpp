// Follow a udshttpd topic from C++: each event as it arrives, resuming after a break.
//
//   udshttpd --listen ./d.sock &
//   watch_topic 'http+unix://.%2Fd.sock/topics/jobs' 3     # prints 3 events, then exits
//   curl --unix-socket ./d.sock -d 'job 1 done' http://localhost/topics/jobs

#include <udshttp/client/stream.hpp>

#include <iostream>
#include <string>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: watch_topic URL [COUNT]\n";
        return 2;
    }
    const long want = argc > 2 ? std::stol(argv[2]) : -1; // -1: until the stream ends
    long seen = 0;
    udshttp::client::client client;
    auto r = udshttp::client::read_events(
        client, argv[1],
        [&](const udshttp::client::sse_event& e) {
            std::cout << e.id << ' ' << e.data << std::endl;
            return ++seen != want;
        },
        {.reconnect = true}); // a restarted server is picked up where it left off
    if (!r) {
        std::cerr << "watch_topic: " << r.error().message << '\n';
        return 1;
    }
    return 0;
}
