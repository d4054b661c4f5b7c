/* Admin routes of the credentials: GET /admin/credentials (source, caches, expiry, refresh counts,
 * last errors; never a token) and POST /admin/credentials/refresh, which asks the cache for
 * `count` tokens at once the way concurrent requests would and reports how that went, naming
 * tokens only by a short SHA-256 fingerprint. */
#include "core_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core_conf.h"
#include "credentials.h"
#include "http_query.h"

#define CRED_ADMIN_MAX_COUNT 10000


static void credentials_admin_status(struct http_request *r, void *arg)
{
	struct core *c = arg;
	const char *m = http_request_method(r);
	if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
		http_response_header(r, "Allow", "GET, HEAD");
		http_response_error(r, 405, "%s is not allowed on %s; use GET", m, http_request_path(r));
		return;
	}
	if (!core_admin_authorized(c, r))
		return;
	http_response_json(r, 200, credentials_status(c->credentials));
}

struct cred_admin_slot {
	struct cred_admin_req *q;
	struct credentials_wait *w;
};

struct cred_admin_req {
	struct http_request *r;
	size_t n, done, ok;
	struct cred_admin_slot *slots;
	json_t *errors, *fingerprints; /* message or fingerprint -> count */
	struct timespec t0;
};

static void credentials_admin_req_free(struct cred_admin_req *q)
{
	for (size_t i = 0; i < q->n; i++)
		credentials_wait_cancel(q->slots[i].w);
	json_decref(q->errors);
	json_decref(q->fingerprints);
	free(q->slots);
	free(q);
}

static void credentials_admin_count(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	json_object_set_new(obj, key, json_integer(v ? json_integer_value(v) + 1 : 1));
}

/* "sha256:" + the first 12 hex digits of the token's SHA-256: enough for tests to match a
 * token the fake issued, useless to anyone holding the admin endpoint. */
static void credentials_admin_fingerprint(const char *token, char *out, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (EVP_Digest(token, strlen(token), md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen < 6) {
		snprintf(out, len, "sha256:?");
		return;
	}
	snprintf(out, len, "sha256:%02x%02x%02x%02x%02x%02x", md[0], md[1], md[2], md[3], md[4], md[5]);
}

static void credentials_admin_on_token(void *arg, const char *token, const char *error)
{
	struct cred_admin_slot *s = arg;
	struct cred_admin_req *q = s->q;
	s->w = NULL;
	q->done++;
	if (token) {
		char fp[40];
		credentials_admin_fingerprint(token, fp, sizeof(fp));
		credentials_admin_count(q->fingerprints, fp);
		q->ok++;
	} else {
		credentials_admin_count(q->errors, error ? error : "?");
	}
	if (q->done < q->n)
		return;
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double elapsed = (double)(t1.tv_sec - q->t0.tv_sec) + (double)(t1.tv_nsec - q->t0.tv_nsec) / 1e9;
	json_t *body = json_pack("{s:I,s:I,s:I,s:O,s:O,s:f}", "requested", (json_int_t)q->n, "ok", (json_int_t)q->ok,
				 "failed", (json_int_t)(q->n - q->ok), "errors", q->errors, "tokens", q->fingerprints,
				 "elapsed", elapsed);
	http_response_json(q->r, q->ok == q->n ? 200 : 503, body);
	credentials_admin_req_free(q);
}

static void credentials_admin_on_abort(struct http_request *r, void *arg)
{
	credentials_admin_req_free(arg);
}

static void credentials_admin_refresh(struct http_request *r, void *arg)
{
	struct core *c = arg;
	if (strcmp(http_request_method(r), "POST") != 0) {
		http_response_header(r, "Allow", "POST");
		http_response_error(r, 405, "%s is not allowed on %s; use POST", http_request_method(r),
				    http_request_path(r));
		return;
	}
	if (!core_admin_authorized(c, r))
		return;
	const char *query = http_request_query(r);
	char *scopes = http_query_param(query, "scopes");
	char *audience = http_query_param(query, "audience");
	char *count_s = http_query_param(query, "count");
	char *inval = http_query_param(query, "invalidate");
	long count = count_s ? strtol(count_s, NULL, 10) : 1;
	struct cred_admin_req *q = NULL;
	if (count < 1 || count > CRED_ADMIN_MAX_COUNT) {
		http_response_error(r, 400, "count must be 1..%d", CRED_ADMIN_MAX_COUNT);
		goto done;
	}
	if (inval && strcmp(inval, "0") != 0 && strcmp(inval, "false") != 0 && !audience)
		credentials_invalidate(c->credentials, scopes, NULL);
	q = calloc(1, sizeof(*q));
	if (!q || !(q->slots = calloc((size_t)count, sizeof(*q->slots))) || !(q->errors = json_object()) ||
	    !(q->fingerprints = json_object())) {
		http_response_error(r, 500, "out of memory");
		goto done;
	}
	q->r = r;
	q->n = (size_t)count;
	clock_gettime(CLOCK_MONOTONIC, &q->t0);
	for (size_t i = 0; i < q->n; i++) {
		q->slots[i].q = q;
		q->slots[i].w = audience ? credentials_get_id_token(c->credentials, audience, credentials_admin_on_token,
								    &q->slots[i])
					 : credentials_get_token(c->credentials, scopes, credentials_admin_on_token,
								 &q->slots[i]);
		if (!q->slots[i].w) {
			http_response_error(r, 500, "out of memory");
			goto done;
		}
	}
	http_request_set_abort_handler(r, credentials_admin_on_abort, q);
	q = NULL;
done:
	if (q)
		credentials_admin_req_free(q);
	free(scopes);
	free(audience);
	free(count_s);
	free(inval);
}

int credentials_admin_mount(struct core *c)
{
	const struct http_route routes[] = {
		{ .prefix = "/admin/credentials", .exact = true, .name = "/admin/credentials",
		  .on_request = credentials_admin_status, .arg = c },
		{ .prefix = "/admin/credentials/refresh", .exact = true, .name = "/admin/credentials/refresh",
		  .on_request = credentials_admin_refresh, .arg = c },
	};
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (http_server_mount(c->admin, &routes[i]) != 0)
			return -1;
	return 0;
}
