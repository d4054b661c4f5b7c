/* The echo plugin: a diagnostic route on the HTTP listeners that streams a request body straight
 * back (POST/PUT) or generates N bytes (GET ?bytes=N), with back-pressure both ways; the test
 * suite uses it to show bodies pass in bounded memory and limits hold. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "conf.h"
#include "core.h"
#include "plugin.h"

struct echo_conf {
	char *prefix;
	uint64_t max_body;
};

struct echo {
	struct core *core;
	const struct echo_conf *conf;
	struct log_src log;
	char *prefix; /* mounted prefix (routes keep the pointer) */
};

/* One request being echoed or generated. */
struct echo_req {
	struct http_request *r;
	uint64_t remaining; /* GET: bytes still to generate */
	bool started;       /* POST/PUT: response begun */
};

#define ECHO_HIGH_WATER (256 * 1024)
#define ECHO_CHUNK (64 * 1024)
/* A body is collected up to this size before the answer starts, so small bodies get a
 * Content-Length and a body over the route limit still gets a clean 413. */
#define ECHO_COLLECT (128 * 1024)

static void echo_req_free(struct http_request *r, void *arg)
{
	free(arg);
}

static void echo_on_body(struct http_request *r, struct evbuffer *data, void *arg)
{
	struct echo_req *er = arg;
	if (!er->started) {
		if (evbuffer_get_length(data) < ECHO_COLLECT)
			return; /* keep collecting */
		er->started = true;
		http_response_begin(r, 200, http_request_content_length(r));
	}
	http_response_write_buffer(r, data);
	if (http_response_pending(r) > ECHO_HIGH_WATER)
		http_request_body_pause(r);
}

static void echo_on_drain_body(struct http_request *r, void *arg)
{
	http_request_body_resume(r);
}

static void echo_on_end(struct http_request *r, void *arg)
{
	struct echo_req *er = arg;
	struct evbuffer *rest = http_request_body_buffer(r);
	if (!er->started)
		http_response_begin(r, 200, (int64_t)evbuffer_get_length(rest));
	http_response_write_buffer(r, rest);
	free(er);
	http_response_end(r);
}

static void echo_generate(struct http_request *r, void *arg)
{
	struct echo_req *er = arg;
	static const char pattern[ECHO_CHUNK] = { 0 };
	while (er->remaining > 0 && http_response_pending(r) < ECHO_HIGH_WATER) {
		size_t n = er->remaining < ECHO_CHUNK ? (size_t)er->remaining : ECHO_CHUNK;
		if (http_response_write(r, pattern, n) != 0)
			return;
		er->remaining -= n;
	}
	if (er->remaining == 0) {
		http_response_end(r);
		free(er);
	}
}

static void echo_on_request(struct http_request *r, void *arg)
{
	const char *m = http_request_method(r);
	struct echo_req *er = calloc(1, sizeof(*er));
	if (!er) {
		http_response_error(r, 500, "out of memory");
		return;
	}
	er->r = r;
	http_response_header(r, "Content-Type", "application/octet-stream");
	if (strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0) {
		http_request_set_abort_handler(r, echo_req_free, er);
		http_request_set_body_handlers(r, echo_on_body, echo_on_end, er);
		http_response_set_drain_handler(r, echo_on_drain_body, er);
		return;
	}
	if (strcmp(m, "GET") == 0) {
		const char *q = strstr(http_request_query(r), "bytes=");
		er->remaining = q ? strtoull(q + 6, NULL, 10) : 0;
		http_request_set_abort_handler(r, echo_req_free, er);
		http_response_set_drain_handler(r, echo_generate, er);
		http_response_begin(r, 200, (int64_t)er->remaining);
		echo_generate(r, er);
		return;
	}
	free(er);
	http_response_error(r, 405, "echo takes GET, POST or PUT");
}

static void *echo_init(struct core *core, const void *conf)
{
	struct echo *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->core = core;
	e->conf = conf;
	e->log = (struct log_src){ "echo", 0 };
	return e;
}

static int echo_start(void *inst)
{
	struct echo *e = inst;
	struct http_server *http = core_http(e->core);
	if (!http) {
		log_error(&e->log, "the echo plugin needs an http section with listeners");
		return -1;
	}
	e->prefix = strdup(e->conf->prefix);
	struct http_route route = {
		.prefix = e->prefix,
		.name = "echo",
		.max_body = (size_t)e->conf->max_body,
		.on_request = echo_on_request,
		.arg = e,
	};
	return http_server_mount(http, &route);
}

static void echo_reload(void *inst, const void *conf)
{
	struct echo *e = inst;
	e->conf = conf;
}

static void echo_stop(void *inst)
{
	struct echo *e = inst;
	free(e->prefix);
	free(e);
}

static const struct conf_key echo_keys[] = {
	{ "prefix", CONF_STRING, 0, offsetof(struct echo_conf, prefix), "/echo/", 0, 0, NULL, NULL,
	  "Route prefix the echo handler is mounted on." },
	{ "max_body", CONF_SIZE, 0, offsetof(struct echo_conf, max_body), "1GiB", 0, 0, NULL, NULL,
	  "Largest body echoed; larger requests get 413." },
	{ NULL }
};

static const struct conf_table echo_conf_table = {
	.name = "echo",
	.desc = "Diagnostic: streams request bodies back (POST/PUT PREFIX...) or sends N zero bytes "
		"(GET PREFIX...?bytes=N). For testing the HTTP path; leave it out in production.",
	.keys = echo_keys,
	.size = sizeof(struct echo_conf),
	.reference_commented = true,
};

const struct plugin echo_plugin = {
	.name = "echo",
	.description = "streams HTTP bodies back, for tests",
	.conf = &echo_conf_table,
	.init = echo_init,
	.start = echo_start,
	.reload = echo_reload,
	.stop = echo_stop,
};
