// The examples do what their comments say.

#include "support/support.hpp"

#include <udshttp/client/client.hpp>
#include <udshttp/proto/url.hpp>

#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <filesystem>

using namespace udshttp;
using namespace udshttp::test;

#ifdef UDSHTTP_TEST_EXAMPLES

TEST_SUITE("e2e") {

    TEST_CASE("example embed_server: its own routes beside the built-in ones") {
        temp_dir dir;
        const auto sock = dir.file("app.sock");
        child app({std::string(UDSHTTP_TEST_EXAMPLES) + "/embed_server", sock}, dir);
        REQUIRE_MESSAGE(app.wait_for_output("listening on"), app.err());
        client::client c;
        const auto url = [&](const std::string& t) {
            return proto::make_url(proto::endpoint::unix_path(sock), t);
        };
        CHECK(c.get(url("/greet/Ada"))->body == "Greetings, Ada!\n");
        CHECK((*c.post_json(url("/counter"), nullptr))["counter"] == 1);
        CHECK((*c.post_json(url("/counter"), nullptr))["counter"] == 2);
        CHECK((*c.get_json(url("/whoami")))["pid"] == ::getpid());
        CHECK(c.get(url("/hello"))->body == "Hello Anonymous");
        app.signal(SIGTERM);
        CHECK(app.wait(10s) == 0);
        CHECK_FALSE(std::filesystem::exists(sock));
    }

    TEST_CASE("example call_service and curl_calls.sh against udshttpd") {
        temp_dir dir;
        const auto sock = dir.file("d.sock");
        child d({udshttpd_path(), "--listen", sock}, dir);
        REQUIRE_MESSAGE(d.wait_for_output("listening on"), d.err());

        auto base = proto::make_url(proto::endpoint::unix_path(sock), "");
        base.pop_back(); // the example appends "/hello/Ada" and so on
        auto call = run({std::string(UDSHTTP_TEST_EXAMPLES) + "/call_service", base}, dir);
        CHECK(call.code == 0);
        CHECK(call.out.find("200 Hello Ada\nstatus: ok\necho: ping\n") == 0);
        CHECK(call.out.find("expected error: GET ") != std::string::npos);
        CHECK(call.out.find("404 Not Found") != std::string::npos);
        CHECK(call.out.find("connections opened: 1") != std::string::npos);

        if (!have_program("curl")) {
            MESSAGE("skipped curl_calls.sh: curl not found (apt-get install curl)");
            return;
        }
        auto script =
            run({"bash", std::string(UDSHTTP_TEST_EXAMPLES_SRC) + "/curl_calls.sh", sock}, dir);
        INFO(script.err);
        CHECK(script.code == 0);
        CHECK(script.out.find("Hello Ada\n") != std::string::npos);
        CHECK(script.out.find(R"({"message":"Hello Ada","name":"Ada"})") != std::string::npos);
        CHECK(script.out.find("udshttp_requests_total") != std::string::npos);
    }

} // TEST_SUITE

#endif
