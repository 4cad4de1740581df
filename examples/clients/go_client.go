// Calls udshttpd over a Unix socket with Go's net/http: a Transport whose dialer ignores the
// host and dials the socket.
//
//	go run examples/clients/go_client.go /run/app.sock
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
)

func main() {
	path := os.Args[1]
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
	call := func(method, target, accept, body string) (int, string) {
		req, err := http.NewRequest(method, "http://localhost"+target, strings.NewReader(body))
		if err != nil {
			panic(err)
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		res, err := client.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, "go_client:", err)
			os.Exit(1)
		}
		defer res.Body.Close()
		data, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(data)
	}
	_, hello := call("GET", "/hello", "", "")
	fmt.Println("hello:", hello)
	_, text := call("GET", "/hello/Ada%20L", "application/json", "")
	var greeting struct{ Message string }
	json.Unmarshal([]byte(text), &greeting)
	fmt.Println("json:", greeting.Message)
	_, echo := call("POST", "/echo", "", "ping")
	fmt.Println("echo:", echo)
	status, missing := call("GET", "/nope", "", "")
	var failure struct{ Error struct{ Code string } }
	json.Unmarshal([]byte(missing), &failure)
	fmt.Println("error:", status, failure.Error.Code)
}
