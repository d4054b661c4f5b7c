/* The pubsub plugin: forwards the Pub/Sub REST API v1 (/v1/projects/P/topics, subscriptions,
 * snapshots and schemas) to pubsub.endpoint with tether's token (or none, for the emulator).
 * Reads, acknowledgements and ack-deadline changes may be retried; publishing is left to the
 * client library's own retries, which know their messages. */
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "core.h"
#include "forward.h"
#include "http_server.h"
#include "plugin.h"

struct pubsub_conf {
	struct forward_conf fw;
};

struct pubsub {
	struct core *core;
	struct log_src log;
	struct forward *fw;
};

#define PUBSUB_PREFIX "/v1/projects/"

static bool pubsub_ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int pubsub_classify(void *arg, struct http_request *r, struct forward_call *call, char *err, size_t errlen)
{
	static const char *const kinds[] = { "topics", "subscriptions", "snapshots", "schemas" };
	const char *path = http_request_path(r), *method = http_request_method(r);
	const char *project = path + strlen(PUBSUB_PREFIX);
	const char *slash = strchr(project, '/');
	if (strncmp(path, PUBSUB_PREFIX, strlen(PUBSUB_PREFIX)) != 0 || !slash || slash == project)
		goto unknown;
	const char *kind = slash + 1;
	call->route = NULL;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(*kinds); i++) {
		size_t n = strlen(kinds[i]);
		if (strncmp(kind, kinds[i], n) == 0 && (kind[n] == '\0' || kind[n] == '/' || kind[n] == ':'))
			call->route = kinds[i];
	}
	if (!call->route)
		goto unknown;
	call->idempotent = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ||
			   (strcmp(method, "POST") == 0 &&
			    (pubsub_ends_with(path, ":acknowledge") || pubsub_ends_with(path, ":modifyAckDeadline")));
	return 0;
unknown:
	snprintf(err, errlen, "tether forwards only /v1/projects/{project}/topics, subscriptions, snapshots and "
			      "schemas here, not %s",
		 path);
	return 404;
}

static void *pubsub_init(struct core *core, const void *conf)
{
	const struct pubsub_conf *pc = conf;
	struct pubsub *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->core = core;
	p->log = (struct log_src){ "pubsub", 0 };
	const struct forward_spec spec = {
		.name = "pubsub",
		.classify = pubsub_classify,
		.arg = p,
	};
	p->fw = forward_create(core, &spec, &pc->fw);
	if (!p->fw) {
		log_error(&p->log, "cannot create the forwarder");
		free(p);
		return NULL;
	}
	return p;
}

static int pubsub_start(void *inst)
{
	struct pubsub *p = inst;
	return forward_mount(p->fw, PUBSUB_PREFIX, "pubsub");
}

static void pubsub_reload(void *inst, const void *conf)
{
	struct pubsub *p = inst;
	forward_set_conf(p->fw, &((const struct pubsub_conf *)conf)->fw);
}

static void pubsub_drain(void *inst, void (*done)(void *arg), void *arg)
{
	struct pubsub *p = inst;
	forward_drain(p->fw, done, arg);
}

static bool pubsub_ready(void *inst, char *reason, size_t len)
{
	struct pubsub *p = inst;
	return forward_ready(p->fw, reason, len);
}

static void pubsub_stop(void *inst)
{
	struct pubsub *p = inst;
	forward_destroy(p->fw);
	free(p);
}

static int pubsub_conf_validate(void *obj, struct conf_errors *errs)
{
	const struct pubsub_conf *pc = obj;
	return forward_conf_validate(&pc->fw, obj, errs);
}

static const struct conf_key pubsub_keys[] = {
	FORWARD_CONF_KEYS(struct pubsub_conf, fw, "https://pubsub.googleapis.com",
			  "[\"https://www.googleapis.com/auth/cloud-platform\"]", "16MiB"),
	{ NULL }
};

static const struct conf_table pubsub_conf_table = {
	.name = "pubsub",
	.desc = "Pub/Sub REST API v1 forwarding: /v1/projects/{project}/topics, subscriptions, snapshots and "
		"schemas on the http listeners go to `endpoint` with tether's token. For the emulator set "
		"endpoint: http://127.0.0.1:8085 and token: false.",
	.keys = pubsub_keys,
	.size = sizeof(struct pubsub_conf),
	.validate = pubsub_conf_validate,
	.reference_commented = true,
};

const struct plugin pubsub_plugin = {
	.name = "pubsub",
	.description = "Pub/Sub REST API forwarding",
	.conf = &pubsub_conf_table,
	.init = pubsub_init,
	.start = pubsub_start,
	.reload = pubsub_reload,
	.drain = pubsub_drain,
	.stop = pubsub_stop,
	.ready = pubsub_ready,
};
