/* Shared between the credentials files: the resolved source (credentials_source.c), the pure
 * policy helpers with their own unit tests (credentials_policy.c), the token fetches over HTTP
 * (credentials_fetch.c) and the cache that drives them (credentials.c). */
#ifndef TETHER_CREDENTIALS_INTERNAL_H
#define TETHER_CREDENTIALS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>

#include "credentials.h"
#include "credentials_conf.h"

#define CRED_DEFAULT_TOKEN_URI "https://oauth2.googleapis.com/token"
#define CRED_DEFAULT_METADATA_HOST "metadata.google.internal"
#define CRED_DEFAULT_SCOPE "https://www.googleapis.com/auth/cloud-platform"
#define CRED_NEVER INT64_MAX

/* --- the source (credentials_source.c) --- */

/* One resolved credential. Secrets (key, client_secret, refresh_token, static_token) are only
 * ever sent where they belong; nothing here is logged but origin, email and URLs. */
struct cred_source {
	int kind;       /* enum credentials_source_kind, never AUTO once resolved */
	char *origin;   /* how it was found, for logs and /admin/credentials (a path, never content) */
	bool adc_fallback; /* metadata chosen because auto found no file: errors say so */
	char *metadata_url; /* metadata: "http://host[:port]" */
	EVP_PKEY *key;      /* service_account */
	char *email;
	char *key_id;
	char *token_uri;    /* service_account, authorized_user */
	char *client_id, *client_secret, *refresh_token; /* authorized_user */
	char *static_token;
	bool self_signed_jwt;
};

/* Parses a key file's JSON text (`path` names it in errors). Fills `src` for type
 * service_account or authorized_user; any other type, missing field or bad key is an error
 * naming the file and the field, never quoting a value. 0 or -1. */
int credentials_keyfile_parse(const char *path, const char *text, size_t len, struct cred_source *src, char *err,
			      size_t errlen);
/* Reads and parses a key file (at most 1 MiB). 0 or -1 with `err`. */
int credentials_keyfile_load(const char *path, struct cred_source *src, char *err, size_t errlen);
/* gcloud's ADC file: $CLOUDSDK_CONFIG/application_default_credentials.json, else
 * $HOME/.config/gcloud/application_default_credentials.json. malloc'd; NULL without HOME. */
char *credentials_adc_gcloud_path(void);
/* "http://host[:port]" for a configured host (NULL = $GCE_METADATA_HOST, $GCE_METADATA_ROOT,
 * metadata.google.internal); a given http:// prefix is kept, a trailing '/' dropped. */
char *credentials_metadata_url(const char *configured);
/* Resolves the source `cc` names (AUTO: the ADC chain). 0, or -1 with `err` naming the file,
 * variable or key at fault. */
int credentials_source_resolve(const struct credentials_conf *cc, struct cred_source *src, char *err,
			       size_t errlen);
void credentials_source_deinit(struct cred_source *src);
/* "service_account", "metadata", ... for the resolved kind. */
const char *credentials_source_kind_name(int kind);

/* --- pure policy (credentials_policy.c) --- */

/* When a token is good and when to refresh it, in monotonic milliseconds. */
struct cred_timing {
	int64_t obtained; /* when it arrived */
	int64_t expires;  /* CRED_NEVER for a static token; 0 = no token */
	int64_t refresh;  /* when to fetch the next one */
};

/* A token valid for `expires_in_ms` arrived at `now`: refresh at expiry minus
 * min(refresh_ahead, lifetime / 2), minus up to a quarter of that again at random (`rnd` in
 * [0, 1)), never sooner than 1 s after arrival unless the lifetime itself is shorter. */
void credentials_timing_set(struct cred_timing *t, int64_t now, int64_t expires_in_ms, int64_t refresh_ahead_ms,
			    double rnd);
/* Good to hand out: at least min(10 s, lifetime / 4) of life left, so a request that starts
 * with it does not reach the upstream with an expired token. */
bool credentials_timing_usable(const struct cred_timing *t, int64_t now);
/* Still not expired (kept while a refresh fails, reported in status). */
bool credentials_timing_valid(const struct cred_timing *t, int64_t now);
/* Wait before the next attempt after `failures` consecutive failures (>= 1): uniform in
 * [initial/2, min(max, initial * 2^(failures-1))] (full jitter with a floor so a flapping
 * endpoint is not hammered). */
int64_t credentials_backoff_ms(int failures, int64_t initial_ms, int64_t max_ms, double rnd);

/* Scope list as given by callers or config ("a b", "a,b", repeated, unordered) as the cache
 * key: sorted, deduplicated, space separated. NULL/empty input gives "". malloc'd. */
char *credentials_scopes_normalize(const char *scopes);
/* application/x-www-form-urlencoded / URL query escaping (unreserved characters kept). */
char *credentials_urlencode(const char *s);

/* A token endpoint's answer (`body`, HTTP `status`). For field "access_token" the lifetime is
 * expires_in; for "id_token" it is the JWT's exp against `now_wall`. On success 0 with
 * *token malloc'd and *expires_in_ms set. On failure -1 with `err` a sentence (the OAuth2
 * error and error_description when present, sanitised; never the body otherwise). */
int credentials_parse_token_response(int status, const char *body, size_t len, const char *field, time_t now_wall,
				     char **token, int64_t *expires_in_ms, char *err, size_t errlen);
/* An ID token's remaining lifetime from its exp claim (not verified). 0 or -1. */
int credentials_jwt_expires_in(const char *jwt, time_t now_wall, int64_t *expires_in_ms);
/* Copies printable ASCII of `s` (at most `n` bytes) into `out`, for quoting upstream error text. */
void credentials_sanitize(const char *s, size_t n, char *out, size_t outlen);

/* --- the cache and fetching (credentials.c, credentials_fetch.c) --- */

struct cred_cache;

/* Outcome of one fetch. */
struct cred_result {
	char *token;            /* malloc'd on success */
	int64_t expires_in_ms;
	char error[1024];       /* on failure */
	const char *reason;     /* failure metric label: transport, http_4xx, http_5xx, bad_response, internal */
};

struct cred_fetch;
/* Starts fetching a token for `cache` (access token for `key` scopes or ID token for audience
 * `key`). Returns 1 when the result is already in `res` (static, self-signed, immediate errors)
 * or 0 when credentials_fetch_finished will be called later from the loop, with *fetch set so
 * credentials_fetch_cancel can stop it. */
int credentials_fetch_start(struct credentials *cr, struct cred_cache *cache, const struct cred_source *src,
			    bool id_token, const char *key, int64_t timeout_ms, struct cred_fetch **fetch,
			    struct cred_result *res);
void credentials_fetch_cancel(struct cred_fetch *f);
/* Implemented by credentials.c: an asynchronous fetch ended; `res` is consumed. */
void credentials_fetch_finished(struct cred_cache *cache, struct cred_result *res);
/* What a fetch talks to, for error messages ("the metadata server at http://..."). */
void credentials_fetch_describe(const struct cred_source *src, bool id_token, char *out, size_t len);
struct http_client *credentials_http(struct credentials *cr);

#endif
