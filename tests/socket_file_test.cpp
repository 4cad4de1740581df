// The socket file's life in the user's filesystem, and inherited listening sockets.

#include "support/support.hpp"

#include <udshttp/client/client.hpp>
#include <udshttp/proto/url.hpp>

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <thread>

using namespace udshttp;
using namespace udshttp::test;

namespace {

service::server_options on(const std::string& path) {
    return {.listen = {proto::endpoint::unix_path(path)}, .builtin_routes = true};
}

std::string start_error(service::server_options options) {
    service::server srv(std::move(options));
    try {
        srv.start();
    } catch (const service::startup_error& e) {
        return e.what();
    }
    return {};
}

// A socket file with nobody listening, as a crashed server leaves behind.
void make_stale_socket(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    ::close(fd);
}

mode_t mode_of(const std::string& path) {
    struct stat st {};
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

} // namespace

TEST_SUITE("service") {

    TEST_CASE("socket file: a path that is not a socket is refused and left untouched") {
        temp_dir dir;
        const auto path = dir.file("data.txt");
        write_file(path, "precious");
        const auto msg = start_error(on(path));
        CHECK(msg.find("refusing to listen on " + path) != std::string::npos);
        CHECK(msg.find("a regular file") != std::string::npos);
        CHECK(read_file(path) == "precious");

        std::filesystem::create_directory(dir.file("d"));
        CHECK(start_error(on(dir.file("d"))).find("a directory") != std::string::npos);
        CHECK(std::filesystem::is_directory(dir.file("d")));
    }

    TEST_CASE("socket file: a live server's socket is refused with 'already serving'") {
        temp_dir dir;
        const auto path = dir.file("s.sock");
        service::server first(on(path));
        first.start();
        const auto msg = start_error(on(path));
        CHECK(msg.find("already serving on " + path) != std::string::npos);
        client::client c;
        CHECK(response_of(c.get(proto::make_url(proto::endpoint::unix_path(path), "/hello")))
                  .status == 200);
    }

    TEST_CASE("socket file: a stale socket is replaced") {
        temp_dir dir;
        const auto path = dir.file("s.sock");
        make_stale_socket(path);
        service::server srv(on(path));
        srv.start();
        client::client c;
        CHECK(response_of(c.get(proto::make_url(proto::endpoint::unix_path(path), "/hello")))
                  .status == 200);
    }

    TEST_CASE("socket file: mode defaults to 0660 and is configurable") {
        temp_dir dir;
        {
            service::server srv(on(dir.file("a.sock")));
            srv.start();
            CHECK(mode_of(dir.file("a.sock")) == 0660);
        }
        auto o = on(dir.file("b.sock"));
        o.socket_mode = 0600;
        service::server srv(std::move(o));
        srv.start();
        CHECK(mode_of(dir.file("b.sock")) == 0600);
    }

    TEST_CASE("socket file: removed on stop - with its lock - only while it is still ours") {
        temp_dir dir;
        const auto path = dir.file("s.sock");
        {
            service::server srv(on(path));
            srv.start();
            CHECK(std::filesystem::exists(path));
            CHECK(std::filesystem::exists(path + ".lock"));
            srv.stop();
            CHECK_FALSE(std::filesystem::exists(path));
            CHECK_FALSE(std::filesystem::exists(path + ".lock"));
        }
        {
            service::server srv(on(path));
            srv.start();
            // Someone replaces the socket file while we run: on exit we must not remove theirs.
            std::filesystem::remove(path);
            make_stale_socket(path);
            srv.stop();
            CHECK(std::filesystem::exists(path));
        }
    }

    TEST_CASE("socket file: two servers starting on one path - exactly one wins") {
        temp_dir dir;
        const auto path = dir.file("s.sock");
        for (int round = 0; round < 20; ++round) {
            std::atomic<int> won{0};
            std::atomic<int> refused{0};
            std::vector<std::unique_ptr<service::server>> servers;
            for (int i = 0; i < 2; ++i)
                servers.push_back(std::make_unique<service::server>(on(path)));
            std::vector<std::thread> starters;
            for (auto& s : servers)
                starters.emplace_back([&, srv = s.get()] {
                    try {
                        srv->start();
                        ++won;
                    } catch (const service::startup_error& e) {
                        if (std::string(e.what()).find("already serving") != std::string::npos)
                            ++refused;
                    }
                });
            for (auto& t : starters)
                t.join();
            CHECK(won == 1);
            CHECK(refused == 1);
            servers.clear();
            CHECK_FALSE(std::filesystem::exists(path));
        }
    }

    TEST_CASE("socket file: a missing directory is named before any bind") {
        temp_dir dir;
        const auto msg = start_error(on(dir.file("no/such/dir/s.sock")));
        CHECK(msg.find("directory '" + dir.file("no/such/dir") + "' does not exist") !=
              std::string::npos);
    }

    TEST_CASE("abstract sockets leave nothing in the filesystem") {
        const auto name = "udshttp-abs-" + std::to_string(::getpid());
        service::server srv({.listen = {proto::endpoint::abstract(name)}, .builtin_routes = true});
        srv.start();
        client::client c;
        auto r = c.get("http+unix://%40" + name + "/hello/abstract");
        REQUIRE(r);
        CHECK(r->body == "Hello abstract");
        CHECK(srv.endpoints().at(0).to_string() == "unix:@" + name);
    }

    TEST_CASE("inherited listening sockets (fd:N) are served and never unlinked") {
        temp_dir dir;
        const auto path = dir.file("inh.sock");
        const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, path.data(), path.size());
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(fd, 16) == 0);
        {
            service::server srv({.listen = {"fd:" + std::to_string(fd)}, .builtin_routes = true});
            srv.start();
            client::client c;
            CHECK(response_of(c.get(proto::make_url(proto::endpoint::unix_path(path), "/hello")))
                      .status == 200);
            auto info = c.get_json(proto::make_url(proto::endpoint::unix_path(path), "/echo"));
            REQUIRE(info);
            CHECK((*info)["peer"]["transport"] == "unix");
        }
        CHECK(std::filesystem::exists(path)); // the owner of the fd owns the file

        const int not_listening = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const auto msg = start_error(
            {.listen = {*proto::endpoint::parse("fd:" + std::to_string(not_listening))}});
        CHECK(msg.find("not a listening stream socket") != std::string::npos);
        ::close(not_listening);
        CHECK(start_error({.listen = {*proto::endpoint::parse("fd:987")}})
                  .find("not an open socket descriptor") != std::string::npos);
    }

    TEST_CASE("TCP bind failures name the endpoint") {
        service::server first({.listen = {proto::endpoint::tcp("127.0.0.1", 0)}});
        first.start();
        const auto taken = first.endpoints().at(0);
        const auto msg = start_error({.listen = {taken}});
        CHECK(msg.find("cannot listen on " + taken.to_string()) != std::string::npos);
        CHECK(msg.find("in use") != std::string::npos);
    }

} // TEST_SUITE
