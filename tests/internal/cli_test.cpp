// The udshttp CLI's flag rules, without a process: parse_cli() and load_data().

#include "cli.hpp"
#include "form_body.hpp"
#include "inflate.hpp"
#include "support/support.hpp"

#include <doctest/doctest.h>

#include <fstream>

using namespace udshttp::cli;
using namespace std::chrono_literals;
using client_fields = udshttp::client::fields;

namespace {

command parse(std::vector<std::string> args) {
    auto r = parse_cli(args);
    REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message));
    return *r;
}

std::string error_of(std::vector<std::string> args) {
    auto r = parse_cli(args);
    REQUIRE_FALSE(r.has_value());
    return r.error().message;
}

} // namespace

TEST_SUITE("internal") {

    TEST_CASE("cli: bundled short flags and attached values") {
        const auto c = parse({"-sSfiv", "-XPUT", "-o/tmp/x", "http://h/"}).options;
        CHECK(c.silent);
        CHECK(c.show_error);
        CHECK(c.fail);
        CHECK(c.include);
        CHECK(c.verbose);
        CHECK(c.method == "PUT");
        CHECK(c.output == "/tmp/x");
        CHECK(c.url == "http://h/");
        // A value-taking flag ends the bundle: the rest is its value.
        const auto w = parse({"-sw%{http_code}", "u"}).options;
        CHECK(w.silent);
        CHECK(w.write_out == "%{http_code}");
        CHECK(parse({"-m5", "u"}).options.options.timeout == 5s);
        // As curl: no deadline unless -m, and -m 0 means none.
        CHECK(parse({"u"}).options.options.timeout == 0ms);
        CHECK(parse({"-m", "0", "u"}).options.options.timeout == 0ms);
        CHECK(parse({"--max-time=250ms", "u"}).options.options.timeout == 250ms);
    }

    TEST_CASE("cli: -d joins with & - @FILE and --json keep their shape") {
        auto c = parse({"-d", "a=1", "-db=2", "--data-raw", "@c", "u"}).options;
        CHECK(c.form_data);
        CHECK(c.effective_method() == "POST");
        REQUIRE(c.data.size() == 3);
        CHECK(c.data[1] == data_part{"b=2", false, false, true});
        CHECK(c.data[2] == data_part{"@c", false, false, true}); // --data-raw: no @FILE
        CHECK(parse({"-d", "@f.txt", "u"}).options.data[0] == data_part{"f.txt", true, true, true});
        auto j = parse({"--json", "{\"a\":1}", "u"}).options;
        CHECK(j.json);
        CHECK_FALSE(j.data[0].ampersand);
    }

    TEST_CASE("cli: a lone --data-binary @FILE streams - more data joins it in memory") {
        auto lone = parse({"--data-binary", "@big.iso", "u"}).options;
        CHECK(lone.upload_file == "big.iso");
        CHECK(lone.data.empty());
        CHECK(lone.effective_method() == "POST");
        auto joined = parse({"--data-binary", "@a.bin", "-d", "x", "u"}).options;
        CHECK(joined.upload_file.empty());
        REQUIRE(joined.data.size() == 2);
        CHECK(joined.data[0] == data_part{"a.bin", true, false, true});
        CHECK(parse({"-d", "x", "--data-binary", "@a.bin", "u"}).options.upload_file.empty());
        auto t = parse({"-T", "f", "u"}).options;
        CHECK(t.upload_file == "f");
        CHECK(t.effective_method() == "PUT");
        CHECK(error_of({"-d", "x", "-T", "f", "u"}).starts_with("-T cannot be combined"));
    }

    TEST_CASE("cli: methods implied by -I and by data") {
        CHECK(parse({"u"}).options.effective_method() == "GET");
        CHECK(parse({"-I", "u"}).options.effective_method() == "HEAD");
        CHECK(parse({"-X", "DELETE", "-d", "x", "u"}).options.effective_method() == "DELETE");
    }

    TEST_CASE("cli: --retry and its companions - -D - --fail-with-body") {
        const auto c = parse({"--retry", "4", "--retry-connrefused", "--retry-delay", "250ms",
                              "--retry-max-time=10s", "-D", "-", "--fail-with-body", "http://h/"})
                           .options;
        CHECK(c.retries == 4);
        CHECK(c.retry_connrefused);
        CHECK(c.retry_delay == 250ms);
        CHECK(c.retry_max_time == 10s);
        CHECK(c.dump_header == "-");
        CHECK(c.fail_with_body);
        CHECK_FALSE(parse({"http://h/"}).options.retry_delay.has_value()); // 1 s, doubling
        CHECK(error_of({"--retry", "many", "http://h/"}) ==
              "--retry: 'many' is not a number from 0 to 1000");
        CHECK(error_of({"--retry-delay", "soon", "http://h/"}).starts_with("--retry-delay: "));
    }

    TEST_CASE("cli: -A -e -b -u become fields unless -H gave the same name") {
        const auto c = parse({"-A", "a/1", "-H", "referer: mine", "-e", "http://r", "-b", "k=v",
                              "-u", "u:p", "http://h/"})
                           .options;
        const client_fields expected{{"referer", "mine"},
                                     {"User-Agent", "a/1"},
                                     {"Cookie", "k=v"},
                                     {"Authorization", "Basic dTpw"}};
        CHECK(c.headers == expected);
        CHECK(error_of({"-u", "user", "http://h/"}) ==
              "-u: give user:password (there is no password prompt)");
    }

    TEST_CASE("cli: -H 'X;' sends X empty - -H 'X:' does not send X - -H @FILE is kept for main") {
        const auto c = parse({"-H", "A: 1", "-H", "E;", "-H", "A:", "-H", "User-Agent:", "-A", "ua",
                              "-H", "@/tmp/h.txt", "http://h/"})
                           .options;
        const client_fields expected{{"E", ""}};
        CHECK(c.headers == expected); // A removed; -A yields to the removed User-Agent
        CHECK(c.removed_headers == std::vector<std::string>{"A", "User-Agent"});
        CHECK(c.header_files == std::vector<std::string>{"/tmp/h.txt"});
        CHECK(error_of({"-H", "novalue", "http://h/"}) == "-H: 'novalue' is not 'Name: value'");
    }

    TEST_CASE("cli: --data-urlencode's forms - -G makes data the query of a GET") {
        udshttp::test::temp_dir dir;
        udshttp::test::write_file(dir.file("v"), "a&b c");
        const auto c = parse({"-G", "--data-urlencode", "q=a b/ü", "--data-urlencode", "=x y",
                              "--data-urlencode", "plain", "--data-urlencode", "f@" + dir.file("v"),
                              "http://h/"})
                           .options;
        CHECK(c.get);
        CHECK(c.effective_method() == "GET");
        auto body = load_data(c.data);
        REQUIRE(body);
        CHECK(*body == "q=a+b%2F%C3%BC&x+y&plain&f=a%26b+c");
        CHECK(parse({"-d", "x", "http://h/"}).options.effective_method() == "POST");
    }

    TEST_CASE("cli: usage errors name the flag") {
        CHECK(error_of({}) == "no URL given");
        CHECK(error_of({"-X"}) == "option -X needs a value");
        CHECK(error_of({"--nope", "u"}) == "unknown option '--nope'");
        CHECK(error_of({"-F", "novalue", "u"}) == "-F: 'novalue' is not name=content");
        CHECK(error_of({"-F", "f=@", "u"}) == "-F: 'f=@' names no file");
        CHECK(error_of({"-F", "a=b", "-d", "x", "u"}) ==
              "-F cannot be combined with -d, --data-binary, --json or -T");
        CHECK(error_of({"--max-redirs", "many", "u"}).starts_with("--max-redirs: "));
        CHECK(error_of({"-H", "novalue", "u"}) == "-H: 'novalue' is not 'Name: value'");
        CHECK(error_of({"--unix-socket", "", "u"}) == "--unix-socket: the socket path is empty");
        CHECK(error_of({"-m", "soon", "u"}).starts_with("-m: "));
        CHECK(error_of({"routes"}) == "usage: udshttp routes URL");
    }

    TEST_CASE("cli: help - version - routes") {
        CHECK(parse({"-h", "--nope"}).action == action::help);
        CHECK(parse({"--version"}).action == action::version);
        const auto r = parse({"routes", "http://h/"});
        CHECK(r.action == action::routes);
        CHECK(r.options.url == "http://h/");
        CHECK(help_text().find("Exit status") != std::string_view::npos);
    }

    TEST_CASE("cli: headers keep their order and trim the value") {
        const auto c = parse({"-H", "A:  1", "--header=B:2", "u"}).options;
        CHECK(c.headers == udshttp::client::fields{{"A", "1"}, {"B", "2"}});
    }

    TEST_CASE("cli: load_data reads files - strips newlines for -d - names a missing file") {
        udshttp::test::temp_dir dir;
        { std::ofstream(dir.file("f")) << "a\r\nb\n"; }
        auto body = load_data({{"x=1", false, false, true},
                               {dir.file("f"), true, true, true},
                               {dir.file("f"), true, false, false}});
        REQUIRE(body);
        CHECK(*body == "x=1&ab"
                       "a\r\nb\n");
        auto missing = load_data({{dir.file("nope"), true, false, true}});
        REQUIRE_FALSE(missing);
        CHECK(missing.error().message ==
              "cannot read data file '" + dir.file("nope") + "': No such file or directory");
    }

} // TEST_SUITE

TEST_SUITE("internal") {
    TEST_CASE("cli: udshttp events and -N") {
        const auto e =
            parse({"events", "--json", "--reconnect", "--unix-socket", "/s", "http://x/t"});
        CHECK(e.action == action::events);
        CHECK(e.options.events_json);
        CHECK(e.options.reconnect);
        CHECK(e.options.unix_socket == "/s");
        CHECK(e.options.url == "http://x/t");
        CHECK(error_of({"events"}) == "usage: udshttp events [--json] [--reconnect] URL");
        CHECK(error_of({"events", "--frob", "http://x/"}) == "events: unknown option '--frob'");
        CHECK(parse({"-N", "http://x/"}).options.no_buffer);
        const auto w = parse({"ws", "--binary", "--linger", "250ms", "ws://x:1/y"});
        CHECK(w.action == action::ws);
        CHECK(w.options.binary);
        CHECK(w.options.linger == std::chrono::milliseconds(250));
        CHECK(error_of({"ws"}) == "usage: udshttp ws [--binary] [--linger DUR] URL");
        CHECK(error_of({"ws", "--json", "ws://x/"}) == "ws: unknown option '--json'");
        CHECK(parse({"--no-buffer", "http://x/"}).options.no_buffer);
    }

    TEST_CASE("cli: several URLs - each with its -o or -O in order") {
        const auto c =
            parse({"-o", "a.txt", "http://h/1", "-O", "http://h/2", "--url", "http://h/3"}).options;
        CHECK(c.urls == std::vector<std::string>{"http://h/1", "http://h/2", "http://h/3"});
        CHECK(c.url == "http://h/1");
        REQUIRE(c.outputs.size() == 2);
        CHECK(c.outputs[0] == output_target{.file = "a.txt"});
        CHECK(c.outputs[1] == output_target{.remote_name = true});
        CHECK(c.output == "a.txt");
    }

    TEST_CASE("cli: -L --max-redirs --http1.0 -0 --compressed -# and -F's forms") {
        const auto c = parse({"-L", "--max-redirs", "3", "-0", "--compressed", "-#", "-F", "a=b",
                              "-F", "f=@x.png;type=image/x", "-F", "g=@y;filename=z.bin", "-F",
                              "t=<notes", "http://h/"})
                           .options;
        CHECK(c.follow);
        CHECK(c.max_redirs == 3);
        CHECK(c.http10);
        CHECK(c.compressed);
        CHECK(c.progress_bar);
        CHECK(c.effective_method() == "POST");
        REQUIRE(c.form.size() == 4);
        CHECK(c.form[0] == form_part{.name = "a", .value = "b"});
        CHECK(c.form[1] ==
              form_part{
                  .name = "f", .value = "x.png", .how = form_part::kind::file, .type = "image/x"});
        CHECK(c.form[2] ==
              form_part{
                  .name = "g", .value = "y", .how = form_part::kind::file, .filename = "z.bin"});
        CHECK(c.form[3] ==
              form_part{.name = "t", .value = "notes", .how = form_part::kind::file_content});
        CHECK(parse({"--max-redirs", "-1", "u"}).options.max_redirs == UINT_MAX);
        CHECK_FALSE(parse({"-0", "--http1.1", "u"}).options.http10);
    }

    TEST_CASE("cli: -K config files - curl's syntax") {
        auto args = parse_config("# comment\n  silent\nurl = \"http://h/x\"\n-H \"A: b c\"\n"
                                 "header: \"Q: \\\"quoted\\\"\\t!\"\ndata=plain\n",
                                 "cfg");
        REQUIRE(args.has_value());
        CHECK(*args == std::vector<std::string>{"--silent", "--url", "http://h/x", "-H", "A: b c",
                                                "--header", "Q: \"quoted\"\t!", "--data", "plain"});
        auto open = parse_config("url = \"http://h/\n", "cfg");
        REQUIRE_FALSE(open.has_value());
        CHECK(open.error().message == "cfg:1: a quoted value has no closing quote");
        const file_reader reader =
            [](const std::string& f) -> boost::system::result<std::string, usage_error> {
            if (f == "nested")
                return {boost::system::in_place_value, std::string("-K other\n")};
            if (f == "good")
                return {boost::system::in_place_value, std::string("silent\n")};
            return usage_error{"-K: cannot read " + f};
        };
        const std::vector<std::string> given{"-v", "-K", "good", "u"};
        auto expanded = expand_config(given, reader);
        REQUIRE(expanded.has_value());
        CHECK(*expanded == std::vector<std::string>{"-v", "--silent", "u"});
        const std::vector<std::string> nested{"--config=nested"};
        CHECK(expand_config(nested, reader).error().message ==
              "nested: a config file cannot name another (-K)");
        const std::vector<std::string> missing{"-K", "absent"};
        CHECK(expand_config(missing, reader).error().message == "-K: cannot read absent");
    }

    TEST_CASE("cli: where a redirect leads - RFC 3986 references") {
        const auto at = [](std::string_view target, std::string_view location) {
            auto r = resolve_redirect(target, location);
            REQUIRE(r.has_value());
            return *r;
        };
        CHECK(at("/a/b?q=1", "/x").target == "/x");
        CHECK(at("/a/b", "c").target == "/a/c");
        CHECK(at("/a/b/c", "../d?e=f").target == "/a/d?e=f");
        CHECK(at("/a/b", "?only").target == "/a/b?only");
        const auto abs = at("/a", "http://other:8080/p?q");
        CHECK(abs.absolute);
        CHECK(abs.scheme == "http");
        CHECK(abs.host == "other:8080");
        CHECK(abs.target == "/p?q");
        CHECK(at("/a", "http://h").target == "/");
        CHECK_FALSE(resolve_redirect("/a", "http://bad host/").has_value());
    }

    TEST_CASE("cli: -F builds curl's multipart body - files streamed with their length") {
        udshttp::test::temp_dir dir;
        const auto file = dir.file("notes.txt");
        std::ofstream(file) << "hello\n";
        const std::vector<form_part> parts{
            {.name = "name", .value = "Ada"},
            {.name = "up", .value = file, .how = form_part::kind::file},
            {.name = "q\"x", .value = file, .how = form_part::kind::file_content, .type = "a/b"}};
        auto made = make_form_body(parts, "XYZ");
        REQUIRE(made.has_value());
        CHECK(made->content_type == "multipart/form-data; boundary=XYZ");
        const std::string expected =
            "--XYZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nAda\r\n"
            "--XYZ\r\nContent-Disposition: form-data; name=\"up\"; filename=\"notes.txt\"\r\n"
            "Content-Type: text/plain\r\n\r\nhello\n\r\n"
            "--XYZ\r\nContent-Disposition: form-data; name=\"q%22x\"\r\nContent-Type: a/b\r\n\r\n"
            "hello\n\r\n--XYZ--\r\n";
        for (int round = 0; round < 2; ++round) { // each make() starts again
            auto body = made->make();
            REQUIRE(body.length);
            CHECK(*body.length == expected.size());
            std::string got;
            std::vector<char> buf(7); // small pieces cross every segment's edge
            for (;;) {
                auto n = body.source(buf);
                REQUIRE(n.has_value());
                if (*n == 0)
                    break;
                got.append(buf.data(), *n);
            }
            CHECK(got == expected);
        }
        CHECK(guess_type("a.JSON") == "application/octet-stream");
        CHECK(guess_type("a.json") == "application/json");
        CHECK_FALSE(make_form_body(
                        {{.name = "f", .value = dir.file("absent"), .how = form_part::kind::file}})
                        .has_value());
    }

    TEST_CASE("cli: --compressed decodes gzip - deflate (wrapped or raw) - and refuses garbage") {
        CHECK(inflater::for_encoding("identity") == nullptr);
        CHECK(inflater::for_encoding("br") == nullptr);
        auto bad = inflater::for_encoding("gzip");
        std::string sunk;
        const udshttp::client::body_sink sink = [&](std::string_view p) -> udshttp::result<void> {
            sunk.append(p);
            return {};
        };
        CHECK_FALSE(bad->feed("this is not gzip", sink).has_value());
        // zlib's own deflate of "hello hello hello\n", fed a byte at a time.
        const unsigned char wrapped[] = {0x78, 0x9c, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0x57, 0xc8,
                                         0x40, 0x90, 0x5c, 0x00, 0x40, 0xb5, 0x06, 0x87};
        auto z = inflater::for_encoding("deflate");
        for (const auto ch : wrapped)
            REQUIRE(
                z->feed(std::string_view(reinterpret_cast<const char*>(&ch), 1), sink).has_value());
        CHECK(z->finish().has_value());
        CHECK(sunk == "hello hello hello\n");
        sunk.clear();
        auto cut = inflater::for_encoding("deflate");
        REQUIRE(cut->feed(std::string_view(reinterpret_cast<const char*>(wrapped), 8), sink)
                    .has_value());
        CHECK_FALSE(cut->finish().has_value());
    }
}
