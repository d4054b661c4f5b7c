/* The storage plugin: forwards the Cloud Storage JSON API (/storage/v1/, /upload/storage/v1/,
 * /download/storage/v1/) to storage.endpoint with tether's token, rewriting resumable-upload
 * session URIs so the app keeps talking to tether; says which calls are safe to retry by
 * Google's retry strategy for Cloud Storage. */
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "core.h"
#include "forward.h"
#include "http_server.h"
#include "plugin.h"

struct storage_conf {
	struct forward_conf fw;
};

struct storage {
	struct core *core;
	struct log_src log;
	struct forward *fw;
};

/* The resource a JSON API path names: "b" (buckets), "b/B" (a bucket), "b/B/o..." (objects).
 * /resumable/upload/... is the upload path Python's apitools (gcloud storage, gsutil) uses for
 * resumable sessions; Cloud Storage serves it like /upload/... */
static const char *storage_resource(const char *path)
{
	static const char *const prefixes[] = { "/storage/v1/", "/upload/storage/v1/", "/download/storage/v1/",
						"/resumable/upload/storage/v1/" };
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(*prefixes); i++)
		if (strncmp(path, prefixes[i], strlen(prefixes[i])) == 0)
			return path + strlen(prefixes[i]);
	return NULL;
}

/* Google's Cloud Storage retry strategy: reads always; bucket create/delete always; object
 * writes with ifGenerationMatch; deletes of a named generation; metadata updates with
 * ifMetagenerationMatch; every call on a resumable session (chunks are safe to resend, the
 * server keeps what it has) and opening one (an unused session costs nothing). */
static bool storage_idempotent(const char *method, const char *res, const char *query)
{
	if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 || strcmp(method, "OPTIONS") == 0)
		return true;
	char v[64];
	if (forward_query_param(query, "upload_id", NULL, 0))
		return true;
	if (forward_query_param(query, "uploadType", v, sizeof(v)) && strcmp(v, "resumable") == 0 &&
	    strcmp(method, "POST") == 0)
		return true;
	if (forward_query_param(query, "ifGenerationMatch", NULL, 0))
		return true;
	if (strcmp(method, "DELETE") == 0 && forward_query_param(query, "generation", NULL, 0))
		return true;
	if ((strcmp(method, "PATCH") == 0 || strcmp(method, "PUT") == 0) &&
	    forward_query_param(query, "ifMetagenerationMatch", NULL, 0))
		return true;
	/* buckets.insert (POST b) and buckets.delete (DELETE b/NAME) */
	if (strcmp(method, "POST") == 0 && strcmp(res, "b") == 0)
		return true;
	if (strcmp(method, "DELETE") == 0 && strncmp(res, "b/", 2) == 0 && !strchr(res + 2, '/'))
		return true;
	return false;
}

static int storage_classify(void *arg, struct http_request *r, struct forward_call *call, char *err, size_t errlen)
{
	const char *path = http_request_path(r), *query = http_request_query(r), *method = http_request_method(r);
	const char *res = storage_resource(path);
	if (!res)
		return 404;
	char alt[16] = "";
	forward_query_param(query, "alt", alt, sizeof(alt));
	if (path[1] == 'u' || path[1] == 'r')
		call->route = forward_query_param(query, "upload_id", NULL, 0) ? "upload_session" : "upload";
	else if (path[1] == 'd' || strcmp(alt, "media") == 0)
		call->route = "download";
	else if (strncmp(res, "b/", 2) == 0 && strstr(res, "/o"))
		call->route = "objects";
	else if (res[0] == 'b' && (res[1] == '\0' || res[1] == '/'))
		call->route = "buckets";
	else
		call->route = "other";
	call->idempotent = storage_idempotent(method, res, query);
	return 0;
}

static void *storage_init(struct core *core, const void *conf)
{
	const struct storage_conf *sc = conf;
	struct storage *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->core = core;
	s->log = (struct log_src){ "storage", 0 };
	const struct forward_spec spec = {
		.name = "storage",
		.classify = storage_classify,
		.arg = s,
		.rewrite_location = true,
	};
	s->fw = forward_create(core, &spec, &sc->fw);
	if (!s->fw) {
		log_error(&s->log, "cannot create the forwarder");
		free(s);
		return NULL;
	}
	return s;
}

static int storage_start(void *inst)
{
	struct storage *s = inst;
	if (forward_mount(s->fw, "/storage/v1/", "storage") != 0 ||
	    forward_mount(s->fw, "/upload/storage/v1/", "storage_upload") != 0 ||
	    forward_mount(s->fw, "/download/storage/v1/", "storage_download") != 0 ||
	    forward_mount(s->fw, "/resumable/upload/storage/v1/", "storage_upload") != 0)
		return -1;
	return 0;
}

static void storage_reload(void *inst, const void *conf)
{
	struct storage *s = inst;
	forward_set_conf(s->fw, &((const struct storage_conf *)conf)->fw);
}

static void storage_drain(void *inst, void (*done)(void *arg), void *arg)
{
	struct storage *s = inst;
	forward_drain(s->fw, done, arg);
}

static bool storage_ready(void *inst, char *reason, size_t len)
{
	struct storage *s = inst;
	return forward_ready(s->fw, reason, len);
}

static void storage_stop(void *inst)
{
	struct storage *s = inst;
	forward_destroy(s->fw);
	free(s);
}

static int storage_conf_validate(void *obj, struct conf_errors *errs)
{
	const struct storage_conf *sc = obj;
	return forward_conf_validate(&sc->fw, obj, errs);
}

static const struct conf_key storage_keys[] = {
	FORWARD_CONF_KEYS(struct storage_conf, fw, "https://storage.googleapis.com",
			  "[\"https://www.googleapis.com/auth/cloud-platform\"]", "5TiB"),
	{ NULL }
};

static const struct conf_table storage_conf_table = {
	.name = "storage",
	.desc = "Cloud Storage JSON API forwarding: /storage/v1/..., /upload/storage/v1/... and "
		"/download/storage/v1/... on the http listeners go to `endpoint` with tether's token. Point "
		"a client library's apiEndpoint at tether (http://127.0.0.1:8080).",
	.keys = storage_keys,
	.size = sizeof(struct storage_conf),
	.validate = storage_conf_validate,
	.reference_commented = true,
};

const struct plugin storage_plugin = {
	.name = "storage",
	.description = "Cloud Storage JSON API forwarding",
	.conf = &storage_conf_table,
	.init = storage_init,
	.start = storage_start,
	.reload = storage_reload,
	.drain = storage_drain,
	.stop = storage_stop,
	.ready = storage_ready,
};
