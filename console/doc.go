// Package console is Herald's web console: a single-page application of
// plain HTML, CSS and JavaScript modules, embedded in the binary, that
// reads and manages an account through the HTTP API under /v1 with the
// key its user signs in with. It needs no front-end toolchain and loads
// nothing from the network but the server that serves it.
//
// Handler serves the application: index.html at / and at any other path
// without a dot (so that deep links work), and the files under /assets/.
// httpapi.Config.Console mounts it beside the API.
package console
