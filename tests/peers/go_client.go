// Drive a udshttp server with Go's net/http over a Unix socket dialer.
// Usage: go run go_client.go SOCKET_PATH BODY_LIMIT. Prints "go: N checks passed" and exits 0,
// or the first failure and exits 1.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

var checks int

func expect(cond bool, format string, args ...any) {
	if !cond {
		fmt.Printf("go: check failed: "+format+"\n", args...)
		os.Exit(1)
	}
	checks++
}

func main() {
	path := os.Args[1]
	limit, _ := strconv.Atoi(os.Args[2])
	dials := 0
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				dials++
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
			MaxIdleConnsPerHost: 1,
		},
	}
	call := func(method, target string, body io.Reader, header map[string]string) (*http.Response, []byte) {
		req, err := http.NewRequest(method, "http://localhost"+target, body)
		expect(err == nil, "new request: %v", err)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		res, err := client.Do(req)
		expect(err == nil, "%s %s: %v", method, target, err)
		defer res.Body.Close()
		got, err := io.ReadAll(res.Body)
		expect(err == nil, "%s %s body: %v", method, target, err)
		return res, got
	}
	errorCode := func(body []byte) string {
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		return e.Error.Code
	}

	res, body := call("GET", "/hello", nil, nil)
	expect(res.StatusCode == 200 && string(body) == "Hello Anonymous", "GET /hello: %d %q", res.StatusCode, body)
	_, body = call("GET", "/hello/Ada", nil, map[string]string{"Accept": "application/json"})
	expect(string(body) == `{"message":"Hello Ada","name":"Ada"}`, "hello JSON %q", body)

	payload := make([]byte, 256*1024)
	for i := range payload {
		payload[i] = byte(i)
	}
	res, body = call("POST", "/echo", bytes.NewReader(payload), map[string]string{"Content-Type": "application/x-go"})
	expect(res.Header.Get("Content-Type") == "application/x-go", "echo Content-Type")
	expect(bytes.Equal(body, payload), "echo bytes")

	// A reader of unknown length: Go sends it chunked.
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 30; i++ {
			pw.Write(bytes.Repeat([]byte{byte('a' + i%26)}, 700+i))
		}
		pw.Close()
	}()
	var want bytes.Buffer
	for i := 0; i < 30; i++ {
		want.Write(bytes.Repeat([]byte{byte('a' + i%26)}, 700+i))
	}
	res, body = call("POST", "/echo", pr, nil)
	expect(res.StatusCode == 200 && bytes.Equal(body, want.Bytes()), "chunked upload echo")

	res, body = call("GET", "/nope", nil, nil)
	expect(res.StatusCode == 404 && errorCode(body) == "not_found", "404: %d %q", res.StatusCode, body)
	res, body = call("DELETE", "/echo", nil, nil)
	expect(res.StatusCode == 405 && strings.Contains(res.Header.Get("Allow"), "POST"), "405 with Allow")
	expect(dials == 1, "one keep-alive connection, not %d", dials)

	res, body = call("POST", "/echo", bytes.NewReader(bytes.Repeat([]byte("x"), limit+1)), nil)
	expect(res.StatusCode == 413 && errorCode(body) == "payload_too_large", "413: %d %q", res.StatusCode, body)

	fmt.Printf("go: %d checks passed\n", checks)
}
