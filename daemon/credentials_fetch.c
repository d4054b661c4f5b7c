/* One token fetch per call: the metadata server's token and identity endpoints, the JWT-bearer
 * grant of a service-account key, the refresh-token grant of authorized_user credentials, and
 * the local cases (static token, self-signed JWT). The HTTP client's own retries are off for
 * these: the cache backs off and retries itself, so that waiters see each failure's reason. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <openssl/crypto.h>

#include "credentials_internal.h"
#include "http_client.h"
#include "jwt.h"

#define CRED_BODY_MAX (64 * 1024)
#define CRED_JWT_BEARER "urn:ietf:params:oauth:grant-type:jwt-bearer"

struct cred_fetch {
	struct cred_cache *cache;
	struct http_client_req *req;
	struct evbuffer *body;
	const char *field; /* JSON field holding the token; NULL = the body is the JWT itself */
	bool id_token;
	bool metadata; /* the answer must carry Metadata-Flavor: Google */
	bool flavor_ok;
	int status;
	char what[300];
};

void credentials_fetch_describe(const struct cred_source *src, bool id_token, char *out, size_t len)
{
	const char *kind = id_token ? "an ID token" : "an access token";
	switch (src->kind) {
	case CRED_SOURCE_METADATA:
		snprintf(out, len, "%s from the metadata server at %s%s", kind, src->metadata_url,
			 src->adc_fallback ? " (auto: no GOOGLE_APPLICATION_CREDENTIALS and no gcloud ADC file, so "
					     "the metadata server is the last resort)"
					   : "");
		break;
	case CRED_SOURCE_SERVICE_ACCOUNT:
		if (src->self_signed_jwt && !id_token)
			snprintf(out, len, "a self-signed JWT for service account %s", src->email);
		else
			snprintf(out, len, "%s from %s for service account %s", kind, src->token_uri, src->email);
		break;
	case CRED_SOURCE_AUTHORIZED_USER:
		snprintf(out, len, "%s from %s for the authorized_user credentials of %s", kind, src->token_uri,
			 src->origin ? src->origin : "?");
		break;
	case CRED_SOURCE_STATIC:
		snprintf(out, len, "the static token (%s)", src->origin ? src->origin : "?");
		break;
	default:
		snprintf(out, len, "%s", kind);
	}
}

static void credentials_fetch_free(struct cred_fetch *f)
{
	if (f->body) {
		/* It may hold a token. */
		size_t n = evbuffer_get_length(f->body);
		if (n) {
			unsigned char *p = evbuffer_pullup(f->body, -1);
			if (p)
				OPENSSL_cleanse(p, n);
		}
		evbuffer_free(f->body);
	}
	free(f);
}

static void credentials_fetch_on_headers(struct http_client_req *req, int status, void *arg)
{
	struct cred_fetch *f = arg;
	f->status = status;
	const char *flavor = http_client_resp_header(req, "Metadata-Flavor");
	f->flavor_ok = flavor && strcasecmp(flavor, "Google") == 0;
}

static void credentials_fetch_fail(struct cred_fetch *f, const char *reason, const char *detail, const char *hint)
{
	struct cred_result res = { .reason = reason };
	snprintf(res.error, sizeof(res.error), "%s: %s%s", f->what, detail, hint ? hint : "");
	struct cred_cache *cache = f->cache;
	credentials_fetch_free(f);
	credentials_fetch_finished(cache, &res);
}

static void credentials_fetch_on_body(struct http_client_req *req, struct evbuffer *chunk, void *arg)
{
	struct cred_fetch *f = arg;
	if (evbuffer_get_length(f->body) + evbuffer_get_length(chunk) > CRED_BODY_MAX) {
		http_client_req_cancel(req);
		credentials_fetch_fail(f, "bad_response", "the answer is larger than 64 KiB", NULL);
		return;
	}
	evbuffer_add_buffer(f->body, chunk);
}

static void credentials_fetch_on_done(struct http_client_req *req, enum http_client_result r, const char *error,
				      void *arg)
{
	struct cred_fetch *f = arg;
	if (r != HTTP_CLIENT_OK) {
		credentials_fetch_fail(f, "transport", error ? error : http_client_result_name(r), NULL);
		return;
	}
	if (f->metadata && !f->flavor_ok) {
		char detail[100];
		snprintf(detail, sizeof(detail), "HTTP %d without the header Metadata-Flavor: Google", f->status);
		credentials_fetch_fail(f, "bad_response", detail, " (not a metadata server?)");
		return;
	}
	struct cred_result res = { 0 };
	size_t len = evbuffer_get_length(f->body);
	const char *body = len ? (const char *)evbuffer_pullup(f->body, -1) : "";
	char err[400];
	int rc;
	if (!f->field && f->status >= 200 && f->status <= 299) {
		/* The metadata identity endpoint answers the bare JWT. */
		char *jwt = strndup(body, len);
		size_t n = jwt ? strlen(jwt) : 0;
		while (n > 0 && (jwt[n - 1] == '\n' || jwt[n - 1] == '\r' || jwt[n - 1] == ' '))
			jwt[--n] = '\0';
		rc = -1;
		if (!jwt)
			snprintf(err, sizeof(err), "out of memory");
		else if (credentials_jwt_expires_in(jwt, time(NULL), &res.expires_in_ms) != 0)
			snprintf(err, sizeof(err), "HTTP %d with a body that is not a JWT with an exp claim", f->status);
		else if (res.expires_in_ms <= 0)
			snprintf(err, sizeof(err), "the ID token received has already expired");
		else {
			res.token = jwt;
			jwt = NULL;
			rc = 0;
		}
		if (jwt) {
			OPENSSL_cleanse(jwt, strlen(jwt));
			free(jwt);
		}
	} else {
		rc = credentials_parse_token_response(f->status, body, len, f->field ? f->field : "access_token",
						      time(NULL), &res.token, &res.expires_in_ms, err, sizeof(err));
	}
	if (rc != 0) {
		const char *reason = f->status >= 500 ? "http_5xx" : f->status >= 400 ? "http_4xx" : "bad_response";
		credentials_fetch_fail(f, reason, err, NULL);
		return;
	}
	struct cred_cache *cache = f->cache;
	credentials_fetch_free(f);
	credentials_fetch_finished(cache, &res);
}

/* The x-www-form-urlencoded body of an OAuth2 grant from name/value pairs (NULL-terminated). */
static char *credentials_form(const char *const *kv)
{
	size_t cap = 1;
	char **enc = calloc(16, sizeof(char *));
	size_t n = 0;
	char *out = NULL;
	if (!enc)
		return NULL;
	for (; kv[n] && n < 16; n++) {
		enc[n] = credentials_urlencode(kv[n]);
		if (!enc[n])
			goto done;
		cap += strlen(enc[n]) + 1;
	}
	out = malloc(cap);
	if (!out)
		goto done;
	out[0] = '\0';
	for (size_t i = 0; i + 1 < n; i += 2) {
		if (i)
			strcat(out, "&");
		strcat(out, enc[i]);
		strcat(out, "=");
		strcat(out, enc[i + 1]);
	}
done:
	for (size_t i = 0; i < n; i++) {
		if (enc[i]) {
			OPENSSL_cleanse(enc[i], strlen(enc[i]));
			free(enc[i]);
		}
	}
	free(enc);
	return out;
}

static void credentials_secret_free(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

/* Local results: nothing to ask anyone. 1 = `res` is filled. */
static int credentials_fetch_local(const struct cred_source *src, bool id_token, const char *key,
				   struct cred_result *res, const char *what)
{
	if (src->kind == CRED_SOURCE_NONE) {
		snprintf(res->error, sizeof(res->error), "no credentials configured (%s)", src->origin);
		res->reason = "internal";
		return 1;
	}
	if (id_token && (src->kind == CRED_SOURCE_STATIC || src->kind == CRED_SOURCE_AUTHORIZED_USER)) {
		snprintf(res->error, sizeof(res->error),
			 "ID tokens need a service account key or the metadata server; the credentials are %s",
			 credentials_source_kind_name(src->kind));
		res->reason = "internal";
		return 1;
	}
	if (src->kind == CRED_SOURCE_STATIC) {
		res->token = strdup(src->static_token);
		res->expires_in_ms = CRED_NEVER;
		return 1;
	}
	if (src->kind == CRED_SOURCE_SERVICE_ACCOUNT && src->self_signed_jwt && !id_token) {
		res->token = jwt_self_signed(src->key, src->key_id, src->email, NULL, *key ? key : CRED_DEFAULT_SCOPE,
					     time(NULL));
		res->expires_in_ms = 3600 * 1000;
		if (!res->token) {
			snprintf(res->error, sizeof(res->error), "%s: signing failed", what);
			res->reason = "internal";
		}
		return 1;
	}
	return 0;
}

int credentials_fetch_start(struct credentials *cr, struct cred_cache *cache, const struct cred_source *src,
			    bool id_token, const char *key, int64_t timeout_ms, struct cred_fetch **fetch,
			    struct cred_result *res)
{
	char what[300];
	credentials_fetch_describe(src, id_token, what, sizeof(what));
	if (credentials_fetch_local(src, id_token, key, res, what))
		return 1;

	struct cred_fetch *f = calloc(1, sizeof(*f));
	char *url = NULL, *form = NULL, *assertion = NULL, *enc = NULL;
	const char *upstream = "oauth2";
	if (!f || !(f->body = evbuffer_new()))
		goto oom;
	f->cache = cache;
	f->id_token = id_token;
	snprintf(f->what, sizeof(f->what), "%s", what);
	if (src->kind == CRED_SOURCE_METADATA) {
		upstream = "metadata";
		f->metadata = true;
		enc = credentials_urlencode(key);
		if (!enc)
			goto oom;
		/* ?scopes= takes a comma-separated list; the cache key is space separated. */
		for (char *p = enc; (p = strstr(p, "%20")) != NULL; p += 3)
			memcpy(p, "%2C", 3);
		int n;
		if (id_token)
			n = asprintf(&url, "%s/computeMetadata/v1/instance/service-accounts/default/identity?audience=%s&format=full",
				     src->metadata_url, enc);
		else if (*key)
			n = asprintf(&url, "%s/computeMetadata/v1/instance/service-accounts/default/token?scopes=%s",
				     src->metadata_url, enc);
		else
			n = asprintf(&url, "%s/computeMetadata/v1/instance/service-accounts/default/token",
				     src->metadata_url);
		if (n < 0)
			goto oom;
		f->field = id_token ? NULL : "access_token";
	} else if (src->kind == CRED_SOURCE_SERVICE_ACCOUNT) {
		assertion = jwt_bearer_assertion(src->key, src->key_id, src->email,
						 id_token ? NULL : (*key ? key : CRED_DEFAULT_SCOPE), id_token ? key : NULL,
						 src->token_uri, time(NULL));
		if (!assertion) {
			snprintf(res->error, sizeof(res->error), "%s: signing the assertion failed", what);
			res->reason = "internal";
			credentials_fetch_free(f);
			return 1;
		}
		const char *kv[] = { "grant_type", CRED_JWT_BEARER, "assertion", assertion, NULL };
		form = credentials_form(kv);
		url = strdup(src->token_uri);
		f->field = id_token ? "id_token" : "access_token";
	} else { /* authorized_user: the refresh token carries its own scopes */
		const char *kv[] = { "grant_type",    "refresh_token",    "client_id",     src->client_id,
				     "client_secret", src->client_secret, "refresh_token", src->refresh_token,
				     NULL };
		form = credentials_form(kv);
		url = strdup(src->token_uri);
		f->field = "access_token";
	}
	if (!url || (src->kind != CRED_SOURCE_METADATA && !form))
		goto oom;
	f->req = http_client_req_create(credentials_http(cr), upstream, form ? "POST" : "GET", url);
	if (!f->req)
		goto oom;
	if (f->metadata)
		http_client_req_header(f->req, "Metadata-Flavor", "Google");
	http_client_req_header(f->req, "Accept", "application/json");
	if (form) {
		http_client_req_header(f->req, "Content-Type", "application/x-www-form-urlencoded");
		if (http_client_req_body(f->req, form, strlen(form)) != 0) {
			http_client_req_cancel(f->req);
			goto oom;
		}
	}
	http_client_req_idempotent(f->req, false);
	http_client_req_timeout(f->req, timeout_ms);
	const struct http_client_cbs cbs = {
		.on_headers = credentials_fetch_on_headers,
		.on_body = credentials_fetch_on_body,
		.on_done = credentials_fetch_on_done,
	};
	http_client_req_callbacks(f->req, &cbs, f);
	if (http_client_req_start(f->req) != 0) {
		f->req = NULL;
		goto oom;
	}
	free(url);
	free(enc);
	credentials_secret_free(form);
	credentials_secret_free(assertion);
	*fetch = f;
	return 0;
oom:
	snprintf(res->error, sizeof(res->error), "%s: could not start the request (out of memory or bad URL)", what);
	res->reason = "internal";
	free(url);
	free(enc);
	credentials_secret_free(form);
	credentials_secret_free(assertion);
	if (f)
		credentials_fetch_free(f);
	return 1;
}

void credentials_fetch_cancel(struct cred_fetch *f)
{
	if (!f)
		return;
	if (f->req)
		http_client_req_cancel(f->req);
	credentials_fetch_free(f);
}
